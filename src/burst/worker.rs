//! One request from send to last byte, measured into a `RequestRecord`.

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use tokio::time::{Instant, timeout_at};

use crate::error::describe_reqwest;
use crate::openai::{self, ChunkEvent};
use crate::record::{Outcome, RequestRecord};
use crate::workload::Timeouts;

/// What a worker needs to send one request; shared by all workers of a burst.
pub struct RequestTarget {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub api_key: Option<String>,
    pub stream: bool,
    pub timeouts: Timeouts,
    /// Prefix of the `X-Request-Id` header; the request index is appended.
    pub request_id_prefix: String,
}

impl RequestTarget {
    /// The `X-Request-Id` of request `index`.
    pub fn request_id(&self, index: u64) -> String {
        format!("{}{index}", self.request_id_prefix)
    }
}

/// Longest error body kept in a record.
const ERROR_BODY_LIMIT: usize = 300;

/// Send one request and measure it. `record` arrives with its index and
/// schedule filled in; `start` is the burst's clock origin; `traceparent` is
/// the W3C header of the request's own span, when it has one.
pub async fn execute(
    target: &RequestTarget,
    body: bytes::Bytes,
    start: Instant,
    mut record: RequestRecord,
    traceparent: Option<String>,
) -> RequestRecord {
    let mut req = target
        .client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-request-id", target.request_id(record.index))
        .body(body);
    if let Some(key) = &target.api_key {
        req = req.bearer_auth(key);
    }
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let sent = Instant::now();
    record.sent_s = sent.duration_since(start).as_secs_f64();
    let deadline = sent + target.timeouts.request;
    let first_token_deadline = (sent + target.timeouts.first_token).min(deadline);

    // A non-streamed response has its headers only at completion.
    let header_deadline = if target.stream { first_token_deadline } else { deadline };
    let resp = match timeout_at(header_deadline, req.send()).await {
        Err(_) if target.stream => {
            return fail(
                record,
                Outcome::FirstTokenTimeout,
                "no response headers before the first-token timeout".into(),
            );
        }
        Err(_) => {
            return fail(record, Outcome::Timeout, "no response before the request timeout".into());
        }
        Ok(Err(e)) => return fail_send(record, &e),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    record.http_status = Some(status.as_u16());
    if !status.is_success() {
        let body = match timeout_at(deadline, resp.text()).await {
            Ok(Ok(t)) => t,
            _ => String::new(),
        };
        let msg = error_summary(status.as_u16(), &body);
        record.e2e_s = Some(sent.elapsed().as_secs_f64());
        return fail(record, Outcome::HttpError, msg);
    }
    if target.stream {
        read_stream(resp, sent, first_token_deadline, deadline, record).await
    } else {
        read_full(resp, sent, deadline, record).await
    }
}

async fn read_stream(
    resp: reqwest::Response,
    sent: Instant,
    first_token_deadline: Instant,
    deadline: Instant,
    mut record: RequestRecord,
) -> RequestRecord {
    let content_type =
        resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if !content_type.starts_with("text/event-stream") {
        let shown = if content_type.is_empty() { "none" } else { content_type.as_str() };
        return fail(
            record,
            Outcome::MalformedStream,
            format!("response is not an SSE stream (content-type: {shown})"),
        );
    }
    let mut events = resp.bytes_stream().eventsource();
    let mut usage = None;
    let mut finish_reason: Option<String> = None;
    let mut done = false;
    loop {
        let limit = if record.ttft_s.is_none() { first_token_deadline } else { deadline };
        let next = match timeout_at(limit, events.next()).await {
            Err(_) if record.ttft_s.is_none() => {
                return fail(record, Outcome::FirstTokenTimeout, "no token before the first-token timeout".into());
            }
            Err(_) => {
                return fail(record, Outcome::Timeout, "the request took longer than the request timeout".into());
            }
            Ok(n) => n,
        };
        // Timestamp at receipt, before any other work.
        let at = sent.elapsed().as_secs_f64();
        let event = match next {
            None => break,
            Some(Ok(ev)) => ev,
            Some(Err(EventStreamError::Transport(e))) => {
                return fail(record, Outcome::StreamCut, format!("stream broke: {}", describe_reqwest(&e)));
            }
            Some(Err(e)) => return fail(record, Outcome::MalformedStream, format!("invalid SSE: {e}")),
        };
        if event.data == "[DONE]" {
            record.e2e_s = Some(at);
            done = true;
            break;
        }
        if event.data.is_empty() {
            continue;
        }
        let chunk: ChunkEvent = match openai::parse_chunk(&event.data) {
            Ok(c) => c,
            Err(e) => return fail(record, Outcome::MalformedStream, e),
        };
        if let Some(err) = chunk.error {
            record.e2e_s = Some(at);
            return fail(record, Outcome::ServerError, truncate(&err));
        }
        if chunk.carries_token {
            if record.ttft_s.is_none() {
                record.ttft_s = Some(at);
            }
            record.chunk_times_s.push(at);
        }
        if chunk.finish_reason.is_some() {
            finish_reason = chunk.finish_reason;
        }
        if chunk.usage.is_some() {
            usage = chunk.usage;
        }
    }
    if record.e2e_s.is_none() {
        record.e2e_s = Some(sent.elapsed().as_secs_f64());
    }
    record.finish_reason = finish_reason;
    apply_usage(&mut record, usage);
    if !done && record.finish_reason.is_none() {
        return fail(record, Outcome::StreamCut, "the stream ended before a finish_reason or [DONE]".into());
    }
    if record.ttft_s.is_none() {
        // A finished stream with no output at all (e.g. max_tokens 0): e2e is all we have.
        record.ttft_s = record.e2e_s;
    }
    record
}

async fn read_full(
    resp: reqwest::Response,
    sent: Instant,
    deadline: Instant,
    mut record: RequestRecord,
) -> RequestRecord {
    let body = match timeout_at(deadline, resp.text()).await {
        Err(_) => {
            return fail(record, Outcome::Timeout, "the request took longer than the request timeout".into());
        }
        Ok(Err(e)) => {
            return fail(record, Outcome::StreamCut, format!("body broke: {}", describe_reqwest(&e)));
        }
        Ok(Ok(b)) => b,
    };
    let at = sent.elapsed().as_secs_f64();
    record.e2e_s = Some(at);
    // Without streaming the first token is only seen with the whole body.
    record.ttft_s = Some(at);
    let parsed = match openai::parse_full_response(&body) {
        Ok(p) => p,
        Err(e) => return fail(record, Outcome::MalformedStream, e),
    };
    if let Some(err) = parsed.error {
        return fail(record, Outcome::ServerError, truncate(&err));
    }
    record.finish_reason = parsed.finish_reason;
    if parsed.carries_token {
        record.chunk_times_s.push(at);
    }
    apply_usage(&mut record, parsed.usage);
    record
}

fn apply_usage(record: &mut RequestRecord, usage: Option<openai::Usage>) {
    match usage {
        Some(u) => {
            record.prompt_tokens = Some(u.prompt_tokens);
            record.completion_tokens = Some(u.completion_tokens);
            record.tokens_from_usage = true;
        }
        None => {
            // Fallback: one chunk counted as one token (approximate, labelled so).
            record.prompt_tokens = Some(u64::from(record.intended_input_tokens));
            record.completion_tokens = Some(record.chunk_times_s.len() as u64);
            record.tokens_from_usage = false;
        }
    }
}

fn fail(mut record: RequestRecord, outcome: Outcome, msg: String) -> RequestRecord {
    record.outcome = outcome;
    record.error = Some(msg);
    record
}

fn fail_send(record: RequestRecord, e: &reqwest::Error) -> RequestRecord {
    let outcome = if e.is_connect() && e.is_timeout() {
        Outcome::ConnectTimeout
    } else if e.is_connect() {
        Outcome::ConnectError
    } else if e.is_timeout() {
        Outcome::Timeout
    } else {
        // The connection was made but broke before a response (reset, closed).
        Outcome::StreamCut
    };
    fail(record, outcome, describe_reqwest(e))
}

/// "HTTP 404: The model `x` does not exist." from an OpenAI/vLLM error body.
fn error_summary(status: u16, body: &str) -> String {
    let parsed = openai::parse_full_response(body).ok().and_then(|p| p.error);
    let detail = parsed.unwrap_or_else(|| body.trim().to_owned());
    if detail.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {}", truncate(&detail)) }
}

fn truncate(s: &str) -> String {
    if s.len() <= ERROR_BODY_LIMIT {
        return s.to_owned();
    }
    let mut end = ERROR_BODY_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_summary_reads_openai_errors() {
        let body = r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":"model","code":404}}"#;
        assert_eq!(error_summary(404, body), "HTTP 404: The model `x` does not exist.");
        assert_eq!(error_summary(502, "<html>bad gateway</html>"), "HTTP 502: <html>bad gateway</html>");
        assert_eq!(error_summary(500, ""), "HTTP 500");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "é".repeat(400);
        let t = truncate(&s);
        assert!(t.len() <= ERROR_BODY_LIMIT + '…'.len_utf8());
    }
}
