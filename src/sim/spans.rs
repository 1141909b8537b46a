//! vLLM's per-request `llm_request` spans, as vLLM 0.32 exports them with
//! `--otlp-traces-endpoint`: one span per finished request (none for an aborted
//! or refused one), kind SERVER, from arrival to the last token, a child of the
//! request's W3C `traceparent` when it carries one, batched by the SDK's
//! `BatchSpanProcessor` (vLLM's default: every 5 s) and sent over OTLP (gRPC, or
//! HTTP/protobuf with `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf`).

use std::time::{Duration, SystemTime};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};

use crate::traces::span::{LLM_REQUEST, attr};

/// The service name vLLM's tracer reports.
const SERVICE_NAME: &str = "vllm.llm_engine";

/// The span exporter of a running simulator.
pub struct SpanSink {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// One finished request, as its span tells it. Times in seconds.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    /// `gen_ai.request.id`: `chatcmpl-<id>`, or `cmpl-<id>-0` for a completion.
    pub request_id: String,
    pub parent: Context,
    pub arrival: SystemTime,
    pub end: SystemTime,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub max_tokens: u32,
    pub ttft: f64,
    pub e2e: f64,
    pub queue: f64,
    pub prefill: f64,
    pub decode: f64,
    pub inference: f64,
}

impl SpanSink {
    /// Export to `endpoint` (the transport from the standard variables), batching every
    /// `batch_delay`. Call inside a Tokio runtime (gRPC builds its channel on it).
    pub fn start(endpoint: &str, batch_delay: Duration) -> Result<SpanSink, String> {
        let protocol = crate::telemetry::OtlpProtocol::from_env()?;
        let exporter = crate::telemetry::otlp_exporter(Some(endpoint), protocol)?;
        let batch = BatchConfigBuilder::default().with_scheduled_delay(batch_delay).build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(crate::telemetry::resource(SERVICE_NAME))
            .build();
        let tracer = provider.tracer("vllm.llm_engine");
        Ok(SpanSink { provider, tracer })
    }

    /// Hand one span to the batch processor (a channel send; never blocks on the network).
    pub fn emit(&self, s: FinishedSpan) {
        let int = |v: u32| i64::from(v);
        let attributes = vec![
            KeyValue::new("gen_ai.response.model", s.model),
            KeyValue::new(attr::REQUEST_ID, s.request_id),
            KeyValue::new("gen_ai.request.temperature", 1.0),
            KeyValue::new("gen_ai.request.top_p", 1.0),
            KeyValue::new("gen_ai.request.max_tokens", int(s.max_tokens)),
            KeyValue::new("gen_ai.request.n", 1_i64),
            KeyValue::new(attr::PROMPT_TOKENS, int(s.prompt_tokens)),
            KeyValue::new(attr::COMPLETION_TOKENS, int(s.completion_tokens)),
            KeyValue::new(attr::QUEUE, s.queue),
            KeyValue::new(attr::TTFT, s.ttft),
            KeyValue::new(attr::E2E, s.e2e),
            KeyValue::new(attr::PREFILL, s.prefill),
            KeyValue::new(attr::DECODE, s.decode),
            KeyValue::new(attr::INFERENCE, s.inference),
        ];
        let span = self
            .tracer
            .span_builder(LLM_REQUEST)
            .with_kind(SpanKind::Server)
            .with_start_time(s.arrival)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &s.parent);
        let mut span = span;
        opentelemetry::trace::Span::end_with_timestamp(&mut span, s.end);
    }

    /// Export what is queued and stop (blocks up to the SDK's export timeout: call from a
    /// blocking thread).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("the simulator's last spans were not exported: {e}");
        }
    }
}

/// The parent of a request's span: its W3C `traceparent`, or a new trace without one.
pub fn parent_context(headers: &axum::http::HeaderMap) -> Context {
    struct Headers<'a>(&'a axum::http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(axum::http::HeaderName::as_str).collect()
        }
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    if cx.span().span_context().is_valid() { cx } else { Context::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_becomes_the_parent_and_garbage_is_ignored() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        let cx = parent_context(&h);
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_remote());
        h.insert("traceparent", "00-zz-00f067aa0ba902b7-01".parse().unwrap());
        assert!(!parent_context(&h).span().span_context().is_valid());
        assert!(!parent_context(&axum::http::HeaderMap::new()).span().span_context().is_valid());
    }
}
