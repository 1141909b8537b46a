//! The `run` command: one burst from flags to a result (JSON, artifacts, summary).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::burst::{
    self, DockerWatch, LoadSpec, LogObservation, Outcome, RecordObserver, RequestRecord, RequestTarget,
    ServerObservation, ServerWatch, Timeouts,
};
use crate::cli::RunArgs;
use crate::error::RunError;
use crate::openai::{Endpoint, RequestOptions};
use crate::promtext::LabelFilter;
use crate::server::evaluate::{PrometheusInputs, evaluate};
use crate::server::{GaugePeaks, MetricsClient};
use crate::stats::{self, ClientStats, Slo};
use crate::validate::{
    ClientFigures, ClientLogFigures, ContainerInfo, DockerLogsValidation, Tolerances, Validation,
    docker_logs_validation,
};
use crate::workload::{ArrivalPlan, PromptSource, StopCondition};

/// Bumped whenever a key of the result JSON changes meaning.
pub const RESULT_SCHEMA_VERSION: u32 = 1;
const DEFAULT_REQUESTS: u64 = 100;
const DEFAULT_CONCURRENCY: u32 = 8;
const DEFAULT_FIRST_TOKEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What was asked for, recorded beside what happened.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunPlan {
    pub base_url: String,
    pub endpoint: Endpoint,
    pub stream: bool,
    pub arrival: ArrivalPlan,
    pub stop: StopCondition,
    pub warmup: u64,
    pub max_tokens: u32,
    pub ignore_eos: bool,
    pub prompts: String,
    pub prompt_tokens_exact: bool,
    pub timeouts: Timeouts,
    pub goodput_slo: Slo,
    /// None with --skip-validation.
    pub metrics_url: Option<String>,
}

/// How the server's /metrics were observed (the raw snapshots are artifacts).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServerSummary {
    pub metrics_url: String,
    pub idle_window_s: f64,
    /// Before snapshot -> after snapshot, seconds.
    pub counted_window_s: f64,
    pub settle_polls: u32,
    pub scrape_before_ms: Option<f64>,
    pub scrape_after_ms: Option<f64>,
    /// Lines of the after-snapshot the parser could not read.
    pub line_errors_after: Option<usize>,
    pub peaks: GaugePeaks,
}

/// The result of one run. Client statistics are flattened into the top level
/// with `vllm bench serve`'s key names so its tooling reads this file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool_version: String,
    pub run_id: String,
    pub date: String,
    pub model_id: String,
    pub num_prompts: u64,
    /// Requests per second asked for; "inf" for a closed loop (as `vllm bench serve`).
    pub request_rate: serde_json::Value,
    pub max_concurrency: Option<u32>,
    pub plan: RunPlan,
    pub started_at: jiff::Timestamp,
    pub ended_at: jiff::Timestamp,
    pub cancelled: bool,
    #[serde(flatten)]
    pub client: ClientStats,
    /// Client vs server verdicts; absent with --skip-validation.
    pub validation: Option<Validation>,
    pub server: Option<ServerSummary>,
    /// The container-log window that was read.
    pub logs: Option<LogsSummary>,
    /// Wall time of each phase of the burst, seconds.
    pub phases: std::collections::BTreeMap<&'static str, f64>,
    /// Problems worth a user's attention (bad dataset lines, approximate token counts, ...).
    pub notes: Vec<String>,
    #[serde(skip)]
    pub records: Vec<RequestRecord>,
    /// The clock origin of the records' times (for in-process comparisons).
    #[serde(skip)]
    pub start_instant: Option<std::time::Instant>,
    /// The raw /metrics snapshots, for artifacts: (file name, text).
    #[serde(skip)]
    pub snapshots: Vec<(&'static str, String)>,
}

/// Which log window was read (for offline re-validation).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LogsSummary {
    pub container: String,
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
    /// Lines in the window (None when reading failed).
    pub lines: Option<u64>,
    /// Lines saved in the artifact (bounded).
    pub kept_lines: u64,
}

/// The client's figures for the log checks.
pub fn client_log_figures(
    endpoint: Endpoint,
    stats: &ClientStats,
    records: &[RequestRecord],
    load: (jiff::Timestamp, jiff::Timestamp),
) -> ClientLogFigures {
    ClientLogFigures {
        endpoint: format!("POST {}", endpoint.path()),
        // Warm-up requests end before the log window opens.
        http_200: records.iter().filter(|r| !r.warmup && r.http_status == Some(200)).count() as u64,
        output_tokens_per_s: stats.output_throughput,
        load_start: Some(load.0),
        load_end: Some(load.1),
    }
}

/// The Docker-log section of a live burst.
pub fn logs_validation(obs: &LogObservation, client: &ClientLogFigures, tol: &Tolerances) -> DockerLogsValidation {
    let c = &obs.container;
    let info = ContainerInfo { id: c.id.clone(), name: c.name.clone(), image: c.image.clone(), rule: c.rule.clone() };
    match &obs.findings {
        Err(e) => DockerLogsValidation::skipped(e.clone(), Some(info)),
        Ok((findings, _)) => docker_logs_validation(client, findings, info, obs.restarted.clone(), tol),
    }
}

/// The keys of a saved `result.json` that [`RunResult::from_saved`] reads back; the client
/// statistics are recomputed from the records instead (`stats::compute` is pure, so they come
/// out the same).
#[derive(serde::Deserialize)]
struct SavedResult {
    schema_version: u32,
    tool_version: String,
    run_id: String,
    date: String,
    model_id: String,
    num_prompts: u64,
    request_rate: serde_json::Value,
    max_concurrency: Option<u32>,
    plan: RunPlan,
    started_at: jiff::Timestamp,
    ended_at: jiff::Timestamp,
    cancelled: bool,
    duration: f64,
    #[serde(default)]
    receive_lag: burst::ReceiveLag,
    validation: Option<Validation>,
    server: Option<ServerSummary>,
    logs: Option<LogsSummary>,
    #[serde(default)]
    phases: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    notes: Vec<String>,
}

impl RunResult {
    /// A result as [`save_artifacts`] wrote it (`result.json`, `requests.jsonl`) read back, for
    /// the daemon's history after a restart. Unknown phase names are dropped.
    pub fn from_saved(result_json: &[u8], requests_jsonl: &[u8]) -> Result<RunResult, String> {
        let saved: SavedResult = serde_json::from_slice(result_json).map_err(|e| format!("result.json: {e}"))?;
        if saved.schema_version != RESULT_SCHEMA_VERSION {
            return Err(format!(
                "result.json has schema version {}, this build reads {RESULT_SCHEMA_VERSION}",
                saved.schema_version
            ));
        }
        let mut records = Vec::new();
        for (i, line) in requests_jsonl.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let r: RequestRecord =
                serde_json::from_slice(line).map_err(|e| format!("requests.jsonl line {}: {e}", i + 1))?;
            records.push(r);
        }
        let client = stats::compute(&records, saved.duration, &saved.receive_lag, &saved.plan.goodput_slo);
        let phases = saved
            .phases
            .into_iter()
            .filter_map(|(k, v)| burst::PHASES.iter().find(|p| **p == k).map(|p| (*p, v)))
            .collect();
        Ok(RunResult {
            schema_version: saved.schema_version,
            tool_version: saved.tool_version,
            run_id: saved.run_id,
            date: saved.date,
            model_id: saved.model_id,
            num_prompts: saved.num_prompts,
            request_rate: saved.request_rate,
            max_concurrency: saved.max_concurrency,
            plan: saved.plan,
            started_at: saved.started_at,
            ended_at: saved.ended_at,
            cancelled: saved.cancelled,
            client,
            validation: saved.validation,
            server: saved.server,
            logs: saved.logs,
            phases,
            notes: saved.notes,
            records,
            start_instant: None,
            snapshots: Vec::new(),
        })
    }

    /// True when no measured request ever reached the server: the run could not run.
    pub fn target_unreachable(&self) -> bool {
        self.client.num_requests > 0
            && self
                .client
                .errors
                .iter()
                .filter(|(k, _)| matches!(**k, "connect_error" | "connect_timeout"))
                .map(|(_, v)| v)
                .sum::<u64>()
                == self.client.num_requests
    }
}

/// The resolved inputs of a burst, checked before anything is sent.
pub struct Prepared {
    pub spec: LoadSpec,
    pub prompts: Arc<PromptSource>,
    pub plan: RunPlan,
    pub model: String,
    pub slo: Slo,
    pub watch: Option<ServerWatch>,
    /// Where to look for the server's container; None with --skip-logs / --skip-validation.
    pub logs: Option<LogsSpec>,
    pub tolerances: Tolerances,
}

/// How to find the server's container.
#[derive(Debug, Clone)]
pub struct LogsSpec {
    pub explicit: Option<String>,
    pub target_port: u16,
}

/// Connect to the Docker Engine and find the container, or say why not.
pub async fn resolve_container(spec: &LogsSpec) -> Result<DockerWatch, String> {
    let client = crate::docker::DockerClient::connect().await.map_err(|e| e.to_string())?;
    let container =
        client.find_container(spec.explicit.as_deref(), spec.target_port).await.map_err(|e| e.to_string())?;
    Ok(DockerWatch { client, container, keep_lines: burst::KEEP_LOG_LINES })
}

/// Artifact file names of the container logs.
pub const LOGS_WINDOW: &str = "container_logs.txt";
pub const LOGS_TAIL_BEFORE: &str = "container_tail_before.txt";

/// Artifact file names of the raw snapshots.
pub const SNAPSHOT_IDLE_START: &str = "metrics_idle_start.txt";
pub const SNAPSHOT_BEFORE: &str = "metrics_before.txt";
pub const SNAPSHOT_AFTER: &str = "metrics_after.txt";

/// What the client saw, in the units the server checks compare.
pub fn client_figures(stats: &ClientStats, records: &[RequestRecord]) -> ClientFigures {
    // Requests the server may have started but never finished (vLLM counts
    // their tokens, not them): everything that failed after the connection.
    let aborted = records
        .iter()
        .filter(|r| !r.warmup)
        .filter(|r| {
            matches!(r.outcome, Outcome::Timeout | Outcome::FirstTokenTimeout | Outcome::StreamCut | Outcome::Cancelled)
        })
        .count() as u64;
    ClientFigures {
        completed: stats.completed,
        aborted,
        prompt_tokens: stats.total_input_tokens,
        output_tokens: stats.total_output_tokens,
        tokens_from_usage: stats.tokens_from_usage,
        ttft_mean_ms: stats.ttft_ms.mean,
        e2e_mean_ms: stats.e2el_ms.mean,
        ttft_client_bound: stats.client_bound.ttft,
    }
}

/// Strip a trailing `/v1` so both `http://h:8000` and `http://h:8000/v1` work.
pub fn normalize_base_url(url: &url::Url) -> String {
    let s = url.as_str().trim_end_matches('/');
    s.strip_suffix("/v1").unwrap_or(s).to_owned()
}

pub fn read_api_key(key: Option<&String>, file: Option<&Path>) -> Result<Option<String>, RunError> {
    if let Some(k) = key {
        return Ok(Some(k.trim().to_owned()));
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::BadInput(format!("cannot read the API key file {}: {e}", path.display())))?;
    let key = text.lines().next().unwrap_or("").trim().to_owned();
    if key.is_empty() {
        return Err(RunError::BadInput(format!("the API key file {} is empty", path.display())));
    }
    Ok(Some(key))
}

pub fn http_client(connect_timeout: std::time::Duration, pool: usize) -> Result<reqwest::Client, RunError> {
    reqwest::Client::builder()
        // A benchmark measures the server, not a proxy picked up from the environment.
        .no_proxy()
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| RunError::BadInput(format!("cannot build the HTTP client: {}", crate::error::error_chain(&e))))
}

/// Check every flag and build the burst. Nothing is sent.
pub fn prepare(args: &RunArgs, base_url: &url::Url, model: &str, run_id: &str) -> Result<Prepared, RunError> {
    let base = normalize_base_url(base_url);
    let url = reqwest::Url::parse(&format!("{base}{}", args.endpoint.path()))
        .map_err(|e| RunError::BadInput(format!("bad target URL {base}: {e}")))?;
    let api_key = read_api_key(args.api_key.as_ref(), args.api_key_file.as_deref())?;
    let prompts = PromptSource::from_args(&args.prompts)?;
    let arrival = match args.rate {
        Some(rate) => ArrivalPlan::Rate {
            rate,
            poisson: args.poisson,
            seed: args.prompts.seed,
            max_concurrency: args.concurrency,
        },
        None => ArrivalPlan::Concurrency { concurrency: args.concurrency.unwrap_or(DEFAULT_CONCURRENCY) },
    };
    arrival.check().map_err(RunError::BadInput)?;
    let stop = match (args.duration, args.requests) {
        (Some(d), _) => StopCondition::Duration(d),
        (None, Some(0)) => return Err(RunError::BadInput("--requests must be at least 1".into())),
        (None, Some(n)) => StopCondition::Requests(n),
        (None, None) => StopCondition::Requests(DEFAULT_REQUESTS),
    };
    if args.max_tokens == 0 {
        return Err(RunError::BadInput("--max-tokens must be at least 1".into()));
    }
    let first_token_timeout = args.first_token_timeout.unwrap_or(DEFAULT_FIRST_TOKEN_TIMEOUT.min(args.timeout));
    if first_token_timeout > args.timeout {
        return Err(RunError::BadInput(format!(
            "--first-token-timeout ({}) is longer than --timeout ({})",
            humantime::format_duration(first_token_timeout),
            humantime::format_duration(args.timeout)
        )));
    }
    let slo = Slo::parse(&args.goodput).map_err(RunError::BadInput)?;
    let tolerances = args.tolerance.map_or_else(Tolerances::default, Tolerances::uniform);
    tolerances.check().map_err(RunError::BadInput)?;
    let metrics_url = match (&args.metrics_url, args.skip_validation) {
        (_, true) => None,
        (Some(u), false) => Some(u.to_string()),
        (None, false) => Some(format!("{base}/metrics")),
    };
    let watch = match &metrics_url {
        None => None,
        Some(u) => Some(ServerWatch {
            metrics: MetricsClient::new(u.clone(), args.connect_timeout.max(std::time::Duration::from_secs(5)))
                .map_err(RunError::BadInput)?,
            filter: LabelFilter::new().with("model_name", model),
            idle_window: args.idle_window,
            settle_max: args.settle_timeout,
            settle_poll: std::time::Duration::from_millis(500),
            sample_every: std::time::Duration::from_millis(250),
        }),
    };
    let timeouts = Timeouts { connect: args.connect_timeout, first_token: first_token_timeout, request: args.timeout };
    let pool = arrival.max_in_flight().unwrap_or(256) as usize;
    let client = http_client(args.connect_timeout, pool)?;
    let stream = !args.no_stream;
    let request = RequestOptions {
        model: model.to_owned(),
        stream,
        max_tokens: Some(args.max_tokens),
        ignore_eos: args.ignore_eos,
        temperature: args.temperature,
        extra_body: args.extra_body.clone(),
    };
    let plan = RunPlan {
        base_url: base,
        endpoint: args.endpoint,
        stream,
        arrival: arrival.clone(),
        stop,
        warmup: args.warmup,
        max_tokens: args.max_tokens,
        ignore_eos: args.ignore_eos,
        prompts: prompts.describe(),
        prompt_tokens_exact: prompts.is_exact(),
        timeouts,
        goodput_slo: slo,
        metrics_url,
    };
    let target = RequestTarget { client, url, api_key, stream, timeouts, request_id_prefix: format!("{run_id}-") };
    let spec = LoadSpec {
        target: Arc::new(target),
        endpoint: args.endpoint,
        request,
        plan: arrival,
        stop,
        warmup: args.warmup,
    };
    let logs = (!args.skip_validation && !args.skip_logs).then(|| LogsSpec {
        explicit: args.container.clone(),
        target_port: base_url.port_or_known_default().unwrap_or(80),
    });
    Ok(Prepared { spec, prompts: Arc::new(prompts), plan, model: model.to_owned(), slo, watch, logs, tolerances })
}

/// A short, sortable, unique-enough id: UTC time plus random bits.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let ts = now.strftime("%Y%m%dT%H%M%SZ");
    format!("{ts}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Run the load of a prepared burst and assemble its result.
pub async fn run_prepared(
    p: Prepared,
    run_id: String,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
) -> RunResult {
    let Prepared { spec, prompts, plan, model, slo, watch, logs: logs_spec, tolerances } = p;
    let mut notes = Vec::new();
    let skipped = prompts.skipped_lines();
    if !skipped.is_empty() {
        notes.push(format!("{} dataset line(s) skipped; first: {:?}", skipped.len(), skipped[0]));
    }
    let endpoint = plan.endpoint;
    let (docker, docker_error) = match &logs_spec {
        None => (None, None),
        Some(s) => match resolve_container(s).await {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e)),
        },
    };
    let burst = burst::run(spec, prompts, watch, docker, cancel, observer).await;
    let out = burst.load;
    let client = stats::compute(&out.records, out.duration_s, &out.receive_lag, &slo);
    let log_figures = client_log_figures(endpoint, &client, &out.records, (out.started_unix, out.ended_unix));
    let docker_logs = match (&logs_spec, docker_error, &burst.logs) {
        (None, _, _) => None,
        (Some(_), Some(e), _) => Some(DockerLogsValidation::skipped(format!("container logs: {e}"), None)),
        (Some(_), None, Some(obs)) => Some(logs_validation(obs, &log_figures, &tolerances)),
        (Some(_), None, None) => None,
    };
    let logs = burst.logs.as_ref().map(|o| LogsSummary {
        container: o.container.name.clone(),
        from: o.from,
        to: o.to,
        lines: o.findings.as_ref().map(|(_, w)| w.delivered).ok(),
        kept_lines: o.raw.len() as u64,
    });
    let (validation, server, mut snapshots) = match &burst.server {
        None => (None, None, Vec::new()),
        Some(obs) => {
            let figures = client_figures(&client, &out.records);
            let (section, info, summary, snaps) = validate_observation(obs, &model, &figures, &tolerances);
            (Some(Validation::new(section, docker_logs, info, tolerances.clone())), Some(summary), snaps)
        }
    };
    if let Some(o) = &burst.logs {
        let mut window = o.raw.join("\n");
        window.push('\n');
        snapshots.push((LOGS_WINDOW, window));
        if let Ok(tail) = &o.tail_before {
            let text: String = tail.iter().map(|l| burst::raw_line(l) + "\n").collect();
            snapshots.push((LOGS_TAIL_BEFORE, text));
        }
    }
    if !client.tokens_from_usage && client.completed > 0 {
        notes.push("the server sent no `usage`: token counts are chunk counts (approximate)".into());
    }
    notes.extend(client.client_bound.reasons.iter().cloned());
    let (request_rate, max_concurrency) = match &plan.arrival {
        ArrivalPlan::Concurrency { concurrency } => (serde_json::Value::from("inf"), Some(*concurrency)),
        ArrivalPlan::Rate { rate, max_concurrency, .. } => (serde_json::Value::from(*rate), *max_concurrency),
    };
    RunResult {
        schema_version: RESULT_SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        run_id,
        date: out.started_unix.strftime("%Y%m%d-%H%M%S").to_string(),
        model_id: model,
        num_prompts: client.num_requests,
        request_rate,
        max_concurrency,
        plan,
        started_at: out.started_unix,
        ended_at: out.ended_unix,
        cancelled: out.cancelled,
        client,
        validation,
        server,
        logs,
        phases: burst.phases,
        notes,
        records: out.records,
        start_instant: Some(out.started_at.into_std()),
        snapshots,
    }
}

/// The Prometheus validation of a live burst.
fn validate_observation(
    obs: &ServerObservation,
    model: &str,
    client: &ClientFigures,
    tolerances: &Tolerances,
) -> (crate::validate::Section, crate::validate::ServerInfo, ServerSummary, Vec<(&'static str, String)>) {
    fn err(
        r: &Result<crate::server::Scrape, crate::server::ScrapeError>,
    ) -> Result<&crate::promtext::Exposition, String> {
        match r {
            Ok(s) => Ok(&s.exposition),
            Err(e) => Err(e.to_string()),
        }
    }
    let idle_start = obs.idle_start.as_ref().and_then(|r| r.as_ref().ok());
    let inputs = PrometheusInputs {
        before: err(&obs.before),
        after: err(&obs.after),
        idle_start: idle_start.map(|s| &s.exposition),
        idle_window_s: obs.idle_window_s,
        counted_window_s: obs.counted_window_s,
        model,
        peaks: obs.peaks,
    };
    let (section, info) = evaluate(&inputs, client, tolerances);
    let summary = ServerSummary {
        metrics_url: obs.metrics_url.clone(),
        idle_window_s: obs.idle_window_s,
        counted_window_s: obs.counted_window_s,
        settle_polls: obs.settle_polls,
        scrape_before_ms: obs.before.as_ref().ok().map(|s| s.elapsed_s * 1e3),
        scrape_after_ms: obs.after.as_ref().ok().map(|s| s.elapsed_s * 1e3),
        line_errors_after: obs.after.as_ref().ok().map(|s| s.exposition.line_errors.len()),
        peaks: obs.peaks,
    };
    let mut snaps = Vec::new();
    if let Some(s) = idle_start {
        snaps.push((SNAPSHOT_IDLE_START, s.text.clone()));
    }
    for (name, r) in [(SNAPSHOT_BEFORE, &obs.before), (SNAPSHOT_AFTER, &obs.after)] {
        if let Ok(s) = r {
            snaps.push((name, s.text.clone()));
        }
    }
    (section, info, summary, snaps)
}

/// Write `bytes` to `path` atomically (temp file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let err = |source| RunError::Write { path: path.to_owned(), source };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// `result.json` and `requests.jsonl` into `dir`.
pub fn save_artifacts(dir: &Path, result: &RunResult) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::Write { path: dir.to_owned(), source })?;
    write_atomic(&dir.join("result.json"), &result_json(result))?;
    let mut lines = Vec::new();
    for r in &result.records {
        // Serializing plain data cannot fail; an empty line would show if it did.
        lines.extend(serde_json::to_vec(r).unwrap_or_default());
        lines.push(b'\n');
    }
    write_atomic(&dir.join("requests.jsonl"), &lines)?;
    for (name, text) in &result.snapshots {
        write_atomic(&dir.join(name), text.as_bytes())?;
    }
    Ok(())
}

pub fn result_json(result: &RunResult) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(result).unwrap_or_default();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_normalization() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(normalize_base_url(&u("http://h:8000")), "http://h:8000");
        assert_eq!(normalize_base_url(&u("http://h:8000/v1/")), "http://h:8000");
        assert_eq!(normalize_base_url(&u("http://h:8000/proxy/v1")), "http://h:8000/proxy");
    }

    #[test]
    fn api_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "sk-secret\n").unwrap();
        assert_eq!(read_api_key(None, Some(&p)).unwrap().as_deref(), Some("sk-secret"));
        std::fs::write(&p, "\n").unwrap();
        assert!(read_api_key(None, Some(&p)).unwrap_err().to_string().contains("empty"));
        let missing = dir.path().join("nope");
        assert!(read_api_key(None, Some(&missing)).unwrap_err().to_string().contains("cannot read"));
    }
}
