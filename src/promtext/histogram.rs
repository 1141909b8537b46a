//! Classic (bucketed) histograms: collecting series, merging, mean and PromQL-style quantiles.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Family, LabelFilter, Labels};

/// One histogram (or a sum of several series, or a delta between snapshots).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramData {
    /// `(le, cumulative count)`, sorted by `le`; normally ends with `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

/// Relative tolerance below which neighbouring cumulative counts are treated as equal (as PromQL).
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

impl HistogramData {
    /// `sum / count`; `None` without observations or when either is NaN.
    pub fn mean(&self) -> Option<f64> {
        let mean = self.sum / self.count;
        (self.count > 0.0 && !mean.is_nan()).then_some(mean)
    }

    /// The `q` quantile, mirroring PromQL `histogram_quantile` over classic buckets: linear
    /// interpolation inside the bucket (lower bound 0 for the first bucket when its `le` is
    /// positive), the last finite upper bound when the rank falls in the `+Inf` bucket, counts made
    /// monotonic first. `None` where PromQL gives NaN or ±Inf: `q` outside `[0, 1]`, no `+Inf`
    /// bucket, fewer than two buckets, no observations, NaN counts.
    ///
    /// One deliberate difference: for `q == 0` with an empty lowest bucket PromQL divides 0 by 0
    /// (NaN); this returns the lower edge of the first non-empty bucket (the limit as `q -> 0`).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let mut buckets: Vec<(f64, f64)> = self.buckets.iter().copied().filter(|(le, _)| !le.is_nan()).collect();
        if buckets.iter().any(|(_, count)| count.is_nan()) {
            return None;
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        coalesce(&mut buckets);
        if buckets.len() < 2 || buckets.last()?.0 != f64::INFINITY {
            return None;
        }
        correct_precision_errors(&mut buckets, SMALL_DELTA_TOLERANCE);
        ensure_monotonic(&mut buckets);
        let observations = buckets.last()?.1;
        if !(observations > 0.0 && observations.is_finite()) {
            return None;
        }
        let mut rank = q * observations;
        let last = buckets.len() - 1;
        let b = if rank == 0.0 {
            buckets[..last].partition_point(|(_, count)| *count <= 0.0)
        } else {
            buckets[..last].partition_point(|(_, count)| *count < rank)
        };
        if b == last {
            return Some(buckets[last - 1].0);
        }
        if b == 0 && buckets[0].0 <= 0.0 {
            return Some(buckets[0].0);
        }
        let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
        if b > 0 {
            start = buckets[b - 1].0;
            count -= buckets[b - 1].1;
            rank -= buckets[b - 1].1;
        }
        let value = start + (end - start) * (rank / count);
        (!value.is_nan()).then_some(value)
    }

    /// Sum of several histograms: buckets added up by `le` (as `sum by (le)` in PromQL).
    pub fn merge<'a>(parts: impl IntoIterator<Item = &'a HistogramData>) -> HistogramData {
        let mut merged = HistogramData::default();
        for part in parts {
            merged.buckets.extend_from_slice(&part.buckets);
            merged.sum += part.sum;
            merged.count += part.count;
        }
        merged.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        coalesce(&mut merged.buckets);
        merged
    }

    /// The cumulative count of the bucket with exactly this `le`.
    pub fn bucket(&self, le: f64) -> Option<f64> {
        self.buckets.iter().find(|(b, _)| *b == le).map(|(_, c)| *c)
    }
}

/// Merge neighbouring buckets with the same `le` (input sorted), adding their counts.
fn coalesce(buckets: &mut Vec<(f64, f64)>) {
    buckets.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
        }
        same
    });
}

fn correct_precision_errors(buckets: &mut [(f64, f64)], tolerance: f64) {
    let mut prev = buckets[0].1;
    for bucket in buckets.iter_mut().skip(1) {
        let delta = (bucket.1 - prev).abs();
        if delta == 0.0 {
            continue;
        }
        if delta / bucket.1.abs() <= tolerance {
            bucket.1 = prev;
        } else {
            prev = bucket.1;
        }
    }
}

fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    let mut max = buckets[0].1;
    for bucket in buckets.iter_mut().skip(1) {
        if bucket.1 > max {
            max = bucket.1;
        } else {
            bucket.1 = max;
        }
    }
}

/// Parse an `le` label value (`0.1`, `1.0`, `+Inf`).
pub(super) fn parse_le(le: &str) -> Option<f64> {
    le.trim().parse::<f64>().ok().filter(|v| !v.is_nan())
}

#[derive(Default)]
struct Partial {
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// Per-series histograms of a histogram/gaugehistogram family, in first-seen order.
pub(super) fn collect_series(family: &Family, filter: &LabelFilter) -> Vec<(Labels, HistogramData)> {
    let mut series: Vec<(Labels, Partial)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for sample in &family.samples {
        let Some(suffix) = family.suffix_of(sample) else {
            continue;
        };
        if !matches!(suffix, "_bucket" | "_sum" | "_gsum" | "_count" | "_gcount") {
            continue;
        }
        let le = if suffix == "_bucket" {
            match sample.labels.get("le").and_then(parse_le) {
                Some(le) => Some(le),
                None => continue,
            }
        } else {
            None
        };
        let key = if le.is_some() { sample.labels.without("le") } else { sample.labels.clone() };
        if !filter.matches(&key) {
            continue;
        }
        // Samples of one series are usually adjacent: try the last one before hashing.
        let position = match series.last() {
            Some((last, _)) if *last == key => series.len() - 1,
            _ => *index.entry(key.clone()).or_insert_with(|| {
                series.push((key, Partial::default()));
                series.len() - 1
            }),
        };
        let entry = &mut series[position].1;
        match (suffix, le) {
            (_, Some(le)) => entry.buckets.push((le, sample.value)),
            ("_sum" | "_gsum", _) => entry.sum = Some(sample.value),
            _ => entry.count = Some(sample.value),
        }
    }
    series
        .into_iter()
        .map(|(labels, mut partial)| {
            partial.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            coalesce(&mut partial.buckets);
            let inf_bucket = partial.buckets.last().filter(|(le, _)| *le == f64::INFINITY).map(|(_, c)| *c);
            let data = HistogramData {
                count: partial.count.or(inf_bucket).unwrap_or(f64::NAN),
                sum: partial.sum.unwrap_or(f64::NAN),
                buckets: partial.buckets,
            };
            (labels, data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn h(buckets: &[(f64, f64)]) -> HistogramData {
        HistogramData { buckets: buckets.to_vec(), sum: 0.0, count: buckets.last().map_or(0.0, |b| b.1) }
    }

    #[test]
    fn quantile_interpolates_like_promql() {
        // 10 in (0, 1], 10 in (1, 2], 0 above.
        let data = h(&[(1.0, 10.0), (2.0, 20.0), (INF, 20.0)]);
        assert_eq!(data.quantile(0.5), Some(1.0));
        assert_eq!(data.quantile(0.25), Some(0.5));
        assert_eq!(data.quantile(0.75), Some(1.5));
        assert_eq!(data.quantile(1.0), Some(2.0));
    }

    #[test]
    fn quantile_in_inf_bucket_returns_last_finite_bound() {
        let data = h(&[(1.0, 1.0), (2.0, 2.0), (INF, 10.0)]);
        assert_eq!(data.quantile(0.99), Some(2.0));
    }

    #[test]
    fn quantile_edge_cases() {
        let data = h(&[(1.0, 10.0), (INF, 10.0)]);
        assert_eq!(data.quantile(-0.1), None);
        assert_eq!(data.quantile(1.1), None);
        assert_eq!(data.quantile(f64::NAN), None);
        assert_eq!(h(&[(1.0, 10.0), (2.0, 10.0)]).quantile(0.5), None, "no +Inf bucket");
        assert_eq!(h(&[(INF, 10.0)]).quantile(0.5), None, "one bucket");
        assert_eq!(h(&[(1.0, 0.0), (INF, 0.0)]).quantile(0.5), None, "no observations");
        assert_eq!(h(&[(1.0, f64::NAN), (INF, 1.0)]).quantile(0.5), None);
        assert_eq!(h(&[]).quantile(0.5), None);
        // Lowest bucket with a non-positive bound returns that bound.
        assert_eq!(h(&[(-1.0, 5.0), (0.0, 8.0), (INF, 10.0)]).quantile(0.1), Some(-1.0));
    }

    #[test]
    fn quantile_zero_uses_first_nonempty_bucket() {
        let data = h(&[(1.0, 0.0), (2.0, 0.0), (4.0, 4.0), (INF, 4.0)]);
        assert_eq!(data.quantile(0.0), Some(2.0));
        assert_eq!(data.quantile(0.5), Some(3.0));
    }

    #[test]
    fn quantile_forces_monotonic_and_coalesces() {
        let data = h(&[(2.0, 5.0), (1.0, 10.0), (INF, 10.0), (1.0, 0.0)]);
        // Sorted: 1 -> 10, 2 -> 5 (forced to 10), +Inf -> 10.
        assert_eq!(data.quantile(0.5), Some(0.5));
    }

    #[test]
    fn mean() {
        let data = HistogramData { buckets: vec![], sum: 3.0, count: 2.0 };
        assert_eq!(data.mean(), Some(1.5));
        assert_eq!(HistogramData::default().mean(), None);
        let nan = HistogramData { sum: f64::NAN, count: 1.0, ..HistogramData::default() };
        assert_eq!(nan.mean(), None);
    }

    #[test]
    fn merge_adds_by_le() {
        let a = h(&[(1.0, 1.0), (INF, 2.0)]);
        let b = h(&[(1.0, 3.0), (5.0, 4.0), (INF, 4.0)]);
        let m = HistogramData::merge([&a, &b]);
        assert_eq!(m.buckets, vec![(1.0, 4.0), (5.0, 4.0), (INF, 6.0)]);
        assert_eq!(m.count, 6.0);
        assert_eq!(m.bucket(5.0), Some(4.0));
    }
}
