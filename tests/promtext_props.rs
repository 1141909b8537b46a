//! Property tests of `promtext`: no panics on any input, render -> parse round trip, counter
//! deltas with reset detection, histogram quantile invariants.

use std::collections::HashSet;

use llm_loadtest::promtext::{
    DeltaError, Exposition, Family, Format, HistogramData, LabelFilter, Labels, MetricType, ResetReason, Sample,
    Timestamp, TimestampUnit, counter_delta, histogram_delta, parse,
};
use proptest::prelude::*;

const VLLM: &str = include_str!("golden/vllm-0.32-metrics.txt");

/// Characters that matter to the exposition grammar, plus a few others.
const ALPHABET: &[char] = &[
    'a', 'b', '_', ':', '0', '1', '9', '.', 'e', '+', '-', '{', '}', '"', '\\', ',', '=', ' ', '\t', '#', '\n', '\r',
    'I', 'n', 'f', 'N', 'T', 'Y', 'P', 'E', 'H', 'L', 'O', 'é', '✓',
];

fn grammar_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..300).prop_map(|chars| chars.into_iter().collect())
}

fn keyword_soup() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "# TYPE ",
        "# HELP ",
        "# UNIT ",
        "# EOF",
        "counter",
        "histogram",
        "summary",
        "gauge",
        "unknown",
        "m",
        "m_total",
        "m_bucket",
        "m_sum",
        "m_count",
        "m_created",
        "{",
        "}",
        "le=\"",
        "+Inf",
        "\"",
        ",",
        " ",
        "1",
        "NaN",
        "\n",
        "\\",
        "{\"q.n\"",
        " # {",
        "1520879607.789",
    ]);
    prop::collection::vec(pieces, 0..60).prop_map(|p| p.concat())
}

fn same_value(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn same_sample(a: &Sample, b: &Sample) -> bool {
    a.name == b.name && a.labels == b.labels && same_value(a.value, b.value) && a.timestamp == b.timestamp
}

fn same_exposition(a: &Exposition, b: &Exposition) -> bool {
    a.format == b.format
        && a.families.len() == b.families.len()
        && a.families.iter().zip(&b.families).all(|(x, y)| {
            x.name == y.name
                && x.kind == y.kind
                && x.help == y.help
                && x.unit == y.unit
                && x.samples.len() == y.samples.len()
                && x.samples.iter().zip(&y.samples).all(|(s, t)| same_sample(s, t))
        })
}

// ---- generated families for the round trip ----

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["engine", "model_name", "a", "_x", "handler", "method"]).prop_map(String::from),
        1 => prop::sample::select(vec!["dotted.label", "with space", "ü", "q\"uote", "back\\slash", "c:olon"])
            .prop_map(String::from),
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(vec!['"', '\\', '\n', 'n', 'x', ' ', '}', ',', '=', '日', '\r']),
            0..12
        )
        .prop_map(|c| c.into_iter().collect()),
    ]
}

fn labels() -> impl Strategy<Value = Labels> {
    prop::collection::vec((label_name(), label_value()), 0..4).prop_map(Labels::from_pairs)
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1e-300, 1.7e308]),
        2 => (0u32..100_000).prop_map(f64::from),
    ]
}

fn timestamp() -> impl Strategy<Value = Option<Timestamp>> {
    prop::option::weighted(0.3, -(1i64 << 53)..(1i64 << 53))
        .prop_map(|ms| ms.map(|v| Timestamp { value: v as f64, unit: TimestampUnit::Milliseconds }))
}

fn help() -> impl Strategy<Value = Option<String>> {
    // Leading blanks and a trailing `\r` cannot survive a HELP line; everything else must.
    prop::option::of(any::<String>().prop_map(|h| h.trim_start_matches([' ', '\t']).trim_end_matches('\r').to_string()))
}

/// The suffixes a family of `kind` writes its samples with.
fn suffixes(kind: MetricType, openmetrics_counter: bool) -> Vec<&'static str> {
    match kind {
        MetricType::Counter if openmetrics_counter => vec!["_total", "_created"],
        MetricType::Histogram => vec!["_bucket", "_sum", "_count", "_created"],
        MetricType::Summary => vec!["", "_sum", "_count", "_created"],
        _ => vec![""],
    }
}

fn family(index: usize) -> impl Strategy<Value = Family> {
    let kind = prop::sample::select(vec![
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Histogram,
        MetricType::Summary,
        MetricType::Untyped,
    ]);
    let base = prop::sample::select(vec!["m", "vllm:m", "quoted.m", "ü m"]);
    (
        kind,
        base,
        any::<bool>(),
        help(),
        prop::collection::vec((any::<prop::sample::Index>(), labels(), value(), timestamp()), 0..6),
    )
        .prop_map(move |(kind, base, om_counter, help, raw)| {
            let om_counter = om_counter && kind == MetricType::Counter;
            let mut name = format!("{base}{index}");
            if kind == MetricType::Counter && !om_counter {
                name.push_str("_total");
            }
            let suffixes = suffixes(kind, om_counter);
            let mut seen = HashSet::new();
            let mut samples = Vec::new();
            for (which, mut labels, value, timestamp) in raw {
                let suffix = *which.get(&suffixes);
                if suffix == "_bucket" {
                    labels = Labels::from_pairs(labels.iter().chain([("le", "0.5")]));
                }
                let sample_name = format!("{name}{suffix}");
                if seen.insert((sample_name.clone(), labels.clone())) {
                    samples.push(Sample { name: sample_name.into(), labels, value, timestamp, exemplar: None });
                }
            }
            Family { name, kind, help, unit: None, samples, flaw: None }
        })
}

fn exposition() -> impl Strategy<Value = Exposition> {
    (0usize..6).prop_flat_map(|n| (0..n).map(family).collect::<Vec<_>>()).prop_map(|families| Exposition {
        families,
        line_errors: Vec::new(),
        format: Format::Classic,
        truncated: false,
    })
}

// ---- histograms ----

/// Sorted distinct finite bounds, cumulative counts, and a +Inf bucket.
fn histogram() -> impl Strategy<Value = HistogramData> {
    prop::collection::btree_map(-1000i32..1000, 0u32..1000, 1..12).prop_flat_map(|buckets| {
        (Just(buckets), 0u32..1000).prop_map(|(buckets, overflow)| {
            let mut cumulative = 0.0;
            let mut out: Vec<(f64, f64)> = buckets
                .into_iter()
                .map(|(le, n)| {
                    cumulative += f64::from(n);
                    (f64::from(le) / 10.0, cumulative)
                })
                .collect();
            cumulative += f64::from(overflow);
            out.push((f64::INFINITY, cumulative));
            HistogramData { buckets: out, sum: 0.0, count: cumulative }
        })
    })
}

fn counter_text(values: &[f64], created: &[f64]) -> String {
    let mut text = String::from("# TYPE c_total counter\n");
    for (i, v) in values.iter().enumerate() {
        text.push_str(&format!("c_total{{engine=\"{i}\",model_name=\"m\"}} {v:?}\n"));
    }
    text.push_str("# TYPE c_created gauge\n");
    for (i, v) in created.iter().enumerate() {
        text.push_str(&format!("c_created{{engine=\"{i}\",model_name=\"m\"}} {v:?}\n"));
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_strings(text in any::<String>()) {
        let exp = parse(&text);
        prop_assert!(exp.line_errors.len() <= text.split('\n').count());
    }

    #[test]
    fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let text = String::from_utf8_lossy(&bytes);
        let exp = parse(&text);
        let _ = exp.render();
        let _ = exp.counter_sum("m", &LabelFilter::new());
    }

    #[test]
    fn parse_never_panics_on_grammar_soup(text in prop_oneof![grammar_soup(), keyword_soup()]) {
        let exp = parse(&text);
        // Every rendered sample line is read back as a sample (or, when soup made two families
        // claim the same series, reported as a duplicate).
        let rendered = exp.render();
        let again = parse(&rendered);
        prop_assert!(again.sample_count() + again.line_errors.len() >= exp.sample_count(), "{rendered:?}");
        for family in &exp.families {
            let _ = exp.counter_sum(&family.name, &LabelFilter::new());
            let _ = exp.created(&family.name, &LabelFilter::new());
            if let Some(h) = exp.histogram(&family.name, &LabelFilter::new()) {
                let _ = (h.quantile(0.5), h.mean());
            }
        }
    }

    #[test]
    fn mutated_vllm_scrape_degrades_gracefully(
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(ALPHABET), 0u8..3), 1..8)
    ) {
        let mut chars: Vec<char> = VLLM.chars().collect();
        for (at, ch, op) in &edits {
            let i = at.index(chars.len());
            match op {
                0 => chars[i] = *ch,
                1 => { chars.remove(i); }
                _ => chars.insert(i, *ch),
            }
        }
        let text: String = chars.into_iter().collect();
        let exp = parse(&text);
        let k = edits.len();
        prop_assert!(exp.line_errors.len() <= 3 * k, "{:?}", exp.line_errors);
        prop_assert!(exp.sample_count() + 2 * k >= 459);
    }

    #[test]
    fn render_parse_round_trip(exp in exposition()) {
        let rendered = exp.render();
        let again = parse(&rendered);
        prop_assert!(again.line_errors.is_empty(), "{rendered}\n{:?}", again.line_errors);
        prop_assert!(same_exposition(&exp, &again), "{rendered}\n{exp:#?}\n{again:#?}");
    }

    #[test]
    fn counter_delta_sums_increments(
        start in prop::collection::vec(0u32..1_000_000, 1..5),
        increments in prop::collection::vec(0u32..1000, 5),
    ) {
        let before: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
        let after: Vec<f64> = before.iter().zip(&increments).map(|(b, &i)| b + f64::from(i)).collect();
        let created = vec![1.7e9; before.len()];
        let (b, a) = (parse(&counter_text(&before, &created)), parse(&counter_text(&after, &created)));
        let expected: f64 = increments.iter().take(before.len()).map(|&i| f64::from(i)).sum();
        prop_assert_eq!(counter_delta(&b, &a, "c", &LabelFilter::new()), Ok(expected));
        prop_assert_eq!(counter_delta(&b, &a, "c_total", &LabelFilter::new()), Ok(expected));
        let engine0 = LabelFilter::new().with("engine", "0");
        prop_assert_eq!(counter_delta(&b, &a, "c", &engine0), Ok(f64::from(increments[0])));
    }

    #[test]
    fn counter_delta_detects_resets(
        start in prop::collection::vec(1u32..1_000_000, 1..5),
        which in any::<prop::sample::Index>(),
        drop in 1u32..1000,
        growth in 0u32..1_000_000,
    ) {
        let before: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
        let created = vec![1.7e9; before.len()];
        let i = which.index(before.len());
        let engine = i.to_string();

        // One series went down (others may grow a lot): a reset, never a delta.
        let mut lower = before.clone();
        lower[i] = (before[i] - f64::from(drop)).max(0.0);
        for (j, v) in lower.iter_mut().enumerate() {
            if j != i { *v += f64::from(growth); }
        }
        let err = counter_delta(&parse(&counter_text(&before, &created)), &parse(&counter_text(&lower, &created)), "c", &LabelFilter::new());
        prop_assert!(matches!(&err, Err(DeltaError::Reset { reason: ResetReason::Decreased { .. }, series }) if series.get("engine") == Some(engine.as_str())), "{err:?}");

        // Same or higher values but a re-created series: a reset too.
        let higher: Vec<f64> = before.iter().map(|v| v + f64::from(growth)).collect();
        let mut recreated = created.clone();
        recreated[i] += 1.0;
        let err = counter_delta(&parse(&counter_text(&before, &created)), &parse(&counter_text(&higher, &recreated)), "c", &LabelFilter::new());
        prop_assert!(matches!(&err, Err(DeltaError::Reset { reason: ResetReason::CreatedChanged { .. }, .. })), "{err:?}");
    }

    #[test]
    fn quantile_is_monotone_and_within_bounds(h in histogram(), mut qs in prop::collection::vec(0.0f64..=1.0, 2..20)) {
        qs.push(0.0);
        qs.push(1.0);
        qs.sort_by(f64::total_cmp);
        let finite: Vec<f64> = h.buckets.iter().map(|b| b.0).filter(|le| le.is_finite()).collect();
        let lowest = finite[0].min(0.0);
        let highest = *finite.last().unwrap();
        let results: Vec<Option<f64>> = qs.iter().map(|&q| h.quantile(q)).collect();
        if h.count == 0.0 {
            prop_assert!(results.iter().all(Option::is_none));
        } else {
            let values: Vec<f64> = results.iter().map(|r| r.expect("observations give a quantile")).collect();
            for pair in values.windows(2) {
                prop_assert!(pair[0] <= pair[1] + 1e-9 * pair[1].abs().max(1.0), "{values:?}");
            }
            for v in &values {
                prop_assert!(*v >= lowest - 1e-9 && *v <= highest + 1e-9, "{v} not in [{lowest}, {highest}]");
            }
        }
        prop_assert_eq!(h.quantile(-0.01), None);
        prop_assert_eq!(h.quantile(1.01), None);
    }

    #[test]
    fn quantile_lands_in_the_bucket_holding_the_rank(h in histogram(), q in 0.001f64..=1.0) {
        prop_assume!(h.count > 0.0);
        let v = h.quantile(q).unwrap();
        let rank = q * h.count;
        let b = h.buckets.iter().position(|(_, c)| *c >= rank).unwrap();
        if b == h.buckets.len() - 1 {
            prop_assert_eq!(v, h.buckets[b - 1].0);
        } else {
            let upper = h.buckets[b].0;
            let lower = if b == 0 { upper.min(0.0) } else { h.buckets[b - 1].0 };
            prop_assert!(v >= lower - 1e-9 && v <= upper + 1e-9, "{v} not in [{lower}, {upper}]");
        }
    }

    #[test]
    fn histogram_delta_recovers_the_added_observations(h in histogram(), extra in prop::collection::vec(0u32..50, 12)) {
        let render = |data: &HistogramData| {
            let mut text = String::from("# TYPE h histogram\n");
            for (le, c) in &data.buckets {
                let le = if le.is_infinite() { "+Inf".to_string() } else { format!("{le:?}") };
                text.push_str(&format!("h_bucket{{le=\"{le}\",model_name=\"m\"}} {c:?}\n"));
            }
            text.push_str(&format!("h_count{{model_name=\"m\"}} {:?}\nh_sum{{model_name=\"m\"}} {:?}\n", data.count, data.sum));
            text
        };
        let mut later = h.clone();
        let mut added = 0.0;
        for (i, bucket) in later.buckets.iter_mut().enumerate() {
            added += f64::from(extra[i.min(extra.len() - 1)]);
            bucket.1 += added;
        }
        later.count = later.buckets.last().unwrap().1;
        later.sum = 10.0;
        let d = histogram_delta(&parse(&render(&h)), &parse(&render(&later)), "h", &LabelFilter::new()).unwrap();
        prop_assert_eq!(d.count, later.count - h.count);
        prop_assert_eq!(d.sum, 10.0);
        prop_assert_eq!(d.buckets.len(), h.buckets.len());
        if d.count > 0.0 {
            prop_assert!(d.quantile(0.5).is_some());
        }
        let backwards = histogram_delta(&parse(&render(&later)), &parse(&render(&h)), "h", &LabelFilter::new());
        let is_reset = matches!(backwards, Err(DeltaError::Reset { .. }));
        prop_assert!(is_reset || later.count == h.count, "{backwards:?}");
    }
}
