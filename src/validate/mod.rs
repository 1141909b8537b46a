//! Comparisons of client figures with server figures, tolerances and
//! verdicts. Pure: the inputs are plain numbers (or the reason a number is
//! missing), so every verdict is tested with plain values.
//!
//! A check is PASS within tolerance, WARN outside it, SKIP when a side is
//! missing (with the reason). A run never fails because of a verdict.

mod assess;
mod logs;
mod prometheus;
mod table;
mod traces;

use serde::{Deserialize, Serialize};

pub use crate::server::catalogue::{Figure, ServerFigures, ServerInfo};

pub use assess::{ClientSide, LogsInput, Observation, assess};
pub use logs::{ClientLogFigures, ContainerInfo, DockerLogsValidation, client_log_figures, docker_logs_validation};
pub use prometheus::{PrometheusInputs, client_figures, evaluate};
pub use table::render_table;
pub use traces::{ServerBreakdown, Spread, TokenMismatch, TracesInput, TracesValidation, Unmatched, traces_validation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Skip => "SKIP",
        }
    }
}

/// Check names older versions used, with a unit suffix that contradicted the figures (the
/// exported values are seconds), and their names today. Accepted wherever a check is named:
/// stored results, `validate DIR` on old artifacts.
pub const RENAMED_CHECKS: [(&str, &str); 2] =
    [("ttft_mean_ms", "ttft_mean"), ("e2e_latency_mean_ms", "e2e_latency_mean")];

/// Today's name of a check given by any of its names.
pub fn canonical_check(name: &str) -> &str {
    RENAMED_CHECKS.iter().find(|(old, _)| *old == name).map_or(name, |(_, new)| new)
}

/// The checks that compare latencies (a background-traffic estimate does not touch them).
pub fn is_latency_check(name: &str) -> bool {
    matches!(canonical_check(name), "ttft_mean" | "e2e_latency_mean")
}

fn deserialize_check<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    Ok(canonical_check(&name).to_owned())
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Read with the names older versions wrote (`ttft_mean_ms`, ...) mapped to today's.
    #[serde(deserialize_with = "deserialize_check")]
    pub check: String,
    pub client: Option<f64>,
    pub server: Option<f64>,
    /// The client figure actually compared, when it was adjusted (TTFT: minus
    /// the per-request time spent outside the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_compared: Option<f64>,
    /// (compared client − server) / server × 100; signed.
    pub diff_pct: Option<f64>,
    /// Relative tolerance as a fraction (0.05 = ±5%).
    pub tolerance: f64,
    pub status: Status,
    pub reason: Option<String>,
}

/// Relative tolerances per check, with an absolute floor for latencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tolerances {
    pub request_count: f64,
    pub prompt_tokens: f64,
    pub generation_tokens: f64,
    pub ttft_mean: f64,
    pub e2e_latency_mean: f64,
    /// Client HTTP 200 responses vs the server's access-log 200 lines.
    pub http_200_count: f64,
    /// Client output-token throughput vs the engine-stats log lines.
    pub generation_throughput: f64,
    /// A latency difference below this many ms always passes (1 ms on a 5 ms TTFT is not drift).
    pub latency_floor_ms: f64,
    /// Performance against the target's own baseline (the daemon's exporter): a run whose TTFT,
    /// ITL or TPOT p90 is this much above the median of the last day's runs of the same workload
    /// (or whose output throughput is this much below it) regressed. 0.25 = 25%.
    pub regression: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            request_count: 0.05,
            prompt_tokens: 0.05,
            generation_tokens: 0.05,
            ttft_mean: 0.10,
            e2e_latency_mean: 0.10,
            http_200_count: 0.05,
            generation_throughput: 0.10,
            latency_floor_ms: 5.0,
            regression: 0.25,
        }
    }
}

impl Tolerances {
    /// Every count check at `t`, latencies at twice `t` (the PRD's 5% / TTFT 10% split).
    pub fn uniform(t: f64) -> Tolerances {
        Tolerances {
            request_count: t,
            prompt_tokens: t,
            generation_tokens: t,
            ttft_mean: 2.0 * t,
            e2e_latency_mean: 2.0 * t,
            http_200_count: t,
            generation_throughput: 2.0 * t,
            ..Tolerances::default()
        }
    }

    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("request_count", self.request_count),
            ("prompt_tokens", self.prompt_tokens),
            ("generation_tokens", self.generation_tokens),
            ("ttft_mean", self.ttft_mean),
            ("e2e_latency_mean", self.e2e_latency_mean),
            ("http_200_count", self.http_200_count),
            ("generation_throughput", self.generation_throughput),
            ("regression", self.regression),
        ] {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return Err(format!("tolerance {name} must be a fraction between 0 and 10 (0.05 = 5%), got {v}"));
            }
        }
        if !(self.latency_floor_ms.is_finite() && self.latency_floor_ms >= 0.0) {
            return Err(format!("latency_floor_ms must be >= 0, got {}", self.latency_floor_ms));
        }
        Ok(())
    }
}

/// What the client measured, in the units the checks compare.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientFigures {
    /// Requests the client saw complete.
    pub completed: u64,
    /// Requests that failed after the server may have started them (timeouts,
    /// cut streams, cancellations): vLLM counts their tokens but not them.
    pub aborted: u64,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub tokens_from_usage: bool,
    pub ttft_mean: Option<f64>,
    pub e2e_mean_ms: Option<f64>,
    /// The client's own receive lag was large enough to distort its TTFT.
    #[serde(default)]
    pub ttft_client_bound: bool,
}

/// Compare within a relative tolerance (and an absolute floor, in the
/// figure's own unit). `server` 0 with `client` 0 passes.
/// 2^53: beyond it an f64 no longer holds every integer, and no real count gets there.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

pub fn compare(check: &str, client: Option<f64>, server: &Figure, tolerance: f64, floor: f64) -> Comparison {
    let mut c = Comparison {
        check: check.to_owned(),
        client,
        client_compared: None,
        server: server.as_ref().ok().copied(),
        diff_pct: None,
        tolerance,
        status: Status::Skip,
        reason: None,
    };
    let (client, server) = match (client, server) {
        (_, Err(why)) => {
            c.reason = Some(why.clone());
            return c;
        }
        (None, Ok(_)) => {
            c.reason = Some("no client figure (no completed request)".into());
            return c;
        }
        (Some(a), Ok(b)) => (a, *b),
    };
    // Garbage is not judged: a NaN or infinite figure (a broken counter) or one past 2^53 (a
    // saturated or wrapped count: no server counts that many tokens) SKIPs with the reason.
    let garbage = |v: f64| !v.is_finite() || v.abs() >= MAX_EXACT;
    if garbage(server) || garbage(client) {
        c.server = (!garbage(server)).then_some(server);
        c.client = (!garbage(client)).then_some(client);
        let (side, v) = if garbage(server) { ("server", server) } else { ("client", client) };
        c.reason = Some(format!("the {side} figure is {v}, not a plausible finite number: not judged"));
        return c;
    }
    let diff = client - server;
    c.diff_pct = (server != 0.0).then(|| diff / server * 100.0);
    let within = diff.abs() <= floor || (server != 0.0 && (diff / server).abs() <= tolerance);
    c.status = if within { Status::Pass } else { Status::Warn };
    if !within && server == 0.0 {
        c.reason = Some("the server counted nothing".into());
    }
    c
}

#[cfg(test)]
mod compare_tests {
    use super::*;

    #[test]
    fn non_finite_figures_skip_with_the_reason() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let c = compare("request_count", Some(40.0), &Ok(bad), 0.05, 0.0);
            assert_eq!(c.status, Status::Skip, "{bad}");
            assert_eq!(c.server, None);
            assert!(c.reason.as_deref().unwrap().contains("server figure"), "{c:?}");
            let c = compare("request_count", Some(bad), &Ok(40.0), 0.05, 0.0);
            assert_eq!(c.status, Status::Skip, "{bad}");
            assert!(c.reason.as_deref().unwrap().contains("client figure"), "{c:?}");
        }
        let wrapped = compare("generation_tokens", Some(u64::MAX as f64), &Ok(640.0), 0.05, 0.0);
        assert_eq!(wrapped.status, Status::Skip, "{wrapped:?}");
        assert_eq!(compare("request_count", Some(40.0), &Ok(40.0), 0.05, 0.0).status, Status::Pass);
    }
}

/// The Prometheus section of a validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub status: Status,
    pub reason: Option<String>,
    pub comparisons: Vec<Comparison>,
}

impl Section {
    pub fn skipped(reason: impl Into<String>) -> Section {
        Section { status: Status::Skip, reason: Some(reason.into()), comparisons: Vec::new() }
    }

    /// WARN if any check warns, PASS if any passed, else SKIP.
    pub fn from_comparisons(comparisons: Vec<Comparison>, reason: Option<String>) -> Section {
        let status = summarize(comparisons.iter().map(|c| c.status));
        Section { status, reason, comparisons }
    }
}

pub fn summarize(statuses: impl IntoIterator<Item = Status>) -> Status {
    let mut any_pass = false;
    for s in statuses {
        match s {
            Status::Warn => return Status::Warn,
            Status::Pass => any_pass = true,
            Status::Skip => {}
        }
    }
    if any_pass { Status::Pass } else { Status::Skip }
}

/// The five Prometheus checks.
///
/// vLLM counts a request in `request_success_total` only when the engine
/// finishes it; requests the client aborted (timeouts, cut streams) are never
/// counted, but their tokens are in the token counters. So requests compare
/// with completed requests only, and when the client saw aborts the token
/// checks use the finished-request histograms instead of the counters.
pub fn prometheus_checks(client: &ClientFigures, server: &ServerFigures, tol: &Tolerances) -> Vec<Comparison> {
    let count = |v: u64| Some(v as f64);
    let mut out =
        vec![compare("request_count", count(client.completed), &server.finished_requests, tol.request_count, 0.0)];
    let token_check = |name: &str, client_v: u64, total: &Figure, finished: &Figure, t: f64| {
        let (server_v, note) = if client.aborted > 0 {
            (
                finished,
                Some(format!(
                    "{} aborted request(s): compared with finished requests only (request_*_tokens histogram)",
                    client.aborted
                )),
            )
        } else {
            (total, None)
        };
        let mut c = compare(name, count(client_v), server_v, t, 0.0);
        if !client.tokens_from_usage && c.status != Status::Skip {
            c.reason = Some("client token counts are approximate (no usage from the server)".into());
        } else if c.reason.is_none() {
            c.reason = note;
        }
        c
    };
    out.push(token_check(
        "prompt_tokens",
        client.prompt_tokens,
        &server.prompt_tokens_total,
        &server.finished_prompt_tokens,
        tol.prompt_tokens,
    ));
    out.push(token_check(
        "generation_tokens",
        client.output_tokens,
        &server.generation_tokens_total,
        &server.finished_generation_tokens,
        tol.generation_tokens,
    ));
    let ms = |f: &Figure| f.as_ref().map(|s| s * 1e3).map_err(Clone::clone);
    let mut ttft = ttft_check(client, &ms(&server.ttft_mean_s), &ms(&server.e2e_mean_s), tol);
    if client.ttft_client_bound && ttft.status == Status::Warn {
        // The client, not the server, is the likely cause: no verdict either way.
        ttft.status = Status::Skip;
        ttft.reason = Some("the client was the bottleneck (receive lag marked TTFT client-bound): no verdict".into());
    }
    out.push(ttft);
    out.push(latency_check(
        "e2e_latency_mean",
        client.e2e_mean_ms,
        &ms(&server.e2e_mean_s),
        tol.e2e_latency_mean,
        tol.latency_floor_ms,
    ));
    out
}

/// vLLM's TTFT and E2E share one clock inside its frontend: both leave out
/// HTTP parsing, detokenization, the SSE write and the network. That time is
/// the same for a request's first token and its last, so the E2E gap of the
/// same burst (client mean − server mean) measures it, and TTFT is compared
/// net of it. A server TTFT that drifts on its own still shows; a proxy that
/// adds latency shows in the E2E check instead.
fn ttft_check(client: &ClientFigures, server_ttft: &Figure, server_e2e: &Figure, tol: &Tolerances) -> Comparison {
    let outside = match (client.e2e_mean_ms, server_e2e) {
        (Some(c), Ok(s)) if c > *s => Some(c - s),
        _ => None,
    };
    let compared = match (client.ttft_mean, outside) {
        (Some(t), Some(o)) => Some((t - o).max(0.0)),
        (t, _) => t,
    };
    let mut c = latency_check("ttft_mean", compared, server_ttft, tol.ttft_mean, tol.latency_floor_ms);
    c.client = client.ttft_mean;
    if let (Some(o), Some(v)) = (outside, compared)
        && c.status != Status::Skip
    {
        c.client_compared = Some(v);
        let note = format!("compared net of {o:.1} ms per request spent outside the engine (the E2E gap)");
        c.reason = Some(match c.reason.take() {
            Some(r) => format!("{r}; {note}"),
            None => note,
        });
    }
    c
}

/// Latencies: the server measures from inside its frontend, so it should be
/// at most the client's figure; say so when it is the other way round.
pub(crate) fn latency_check(
    check: &str,
    client: Option<f64>,
    server: &Figure,
    tolerance: f64,
    floor: f64,
) -> Comparison {
    let mut c = compare(check, client, server, tolerance, floor);
    if c.status == Status::Warn
        && let (Some(a), Some(b)) = (c.client, c.server)
    {
        c.reason = Some(if b > a {
            "the server reports more than the client measured: it cannot, unless the two count different requests"
                .into()
        } else {
            "the client measured much more than the server: time spent outside the engine (network, HTTP, queueing in a proxy, or the client itself)".into()
        });
    }
    c
}

#[cfg(test)]
mod tests;

/// What the overall verdict rests on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictBasis {
    /// The aggregate sections: /metrics deltas and the log window.
    #[default]
    Aggregate,
    /// The per-request `traces` section (and the log's ERROR events); the
    /// aggregate sections are shown as cross-checks. Other clients cannot touch it.
    Traces,
}

/// The whole validation of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub overall: Status,
    #[serde(default)]
    pub basis: VerdictBasis,
    pub prometheus: Section,
    /// Absent when log validation was not asked for (`--skip-logs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_logs: Option<DockerLogsValidation>,
    /// Absent when no OTLP receiver was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<TracesValidation>,
    pub server_info: ServerInfo,
    pub tolerances: Tolerances,
}

impl Validation {
    pub fn new(
        prometheus: Section,
        docker_logs: Option<DockerLogsValidation>,
        traces: Option<TracesValidation>,
        server_info: ServerInfo,
        tolerances: Tolerances,
    ) -> Validation {
        let per_request = traces.as_ref().filter(|t| t.section.status != Status::Skip);
        let (overall, basis) = match per_request {
            Some(t) => {
                // Counts and latencies come from the spans; of the logs only the
                // ERROR events say something the spans cannot.
                let errors = docker_logs
                    .iter()
                    .flat_map(|d| &d.section.comparisons)
                    .filter(|c| c.check == "server_errors")
                    .map(|c| c.status);
                (summarize(std::iter::once(t.section.status).chain(errors)), VerdictBasis::Traces)
            }
            None => {
                let logs_status = docker_logs.as_ref().map(|d| d.section.status);
                (summarize(std::iter::once(prometheus.status).chain(logs_status)), VerdictBasis::Aggregate)
            }
        };
        Validation { overall, basis, prometheus, docker_logs, traces, server_info, tolerances }
    }

    /// Every verdict made a SKIP with `reason`, the figures kept: part of the burst's client side
    /// is missing (a distributed burst's lost shard), so no server figure can be compared.
    pub fn without_verdicts(self, reason: &str) -> Validation {
        let skip = |s: &mut Section| {
            s.status = Status::Skip;
            s.reason = Some(match s.reason.take() {
                Some(r) => format!("{reason}; {r}"),
                None => reason.to_owned(),
            });
            for c in &mut s.comparisons {
                c.status = Status::Skip;
                c.reason = Some(reason.to_owned());
            }
        };
        let Validation { mut prometheus, mut docker_logs, mut traces, server_info, tolerances, .. } = self;
        skip(&mut prometheus);
        docker_logs.iter_mut().for_each(|d| skip(&mut d.section));
        traces.iter_mut().for_each(|t| skip(&mut t.section));
        Validation::new(prometheus, docker_logs, traces, server_info, tolerances)
    }
}
