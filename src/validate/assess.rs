//! The one path from an observation of the server to verdicts. The live burst
//! builds its [`Observation`] from what it scraped and read; `validate DIR`
//! builds it from the saved artifacts; both call [`assess`], so a saved run
//! validates to exactly the verdicts it had. A new section is one more field
//! of [`Observation`] and one more line here.

use super::{
    ContainerInfo, DockerLogsValidation, PrometheusInputs, Tolerances, TracesInput, Validation, client_figures,
    client_log_figures, docker_logs_validation, evaluate, traces_validation,
};
use crate::logs::LogFindings;
use crate::openai::Endpoint;
use crate::record::RequestRecord;
use crate::stats::ClientStats;

/// What the client measured, as every section needs it.
pub struct ClientSide<'a> {
    pub stats: &'a ClientStats,
    /// Measured and warm-up records.
    pub records: &'a [RequestRecord],
    pub endpoint: Endpoint,
    /// The measured phase's wall-clock window.
    pub load: (jiff::Timestamp, jiff::Timestamp),
}

/// The server's container logs for the burst, or why there are none.
pub enum LogsInput<'a> {
    Unavailable { reason: String, container: Option<ContainerInfo> },
    Read { container: ContainerInfo, findings: &'a LogFindings, restarted: Option<String> },
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
    let figures = client_figures(client.stats, client.records);
    let (section, info) = evaluate(prometheus, &figures, tolerances);
    let docker_logs = obs.logs.as_ref().map(|logs| match logs {
        LogsInput::Unavailable { reason, container } => DockerLogsValidation::skipped(reason, container.clone()),
        LogsInput::Read { container, findings, restarted } => {
            let figures = client_log_figures(client.endpoint, client.stats, client.records, client.load);
            docker_logs_validation(&figures, findings, container.clone(), restarted.clone(), tolerances)
        }
    });
    let traces = obs.traces.as_ref().map(|t| traces_validation(t, client.records, tolerances));
    Some(Validation::new(section, docker_logs, traces, info, tolerances.clone()))
}
