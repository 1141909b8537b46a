//! The `traces` section: every measured request joined by its id to vLLM's
//! own `llm_request` span, so other clients' traffic cannot touch a figure.
//! Pure: client records and collected spans in, checks out.
//!
//! Definitions (the README repeats them):
//! - `request_count`: measured requests the client saw complete vs measured
//!   requests with a span; exact.
//! - `prompt_tokens`, `generation_tokens`: sums over the matched requests
//!   (completed on the client and with a span) of the client's `usage` and the
//!   span's `gen_ai.usage.*`; exact, each differing request listed.
//! - `ttft_mean`, `e2e_latency_mean`: means over the matched requests,
//!   paired. vLLM's clock starts and stops inside its frontend, so each
//!   request's TTFT is compared net of that request's own time outside the
//!   engine (client E2E − span E2E), as the Prometheus check does with means.
//! - spreads: p50/p90/p99 of client − server per request (TTFT and E2E), and
//!   the server's queue / prefill / decode / inference time of our requests.

use serde::{Deserialize, Serialize};

use super::{Comparison, Section, Status, Tolerances, compare, latency_check};
use crate::record::RequestRecord;
use crate::spool::EachRecord;
use crate::stats::percentile;
use crate::traces::{Collected, LlmSpan};

/// Request ids listed at most per kind of mismatch.
pub const LISTED: usize = 20;

/// The spans of one burst, or why there are none.
pub enum TracesInput<'a> {
    Unavailable {
        reason: String,
    },
    Collected {
        collected: &'a Collected,
        /// Our request ids are this plus the request index.
        request_id_prefix: &'a str,
        /// How long the burst waited for its spans after the load, and at most.
        waited_s: f64,
        wait_max_s: f64,
    },
}

/// p50 / p90 / p99 and mean of one figure over the matched requests, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let p = |q| percentile(&values, q);
        Some(Spread { mean, p50: p(50.0), p90: p(90.0), p99: p(99.0) })
    }
}

/// Where the server spent our requests' time, from their spans (ms).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerBreakdown {
    pub queue_ms: Option<Spread>,
    pub prefill_ms: Option<Spread>,
    pub decode_ms: Option<Spread>,
    pub inference_ms: Option<Spread>,
}

/// Requests on one side only, by id (the first [`LISTED`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unmatched {
    pub count: u64,
    pub request_ids: Vec<String>,
}

impl Unmatched {
    fn push(&mut self, id: String) {
        self.count += 1;
        if self.request_ids.len() < LISTED {
            self.request_ids.push(id);
        }
    }
}

/// One request whose token counts differ between client and span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMismatch {
    pub request_id: String,
    pub client_prompt: Option<u64>,
    pub server_prompt: Option<u64>,
    pub client_completion: Option<u64>,
    pub server_completion: Option<u64>,
}

/// The `traces` section of a validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracesValidation {
    #[serde(flatten)]
    pub section: Section,
    /// Measured requests completed on the client and with a span.
    pub matched: u64,
    /// Completed on the client, no span arrived.
    pub client_without_span: Unmatched,
    /// A span of ours for a measured request the client did not see complete.
    pub spans_without_completion: Unmatched,
    pub token_mismatches: Vec<TokenMismatch>,
    pub token_mismatch_count: u64,
    /// Client − server per request, ms.
    pub ttft_diff_ms: Option<Spread>,
    pub e2e_diff_ms: Option<Spread>,
    pub server_breakdown: ServerBreakdown,
    /// `llm_request` spans of other clients seen during the burst.
    pub other_clients_spans: u64,
    pub duplicate_spans: u64,
    pub waited_s: f64,
}

impl TracesValidation {
    pub fn skipped(reason: impl Into<String>) -> TracesValidation {
        TracesValidation {
            section: Section::skipped(reason),
            matched: 0,
            client_without_span: Unmatched::default(),
            spans_without_completion: Unmatched::default(),
            token_mismatches: Vec::new(),
            token_mismatch_count: 0,
            ttft_diff_ms: None,
            e2e_diff_ms: None,
            server_breakdown: ServerBreakdown::default(),
            other_clients_spans: 0,
            duplicate_spans: 0,
            waited_s: 0.0,
        }
    }
}

/// The traces checks of one burst.
pub fn traces_validation(
    input: &TracesInput<'_>,
    records: &(impl EachRecord + ?Sized),
    tol: &Tolerances,
) -> TracesValidation {
    let (collected, prefix, waited_s, wait_max_s) = match input {
        TracesInput::Unavailable { reason } => return TracesValidation::skipped(reason.clone()),
        TracesInput::Collected { collected, request_id_prefix, waited_s, wait_max_s } => {
            (*collected, *request_id_prefix, *waited_s, *wait_max_s)
        }
    };
    // Per request, what the join compares (no chunk times): as many as the spans held.
    let mut measured: Vec<RequestRecord> = Vec::new();
    records.each(&mut |r| {
        if !r.warmup {
            measured.push(r.without_chunk_times());
        }
    });
    // In request order (records come in the order they finished): the listed ids read in order.
    measured.sort_by_key(|r| r.index);
    let ours = |r: &RequestRecord| collected.spans.get(&r.index);
    let any_measured_span = measured.iter().any(|r| ours(r).is_some());
    if !any_measured_span {
        let mut v = TracesValidation::skipped(format!(
            "no llm_request span of this burst arrived within {waited_s:.1} s ({} span(s) of other clients): is vLLM started with --otlp-traces-endpoint pointing at this receiver?",
            collected.foreign
        ));
        v.other_clients_spans = collected.foreign;
        v.waited_s = waited_s;
        return v;
    }

    let id = |r: &RequestRecord| format!("{prefix}{}", r.index);
    let mut v = TracesValidation::skipped("");
    v.other_clients_spans = collected.foreign;
    v.duplicate_spans = collected.duplicates;
    v.waited_s = waited_s;
    let mut pairs: Vec<(&RequestRecord, &LlmSpan)> = Vec::new();
    for r in &measured {
        match (r.is_ok(), ours(r)) {
            (true, Some(s)) => pairs.push((r, s)),
            (true, None) => v.client_without_span.push(id(r)),
            (false, Some(_)) => v.spans_without_completion.push(id(r)),
            (false, None) => {}
        }
    }
    v.matched = pairs.len() as u64;
    let completed = measured.iter().filter(|r| r.is_ok()).count() as u64;

    let mut checks = Vec::new();
    let mut count = compare("request_count", Some(completed as f64), &Ok(v.matched as f64), 0.0, 0.0);
    if count.status == Status::Warn || v.spans_without_completion.count > 0 {
        count.reason = Some(unmatched_reason(&v, waited_s, wait_max_s));
    }
    checks.push(count);

    for (r, s) in &pairs {
        if r.prompt_tokens != s.prompt_tokens || r.completion_tokens != s.completion_tokens {
            v.token_mismatch_count += 1;
            if v.token_mismatches.len() < LISTED {
                v.token_mismatches.push(TokenMismatch {
                    request_id: id(r),
                    client_prompt: r.prompt_tokens,
                    server_prompt: s.prompt_tokens,
                    client_completion: r.completion_tokens,
                    server_completion: s.completion_tokens,
                });
            }
        }
    }
    let approximate = pairs.iter().any(|(r, _)| !r.tokens_from_usage);
    checks.push(token_check("prompt_tokens", &pairs, |r| r.prompt_tokens, |s| s.prompt_tokens, approximate));
    checks.push(token_check(
        "generation_tokens",
        &pairs,
        |r| r.completion_tokens,
        |s| s.completion_tokens,
        approximate,
    ));

    let ms = |x: f64| x * 1e3;
    let mut ttft_compared = Vec::new();
    let (mut ttft_server, mut ttft_diff, mut e2e_client, mut e2e_server, mut e2e_diff) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (r, s) in &pairs {
        if let (Some(ce), Some(se)) = (r.e2e_s, s.e2e_s) {
            e2e_client.push(ms(ce));
            e2e_server.push(ms(se));
            e2e_diff.push(ms(ce - se));
        }
        if let (Some(ct), Some(st)) = (r.ttft_s, s.ttft_s) {
            let outside = match (r.e2e_s, s.e2e_s) {
                (Some(ce), Some(se)) => (ce - se).max(0.0),
                _ => 0.0,
            };
            ttft_compared.push(ms((ct - outside).max(0.0)));
            ttft_server.push(ms(st));
            ttft_diff.push(ms(ct - st));
        }
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let figure = |v: &[f64]| mean(v).ok_or_else(|| "no matched request with this figure in its span".to_owned());
    let mut ttft =
        latency_check("ttft_mean", mean(&ttft_compared), &figure(&ttft_server), tol.ttft_mean, tol.latency_floor_ms);
    if ttft.status != Status::Skip {
        ttft.client = mean(&ttft_diff).zip(mean(&ttft_server)).map(|(d, s)| d + s);
        ttft.client_compared = mean(&ttft_compared);
        ttft.reason.get_or_insert_with(|| "paired per request, net of each request's time outside the engine".into());
    }
    checks.push(ttft);
    let e2e = latency_check(
        "e2e_latency_mean",
        mean(&e2e_client),
        &figure(&e2e_server),
        tol.e2e_latency_mean,
        tol.latency_floor_ms,
    );
    checks.push(e2e);

    v.ttft_diff_ms = Spread::of(ttft_diff);
    v.e2e_diff_ms = Spread::of(e2e_diff);
    let of = |f: fn(&LlmSpan) -> Option<f64>| Spread::of(pairs.iter().filter_map(|(_, s)| f(s)).map(ms).collect());
    v.server_breakdown = ServerBreakdown {
        queue_ms: of(|s| s.queue_s),
        prefill_ms: of(|s| s.prefill_s),
        decode_ms: of(|s| s.decode_s),
        inference_ms: of(|s| s.inference_s),
    };
    v.section = Section::from_comparisons(checks, None);
    v
}

fn unmatched_reason(v: &TracesValidation, waited_s: f64, wait_max_s: f64) -> String {
    let mut parts = Vec::new();
    let list = |u: &Unmatched| u.request_ids.join(", ");
    if v.client_without_span.count > 0 {
        let waited = if waited_s + 1e-3 >= wait_max_s {
            format!("after waiting the full {wait_max_s:.1} s")
        } else {
            format!("after {waited_s:.1} s")
        };
        parts.push(format!(
            "{} completed request(s) without a span {waited}: {}",
            v.client_without_span.count,
            list(&v.client_without_span)
        ));
    }
    if v.spans_without_completion.count > 0 {
        parts.push(format!(
            "{} span(s) for requests the client did not see complete: {}",
            v.spans_without_completion.count,
            list(&v.spans_without_completion)
        ));
    }
    parts.join("; ")
}

fn token_check(
    name: &str,
    pairs: &[(&RequestRecord, &LlmSpan)],
    client_of: fn(&RequestRecord) -> Option<u64>,
    server_of: fn(&LlmSpan) -> Option<u64>,
    approximate: bool,
) -> Comparison {
    let sum = |values: Vec<Option<u64>>| values.into_iter().sum::<Option<u64>>();
    let client = sum(pairs.iter().map(|(r, _)| client_of(r)).collect());
    let server = sum(pairs.iter().map(|(_, s)| server_of(s)).collect());
    let server = server.map(|v| v as f64).ok_or_else(|| "a matched span has no token count".to_owned());
    let mut c = compare(name, client.map(|v| v as f64), &server, 0.0, 0.0);
    if approximate && c.status != Status::Skip {
        c.status = Status::Skip;
        c.reason = Some("client token counts are approximate (no usage from the server): no exact verdict".into());
    } else if c.status == Status::Warn {
        let differing = pairs.iter().filter(|(r, s)| client_of(r) != server_of(s)).count();
        c.reason = Some(format!("{differing} request(s) differ (token_mismatches lists them)"));
    }
    c
}

#[cfg(test)]
mod tests;
