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
    /// When sending this request opened a new connection: how long its set-up (TCP, and TLS
    /// for https) took, seconds. Inside `ttft_s` and `e2e_s`, which run from the send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_s: Option<f64>,
}

impl RequestRecord {
    /// A copy without the arrival time of every chunk (what a join by request needs).
    pub fn without_chunk_times(&self) -> RequestRecord {
        RequestRecord {
            chunk_times_s: Vec::new(),
            finish_reason: self.finish_reason.clone(),
            error: self.error.clone(),
            ..*self
        }
    }

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
            connect_s: None,
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

/// Failed requests of one kind in a row, beyond the first few, stored as one entry: a target
/// that refuses connections for minutes must not leave millions of identical records. Counts
/// stay exact (the statistics add `count` to the failures of `outcome`); the folded requests
/// have no record of their own, so they add no scheduling-lag sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldedFailures {
    pub outcome: Outcome,
    pub warmup: bool,
    pub count: u64,
    /// The error of the first folded request (the others of the run had the same kind).
    pub error: Option<String>,
    pub first_index: u64,
    pub last_index: u64,
    pub first_sent_s: f64,
    pub last_sent_s: f64,
}

/// Records kept of each run of connection failures before the rest is folded.
pub const KEPT_PER_FAILURE_RUN: usize = 10;

/// Fold runs of connection failures (`records` in index order): of each run of failures of the
/// same outcome (and warm-up flag) in a row, the first `keep` stay records, the rest become one
/// [`FoldedFailures`]. Only failures before any answer are folded: they carry nothing but their
/// kind and time.
pub fn fold_failure_runs(records: &mut Vec<RequestRecord>, keep: usize) -> Vec<FoldedFailures> {
    let mut folder = FailureFolder::new(keep);
    let kept = records.drain(..).filter_map(|r| folder.push(r)).collect();
    *records = kept;
    folder.finish()
}

/// [`fold_failure_runs`] one record at a time, in the order the records come (a burst's
/// collector sees them as they finish: a run is then failures in a row in time, and the
/// folded entry's indices and send times are the run's lowest and highest).
#[derive(Debug)]
pub struct FailureFolder {
    keep: usize,
    folded: Vec<FoldedFailures>,
    // (outcome, warmup, records of the run seen so far, index in `folded` of the run's entry)
    run: Option<(Outcome, bool, usize, Option<usize>)>,
}

impl FailureFolder {
    pub fn new(keep: usize) -> Self {
        FailureFolder { keep, folded: Vec::new(), run: None }
    }

    /// The record back when it is kept; None when it was folded.
    pub fn push(&mut self, r: RequestRecord) -> Option<RequestRecord> {
        if !r.outcome.is_connect_failure() {
            self.run = None;
            return Some(r);
        }
        let same = self.run.is_some_and(|(o, w, _, _)| o == r.outcome && w == r.warmup);
        if !same {
            self.run = Some((r.outcome, r.warmup, 0, None));
        }
        let (_, _, seen, entry) = self.run.as_mut()?;
        *seen += 1;
        if *seen <= self.keep {
            return Some(r);
        }
        match *entry {
            Some(i) => {
                let f = &mut self.folded[i];
                f.count += 1;
                f.first_index = f.first_index.min(r.index);
                f.last_index = f.last_index.max(r.index);
                f.first_sent_s = f.first_sent_s.min(r.sent_s);
                f.last_sent_s = f.last_sent_s.max(r.sent_s);
            }
            None => {
                *entry = Some(self.folded.len());
                self.folded.push(FoldedFailures {
                    outcome: r.outcome,
                    warmup: r.warmup,
                    count: 1,
                    error: r.error,
                    first_index: r.index,
                    last_index: r.index,
                    first_sent_s: r.sent_s,
                    last_sent_s: r.sent_s,
                });
            }
        }
        None
    }

    pub fn finish(self) -> Vec<FoldedFailures> {
        self.folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(index: u64, outcome: Outcome) -> RequestRecord {
        let mut r = RequestRecord::new(index, false, index as f64, index as f64, 10);
        r.outcome = outcome;
        r.error = (outcome != Outcome::Ok).then(|| format!("{} #{index}", outcome.as_label()));
        r
    }

    #[test]
    fn runs_of_connect_failures_fold_beyond_the_first_few_with_exact_counts() {
        use Outcome::*;
        let outcomes = [vec![Ok], vec![ConnectError; 25], vec![Ok], vec![ConnectError; 3], vec![ConnectTimeout; 12]];
        let mut records: Vec<RequestRecord> =
            outcomes.concat().into_iter().enumerate().map(|(i, o)| rec(i as u64, o)).collect();
        let total = records.len();
        let folded = fold_failure_runs(&mut records, 10);
        // 25 refused: 10 kept, 15 folded; the 3 after the answer stay; 12 timeouts: 10 + 2.
        assert_eq!(folded.len(), 2, "{folded:#?}");
        assert_eq!(
            (folded[0].outcome, folded[0].count, folded[0].first_index, folded[0].last_index),
            (ConnectError, 15, 11, 25)
        );
        assert_eq!(folded[0].error.as_deref(), Some("connect_error #11"));
        assert_eq!((folded[1].outcome, folded[1].count), (ConnectTimeout, 2));
        assert_eq!(records.len() + 17, total);
        assert!(records.windows(2).all(|w| w[0].index < w[1].index));
        // Nothing to fold: unchanged.
        let mut few: Vec<RequestRecord> = (0..5).map(|i| rec(i, HttpError)).collect();
        assert!(fold_failure_runs(&mut few, 2).is_empty());
        assert_eq!(few.len(), 5);
    }
}
