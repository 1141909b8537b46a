//! The one path from an observation of the server to verdicts. The live burst
//! builds its [`Observation`] from what it scraped and read; `validate DIR`
//! builds it from the saved artifacts; both call [`assess`], so a saved run
//! validates to exactly the verdicts it had. A new section is one more field
//! of [`Observation`] and one more line here.

use super::{
    ContainerInfo, DockerLogsValidation, PrometheusInputs, Section, Status, Tolerances, TracesInput, TracesValidation,
    Validation, client_figures, client_log_figures, docker_logs_validation, evaluate, traces_validation,
};
use crate::logs::LogFindings;
use crate::openai::Endpoint;
use crate::spool::EachRecord;
use crate::stats::ClientStats;

/// What the client measured, as every section needs it.
pub struct ClientSide<'a> {
    pub stats: &'a ClientStats,
    /// Measured and warm-up records.
    pub records: &'a dyn EachRecord,
    pub endpoint: Endpoint,
    /// The measured phase's wall-clock window.
    pub load: (jiff::Timestamp, jiff::Timestamp),
}

/// The server's container logs for the burst, or why there are none.
pub enum LogsInput<'a> {
    /// `containers`: those that were found (none when finding them failed).
    Unavailable { reason: String, containers: Vec<ContainerInfo> },
    /// One container's findings, or a fleet's together.
    Read { containers: Vec<ContainerInfo>, findings: &'a LogFindings, restarted: Option<String> },
}

/// Everything observed of the server around one burst.
pub struct Observation<'a> {
    /// None when validation was not asked for (`--skip-validation`): no verdicts at all.
    pub prometheus: Option<PrometheusInputs<'a>>,
    /// None when log validation was not asked for (`--skip-logs`).
    pub logs: Option<LogsInput<'a>>,
    /// None when no OTLP receiver was given.
    pub traces: Option<TracesInput<'a>>,
}

/// The verdicts of one burst; None without a Prometheus observation.
pub fn assess(obs: &Observation<'_>, client: &ClientSide<'_>, tolerances: &Tolerances) -> Option<Validation> {
    let prometheus = obs.prometheus.as_ref()?;
    let figures = client_figures(client.stats);
    let (section, info) = evaluate(prometheus, &figures, tolerances);
    let docker_logs = obs.logs.as_ref().map(|logs| match logs {
        LogsInput::Unavailable { reason, containers } => DockerLogsValidation::skipped(reason, containers.clone()),
        LogsInput::Read { containers, findings, restarted } => {
            let figures = client_log_figures(client.endpoint, client.stats, client.records, client.load);
            docker_logs_validation(&figures, findings, containers.clone(), restarted.clone(), tolerances)
        }
    });
    let traces = obs.traces.as_ref().map(|t| traces_validation(t, client.records, tolerances));
    let (mut section, mut docker_logs) = (section, docker_logs);
    let foreign_lines = docker_logs.as_ref().and_then(|d| d.received.as_ref()).map_or(0, |r| r.other_clients);
    if let Some(why) = other_clients_seen(info.background_request_rate, traces.as_ref(), foreign_lines) {
        let exact = traces.as_ref().is_some_and(|t| t.section.status != Status::Skip);
        quiet_estimates(&mut section, &why, exact, &PROMETHEUS_ESTIMATES);
        if let Some(d) = docker_logs.as_mut() {
            quiet_estimates(&mut d.section, &why, exact, &LOG_ESTIMATES);
        }
    }
    Some(Validation::new(section, docker_logs, traces, info, tolerances.clone()))
}

/// The Prometheus checks whose server figure mixes in other clients'
/// requests: counts (with the background estimated from the idle window) and
/// the histogram means.
pub const PROMETHEUS_ESTIMATES: [&str; 5] =
    ["request_count", "prompt_tokens", "generation_tokens", "ttft_mean", "e2e_latency_mean"];
/// The log checks that count every client: access lines carry no request id,
/// and the stats lines are server-wide. (The log's `request_count` is by id.)
pub const LOG_ESTIMATES: [&str; 2] = ["http_200_count", "generation_throughput"];

/// Why the server's aggregate figures include other clients, when they do.
fn other_clients_seen(
    background_rate: Option<f64>,
    traces: Option<&TracesValidation>,
    log_lines: u64,
) -> Option<String> {
    let spans = traces.map_or(0, |t| t.other_clients_spans);
    let rate = background_rate.unwrap_or(0.0);
    if spans > 0 {
        Some(format!("{spans} llm_request span(s) of other clients arrived during the burst"))
    } else if log_lines > 0 {
        Some(format!("the server log received {log_lines} request(s) of other clients during the burst"))
    } else if rate > 0.0 {
        Some(format!("other clients sent {rate:.2} req/s in the idle window"))
    } else {
        None
    }
}

/// Other clients' traffic moves within seconds, so an aggregate estimate's
/// own noise is not drift: such a check does not WARN, it SKIPs with the
/// reason (a PASS stays, a cross-check that agrees). Only the per-request
/// section, which other clients cannot touch, can raise that WARN.
fn quiet_estimates(section: &mut Section, why: &str, exact_elsewhere: bool, estimates: &[&str]) {
    for c in section.comparisons.iter_mut().filter(|c| c.status == Status::Warn) {
        if !estimates.contains(&c.check.as_str()) {
            continue;
        }
        c.status = Status::Skip;
        let then = if exact_elsewhere {
            "the traces section counts ours exactly"
        } else {
            "run with --otlp-receiver (or vLLM's --enable-log-requests) for exact per-request checks"
        };
        let was = c.diff_pct.map(|d| format!(" (was {d:+.1}%)")).unwrap_or_default();
        c.reason = Some(format!("no verdict{was}: {why}, and the server's figure includes theirs; {then}"));
    }
    section.status = super::summarize(section.comparisons.iter().map(|c| c.status));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Comparison, compare};

    fn drifting() -> Section {
        Section::from_comparisons(
            vec![
                compare("request_count", Some(60.0), &Ok(71.7), 0.05, 0.0),
                compare("prompt_tokens", Some(600.0), &Ok(600.0), 0.05, 0.0),
            ],
            None,
        )
    }

    #[test]
    fn other_clients_turn_an_estimates_warn_into_a_skip_with_the_reason() {
        let why = other_clients_seen(Some(1.5), None, 0).unwrap();
        let mut s = drifting();
        quiet_estimates(&mut s, &why, false, &PROMETHEUS_ESTIMATES);
        let c = &s.comparisons[0];
        assert_eq!(c.status, Status::Skip);
        let r = c.reason.as_deref().unwrap();
        assert!(r.contains("(was -16.3%)") && r.contains("1.50 req/s") && r.contains("--otlp-receiver"), "{r}");
        assert_eq!(s.comparisons[1].status, Status::Pass, "an agreeing cross-check stays");
        assert_eq!(s.status, Status::Pass);
    }

    #[test]
    fn a_quiet_server_keeps_every_warn() {
        assert_eq!(other_clients_seen(Some(0.0), None, 0), None);
        assert_eq!(other_clients_seen(None, Some(&TracesValidation::skipped("x")), 0), None);
        let mut t = TracesValidation::skipped("x");
        t.other_clients_spans = 3;
        assert!(other_clients_seen(Some(0.0), Some(&t), 0).unwrap().contains("3 llm_request span(s)"));
        assert!(other_clients_seen(None, None, 4).unwrap().contains("4 request(s) of other clients"));
    }

    #[test]
    fn server_errors_are_never_quieted() {
        let mut errors = Comparison { status: Status::Warn, ..compare("server_errors", None, &Ok(2.0), 0.0, 0.0) };
        errors.status = Status::Warn;
        let mut s = Section::from_comparisons(vec![errors], None);
        quiet_estimates(&mut s, "busy", true, &LOG_ESTIMATES);
        assert_eq!(s.status, Status::Warn);
    }
}
