//! The burst's own spans: one per run, one per phase, one per request (sampled), exported
//! by `telemetry` when an OTLP endpoint is configured. A request span's `traceparent` goes
//! out with the request, so the server's span (vLLM's `llm_request`) sits inside it.
//!
//! Sampling (request spans only; the run and phase spans are always made): at most
//! [`MAX_REQUEST_SPANS`] per run, spread evenly over the burst when its request count is
//! known in advance (every k-th request: a count, or rate × duration), else the first ones
//! (a closed loop for a duration). A request left out sends no `traceparent` at all: an
//! unsampled one would make vLLM drop its own span, which the `traces` validation needs.
//! `OTEL_TRACES_SAMPLER` still decides per run (the run span is the root of its trace).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::record::RequestRecord;
use crate::workload::{ArrivalPlan, StopCondition};

/// Request spans per run at most.
pub const MAX_REQUEST_SPANS: u64 = 1000;

/// The root span of one burst.
pub fn run_span(run_id: &str, model: &str, server: &str) -> Span {
    tracing::info_span!("run", otel.name = "llm_loadtest.run", run_id, model, server.address = server)
}

/// A span named after a phase of the burst, child of the current span.
pub fn phase_span(name: &'static str) -> Span {
    tracing::info_span!("phase", otel.name = name)
}

/// Run `work` inside a phase span and time it: its output and its duration in seconds.
pub async fn phase<T>(name: &'static str, work: impl Future<Output = T>) -> (T, f64) {
    let t = Instant::now();
    let out = work.instrument(phase_span(name)).await;
    (out, t.elapsed().as_secs_f64())
}

/// Which requests of a burst get a span.
pub struct RequestSampling {
    stride: u64,
    traced: AtomicU64,
}

impl RequestSampling {
    /// `expected`: how many requests the burst will send, when known in advance.
    pub fn new(expected: Option<u64>) -> Self {
        let stride = expected.map_or(1, |n| n.div_ceil(MAX_REQUEST_SPANS)).max(1);
        RequestSampling { stride, traced: AtomicU64::new(0) }
    }

    /// The expected request count of a measured phase.
    pub fn expected(plan: &ArrivalPlan, stop: StopCondition) -> Option<u64> {
        match (stop, plan) {
            (StopCondition::Requests(n), _) => Some(n),
            (StopCondition::Duration(d), ArrivalPlan::Rate { rate, .. }) => {
                Some((rate * d.as_secs_f64()).ceil() as u64)
            }
            (StopCondition::Duration(_), ArrivalPlan::Concurrency { .. }) => None,
        }
    }

    /// Whether the `n`-th request of its phase (0-based) gets a span. Counts it when so.
    pub fn sample(&self, n: u64) -> bool {
        n.is_multiple_of(self.stride) && self.traced.fetch_add(1, Ordering::Relaxed) < MAX_REQUEST_SPANS
    }
}

/// A request's span under `parent`, or None when nothing is exported or it is not sampled.
pub fn request_span(
    parent: &Span,
    sampling: &RequestSampling,
    n: u64,
    request_id: &str,
    url: &reqwest::Url,
    warmup: bool,
) -> Option<Span> {
    if !crate::telemetry::exporting() || !sampling.sample(n) {
        return None;
    }
    let span = tracing::info_span!(
        parent: parent,
        "request",
        otel.name = format!("POST {}", url.path()),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = "POST",
        url.path = url.path(),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        llm_loadtest.request.id = request_id,
        llm_loadtest.warmup = warmup,
    );
    Some(span)
}

/// What the request measured, on its span.
pub fn record_outcome(span: &Span, r: &RequestRecord) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    span.set_attribute("llm_loadtest.outcome", r.outcome.as_label());
    if let Some(s) = r.http_status {
        span.set_attribute("http.response.status_code", i64::from(s));
    }
    if let Some(t) = r.ttft_s {
        span.set_attribute("llm_loadtest.ttft_s", t - r.sent_s);
    }
    if let Some(n) = r.prompt_tokens {
        span.set_attribute("gen_ai.usage.input_tokens", n as i64);
    }
    if let Some(n) = r.completion_tokens {
        span.set_attribute("gen_ai.usage.output_tokens", n as i64);
    }
    if !r.is_ok() {
        span.record("otel.status_code", "ERROR");
        if let Some(e) = &r.error {
            span.set_attribute("error.message", e.clone());
        }
    }
}

/// Run `work` inside `span` when there is one.
pub async fn maybe_in<T>(span: Option<&Span>, work: impl Future<Output = T>) -> T {
    match span {
        Some(s) => work.instrument(s.clone()).await,
        None => work.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn large_bursts_are_sampled_evenly_and_capped() {
        let s = RequestSampling::new(Some(5000));
        let kept: Vec<u64> = (0..5000).filter(|&n| s.sample(n)).collect();
        assert_eq!(kept.len(), 1000);
        assert_eq!(&kept[..3], &[0, 5, 10]);
        let small = RequestSampling::new(Some(40));
        assert_eq!((0..40).filter(|&n| small.sample(n)).count(), 40);
        let unknown = RequestSampling::new(None);
        assert_eq!((0..3000).filter(|&n| unknown.sample(n)).count(), 1000, "the first 1000");
    }

    #[test]
    fn expected_counts_from_the_plan() {
        let rate = ArrivalPlan::Rate { rate: 12.5, poisson: false, seed: 0, max_concurrency: None };
        let closed = ArrivalPlan::Concurrency { concurrency: 4 };
        assert_eq!(RequestSampling::expected(&closed, StopCondition::Requests(7)), Some(7));
        assert_eq!(RequestSampling::expected(&rate, StopCondition::Duration(Duration::from_secs(10))), Some(125));
        assert_eq!(RequestSampling::expected(&closed, StopCondition::Duration(Duration::from_secs(10))), None);
    }
}
