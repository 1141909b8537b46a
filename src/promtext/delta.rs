//! Before/after snapshot deltas with counter-reset detection.

use std::collections::BTreeMap;
use std::fmt;

use super::{Exposition, HistogramData, LabelFilter, Labels};

/// Which of the two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Which {
    Before,
    After,
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Which::Before => "before",
            Which::After => "after",
        })
    }
}

/// Why a delta between two snapshots is not trustworthy.
#[derive(Debug, Clone, PartialEq)]
pub enum ResetReason {
    /// A counter (or a histogram's count or bucket) went down.
    Decreased { before: f64, after: f64 },
    /// The series' `_created` timestamp changed: it was re-created.
    CreatedChanged { before: f64, after: f64 },
    /// The series existed before and is gone after.
    SeriesVanished,
    /// A histogram series has different `le` bounds in the two snapshots.
    BucketsChanged,
    /// `process_start_time_seconds` changed: the server restarted.
    ProcessRestarted { before: f64, after: f64 },
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetReason::Decreased { before, after } => write!(f, "value went down from {before} to {after}"),
            ResetReason::CreatedChanged { before, after } => write!(f, "_created changed from {before} to {after}"),
            ResetReason::SeriesVanished => f.write_str("series disappeared"),
            ResetReason::BucketsChanged => f.write_str("histogram bucket bounds changed"),
            ResetReason::ProcessRestarted { before, after } => {
                write!(f, "process_start_time_seconds changed from {before} to {after}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeltaError {
    /// The metric (or every series matching the filter) is absent from one snapshot.
    #[error("metric absent from the {which} snapshot")]
    Missing { which: Which },
    /// The server reset or re-created the series in between; `series` is the first offending one
    /// (empty for a process restart).
    #[error("counter reset between snapshots, series {series}: {reason}")]
    Reset { series: Labels, reason: ResetReason },
}

impl DeltaError {
    /// Bounded label for metrics and verdicts.
    pub fn as_label(&self) -> &'static str {
        match self {
            DeltaError::Missing { .. } => "missing",
            DeltaError::Reset { .. } => "reset",
        }
    }
}

fn reset(series: &Labels, reason: ResetReason) -> DeltaError {
    DeltaError::Reset { series: series.clone(), reason }
}

/// Neither bit-identical nor both NaN.
fn differs(a: f64, b: f64) -> bool {
    a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan())
}

/// Checks shared by counters and histograms: process restart, then changed `_created`.
fn check_restart(before: &Exposition, after: &Exposition, name: &str, filter: &LabelFilter) -> Result<(), DeltaError> {
    // Per series: a fleet snapshot has one start time per replica.
    let starts_after: BTreeMap<Labels, f64> = after.process_start_times().into_iter().collect();
    for (labels, b) in before.process_start_times() {
        if let Some(&a) = starts_after.get(&labels)
            && differs(b, a)
        {
            return Err(reset(&labels, ResetReason::ProcessRestarted { before: b, after: a }));
        }
    }
    let created_after: BTreeMap<Labels, f64> = after.created(name, filter).into_iter().collect();
    for (labels, b) in before.created(name, filter) {
        if let Some(&a) = created_after.get(&labels)
            && differs(b, a)
        {
            return Err(reset(&labels, ResetReason::CreatedChanged { before: b, after: a }));
        }
    }
    Ok(())
}

/// Counter delta `after - before` summed over the series matching `filter`, with reset detection:
/// `Err(Reset)` when a series went down or vanished, its `_created` changed, or
/// `process_start_time_seconds` changed; `Err(Missing)` when absent in one snapshot. A series that
/// only exists in `after` counts from zero (it was created in between).
pub fn counter_delta(
    before: &Exposition,
    after: &Exposition,
    name: &str,
    filter: &LabelFilter,
) -> Result<f64, DeltaError> {
    let series_before = before.counter_series(name, filter);
    if series_before.is_empty() {
        return Err(DeltaError::Missing { which: Which::Before });
    }
    let series_after = after.counter_series(name, filter);
    if series_after.is_empty() {
        return Err(DeltaError::Missing { which: Which::After });
    }
    check_restart(before, after, name, filter)?;
    let mut remaining: BTreeMap<Labels, f64> = series_before.into_iter().collect();
    let mut delta = 0.0;
    for (labels, a) in series_after {
        let b = remaining.remove(&labels).unwrap_or(0.0);
        if a < b {
            return Err(reset(&labels, ResetReason::Decreased { before: b, after: a }));
        }
        delta += a - b;
    }
    if let Some(labels) = remaining.keys().next() {
        return Err(reset(labels, ResetReason::SeriesVanished));
    }
    Ok(delta)
}

/// Histogram delta `after - before` (per series, then merged by `le`), with the same reset
/// detection as [`counter_delta`] applied to `_count` and every bucket, plus `BucketsChanged`
/// when a series' `le` bounds differ between the snapshots.
pub fn histogram_delta(
    before: &Exposition,
    after: &Exposition,
    name: &str,
    filter: &LabelFilter,
) -> Result<HistogramData, DeltaError> {
    let series_before = before.histogram_series(name, filter);
    if series_before.is_empty() {
        return Err(DeltaError::Missing { which: Which::Before });
    }
    let series_after = after.histogram_series(name, filter);
    if series_after.is_empty() {
        return Err(DeltaError::Missing { which: Which::After });
    }
    check_restart(before, after, name, filter)?;
    let mut remaining: BTreeMap<Labels, HistogramData> = series_before.into_iter().collect();
    let mut deltas = Vec::with_capacity(series_after.len());
    for (labels, a) in series_after {
        let Some(b) = remaining.remove(&labels) else {
            deltas.push(a);
            continue;
        };
        if a.count < b.count {
            return Err(reset(&labels, ResetReason::Decreased { before: b.count, after: a.count }));
        }
        let same_bounds =
            a.buckets.len() == b.buckets.len() && a.buckets.iter().zip(&b.buckets).all(|(x, y)| x.0 == y.0);
        if !same_bounds {
            return Err(reset(&labels, ResetReason::BucketsChanged));
        }
        let mut buckets = Vec::with_capacity(a.buckets.len());
        for (&(le, ca), &(_, cb)) in a.buckets.iter().zip(&b.buckets) {
            if ca < cb {
                return Err(reset(&labels, ResetReason::Decreased { before: cb, after: ca }));
            }
            buckets.push((le, ca - cb));
        }
        deltas.push(HistogramData { buckets, sum: a.sum - b.sum, count: a.count - b.count });
    }
    if let Some(labels) = remaining.keys().next() {
        return Err(reset(labels, ResetReason::SeriesVanished));
    }
    Ok(HistogramData::merge(&deltas))
}
