use super::*;
use crate::record::{Outcome, RequestRecord};
use proptest::prelude::*;
use std::collections::BTreeMap;

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
    assert!((stats.itl_ms.mean.unwrap() - 200.0).abs() < 1e-9, "the mean is exact");
    // The percentiles come from an HdrHistogram: within 0.1%.
    assert!((stats.itl_ms.median.unwrap() - 200.0).abs() <= 200.0 * PERCENTILE_RELATIVE_ERROR);
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

/// The statistics as they were computed before they were accumulated (every sample held, every
/// percentile exact): the oracle the accumulator is held to.
fn in_memory_reference(records: &[RequestRecord], duration_s: f64, slo: &Slo) -> ClientStats {
    let measured: Vec<&RequestRecord> = records.iter().filter(|r| !r.warmup).collect();
    let ok: Vec<&RequestRecord> = measured.iter().copied().filter(|r| r.is_ok()).collect();
    let (mut ttft, mut tpot, mut itl, mut e2el) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut input, mut output, mut good) = (0u64, 0u64, 0u64);
    let mut finish_reasons = BTreeMap::new();
    for r in &ok {
        let out_tokens = r.completion_tokens.unwrap_or(0);
        input = input.saturating_add(r.prompt_tokens.unwrap_or(0));
        output = output.saturating_add(out_tokens);
        let t = r.ttft_s.unwrap_or(0.0) * 1e3;
        let e = r.e2e_s.unwrap_or(0.0) * 1e3;
        ttft.push(t);
        e2el.push(e);
        let tp = (out_tokens > 1).then(|| (e - t) / (out_tokens - 1) as f64);
        tpot.extend(tp);
        itl.extend(r.chunk_times_s.windows(2).map(|w| (w[1] - w[0]) * 1e3));
        if let Some(f) = &r.finish_reason {
            *finish_reasons.entry(f.clone()).or_insert(0) += 1;
        }
        good += u64::from(
            slo.ttft_ms.is_none_or(|s| t <= s)
                && slo.tpot_ms.is_none_or(|s| tp.unwrap_or(0.0) <= s)
                && slo.e2el_ms.is_none_or(|s| e <= s),
        );
    }
    let mut errors = BTreeMap::new();
    let mut http_statuses = BTreeMap::new();
    for r in &measured {
        if r.outcome != Outcome::Ok {
            *errors.entry(r.outcome.as_label()).or_insert(0) += 1;
        }
        if let Some(s) = r.http_status {
            *http_statuses.entry(s).or_insert(0) += 1;
        }
    }
    let rate = |n: f64| if duration_s > 0.0 { n / duration_s } else { 0.0 };
    let ttft_ms = LatencySummary::from_samples(ttft);
    let itl_ms = LatencySummary::from_samples(itl);
    let schedule_lag_ms = LatencySummary::from_samples(measured.iter().map(|r| r.schedule_lag_s() * 1e3).collect());
    let receive_lag = ReceiveLag::default();
    ClientStats {
        duration_s,
        num_requests: measured.len() as u64,
        completed: ok.len() as u64,
        failed: (measured.len() - ok.len()) as u64,
        total_input_tokens: input,
        total_output_tokens: output,
        tokens_from_usage: ok.iter().all(|r| r.tokens_from_usage),
        request_throughput: rate(ok.len() as f64),
        output_throughput: rate(output as f64),
        total_token_throughput: rate(input.saturating_add(output) as f64),
        request_goodput: (!slo.is_empty()).then(|| rate(good as f64)),
        client_bound: judge_client_bound(&ttft_ms, &itl_ms, &schedule_lag_ms, &receive_lag),
        ttft_ms,
        tpot_ms: LatencySummary::from_samples(tpot),
        itl_ms,
        e2el_ms: LatencySummary::from_samples(e2el),
        errors,
        finish_reasons,
        http_statuses,
        schedule_lag_ms,
        connect_ms: LatencySummary::from_samples(
            measured.iter().filter_map(|r| r.connect_s).map(|s| s * 1e3).collect(),
        ),
        ttft_with_connect: ok.iter().filter(|r| r.connect_s.is_some()).count() as u64,
        receive_lag,
    }
}

/// `approx` is within `HdrHistogram`'s error of the exact summary `exact` of `samples`: count
/// and max exact, mean and std to rounding, each percentile within 0.1% of the two samples
/// numpy interpolates between at that rank.
fn assert_within_hdr_error(name: &str, approx: &LatencySummary, exact: &LatencySummary, samples: &[f64]) {
    assert_eq!(approx.count, exact.count, "{name} count");
    assert_eq!(approx.max, exact.max, "{name} max");
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        (a, b) => a == b,
    };
    assert!(close(approx.mean, exact.mean), "{name} mean {:?} {:?}", approx.mean, exact.mean);
    assert!(close(approx.std, exact.std), "{name} std {:?} {:?}", approx.std, exact.std);
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    for (q, got) in [(50.0, approx.median), (90.0, approx.p90), (95.0, approx.p95), (99.0, approx.p99)] {
        let (Some(got), false) = (got, sorted.is_empty()) else {
            assert_eq!(got, None, "{name} p{q}");
            continue;
        };
        let pos = q / 100.0 * (sorted.len() - 1) as f64;
        let (lo, hi) = (sorted[pos.floor() as usize], sorted[pos.ceil() as usize]);
        let err = PERCENTILE_RELATIVE_ERROR;
        // Nanosecond rounding of the recorded value, plus the relative error.
        assert!(
            got >= lo.max(0.0) * (1.0 - err) - 1e-6 && got <= hi * (1.0 + err) + 1e-6,
            "{name} p{q}: {got} is not within 0.1% of [{lo}, {hi}]"
        );
    }
}

fn random_record(i: u64, seed: &(bool, u8, u16, Vec<u16>, u16, bool)) -> RequestRecord {
    let (warmup, kind, ttft_us, gaps_us, lag_us, connect) = seed;
    let mut r = RequestRecord::new(i, *warmup, 0.5, 0.5 + f64::from(*lag_us) * 1e-6, 10);
    r.http_status = Some(if kind % 5 == 0 { 500 } else { 200 });
    if kind % 5 == 0 {
        r.outcome = Outcome::HttpError;
        return r;
    }
    let ttft = f64::from(*ttft_us) * 1e-6;
    let mut t = ttft;
    r.chunk_times_s.push(t);
    for g in gaps_us {
        t += f64::from(*g) * 1e-6;
        r.chunk_times_s.push(t);
    }
    r.ttft_s = Some(ttft);
    r.e2e_s = Some(t);
    r.prompt_tokens = Some(10 + u64::from(*kind));
    r.completion_tokens = Some(r.chunk_times_s.len() as u64);
    r.tokens_from_usage = kind % 7 != 1;
    r.finish_reason = Some(if kind % 3 == 0 { "stop" } else { "length" }.into());
    r.connect_s = connect.then_some(0.000_3);
    r
}

proptest! {
    /// The statistics accumulated one record at a time equal today's in-memory computation on
    /// the same records: every figure exact but the ITL and scheduling-lag percentiles, which
    /// are within 0.1%.
    #[test]
    fn accumulated_statistics_equal_the_in_memory_computation(
        seeds in proptest::collection::vec(
            (any::<bool>(), any::<u8>(), 1u16..60_000, proptest::collection::vec(0u16..50_000, 0..40), any::<u16>(), any::<bool>()),
            0..120,
        ),
        duration in 0.0f64..100.0,
        slo_ms in 1.0f64..80.0,
    ) {
        let records: Vec<RequestRecord> = seeds.iter().enumerate().map(|(i, s)| random_record(i as u64, s)).collect();
        let slo = Slo { ttft_ms: Some(slo_ms), tpot_ms: Some(slo_ms / 4.0), e2el_ms: None };
        let got = compute(&records, duration, &ReceiveLag::default(), &slo);
        let want = in_memory_reference(&records, duration, &slo);
        let itl: Vec<f64> = records
            .iter()
            .filter(|r| !r.warmup && r.is_ok())
            .flat_map(|r| r.chunk_times_s.windows(2).map(|w| (w[1] - w[0]) * 1e3).collect::<Vec<_>>())
            .collect();
        let lags: Vec<f64> = records.iter().filter(|r| !r.warmup).map(|r| r.schedule_lag_s() * 1e3).collect();
        assert_within_hdr_error("itl", &got.itl_ms, &want.itl_ms, &itl);
        assert_within_hdr_error("schedule_lag", &got.schedule_lag_ms, &want.schedule_lag_ms, &lags);
        // Everything else exactly, and the client-bound judgement from the same figures.
        // The client-bound judgements of ITL and of the schedule compare approximate figures
        // with a threshold (one within 0.1% of it may go either way), and the reasons quote them.
        let exact = |mut s: ClientStats| {
            s.itl_ms = LatencySummary::default();
            s.schedule_lag_ms = LatencySummary::default();
            s.client_bound.reasons.clear();
            s.client_bound.itl = false;
            s.client_bound.schedule = false;
            s
        };
        prop_assert_eq!(exact(got), exact(want));
    }
}

#[test]
fn finish_reasons_are_bounded_whatever_the_server_sends() {
    let records: Vec<RequestRecord> = (0..100)
        .map(|i| {
            let mut r = ok_record(i, 0.01, &[0.01, 0.02], 2);
            r.finish_reason = Some(format!("reason-{i}"));
            r
        })
        .collect();
    let s = compute(&records, 1.0, &ReceiveLag::default(), &Slo::default());
    assert_eq!(s.finish_reasons.len(), MAX_FINISH_REASONS + 1);
    assert_eq!(s.finish_reasons.get(OTHER_FINISH_REASON), Some(&(100 - MAX_FINISH_REASONS as u64)));
    assert_eq!(s.finish_reasons.values().sum::<u64>(), 100);
}
