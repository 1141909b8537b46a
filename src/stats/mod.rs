//! RequestRecord, one at a time -> ClientStats. Pure: no I/O, no clock.
//!
//! Definitions follow `vllm bench serve` where they overlap, and the JSON
//! uses its key names (`mean_ttft_ms`, `p99_itl_ms`, `output_throughput`, ...):
//! - TTFT: send -> first output-carrying chunk (never the role-only chunk).
//! - TPOT: (e2e - ttft) / (output_tokens - 1), per request with >1 token.
//! - ITL: every gap between consecutive output-carrying chunks; a chunk with
//!   several tokens is one arrival (one gap), exactly as `vllm bench serve`.
//! - E2EL: send -> end of response.
//! - Throughputs divide by `duration` (first send to last response end).
//! Latency statistics use completed (`ok`) requests only.
//!
//! Exact and approximate figures: every count, total, throughput and goodput, and every TTFT,
//! TPOT, E2EL and connect-time figure is exact (numpy-linear percentiles over every sample).
//! ITL and scheduling lag have exact count, mean, std and max; their percentiles come from an
//! HdrHistogram and are within 0.1% ([`Gaps`]): a long burst has 64 gaps per request, too many
//! to keep.

mod gaps;
mod summary;

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, Serializer};

pub use gaps::{Gaps, PERCENTILE_RELATIVE_ERROR};
pub use summary::{LatencySummary, percentile};

use crate::record::{ReceiveLag, RequestRecord};

/// Service-level objectives for goodput, milliseconds (like `vllm bench serve --goodput`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2el_ms: Option<f64>,
}

impl Slo {
    pub fn is_empty(&self) -> bool {
        self.ttft_ms.is_none() && self.tpot_ms.is_none() && self.e2el_ms.is_none()
    }

    /// Every SLO of `self`, and those of `other` over them.
    pub fn merged(&self, other: &Slo) -> Slo {
        Slo {
            ttft_ms: other.ttft_ms.or(self.ttft_ms),
            tpot_ms: other.tpot_ms.or(self.tpot_ms),
            e2el_ms: other.e2el_ms.or(self.e2el_ms),
        }
    }

    /// Parse `ttft:500 tpot:50 e2el:2000` (any subset, ms).
    pub fn parse(items: &[String]) -> Result<Slo, String> {
        let mut slo = Slo::default();
        for item in items {
            let (key, value) = item
                .split_once(':')
                .ok_or_else(|| format!("goodput SLO `{item}` must look like ttft:500 (metric:milliseconds)"))?;
            let ms: f64 =
                value.trim().parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0).ok_or_else(|| {
                    format!("goodput SLO `{item}`: `{value}` is not a positive number of milliseconds")
                })?;
            match key.trim() {
                "ttft" => slo.ttft_ms = Some(ms),
                "tpot" => slo.tpot_ms = Some(ms),
                "e2el" => slo.e2el_ms = Some(ms),
                other => {
                    return Err(format!("goodput SLO `{item}`: unknown metric `{other}` (use ttft, tpot or e2el)"));
                }
            }
        }
        Ok(slo)
    }
}

/// When the client's own lag is large enough to distort a figure, the figure
/// is marked client-bound instead of being presented as the server's.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ClientBound {
    /// Receive-side wake-up lag is a sizeable part of TTFT.
    pub ttft: bool,
    /// Receive-side wake-up lag is a sizeable part of the inter-token gaps.
    pub itl: bool,
    /// Requests left late: the load shape asked for was not delivered.
    pub schedule: bool,
    pub reasons: Vec<String>,
}

/// Lag figures are "sizeable" above this share of the figure they distort.
pub const CLIENT_BOUND_SHARE: f64 = 0.10;
/// ... and above this absolute floor (below it, timer noise dominates).
pub const CLIENT_BOUND_FLOOR_MS: f64 = 1.0;

/// Client-side statistics of one burst.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStats {
    pub duration_s: f64,
    pub num_requests: u64,
    pub completed: u64,
    pub failed: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    /// Token totals came from server `usage` for every completed request.
    pub tokens_from_usage: bool,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub request_goodput: Option<f64>,
    pub ttft_ms: LatencySummary,
    pub tpot_ms: LatencySummary,
    pub itl_ms: LatencySummary,
    pub e2el_ms: LatencySummary,
    /// Failed requests by outcome label.
    pub errors: BTreeMap<&'static str, u64>,
    pub finish_reasons: BTreeMap<String, u64>,
    pub http_statuses: BTreeMap<u16, u64>,
    pub schedule_lag_ms: LatencySummary,
    /// Connection set-up of the measured requests that opened a new connection (the others
    /// reused one, opened before the clock by default).
    pub connect_ms: LatencySummary,
    /// Completed requests whose TTFT includes a connection set-up.
    pub ttft_with_connect: u64,
    pub receive_lag: ReceiveLag,
    pub client_bound: ClientBound,
}

/// Compute the statistics of the measured (non-warm-up) records: [`Accumulator`] over a slice.
pub fn compute(records: &[RequestRecord], duration_s: f64, receive_lag: &ReceiveLag, slo: &Slo) -> ClientStats {
    Accumulator::of(records).finish(duration_s, receive_lag, slo)
}

/// Distinct finish reasons counted by name; the rest are counted as [`OTHER_FINISH_REASON`]
/// (the name is the server's free text).
pub const MAX_FINISH_REASONS: usize = 32;
pub const OTHER_FINISH_REASON: &str = "other";

/// The statistics of a burst, one record at a time, as the records finish: what it keeps per
/// request is 24 bytes (TTFT, E2E and TPOT of each completed request, exact), whatever the
/// burst's length; the inter-chunk gaps and the scheduling lag go to [`Gaps`] (exact count,
/// mean, std and max; percentiles within 0.1%).
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    /// Per completed measured request, in one order: TTFT and E2E, ms; TPOT, ms, or NaN when
    /// the request had one token (kept aligned so goodput can be judged at the end).
    ttft: Vec<f64>,
    e2el: Vec<f64>,
    tpot: Vec<f64>,
    itl: Gaps,
    schedule_lag: Gaps,
    connects: Vec<f64>,
    measured: u64,
    completed: u64,
    input: u64,
    output: u64,
    without_usage: u64,
    ttft_with_connect: u64,
    errors: BTreeMap<&'static str, u64>,
    finish_reasons: BTreeMap<String, u64>,
    http_statuses: BTreeMap<u16, u64>,
}

impl Accumulator {
    /// Every record of a slice, added.
    pub fn of(records: &[RequestRecord]) -> Self {
        let mut acc = Accumulator::default();
        for r in records {
            acc.add(r);
        }
        acc
    }

    pub fn add(&mut self, r: &RequestRecord) {
        if r.warmup {
            return;
        }
        self.measured += 1;
        self.schedule_lag.record(r.schedule_lag_s() * 1e3);
        if let Some(c) = r.connect_s {
            self.connects.push(c * 1e3);
        }
        if let Some(s) = r.http_status {
            *self.http_statuses.entry(s).or_insert(0) += 1;
        }
        if !r.is_ok() {
            *self.errors.entry(r.outcome.as_label()).or_insert(0) += 1;
            return;
        }
        self.completed += 1;
        let out_tokens = r.completion_tokens.unwrap_or(0);
        // Saturating: a server's absurd `usage` (2^64 - 1) must not wrap the totals (the
        // validation then refuses to judge a figure that large).
        self.input = self.input.saturating_add(r.prompt_tokens.unwrap_or(0));
        self.output = self.output.saturating_add(out_tokens);
        self.without_usage += u64::from(!r.tokens_from_usage);
        self.ttft_with_connect += u64::from(r.connect_s.is_some());
        let t = r.ttft_s.unwrap_or(0.0) * 1e3;
        let e = r.e2e_s.unwrap_or(0.0) * 1e3;
        self.ttft.push(t);
        self.e2el.push(e);
        self.tpot.push(if out_tokens > 1 { (e - t) / (out_tokens - 1) as f64 } else { f64::NAN });
        for w in r.chunk_times_s.windows(2) {
            self.itl.record((w[1] - w[0]) * 1e3);
        }
        if let Some(f) = &r.finish_reason {
            let known = self.finish_reasons.contains_key(f) || self.finish_reasons.len() < MAX_FINISH_REASONS;
            let key = if known { f.as_str() } else { OTHER_FINISH_REASON };
            match self.finish_reasons.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    self.finish_reasons.insert(key.to_owned(), 1);
                }
            }
        }
    }

    /// Bytes this keeps in memory (its sample vectors' capacities; the histograms are fixed).
    pub fn retained_bytes(&self) -> u64 {
        let f64s = self.ttft.capacity() + self.e2el.capacity() + self.tpot.capacity() + self.connects.capacity();
        (f64s * std::mem::size_of::<f64>()) as u64
    }

    pub fn finish(self, duration_s: f64, receive_lag: &ReceiveLag, slo: &Slo) -> ClientStats {
        let good = (0..self.ttft.len())
            .filter(|&i| {
                let (t, e, tp) = (self.ttft[i], self.e2el[i], self.tpot[i]);
                slo.ttft_ms.is_none_or(|s| t <= s)
                    && slo.tpot_ms.is_none_or(|s| tp.is_nan() || tp <= s)
                    && slo.e2el_ms.is_none_or(|s| e <= s)
            })
            .count();
        let rate = |n: f64| if duration_s > 0.0 { n / duration_s } else { 0.0 };
        let ttft_ms = LatencySummary::from_samples(self.ttft);
        let itl_ms = self.itl.summary();
        let schedule_lag_ms = self.schedule_lag.summary();
        let client_bound = judge_client_bound(&ttft_ms, &itl_ms, &schedule_lag_ms, receive_lag);
        ClientStats {
            duration_s,
            num_requests: self.measured,
            completed: self.completed,
            failed: self.measured - self.completed,
            total_input_tokens: self.input,
            total_output_tokens: self.output,
            tokens_from_usage: self.without_usage == 0,
            request_throughput: rate(self.completed as f64),
            output_throughput: rate(self.output as f64),
            total_token_throughput: rate(self.input.saturating_add(self.output) as f64),
            request_goodput: (!slo.is_empty()).then(|| rate(good as f64)),
            ttft_ms,
            tpot_ms: LatencySummary::from_samples(self.tpot),
            itl_ms,
            e2el_ms: LatencySummary::from_samples(self.e2el),
            errors: self.errors,
            finish_reasons: self.finish_reasons,
            http_statuses: self.http_statuses,
            schedule_lag_ms,
            connect_ms: LatencySummary::from_samples(self.connects),
            ttft_with_connect: self.ttft_with_connect,
            receive_lag: receive_lag.clone(),
            client_bound,
        }
    }
}

/// Count the measured requests folded into runs of failures (`record::FailureFolder`): they
/// are requests and failures of their kind like any other; they have no latency and no record,
/// so no other figure changes.
pub fn add_folded(stats: &mut ClientStats, folded: &[crate::record::FoldedFailures]) {
    for f in folded.iter().filter(|f| !f.warmup) {
        stats.num_requests = stats.num_requests.saturating_add(f.count);
        stats.failed = stats.failed.saturating_add(f.count);
        let n = stats.errors.entry(f.outcome.as_label()).or_insert(0);
        *n = n.saturating_add(f.count);
    }
}

/// Decide which figures the client itself may have distorted.
fn judge_client_bound(
    ttft: &LatencySummary,
    itl: &LatencySummary,
    sched: &LatencySummary,
    recv: &ReceiveLag,
) -> ClientBound {
    let mut cb = ClientBound::default();
    let recv_p99_ms = recv.p99_us / 1e3;
    let sizeable = |lag_ms: f64, figure_ms: Option<f64>| {
        lag_ms > CLIENT_BOUND_FLOOR_MS && figure_ms.is_some_and(|f| lag_ms > CLIENT_BOUND_SHARE * f)
    };
    // Compared with the mean: coalesced chunks make the median ITL ~0.
    if sizeable(recv_p99_ms, ttft.mean) {
        cb.ttft = true;
        cb.reasons.push(format!(
            "receive-side wake-up lag p99 {recv_p99_ms:.2} ms is over {:.0}% of the mean TTFT {:.2} ms",
            CLIENT_BOUND_SHARE * 100.0,
            ttft.mean.unwrap_or(0.0)
        ));
    }
    if sizeable(recv_p99_ms, itl.mean) {
        cb.itl = true;
        cb.reasons.push(format!(
            "receive-side wake-up lag p99 {recv_p99_ms:.2} ms is over {:.0}% of the mean ITL {:.2} ms",
            CLIENT_BOUND_SHARE * 100.0,
            itl.mean.unwrap_or(0.0)
        ));
    }
    if let Some(p99) = sched.p99
        && p99 > CLIENT_BOUND_FLOOR_MS * 10.0
    {
        cb.schedule = true;
        cb.reasons.push(format!(
            "requests left up to {p99:.1} ms (p99) after their scheduled time: the client could not deliver the requested load shape"
        ));
    }
    cb
}

impl serde::Serialize for ClientStats {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("duration", &self.duration_s)?;
        m.serialize_entry("num_requests", &self.num_requests)?;
        m.serialize_entry("completed", &self.completed)?;
        m.serialize_entry("failed", &self.failed)?;
        m.serialize_entry("total_input_tokens", &self.total_input_tokens)?;
        m.serialize_entry("total_output_tokens", &self.total_output_tokens)?;
        m.serialize_entry("tokens_from_usage", &self.tokens_from_usage)?;
        m.serialize_entry("request_throughput", &self.request_throughput)?;
        m.serialize_entry("output_throughput", &self.output_throughput)?;
        m.serialize_entry("total_token_throughput", &self.total_token_throughput)?;
        m.serialize_entry("request_goodput", &self.request_goodput)?;
        for (name, summary) in
            [("ttft", &self.ttft_ms), ("tpot", &self.tpot_ms), ("itl", &self.itl_ms), ("e2el", &self.e2el_ms)]
        {
            for (stat, value) in summary.named() {
                m.serialize_entry(&format!("{stat}_{name}_ms"), &value)?;
            }
        }
        m.serialize_entry("errors", &self.errors)?;
        m.serialize_entry("finish_reasons", &self.finish_reasons)?;
        m.serialize_entry("http_statuses", &self.http_statuses)?;
        m.serialize_entry("schedule_lag_ms", &self.schedule_lag_ms)?;
        m.serialize_entry("connect_ms", &self.connect_ms)?;
        m.serialize_entry("ttft_with_connect", &self.ttft_with_connect)?;
        m.serialize_entry("receive_lag", &self.receive_lag)?;
        m.serialize_entry("client_bound", &self.client_bound)?;
        m.end()
    }
}

#[cfg(test)]
mod tests;
