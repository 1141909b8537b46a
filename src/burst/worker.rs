//! One request from send to last byte, measured into a `RequestRecord`.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{Instant, timeout_at};

use crate::error::describe_reqwest;
use crate::openai::{self, ChunkEvent, SseDecoder, SseError, SseLimits};
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

/// The model list next to a completions URL (`.../v1/chat/completions` -> `.../v1/models`).
fn models_url(completions: &reqwest::Url) -> reqwest::Url {
    let mut url = completions.clone();
    let path = url.path().to_owned();
    let base = path.strip_suffix("chat/completions").or_else(|| path.strip_suffix("completions"));
    url.set_path(&format!("{}models", base.unwrap_or("/v1/")));
    url.set_query(None);
    url
}

/// Open `n` connections to the target before the clock starts, so no measured TTFT includes a
/// connection set-up: `n` concurrent GETs of the model list (every OpenAI-compatible server has
/// one; whatever the answer, the connection stays open), each response held until all have
/// arrived so that each request has a connection of its own. Returns how many connections were
/// made; failures are left for the burst to meet and count. Bounded by the connect timeout plus
/// 5 s.
pub async fn open_connections(target: &RequestTarget, n: u32) -> u32 {
    let url = models_url(&target.url);
    let deadline = tokio::time::Instant::now() + target.timeouts.connect + Duration::from_secs(5);
    let one = |_| {
        let slot = std::sync::Arc::new(crate::http::ConnectSlot::default());
        let mut req = target.client.get(url.clone());
        if let Some(key) = &target.api_key {
            req = req.bearer_auth(key);
        }
        let send = crate::http::with_connect_slot(slot.clone(), req.send());
        async move { (send.await.ok(), slot) }
    };
    let opened = tokio::time::timeout_at(deadline, futures_util::future::join_all((0..n).map(one))).await;
    let Ok(opened) = opened else { return 0 };
    let made = opened.iter().filter(|(_, slot)| slot.get().is_some()).count() as u32;
    // Read the bodies (small) so every connection goes back to the pool, idle.
    for (resp, _) in opened {
        if let Some(r) = resp {
            let _ = tokio::time::timeout_at(deadline, r.bytes()).await;
        }
    }
    // The pool takes a connection back once its task has seen the response end, a moment after
    // the body was read: a request sent at once would open a new one instead.
    tokio::time::sleep(Duration::from_millis(100)).await;
    made
}

/// The longest wait for the rest of a body after `[DONE]` (it is normally there already).
const DRAIN_LIMIT: Duration = Duration::from_millis(200);

/// Longest error body kept in a record.
const ERROR_BODY_LIMIT: usize = 300;
/// Most of an error response read (its message is near the start).
const ERROR_BODY_READ_LIMIT: usize = 64 << 10;
/// Largest non-streamed body accepted (a completion of many thousand tokens is well under).
const FULL_BODY_LIMIT: usize = 16 << 20;

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
    let connect = std::sync::Arc::new(crate::http::ConnectSlot::default());
    let send = crate::http::with_connect_slot(connect.clone(), req.send());
    let resp = match timeout_at(header_deadline, send).await {
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
    record.connect_s = connect.get().map(|d| d.as_secs_f64());
    let status = resp.status();
    record.http_status = Some(status.as_u16());
    if !status.is_success() {
        let body = match read_body(resp, deadline, ERROR_BODY_READ_LIMIT).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => String::new(),
        };
        let msg = error_summary(status.as_u16(), &body);
        record.e2e_s = Some(sent.elapsed().as_secs_f64());
        return fail(record, Outcome::HttpError, msg);
    }
    let deadlines =
        Deadlines { first_token: first_token_deadline, request: deadline, inter_chunk: target.timeouts.inter_chunk };
    if target.stream {
        read_stream(resp, sent, deadlines, record).await
    } else {
        read_full(resp, sent, deadline, record).await
    }
}

/// When a streamed request must have progressed by.
struct Deadlines {
    first_token: Instant,
    request: Instant,
    /// After the first token: the longest gap allowed before the next one.
    inter_chunk: Duration,
}

impl Deadlines {
    /// The deadline in force, and the outcome when it passes.
    fn next(&self, last_token: Option<Instant>) -> (Instant, Outcome, &'static str) {
        match last_token {
            None => (self.first_token, Outcome::FirstTokenTimeout, "no token before the first-token timeout"),
            Some(t) if t + self.inter_chunk < self.request => (
                t + self.inter_chunk,
                Outcome::StallTimeout,
                "the stream stalled: no token within the inter-chunk timeout",
            ),
            Some(_) => (self.request, Outcome::Timeout, "the request took longer than the request timeout"),
        }
    }
}

/// Why a stream's events could not be read.
pub enum StreamFault {
    Deadline(Outcome, &'static str),
    Transport(String),
    Sse(SseError),
}

impl StreamFault {
    pub fn describe(&self) -> String {
        match self {
            StreamFault::Deadline(_, why) => (*why).to_owned(),
            StreamFault::Transport(e) => e.clone(),
            StreamFault::Sse(e) => e.to_string(),
        }
    }
}

/// The SSE events of a response, read under deadlines that hold whatever the server sends:
/// each read is bounded by the deadline in force, the deadline is checked again between
/// reads (a server that floods bytes never leaves the read pending), and the task yields
/// to the scheduler as its budget runs out, so cancellation (SIGTERM) always gets through.
pub struct EventReader<S> {
    body: S,
    decoder: SseDecoder,
    ready: std::collections::VecDeque<String>,
    /// The decoder's error, reported once the events before it are delivered.
    fault: Option<SseError>,
    /// Bytes read and events delivered so far.
    pub bytes: u64,
    pub events: u64,
}

impl<S> EventReader<S>
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    pub fn new(body: S) -> Self {
        EventReader {
            body,
            decoder: SseDecoder::new(SseLimits::default()),
            ready: Default::default(),
            fault: None,
            bytes: 0,
            events: 0,
        }
    }

    /// After `[DONE]`: read what is left of the body (the chunked encoding's last chunk) so the
    /// connection goes back to the pool for the next request instead of being closed with unread
    /// bytes. Bounded: at most 64 KiB, and not past `deadline`; whatever it meets is ignored.
    pub async fn drain(&mut self, deadline: Instant) {
        let mut left: usize = 64 << 10;
        while let Chunk::Bytes(b) = next_chunk(&mut self.body, deadline).await {
            left = left.saturating_sub(b.len().max(1));
            if left == 0 {
                break;
            }
        }
    }

    /// The next event's data, or None at the end of the stream.
    pub async fn next(&mut self, deadline: (Instant, Outcome, &'static str)) -> Result<Option<String>, StreamFault> {
        let (at, outcome, why) = deadline;
        loop {
            if Instant::now() >= at {
                return Err(StreamFault::Deadline(outcome, why));
            }
            if let Some(ev) = self.ready.pop_front() {
                self.events += 1;
                return Ok(Some(ev));
            }
            if let Some(e) = self.fault.take() {
                return Err(StreamFault::Sse(e));
            }
            let bytes = match next_chunk(&mut self.body, at).await {
                Chunk::Deadline => return Err(StreamFault::Deadline(outcome, why)),
                Chunk::End => return Ok(None),
                Chunk::Broke(e) => return Err(StreamFault::Transport(e)),
                Chunk::Bytes(b) => b,
            };
            self.bytes += bytes.len() as u64;
            let mut out = Vec::new();
            // Events completed before a fault are still delivered first.
            self.fault = self.decoder.feed(&bytes, &mut out).err();
            self.ready.extend(out);
        }
    }
}

async fn read_stream(
    resp: reqwest::Response,
    sent: Instant,
    deadlines: Deadlines,
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
    let mut events = EventReader::new(resp.bytes_stream());
    let mut usage = None;
    let mut finish_reason: Option<String> = None;
    let mut done = false;
    let mut last_token: Option<Instant> = None;
    loop {
        let next = events.next(deadlines.next(last_token)).await;
        // Timestamp at receipt, before any other work.
        let now = Instant::now();
        let at = now.duration_since(sent).as_secs_f64();
        let data = match next {
            // Bytes that never made one event: not SSE at all (say, a proxy's text page).
            Ok(None) if events.events == 0 && events.bytes > 0 => {
                let msg = format!("the body ({} bytes) held no SSE event", events.bytes);
                return fail(record, Outcome::MalformedStream, msg);
            }
            Ok(None) => break,
            Ok(Some(d)) => d,
            Err(StreamFault::Deadline(outcome, why)) => return fail(record, outcome, why.into()),
            Err(StreamFault::Transport(e)) => return fail(record, Outcome::StreamCut, format!("stream broke: {e}")),
            Err(StreamFault::Sse(e @ (SseError::LineTooLong(_) | SseError::EventTooLong(_)))) => {
                return fail(record, Outcome::LineTooLong, e.to_string());
            }
            Err(StreamFault::Sse(e)) => return fail(record, Outcome::MalformedStream, format!("invalid SSE: {e}")),
        };
        if data == "[DONE]" {
            record.e2e_s = Some(at);
            done = true;
            events.drain((now + DRAIN_LIMIT).min(deadlines.request)).await;
            break;
        }
        if data.is_empty() {
            continue;
        }
        let chunk: ChunkEvent = match openai::parse_chunk(&data) {
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
            last_token = Some(now);
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

/// One read of a response body.
enum Chunk {
    Bytes(bytes::Bytes),
    End,
    Deadline,
    Broke(String),
}

/// The next bytes of `body` by `deadline`. The read first gives back the task's scheduler
/// budget when it is spent, so a peer whose bytes are always ready cannot starve a cancel.
async fn next_chunk<S>(body: &mut S, deadline: Instant) -> Chunk
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    tokio::task::consume_budget().await;
    match timeout_at(deadline, body.next()).await {
        Err(_) => Chunk::Deadline,
        Ok(None) => Chunk::End,
        Ok(Some(Err(e))) => Chunk::Broke(describe_reqwest(&e)),
        Ok(Some(Ok(b))) => Chunk::Bytes(b),
    }
}

/// Why a body could not be read whole.
enum BodyFault {
    Deadline,
    TooLarge(usize),
    Transport(String),
}

/// A whole body, at most `limit` bytes, by `deadline`.
async fn read_body(resp: reqwest::Response, deadline: Instant, limit: usize) -> Result<Vec<u8>, BodyFault> {
    let mut body = resp.bytes_stream();
    let mut out = Vec::new();
    loop {
        if Instant::now() >= deadline {
            return Err(BodyFault::Deadline);
        }
        match next_chunk(&mut body, deadline).await {
            Chunk::Deadline => return Err(BodyFault::Deadline),
            Chunk::End => return Ok(out),
            Chunk::Broke(e) => return Err(BodyFault::Transport(e)),
            Chunk::Bytes(b) => {
                if out.len() + b.len() > limit {
                    return Err(BodyFault::TooLarge(limit));
                }
                out.extend_from_slice(&b);
            }
        }
    }
}

async fn read_full(
    resp: reqwest::Response,
    sent: Instant,
    deadline: Instant,
    mut record: RequestRecord,
) -> RequestRecord {
    let body = match read_body(resp, deadline, FULL_BODY_LIMIT).await {
        Err(BodyFault::Deadline) => {
            return fail(record, Outcome::Timeout, "the request took longer than the request timeout".into());
        }
        Err(BodyFault::TooLarge(n)) => {
            return fail(record, Outcome::LineTooLong, format!("a response body over {n} bytes"));
        }
        Err(BodyFault::Transport(e)) => return fail(record, Outcome::StreamCut, format!("body broke: {e}")),
        Ok(b) => b,
    };
    let at = sent.elapsed().as_secs_f64();
    record.e2e_s = Some(at);
    // Without streaming the first token is only seen with the whole body.
    record.ttft_s = Some(at);
    let body = String::from_utf8_lossy(&body);
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
