//! vLLM's `llm_request` spans, read out of an OTLP export into plain values.
//! Pure: an [`ExportTraceServiceRequest`] in, [`LlmSpan`]s and counted
//! outcomes out; a span with a wrong attribute type is kept with that figure
//! missing and counted, never a panic.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde::{Deserialize, Serialize};

/// The span name vLLM gives each finished request (`vllm/tracing.py`).
pub const LLM_REQUEST: &str = "llm_request";

/// The attributes read, as vLLM names them (`SpanAttributes`).
pub mod attr {
    pub const REQUEST_ID: &str = "gen_ai.request.id";
    pub const PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
    pub const COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
    pub const TTFT: &str = "gen_ai.latency.time_to_first_token";
    pub const E2E: &str = "gen_ai.latency.e2e";
    pub const QUEUE: &str = "gen_ai.latency.time_in_queue";
    pub const PREFILL: &str = "gen_ai.latency.time_in_model_prefill";
    pub const DECODE: &str = "gen_ai.latency.time_in_model_decode";
    pub const INFERENCE: &str = "gen_ai.latency.time_in_model_inference";
}

/// One `llm_request` span: the server's own account of one request. Times in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmSpan {
    /// `gen_ai.request.id`: `chatcmpl-<X-Request-Id>` or `cmpl-<X-Request-Id>-0`.
    pub request_id: String,
    /// Hex, as W3C `traceparent` writes it.
    pub trace_id: String,
    pub span_id: String,
    /// Empty when the request carried no `traceparent`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_span_id: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub ttft_s: Option<f64>,
    pub e2e_s: Option<f64>,
    pub queue_s: Option<f64>,
    pub prefill_s: Option<f64>,
    pub decode_s: Option<f64>,
    pub inference_s: Option<f64>,
}

/// What one export held, counted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub spans: Vec<LlmSpan>,
    /// Spans of any other name (other instrumentation in the same process).
    pub other_spans: u64,
    /// `llm_request` spans without a string `gen_ai.request.id`: unusable.
    pub without_id: u64,
    /// Attributes present with a type vLLM never sends (kept as missing figures).
    pub wrong_types: u64,
}

/// Every `llm_request` span of an export.
pub fn llm_spans(export: &ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    let spans = export.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
    for span in spans {
        if span.name != LLM_REQUEST {
            out.other_spans += 1;
            continue;
        }
        match read_span(span, &mut out.wrong_types) {
            Some(s) => out.spans.push(s),
            None => out.without_id += 1,
        }
    }
    out
}

fn read_span(span: &Span, wrong_types: &mut u64) -> Option<LlmSpan> {
    let mut s = LlmSpan {
        request_id: String::new(),
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: hex(&span.parent_span_id),
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        prompt_tokens: None,
        completion_tokens: None,
        ttft_s: None,
        e2e_s: None,
        queue_s: None,
        prefill_s: None,
        decode_s: None,
        inference_s: None,
    };
    let mut id = None;
    for KeyValue { key, value, .. } in &span.attributes {
        let value = value.as_ref().and_then(|v: &AnyValue| v.value.as_ref());
        let seconds = |slot: &mut Option<f64>, wrong: &mut u64| match as_seconds(value) {
            Some(v) => *slot = Some(v),
            None => *wrong += 1,
        };
        match key.as_str() {
            attr::REQUEST_ID => match value {
                Some(Value::StringValue(v)) if !v.is_empty() => id = Some(v.clone()),
                _ => *wrong_types += 1,
            },
            attr::PROMPT_TOKENS => count(value, &mut s.prompt_tokens, wrong_types),
            attr::COMPLETION_TOKENS => count(value, &mut s.completion_tokens, wrong_types),
            attr::TTFT => seconds(&mut s.ttft_s, wrong_types),
            attr::E2E => seconds(&mut s.e2e_s, wrong_types),
            attr::QUEUE => seconds(&mut s.queue_s, wrong_types),
            attr::PREFILL => seconds(&mut s.prefill_s, wrong_types),
            attr::DECODE => seconds(&mut s.decode_s, wrong_types),
            attr::INFERENCE => seconds(&mut s.inference_s, wrong_types),
            _ => {}
        }
    }
    s.request_id = id?;
    Some(s)
}

/// A token count: a non-negative integer (vLLM sends int64).
fn count(value: Option<&Value>, slot: &mut Option<u64>, wrong: &mut u64) {
    match value {
        Some(Value::IntValue(v)) if *v >= 0 => *slot = Some(*v as u64),
        _ => *wrong += 1,
    }
}

/// A duration in seconds: a finite, non-negative double (an integer is accepted too).
fn as_seconds(value: Option<&Value>) -> Option<f64> {
    let v = match value? {
        Value::DoubleValue(v) => *v,
        Value::IntValue(v) => *v as f64,
        _ => return None,
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    pub fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
    }

    /// A span as vLLM 0.32 sends it (attribute names and types seen on the real server).
    pub fn vllm_span(request_id: &str, prompt: i64, completion: i64, ttft: f64, e2e: f64) -> Span {
        Span {
            name: LLM_REQUEST.into(),
            trace_id: vec![0xab; 16],
            span_id: vec![0x01; 8],
            attributes: vec![
                kv(attr::REQUEST_ID, Value::StringValue(request_id.into())),
                kv(attr::PROMPT_TOKENS, Value::IntValue(prompt)),
                kv(attr::COMPLETION_TOKENS, Value::IntValue(completion)),
                kv(attr::TTFT, Value::DoubleValue(ttft)),
                kv(attr::E2E, Value::DoubleValue(e2e)),
                kv(attr::QUEUE, Value::DoubleValue(0.001)),
                kv(attr::PREFILL, Value::DoubleValue(ttft / 2.0)),
                kv(attr::DECODE, Value::DoubleValue(e2e - ttft)),
                kv("gen_ai.request.temperature", Value::DoubleValue(1.0)),
            ],
            ..Span::default()
        }
    }

    pub fn export(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn a_vllm_span_reads_into_its_figures() {
        let d = llm_spans(&export(vec![vllm_span("chatcmpl-r-1", 12, 30, 0.05, 0.4)]));
        assert_eq!((d.other_spans, d.without_id, d.wrong_types), (0, 0, 0));
        let s = &d.spans[0];
        assert_eq!(s.request_id, "chatcmpl-r-1");
        assert_eq!((s.prompt_tokens, s.completion_tokens), (Some(12), Some(30)));
        assert_eq!((s.ttft_s, s.e2e_s), (Some(0.05), Some(0.4)));
        assert_eq!(s.trace_id, "ab".repeat(16));
        assert_eq!(s.span_id, "0101010101010101");
        assert_eq!(s.parent_span_id, "");
    }

    #[test]
    fn other_names_and_spans_without_an_id_are_counted_not_kept() {
        let mut no_id = vllm_span("x", 1, 1, 0.1, 0.2);
        no_id.attributes.remove(0);
        let mut int_id = vllm_span("x", 1, 1, 0.1, 0.2);
        int_id.attributes[0] = kv(attr::REQUEST_ID, Value::IntValue(7));
        let other = Span { name: "POST /v1/chat/completions".into(), ..Span::default() };
        let d = llm_spans(&export(vec![no_id, int_id, other]));
        assert!(d.spans.is_empty());
        assert_eq!((d.other_spans, d.without_id, d.wrong_types), (1, 2, 1));
    }

    #[test]
    fn wrong_attribute_types_leave_that_figure_missing() {
        let mut s = vllm_span("cmpl-r-2-0", 5, 6, 0.1, 0.2);
        s.attributes[1] = kv(attr::PROMPT_TOKENS, Value::StringValue("5".into()));
        s.attributes[2] = kv(attr::COMPLETION_TOKENS, Value::IntValue(-3));
        s.attributes[3] = kv(attr::TTFT, Value::DoubleValue(f64::NAN));
        s.attributes[4] = kv(attr::E2E, Value::IntValue(1));
        let d = llm_spans(&export(vec![s]));
        let s = &d.spans[0];
        assert_eq!(d.wrong_types, 3);
        assert_eq!((s.prompt_tokens, s.completion_tokens, s.ttft_s), (None, None, None));
        assert_eq!(s.e2e_s, Some(1.0), "an integer number of seconds is still a duration");
    }

    #[test]
    fn an_attribute_without_a_value_is_a_wrong_type() {
        let mut s = vllm_span("chatcmpl-a", 1, 1, 0.1, 0.2);
        s.attributes[3] = KeyValue { key: attr::TTFT.into(), value: None, ..KeyValue::default() };
        let d = llm_spans(&export(vec![s]));
        assert_eq!((d.wrong_types, d.spans[0].ttft_s), (1, None));
    }
}
