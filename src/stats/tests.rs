use super::*;
use crate::record::{Outcome, RequestRecord};
use proptest::prelude::*;

fn ok_record(index: u64, ttft: f64, chunks: &[f64], tokens: u64) -> RequestRecord {
    let mut r = RequestRecord::new(index, false, 0.0, 0.0, 10);
    r.ttft_s = Some(ttft);
    r.chunk_times_s = chunks.to_vec();
    r.e2e_s = chunks.last().copied();
    r.prompt_tokens = Some(10);
    r.completion_tokens = Some(tokens);
    r.tokens_from_usage = true;
    r.finish_reason = Some("length".into());
    r.http_status = Some(200);
    r
}

fn failed(index: u64, outcome: Outcome) -> RequestRecord {
    let mut r = RequestRecord::new(index, false, 0.0, 0.0, 10);
    r.outcome = outcome;
    r
}

#[test]
fn percentiles_match_numpy() {
    let s = LatencySummary::from_samples(vec![4.0, 1.0, 3.0, 2.0]);
    assert_eq!(s.median, Some(2.5));
    assert!((s.p90.unwrap() - 3.7).abs() < 1e-12); // numpy.percentile([1,2,3,4], 90)
    assert!((s.p99.unwrap() - 3.97).abs() < 1e-12);
    assert!((s.std.unwrap() - 1.118_033_988_749_895).abs() < 1e-12); // numpy.std
    assert_eq!(s.mean, Some(2.5));
    assert_eq!(LatencySummary::from_samples(vec![]).mean, None);
}

#[test]
fn tpot_itl_and_totals_follow_vllm_bench_definitions() {
    // TTFT 100 ms, 11 tokens in 6 chunks, last at 1.1 s: TPOT = (1100-100)/10 = 100 ms.
    let r = ok_record(0, 0.1, &[0.1, 0.3, 0.5, 0.7, 0.9, 1.1], 11);
    let stats = compute(&[r], 2.0, &ReceiveLag::default(), &Slo::default());
    assert_eq!(stats.completed, 1);
    assert!((stats.tpot_ms.mean.unwrap() - 100.0).abs() < 1e-9);
    // Five chunk gaps of 200 ms: a multi-token chunk is one arrival.
    assert_eq!(stats.itl_ms.count, 5);
    assert!((stats.itl_ms.median.unwrap() - 200.0).abs() < 1e-9);
    assert_eq!(stats.total_output_tokens, 11);
    assert!((stats.output_throughput - 5.5).abs() < 1e-12);
    assert!((stats.total_token_throughput - 10.5).abs() < 1e-12);
    assert!((stats.request_throughput - 0.5).abs() < 1e-12);
}

#[test]
fn failures_and_warmup_are_excluded_from_latency() {
    let mut warm = ok_record(0, 5.0, &[5.0, 6.0], 2);
    warm.warmup = true;
    let records = vec![
        warm,
        ok_record(1, 0.05, &[0.05, 0.06], 2),
        failed(2, Outcome::Timeout),
        failed(3, Outcome::HttpError),
        failed(4, Outcome::HttpError),
    ];
    let stats = compute(&records, 1.0, &ReceiveLag::default(), &Slo::default());
    assert_eq!(stats.num_requests, 4);
    assert_eq!(stats.completed, 1);
    assert_eq!(stats.failed, 3);
    assert_eq!(stats.errors.get("http_error"), Some(&2));
    assert_eq!(stats.errors.get("timeout"), Some(&1));
    assert!((stats.ttft_ms.mean.unwrap() - 50.0).abs() < 1e-9);
}

#[test]
fn single_token_requests_have_no_tpot() {
    let stats = compute(&[ok_record(0, 0.1, &[0.1], 1)], 1.0, &ReceiveLag::default(), &Slo::default());
    assert_eq!(stats.tpot_ms.count, 0);
    assert_eq!(stats.tpot_ms.mean, None);
}

#[test]
fn goodput_counts_requests_meeting_every_slo() {
    let records = vec![ok_record(0, 0.05, &[0.05, 0.1], 2), ok_record(1, 0.5, &[0.5, 0.55], 2)];
    let slo = Slo::parse(&["ttft:100".into()]).unwrap();
    let stats = compute(&records, 2.0, &ReceiveLag::default(), &slo);
    assert_eq!(stats.request_goodput, Some(0.5));
    assert_eq!(compute(&records, 2.0, &ReceiveLag::default(), &Slo::default()).request_goodput, None);
}

#[test]
fn slo_parsing_errors_are_clear() {
    assert!(Slo::parse(&["ttft".into()]).unwrap_err().contains("metric:milliseconds"));
    assert!(Slo::parse(&["ttft:-1".into()]).unwrap_err().contains("positive"));
    assert!(Slo::parse(&["foo:1".into()]).unwrap_err().contains("unknown metric"));
    let s = Slo::parse(&["tpot:50".into(), "e2el:2000".into()]).unwrap();
    assert_eq!((s.tpot_ms, s.e2el_ms, s.ttft_ms), (Some(50.0), Some(2000.0), None));
}

#[test]
fn large_receive_lag_marks_ttft_and_itl_client_bound() {
    let records: Vec<_> = (0..10).map(|i| ok_record(i, 0.01, &[0.01, 0.015, 0.02], 3)).collect();
    let quiet = ReceiveLag { samples: 100, p50_us: 50.0, p99_us: 200.0, max_us: 300.0 };
    let s = compute(&records, 1.0, &quiet, &Slo::default());
    assert!(!s.client_bound.ttft && !s.client_bound.itl, "{:?}", s.client_bound);
    let busy = ReceiveLag { samples: 100, p50_us: 900.0, p99_us: 4000.0, max_us: 9000.0 };
    let s = compute(&records, 1.0, &busy, &Slo::default());
    assert!(s.client_bound.ttft && s.client_bound.itl, "{:?}", s.client_bound);
    assert_eq!(s.client_bound.reasons.len(), 2);
}

#[test]
fn late_sends_mark_the_schedule_client_bound() {
    let mut r = ok_record(0, 0.01, &[0.01, 0.02], 2);
    r.scheduled_s = 1.0;
    r.sent_s = 1.05;
    let s = compute(&[r], 1.0, &ReceiveLag::default(), &Slo::default());
    assert!(s.client_bound.schedule);
    assert!((s.schedule_lag_ms.max.unwrap() - 50.0).abs() < 1e-6);
}

#[test]
fn json_uses_vllm_bench_key_names() {
    let s = compute(&[ok_record(0, 0.1, &[0.1, 0.2], 2)], 1.0, &ReceiveLag::default(), &Slo::default());
    let v = serde_json::to_value(&s).unwrap();
    for key in [
        "duration",
        "completed",
        "failed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "std_ttft_ms",
        "p90_ttft_ms",
        "p95_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "median_e2el_ms",
        "errors",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
}

proptest! {
    #[test]
    fn summary_is_ordered_and_bounded(v in proptest::collection::vec(-1e6f64..1e6, 1..200)) {
        let s = LatencySummary::from_samples(v.clone());
        let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (med, p90, p95, p99) = (s.median.unwrap(), s.p90.unwrap(), s.p95.unwrap(), s.p99.unwrap());
        prop_assert!(min <= med && med <= p90 && p90 <= p95 && p95 <= p99 && p99 <= max);
        let mean = s.mean.unwrap();
        prop_assert!(mean >= min - 1e-6 && mean <= max + 1e-6);
    }

    #[test]
    fn compute_never_panics(ttfts in proptest::collection::vec(0.0f64..10.0, 0..50), dur in 0.0f64..100.0) {
        let records: Vec<_> = ttfts.iter().enumerate().map(|(i, t)| ok_record(i as u64, *t, &[*t, t + 0.01], (i % 3) as u64)).collect();
        let s = compute(&records, dur, &ReceiveLag::default(), &Slo::default());
        prop_assert_eq!(s.completed as usize, records.len());
    }
}
