//! Parsing one SSE `data:` payload of a streamed completion.
//!
//! What counts as a token arrival follows `vllm bench serve`: a chunk whose
//! delta carries `content`, `reasoning_content`/`reasoning` or `tool_calls`
//! and is not the role-only opening chunk; for `/v1/completions`, a choice
//! with a `text` field. An empty `content` without a role still counts: vLLM
//! sends it for tokens that decode to no text. A chunk is one arrival however
//! many tokens it carries (speculative decoding, `--stream-interval`).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// Server token counts from the `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// What one streamed chunk told us.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkEvent {
    /// The chunk carries generated output (one arrival for TTFT/ITL).
    pub carries_token: bool,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// An error object sent in the stream (vLLM sends mid-stream failures this way, after HTTP 200).
    pub error: Option<String>,
}

// Borrowed strings: this runs once per streamed chunk, on the hot path.
#[derive(Deserialize)]
struct RawChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<RawChoice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawChoice<'a> {
    #[serde(default)]
    delta: Option<RawDelta>,
    #[serde(default)]
    message: Option<RawDelta>,
    #[serde(default)]
    text: Option<IgnoredAny>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawDelta {
    #[serde(default)]
    role: Option<IgnoredAny>,
    #[serde(default)]
    content: Option<IgnoredAny>,
    #[serde(default)]
    reasoning_content: Option<IgnoredAny>,
    #[serde(default)]
    reasoning: Option<IgnoredAny>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
}

impl RawDelta {
    fn carries_output(&self) -> bool {
        let has_output = self.content.is_some()
            || self.reasoning_content.is_some()
            || self.reasoning.is_some()
            || self.tool_calls.is_some();
        has_output && self.role.is_none()
    }
}

fn error_message(raw: &RawChunk<'_>) -> Option<String> {
    if let Some(err) = &raw.error {
        // vLLM >= 0.10.1: {"error": {"message": ...}}; some servers: {"error": "text"}.
        let msg = err
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .or_else(|| err.as_str().map(str::to_owned))
            .unwrap_or_else(|| err.to_string());
        return Some(msg);
    }
    if raw.object.as_deref() == Some("error") {
        // vLLM < 0.10.1: a flat {"object": "error", "message": ...}.
        return Some(raw.message.as_deref().unwrap_or("error").to_owned());
    }
    None
}

/// Parse one SSE `data:` payload (not `[DONE]`). Err means the payload is not
/// a JSON chunk at all (a malformed stream).
pub fn parse_chunk(data: &str) -> Result<ChunkEvent, String> {
    let raw: RawChunk = serde_json::from_str(data).map_err(|e| format!("invalid JSON chunk: {e}"))?;
    let mut ev = ChunkEvent { usage: raw.usage, error: error_message(&raw), ..Default::default() };
    for choice in &raw.choices {
        let token = match &choice.delta {
            Some(d) => d.carries_output(),
            None => choice.text.is_some(),
        };
        ev.carries_token |= token;
        if let Some(f) = &choice.finish_reason {
            ev.finish_reason = Some(f.clone().into_owned());
        }
    }
    Ok(ev)
}

/// A non-streamed response body: usage, finish reason, or an error object.
pub fn parse_full_response(body: &str) -> Result<ChunkEvent, String> {
    let raw: RawChunk = serde_json::from_str(body).map_err(|e| format!("invalid JSON response: {e}"))?;
    let mut ev = ChunkEvent { usage: raw.usage, error: error_message(&raw), ..Default::default() };
    for choice in &raw.choices {
        ev.carries_token |= choice.message.is_some() || choice.text.is_some();
        if let Some(f) = &choice.finish_reason {
            ev.finish_reason = Some(f.clone().into_owned());
        }
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_chunk_is_not_a_token() {
        let ev = parse_chunk(
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert!(!ev.carries_token);
    }

    #[test]
    fn content_chunk_is_a_token_even_when_empty() {
        let ev = parse_chunk(r#"{"choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null}]}"#).unwrap();
        assert!(ev.carries_token);
        let ev = parse_chunk(r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"length"}]}"#).unwrap();
        assert!(ev.carries_token);
        assert_eq!(ev.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn reasoning_counts_as_output() {
        let ev = parse_chunk(r#"{"choices":[{"delta":{"reasoning_content":"think"}}]}"#).unwrap();
        assert!(ev.carries_token);
    }

    #[test]
    fn usage_chunk() {
        let ev = parse_chunk(r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":16,"total_tokens":23}}"#)
            .unwrap();
        assert!(!ev.carries_token);
        assert_eq!(ev.usage, Some(Usage { prompt_tokens: 7, completion_tokens: 16 }));
    }

    #[test]
    fn completions_text_chunk() {
        let ev =
            parse_chunk(r#"{"object":"text_completion","choices":[{"index":0,"text":" a","finish_reason":null}]}"#)
                .unwrap();
        assert!(ev.carries_token);
    }

    #[test]
    fn error_events_both_shapes() {
        let ev = parse_chunk(r#"{"error":{"message":"boom","type":"InternalServerError","code":500}}"#).unwrap();
        assert_eq!(ev.error.as_deref(), Some("boom"));
        let ev = parse_chunk(r#"{"object":"error","message":"old boom","code":500}"#).unwrap();
        assert_eq!(ev.error.as_deref(), Some("old boom"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_chunk("not json").is_err());
        assert!(parse_chunk("{\"choices\": 3}").is_err());
        assert!(parse_chunk("").is_err());
    }

    #[test]
    fn full_response() {
        let ev = parse_full_response(r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#).unwrap();
        assert!(ev.carries_token);
        assert_eq!(ev.finish_reason.as_deref(), Some("stop"));
        assert_eq!(ev.usage.unwrap().completion_tokens, 1);
    }
}
