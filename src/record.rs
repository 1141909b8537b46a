//! The ground floor of a burst's data: what one request measured ([`RequestRecord`],
//! [`Outcome`]) and the client's own receive lag ([`ReceiveLag`]). Plain data that `burst`
//! writes and `stats`, `validate`, `artifacts` and `exporter` read; statistics come later.

use serde::{Deserialize, Serialize};

/// How a request ended. Each variant is a bounded label (`as_label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Completed: HTTP 2xx and a finished stream (or body).
    Ok,
    /// The server answered with a non-2xx status.
    HttpError,
    /// TCP/TLS connection could not be made (refused, reset, DNS).
    ConnectError,
    /// The connection was not made within the connect timeout.
    ConnectTimeout,
    /// No token arrived within the first-token timeout.
    FirstTokenTimeout,
    /// The whole request took longer than the request timeout.
    Timeout,
    /// After its first token the stream stalled: no token within the inter-chunk timeout.
    StallTimeout,
    /// An SSE line or event (or a whole non-streamed body) over its size limit.
    LineTooLong,
    /// The stream ended (or broke) before the server said it was finished.
    StreamCut,
    /// The body was not a valid SSE stream of JSON chunks (or not valid JSON).
    MalformedStream,
    /// The server reported an error inside a 200 stream or body.
    ServerError,
    /// The burst was cancelled (shutdown) while the request was in flight.
    Cancelled,
}

impl Outcome {
    pub const ALL: [Outcome; 12] = [
        Outcome::Ok,
        Outcome::HttpError,
        Outcome::ConnectError,
        Outcome::ConnectTimeout,
        Outcome::FirstTokenTimeout,
        Outcome::Timeout,
        Outcome::StallTimeout,
        Outcome::LineTooLong,
        Outcome::StreamCut,
        Outcome::MalformedStream,
        Outcome::ServerError,
        Outcome::Cancelled,
    ];

    /// No connection could be made (the target is down or refusing).
    pub fn is_connect_failure(self) -> bool {
        matches!(self, Outcome::ConnectError | Outcome::ConnectTimeout)
    }

    pub fn as_label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::HttpError => "http_error",
            Outcome::ConnectError => "connect_error",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::FirstTokenTimeout => "first_token_timeout",
            Outcome::Timeout => "timeout",
            Outcome::StallTimeout => "stall_timeout",
            Outcome::LineTooLong => "line_too_long",
            Outcome::StreamCut => "stream_cut",
            Outcome::MalformedStream => "malformed_stream",
            Outcome::ServerError => "server_error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One request, as measured. Times are seconds: `scheduled_s` and `sent_s`
/// from the burst start, the others from `sent_s`, all from one monotonic clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub index: u64,
    /// Warm-up requests are sent first and left out of every statistic.
    pub warmup: bool,
    /// When the arrival plan wanted this request to start.
    pub scheduled_s: f64,
    /// When the request was actually handed to the connection.
    pub sent_s: f64,
    /// Time to the first chunk carrying output (never the role-only chunk).
    pub ttft_s: Option<f64>,
    /// Time to the end of the response (`[DONE]` or the end of the body).
    pub e2e_s: Option<f64>,
    /// Arrival time of every output-carrying chunk, from `sent_s`. One chunk
    /// is one arrival, however many tokens it carries.
    pub chunk_times_s: Vec<f64>,
    /// Prompt length the workload intended (approximate unless a tokenizer was given).
    pub intended_input_tokens: u32,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// True when the token counts came from the server's `usage`; false when
    /// counted from chunks (approximate).
    pub tokens_from_usage: bool,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub finish_reason: Option<String>,
    /// A short error description (never contains the API key).
    pub error: Option<String>,
}

impl RequestRecord {
    pub fn new(index: u64, warmup: bool, scheduled_s: f64, sent_s: f64, intended_input_tokens: u32) -> Self {
        RequestRecord {
            index,
            warmup,
            scheduled_s,
            sent_s,
            ttft_s: None,
            e2e_s: None,
            chunk_times_s: Vec::new(),
            intended_input_tokens,
            prompt_tokens: None,
            completion_tokens: None,
            tokens_from_usage: false,
            outcome: Outcome::Ok,
            http_status: None,
            finish_reason: None,
            error: None,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// Scheduling lag: how late the client sent this request (its own saturation).
    pub fn schedule_lag_s(&self) -> f64 {
        (self.sent_s - self.scheduled_s).max(0.0)
    }
}

/// Wake-up delay figures, microseconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceiveLag {
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}
