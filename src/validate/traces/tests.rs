use super::*;
use crate::record::{Outcome, RequestRecord};
use crate::traces::Collected;
use crate::validate::{Section, Validation, VerdictBasis, compare};

const PREFIX: &str = "run-";

fn record(index: u64, ttft: f64, e2e: f64, prompt: u64, completion: u64) -> RequestRecord {
    let mut r = RequestRecord::new(index, false, 0.0, 0.0, 10);
    r.ttft_s = Some(ttft);
    r.e2e_s = Some(e2e);
    r.prompt_tokens = Some(prompt);
    r.completion_tokens = Some(completion);
    r.tokens_from_usage = true;
    r.http_status = Some(200);
    r
}

fn span(index: u64, ttft: f64, e2e: f64, prompt: u64, completion: u64) -> (u64, LlmSpan) {
    let s = LlmSpan {
        request_id: format!("chatcmpl-{PREFIX}{index}"),
        trace_id: String::new(),
        span_id: String::new(),
        parent_span_id: String::new(),
        start_unix_nano: 0,
        end_unix_nano: 0,
        prompt_tokens: Some(prompt),
        completion_tokens: Some(completion),
        ttft_s: Some(ttft),
        e2e_s: Some(e2e),
        queue_s: Some(0.001),
        prefill_s: Some(ttft * 0.8),
        decode_s: Some(e2e - ttft),
        inference_s: Some(e2e * 0.9),
    };
    (index, s)
}

fn collected(spans: Vec<(u64, LlmSpan)>, foreign: u64) -> Collected {
    Collected { spans: spans.into_iter().collect(), foreign, ..Collected::default() }
}

fn run(records: &[RequestRecord], c: &Collected, waited: f64) -> TracesValidation {
    let input = TracesInput::Collected { collected: c, request_id_prefix: PREFIX, waited_s: waited, wait_max_s: 15.0 };
    traces_validation(&input, records, &Tolerances::default())
}

fn check<'a>(v: &'a TracesValidation, name: &str) -> &'a Comparison {
    v.section.comparisons.iter().find(|c| c.check == name).unwrap()
}

/// Ten requests, each 5 ms outside the engine at both ends.
fn ten() -> (Vec<RequestRecord>, Vec<(u64, LlmSpan)>) {
    let records = (0..10).map(|i| record(i, 0.045 + i as f64 * 0.001, 0.505, 20 + i, 32)).collect();
    let spans = (0..10).map(|i| span(i, 0.040 + i as f64 * 0.001, 0.500, 20 + i, 32)).collect();
    (records, spans)
}

#[test]
fn every_request_matched_passes_with_exact_sums() {
    let (records, spans) = ten();
    let v = run(&records, &collected(spans, 0), 2.0);
    assert_eq!(v.section.status, Status::Pass, "{v:#?}");
    assert_eq!(v.matched, 10);
    assert_eq!((check(&v, "request_count").client, check(&v, "request_count").server), (Some(10.0), Some(10.0)));
    assert_eq!(check(&v, "prompt_tokens").server, Some(245.0));
    assert_eq!(check(&v, "generation_tokens").client, Some(320.0));
    // Net of each request's own 5 ms outside the engine, TTFT matches the span to the float.
    let ttft = check(&v, "ttft_mean");
    assert!((ttft.client_compared.unwrap() - ttft.server.unwrap()).abs() < 1e-9, "{ttft:?}");
    let d = v.ttft_diff_ms.unwrap();
    assert!((d.p50 - 5.0).abs() < 1e-9 && (d.p99 - 5.0).abs() < 1e-9, "{d:?}");
    assert!((v.server_breakdown.queue_ms.unwrap().mean - 1.0).abs() < 1e-9);
}

#[test]
fn a_completed_request_without_a_span_warns_naming_it() {
    let (records, mut spans) = ten();
    spans.remove(3);
    let v = run(&records, &collected(spans, 0), 15.0);
    let c = check(&v, "request_count");
    assert_eq!((c.status, c.client, c.server), (Status::Warn, Some(10.0), Some(9.0)));
    let reason = c.reason.as_deref().unwrap();
    assert!(reason.contains("1 completed request(s) without a span after waiting the full 15.0 s: run-3"), "{reason}");
    assert_eq!(v.client_without_span.request_ids, vec!["run-3"]);
    assert_eq!(check(&v, "prompt_tokens").status, Status::Pass, "the sums cover matched requests only");
}

#[test]
fn a_token_count_that_differs_warns_and_is_listed() {
    let (records, mut spans) = ten();
    spans[4].1.completion_tokens = Some(31);
    let v = run(&records, &collected(spans, 0), 1.0);
    let c = check(&v, "generation_tokens");
    assert_eq!((c.status, c.client, c.server), (Status::Warn, Some(320.0), Some(319.0)));
    assert_eq!(v.token_mismatch_count, 1);
    assert_eq!(v.token_mismatches[0].request_id, "run-4");
    assert_eq!(
        (v.token_mismatches[0].client_completion, v.token_mismatches[0].server_completion),
        (Some(32), Some(31))
    );
    assert_eq!(check(&v, "prompt_tokens").status, Status::Pass);
}

#[test]
fn other_clients_and_warm_up_requests_change_nothing() {
    let (mut records, mut spans) = ten();
    let mut warm = record(10, 0.2, 0.9, 99, 99);
    warm.warmup = true;
    records.push(warm);
    spans.push(span(10, 0.1, 0.2, 1, 1));
    let v = run(&records, &collected(spans, 500), 1.0);
    assert_eq!(v.section.status, Status::Pass, "{v:#?}");
    assert_eq!((v.matched, v.other_clients_spans), (10, 500));
    assert_eq!(check(&v, "prompt_tokens").client, Some(245.0));
}

#[test]
fn a_span_for_a_request_the_client_did_not_complete_is_named() {
    let (mut records, spans) = ten();
    records[2].outcome = Outcome::StreamCut;
    let v = run(&records, &collected(spans, 0), 1.0);
    let c = check(&v, "request_count");
    assert_eq!((c.client, c.server), (Some(9.0), Some(9.0)));
    assert_eq!(v.spans_without_completion.request_ids, vec!["run-2"]);
    assert!(c.reason.as_deref().unwrap().contains("did not see complete: run-2"), "{c:?}");
}

#[test]
fn no_span_at_all_skips_with_how_to_fix_it() {
    let (records, _) = ten();
    let v = run(&records, &collected(vec![], 40), 15.0);
    assert_eq!(v.section.status, Status::Skip);
    let r = v.section.reason.unwrap();
    assert!(r.contains("--otlp-traces-endpoint") && r.contains("40 span(s) of other clients"), "{r}");
    let v =
        traces_validation(&TracesInput::Unavailable { reason: "no receiver".into() }, &records, &Tolerances::default());
    assert_eq!((v.section.status, v.section.reason.as_deref()), (Status::Skip, Some("no receiver")));
}

#[test]
fn approximate_client_tokens_get_no_exact_verdict() {
    let (mut records, spans) = ten();
    records[0].tokens_from_usage = false;
    records[0].completion_tokens = Some(30);
    let v = run(&records, &collected(spans, 0), 1.0);
    let c = check(&v, "generation_tokens");
    assert_eq!(c.status, Status::Skip, "{c:?}");
    assert!(c.reason.as_deref().unwrap().contains("approximate"));
}

#[test]
fn the_overall_verdict_rests_on_the_spans_when_they_exist() {
    let (records, spans) = ten();
    let traces = run(&records, &collected(spans, 0), 1.0);
    let drifting = Section::from_comparisons(vec![compare("request_count", Some(10.0), &Ok(13.0), 0.05, 0.0)], None);
    let v = Validation::new(drifting.clone(), None, Some(traces), Default::default(), Tolerances::default());
    assert_eq!((v.overall, v.basis), (Status::Pass, VerdictBasis::Traces));
    assert_eq!(v.prometheus.status, Status::Warn, "the aggregate section still shows its cross-check");
    let skipped = TracesValidation::skipped("no span");
    let v = Validation::new(drifting, None, Some(skipped), Default::default(), Tolerances::default());
    assert_eq!((v.overall, v.basis), (Status::Warn, VerdictBasis::Aggregate));
}
