//! A run on disk: the result schema ([`RunResult`] and what it records), the
//! one writer of a run directory ([`save`]) and the one typed reader of it
//! ([`read_dir`], [`RunResult::from_saved`]). `run --save-artifacts`, the
//! daemon's history, `validate DIR` and the exporter's restart replay all go
//! through here, so a saved run reads back as the run that was saved.
//!
//! A run directory holds `result.json`, `requests.jsonl` (one record per
//! request) and the raw observations the verdicts came from: the /metrics
//! snapshots, the container-log window and the burst's `llm_request` spans.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::RunError;
use crate::openai::Endpoint;
use crate::record::{FoldedFailures, Outcome, ReceiveLag, RequestRecord};
use crate::server::GaugePeaks;
use crate::spool::Records;
use crate::stats::{self, ClientStats, Slo};
use crate::validate::Validation;
use crate::workload::{ArrivalPlan, StopCondition, Timeouts};

/// Bumped whenever a key of the result JSON changes meaning.
pub const RESULT_SCHEMA_VERSION: u32 = 1;

/// Every phase name a burst records in [`RunResult::phases`], in the order they happen.
pub const PHASES: [&str; 7] = ["idle_window", "metrics_before", "logs_before", "load", "settle", "logs", "spans"];

/// Artifact file names.
pub const RESULT_JSON: &str = "result.json";
pub const REQUESTS_JSONL: &str = "requests.jsonl";
pub const SNAPSHOT_IDLE_START: &str = "metrics_idle_start.txt";
pub const SNAPSHOT_BEFORE: &str = "metrics_before.txt";
pub const SNAPSHOT_AFTER: &str = "metrics_after.txt";
pub const LOGS_WINDOW: &str = "container_logs.txt";
pub const LOGS_TAIL_BEFORE: &str = "container_tail_before.txt";
/// The burst's `llm_request` spans ([`SpansObservation`]).
pub const SPANS_JSON: &str = "spans.json";
/// The raw observations a run directory may hold, read back by [`read_dir`].
const OBSERVATION_FILES: [&str; 6] =
    [SNAPSHOT_IDLE_START, SNAPSHOT_BEFORE, SNAPSHOT_AFTER, LOGS_WINDOW, LOGS_TAIL_BEFORE, SPANS_JSON];

/// What the OTLP receiver kept for one burst, as `spans.json` saves it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpansObservation {
    /// Our request ids: this plus the request index.
    pub request_id_prefix: String,
    pub waited_s: f64,
    pub wait_max_s: f64,
    pub collected: crate::traces::Collected,
}

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
    /// The part of the plan this run was (`run --shard I/N`); absent for a whole burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::workload::Shard>,
    /// The wall-clock start the shards of one burst shared (`run --start-at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<jiff::Timestamp>,
}

/// How the server's /metrics were observed (the raw snapshots are artifacts).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServerSummary {
    pub metrics_url: String,
    /// A fleet's replicas (each snapshot holds their samples apart by the
    /// `llm_loadtest_replica` label); empty for a single server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
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

/// Which log window was read (for offline re-validation).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LogsSummary {
    /// The container's name (a fleet's, joined with ", ").
    pub container: String,
    /// A fleet's containers, in the order of `container_logs.txt`'s parts (empty for one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
    /// Lines in the window (None when reading failed).
    pub lines: Option<u64>,
    /// Lines saved in the artifact (bounded).
    pub kept_lines: u64,
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
    /// Why the burst ended early because the target stopped accepting connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_lost: Option<String>,
    /// Why the burst ended early because its client reached its memory budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_budget_exceeded: Option<String>,
    /// Runs of connection failures folded beyond their first records: counted in `failed` and
    /// `errors`, absent from `requests.jsonl` (`record::FailureFolder`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded_failures: Vec<FoldedFailures>,
    #[serde(flatten)]
    pub client: ClientStats,
    /// A distributed burst's shards: which worker ran each, what it delivered, which were lost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<crate::coordinator::remote::ShardReport>,
    /// Client vs server verdicts; absent with --skip-validation.
    pub validation: Option<Validation>,
    pub server: Option<ServerSummary>,
    /// The container-log window that was read.
    pub logs: Option<LogsSummary>,
    /// Wall time of each phase of the burst, seconds.
    pub phases: BTreeMap<&'static str, f64>,
    /// Problems worth a user's attention (bad dataset lines, approximate token counts, ...).
    pub notes: Vec<String>,
    /// Measured and warm-up records, in the order they finished (a spool file, not memory).
    #[serde(skip)]
    pub records: Records,
    /// The clock origin of the records' times (for in-process comparisons).
    #[serde(skip)]
    pub start_instant: Option<std::time::Instant>,
    /// The raw observations, for artifacts: (file name, text).
    #[serde(skip)]
    pub snapshots: Vec<(&'static str, String)>,
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
    #[serde(default)]
    target_lost: Option<String>,
    #[serde(default)]
    memory_budget_exceeded: Option<String>,
    #[serde(default)]
    folded_failures: Vec<FoldedFailures>,
    #[serde(default)]
    shards: Vec<crate::coordinator::remote::ShardReport>,
    duration: f64,
    #[serde(default)]
    receive_lag: ReceiveLag,
    validation: Option<Validation>,
    server: Option<ServerSummary>,
    logs: Option<LogsSummary>,
    #[serde(default)]
    phases: BTreeMap<String, f64>,
    #[serde(default)]
    notes: Vec<String>,
}

impl RunResult {
    /// What makes two runs the same load: model, endpoint, stream, arrival plan, stop,
    /// max_tokens, ignore_eos, prompts and concurrency (not URLs, timeouts or the shard). The
    /// performance baseline compares only runs of one shape; `merge` joins only shards of one.
    pub fn workload_shape(&self) -> serde_json::Value {
        let p = &self.plan;
        serde_json::json!([
            self.model_id,
            p.endpoint,
            p.stream,
            p.arrival,
            p.stop,
            p.max_tokens,
            p.ignore_eos,
            p.prompts,
            self.max_concurrency,
        ])
    }

    /// A result as [`save`] wrote it (`result.json`, `requests.jsonl`) read back, records in
    /// memory. Unknown phase names are dropped; the raw observations are not read (see
    /// [`read_dir`]).
    pub fn from_saved(result_json: &[u8], requests_jsonl: &[u8]) -> Result<RunResult, String> {
        let saved = read_saved(result_json)?;
        let records = read_records(requests_jsonl)?;
        let stats = stats::Accumulator::of(&records);
        Ok(RunResult::assemble(saved, Records::held(records), stats))
    }

    /// [`RunResult::from_saved`] with the records left in the file `requests_jsonl`: read once
    /// here for the statistics (a bad line is an error naming it), then again when asked.
    pub fn from_saved_file(result_json: &[u8], requests_jsonl: &Path) -> Result<RunResult, String> {
        let saved = read_saved(result_json)?;
        let file = std::fs::File::open(requests_jsonl)
            .map_err(|e| format!("cannot read {}: {e}", requests_jsonl.display()))?;
        let (mut stats, mut count) = (stats::Accumulator::default(), 0usize);
        let mut add = |r: &RequestRecord| {
            stats.add(r);
            count += 1;
            std::ops::ControlFlow::Continue(())
        };
        crate::spool::read_lines(std::io::BufReader::new(file), &mut add, REQUESTS_JSONL).map(drop)?;
        Ok(RunResult::assemble(saved, Records::saved(requests_jsonl.to_owned(), count), stats))
    }

    fn assemble(saved: SavedResult, records: Records, stats: stats::Accumulator) -> RunResult {
        let mut client = stats.finish(saved.duration, &saved.receive_lag, &saved.plan.goodput_slo);
        stats::add_folded(&mut client, &saved.folded_failures);
        let phases =
            saved.phases.into_iter().filter_map(|(k, v)| PHASES.iter().find(|p| **p == k).map(|p| (*p, v))).collect();
        RunResult {
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
            target_lost: saved.target_lost,
            memory_budget_exceeded: saved.memory_budget_exceeded,
            folded_failures: saved.folded_failures,
            client,
            shards: saved.shards,
            validation: saved.validation,
            server: saved.server,
            logs: saved.logs,
            phases,
            notes: saved.notes,
            records,
            start_instant: None,
            snapshots: Vec::new(),
        }
    }

    /// True when no measured request ever reached the server: the run could not run.
    pub fn target_unreachable(&self) -> bool {
        let connect_failures: u64 = Outcome::ALL
            .into_iter()
            .filter(|o| o.is_connect_failure())
            .filter_map(|o| self.client.errors.get(o.as_label()))
            .sum();
        self.client.num_requests > 0 && connect_failures == self.client.num_requests
    }

    /// Requests were measured and not one completed (whatever the reason).
    pub fn all_requests_failed(&self) -> bool {
        self.client.num_requests > 0 && self.client.completed == 0
    }

    /// The most frequent error kind of the measured requests, with its count.
    pub fn dominant_error(&self) -> Option<(&'static str, u64)> {
        self.client.errors.iter().max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k))).map(|(k, n)| (*k, *n))
    }

    /// The saved observation named `file` ([`SNAPSHOT_BEFORE`], [`LOGS_WINDOW`], ...).
    pub fn snapshot(&self, file: &str) -> Option<&str> {
        self.snapshots.iter().find(|(name, _)| *name == file).map(|(_, text)| text.as_str())
    }
}

/// A saved `result.json` of this build's schema.
fn read_saved(result_json: &[u8]) -> Result<SavedResult, String> {
    let saved: SavedResult = serde_json::from_slice(result_json).map_err(|e| format!("{RESULT_JSON}: {e}"))?;
    if saved.schema_version != RESULT_SCHEMA_VERSION {
        return Err(format!(
            "{RESULT_JSON} has schema version {}, this build reads {RESULT_SCHEMA_VERSION}",
            saved.schema_version
        ));
    }
    Ok(saved)
}

/// Records from a `requests.jsonl`; a bad line is an error naming it.
fn read_records(jsonl: &[u8]) -> Result<Vec<RequestRecord>, String> {
    let mut records = Vec::new();
    let mut keep = |r: &RequestRecord| {
        records.push(r.clone());
        std::ops::ControlFlow::Continue(())
    };
    crate::spool::read_lines(jsonl, &mut keep, REQUESTS_JSONL).map(drop)?;
    Ok(records)
}

/// A whole run directory read back: the result, its records and every raw observation
/// present (decoded lossily: saved files may hold anything).
pub fn read_dir(dir: &Path) -> Result<RunResult, RunError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| RunError::BadInput(format!("cannot read {}: {e}", path.display())))
    };
    let mut result = RunResult::from_saved_file(&read(RESULT_JSON)?, &dir.join(REQUESTS_JSONL))
        .map_err(|e| RunError::BadInput(format!("{}: {e}", dir.display())))?;
    for name in OBSERVATION_FILES {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            result.snapshots.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    Ok(result)
}

/// A short, sortable, unique-enough run id: UTC time plus random bits. It names a run
/// directory, so it is only ever made here.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let ts = now.strftime("%Y%m%dT%H%M%SZ");
    format!("{ts}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// `spans.json` as saved.
pub fn spans_json(s: &SpansObservation) -> String {
    serde_json::to_string(s).unwrap_or_default()
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

/// Write `records` as `requests.jsonl` to `path` atomically (temp file + rename), streamed.
pub fn write_records_atomic(path: &Path, records: &Records) -> Result<(), RunError> {
    let err = |source| RunError::Write { path: path.to_owned(), source };
    let tmp = path.with_extension("tmp");
    let f = std::fs::File::create(&tmp).map_err(err)?;
    let mut out = std::io::BufWriter::new(f);
    records.write_jsonl(&mut out).map_err(|e| err(std::io::Error::other(e)))?;
    let f = out.into_inner().map_err(|e| err(e.into_error()))?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Write a whole directory atomically: fill `DIR.tmp`, then rename it to `DIR`.
pub fn write_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<(), RunError>) -> Result<(), RunError> {
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        std::fs::create_dir_all(&tmp).map_err(|source| RunError::Write { path: tmp.clone(), source })?;
        fill(&tmp)?;
        std::fs::rename(&tmp, dir).map_err(|source| RunError::Write { path: dir.to_owned(), source })
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// `result.json`, `requests.jsonl` and the raw observations into `dir` (each file atomically).
pub fn save(dir: &Path, result: &RunResult) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::Write { path: dir.to_owned(), source })?;
    write_atomic(&dir.join(RESULT_JSON), &result_json(result))?;
    write_records_atomic(&dir.join(REQUESTS_JSONL), &result.records)?;
    for (name, text) in &result.snapshots {
        write_atomic(&dir.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// The result as `result.json` holds it (pretty JSON, newline-terminated).
pub fn result_json(result: &RunResult) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(result).unwrap_or_default();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_record_line_is_named() {
        let e = read_records(b"{\"index\": 0}\n\nnot json\n").unwrap_err();
        assert!(e.starts_with("requests.jsonl line 1") || e.starts_with("requests.jsonl line 3"), "{e}");
    }

    #[test]
    fn a_failed_directory_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let err = write_dir_atomic(&run, |tmp| {
            std::fs::write(tmp.join("x"), "partial").unwrap();
            Err(RunError::BadInput("stop".into()))
        });
        assert!(err.is_err());
        assert!(!run.exists() && !dir.path().join("run.tmp").exists());
        write_dir_atomic(&run, |tmp| write_atomic(&tmp.join("x"), b"whole")).unwrap();
        assert_eq!(std::fs::read_to_string(run.join("x")).unwrap(), "whole");
    }
}
