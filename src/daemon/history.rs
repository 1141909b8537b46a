//! Run history on disk: `DATA_DIR/runs/TARGET/RUN_ID/` holds what
//! `run --save-artifacts` writes (`result.json`, `requests.jsonl`, the raw
//! /metrics snapshots and log window), so `llm-loadtest validate` works on any
//! past run. A run that could not run at all leaves `failure.json` instead.
//!
//! Atomic per run: everything is written into `RUN_ID.tmp/` and the directory
//! is renamed into place, so a crash or a full disk never leaves half a run
//! that a restart would misread (leftover `.tmp` directories are removed at
//! load). Retention (`[history]` `max_runs` per target, `max_age`) is applied
//! after every write and at load.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::artifacts::{self, RunResult};
use crate::validate::Status;

/// One run as the API lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub target: String,
    /// `schedule` or `api` (`restored` for runs read back at start).
    pub trigger: String,
    pub started_at: jiff::Timestamp,
    pub ended_at: jiff::Timestamp,
    /// `success`, `warn`, `failed` or `cancelled` (as `llm_loadtest_runs_total{result}`).
    pub result: &'static str,
    /// The overall validation verdict; none when validation was off or the run failed.
    pub verdict: Option<Status>,
    /// Per check: (check, status).
    pub checks: Vec<(String, Status)>,
    pub completed: u64,
    pub failed: u64,
    pub duration_s: f64,
    /// Why the run failed, for `failed` runs that could not start.
    pub error: Option<String>,
    /// False when the result could not be written (served from memory until a restart).
    pub persisted: bool,
}

/// The suffix of a run's start marker (see [`History::mark_started`]).
const STARTED: &str = ".started";

/// What `failure.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub run_id: String,
    pub target: String,
    pub trigger: String,
    pub at: jiff::Timestamp,
    pub reason: String,
    pub error: String,
}

/// Why a run that ran counts as failed: none of its requests completed, and what they met.
fn failed_run_error(r: &RunResult) -> Option<String> {
    if r.cancelled {
        return None;
    }
    if let Some(why) = &r.target_lost {
        return Some(format!("target lost: {why}"));
    }
    if !r.all_requests_failed() {
        return None;
    }
    let n = r.client.num_requests;
    Some(match r.dominant_error() {
        Some((kind, k)) => format!("all {n} requests failed; most: {kind} ({k})"),
        None => format!("all {n} requests failed"),
    })
}

impl RunSummary {
    pub fn of_result(target: &str, trigger: &str, r: &RunResult) -> RunSummary {
        let v = r.validation.as_ref();
        let mut checks = Vec::new();
        if let Some(v) = v {
            for section in std::iter::once(&v.prometheus).chain(v.docker_logs.as_ref().map(|d| &d.section)) {
                checks.extend(section.comparisons.iter().map(|c| (c.check.clone(), c.status)));
            }
        }
        RunSummary {
            run_id: r.run_id.clone(),
            target: target.to_owned(),
            trigger: trigger.to_owned(),
            started_at: r.started_at,
            ended_at: r.ended_at,
            result: crate::exporter::run_result_label(r),
            verdict: v.map(|v| v.overall),
            checks,
            completed: r.client.completed,
            failed: r.client.failed,
            duration_s: r.client.duration_s,
            error: failed_run_error(r),
            persisted: true,
        }
    }

    pub fn of_failure(f: &Failure) -> RunSummary {
        RunSummary {
            run_id: f.run_id.clone(),
            target: f.target.clone(),
            trigger: f.trigger.clone(),
            started_at: f.at,
            ended_at: f.at,
            result: crate::exporter::RESULT_FAILED,
            verdict: None,
            checks: Vec::new(),
            completed: 0,
            failed: 0,
            duration_s: 0.0,
            error: Some(f.error.clone()),
            persisted: true,
        }
    }
}

/// A run in the index, with its JSON kept in memory when it could not be written.
#[derive(Debug, Clone)]
struct Entry {
    summary: RunSummary,
    unsaved_json: Option<Arc<Vec<u8>>>,
}

/// The history directory and its in-memory index (newest last).
#[derive(Debug)]
pub struct History {
    root: PathBuf,
    max_runs: usize,
    max_age: Duration,
    index: Mutex<Vec<Entry>>,
}

/// What [`History::open`] read back: the index, the runs to replay into the exporter
/// (oldest first), and problems with individual runs (skipped, with the reason).
pub struct Loaded {
    pub history: History,
    pub replay: Vec<(String, Replay)>,
    pub problems: Vec<String>,
    /// The targets of the runs found interrupted at this start (one entry per run): the
    /// previous process died before counting them, so this one counts them.
    pub interrupted: Vec<String>,
}

/// A stored run, to replay into the exporter.
pub enum Replay {
    Run(Box<RunResult>),
    Failure(Failure),
}

impl Replay {
    fn run_id(&self) -> &str {
        match self {
            Replay::Run(r) => &r.run_id,
            Replay::Failure(f) => &f.run_id,
        }
    }

    fn at(&self) -> jiff::Timestamp {
        match self {
            Replay::Run(r) => r.started_at,
            Replay::Failure(f) => f.at,
        }
    }
}

/// A run id is also a directory name: only what `artifacts::new_run_id` makes.
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl History {
    /// Read every run under `data_dir/runs`, creating the directory if needed. Only an
    /// unusable directory is an error; a bad run is skipped and reported in `problems`.
    pub fn open(data_dir: &Path, max_runs: u32, max_age: Duration) -> Result<Loaded, String> {
        let root = data_dir.join("runs");
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create the history directory {}: {e}", root.display()))?;
        let history = History { root, max_runs: max_runs as usize, max_age, index: Mutex::new(Vec::new()) };
        let mut replay = Vec::new();
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        // Runs a crash interrupted (their start marker is left): recorded as failed now.
        let interrupted = history.record_interrupted(&mut problems);
        for (target, dir) in history.run_dirs().map_err(|e| format!("cannot read {}: {e}", history.root.display()))? {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.ends_with(".tmp") {
                // A write that never finished: the run was not recorded.
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            }
            match read_run(&target, &dir) {
                Ok((summary, r)) => {
                    entries.push(Entry { summary, unsaved_json: None });
                    replay.push((target, r));
                }
                Err(e) => problems.push(format!("{}: {e}", dir.display())),
            }
        }
        entries.sort_by_key(|e| e.summary.started_at);
        replay.sort_by_key(|(_, r)| r.at());
        *lock(&history.index) = entries;
        history.prune();
        // Replay only what retention kept.
        let kept: std::collections::BTreeSet<String> =
            lock(&history.index).iter().map(|e| e.summary.run_id.clone()).collect();
        replay.retain(|(_, r)| kept.contains(r.run_id()));
        Ok(Loaded { history, replay, problems, interrupted })
    }

    /// Before a burst: `TARGET/RUN_ID.started`, removed once its result or failure is written.
    /// A marker found at start-up is a run the process did not live to record (SIGKILL, a
    /// crash, the host going down).
    pub fn mark_started(&self, target: &str, run_id: &str, trigger: &str) -> Result<(), String> {
        let marker = Failure {
            run_id: run_id.to_owned(),
            target: target.to_owned(),
            trigger: trigger.to_owned(),
            at: jiff::Timestamp::now(),
            reason: crate::exporter::REASON_INTERRUPTED.to_owned(),
            error: String::new(),
        };
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let json = serde_json::to_vec(&marker).unwrap_or_default();
        artifacts::write_atomic(&dir.join(format!("{run_id}{STARTED}")), &json).map_err(|e| e.to_string())
    }

    fn clear_marker(&self, target: &str, run_id: &str) {
        let _ = std::fs::remove_file(self.root.join(target).join(format!("{run_id}{STARTED}")));
    }

    /// Every start marker without a recorded run becomes a `failure.json` (reason
    /// `interrupted`), so the run is listed, replayed and counted like any failed run.
    fn record_interrupted(&self, problems: &mut Vec<String>) -> Vec<String> {
        let mut found = Vec::new();
        let Ok(targets) = std::fs::read_dir(&self.root) else { return found };
        for t in targets.flatten() {
            let Ok(files) = std::fs::read_dir(t.path()) else { continue };
            for f in files.flatten() {
                let path = f.path();
                if !path.to_string_lossy().ends_with(STARTED) {
                    continue;
                }
                let marker: Result<Failure, String> = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
                match marker {
                    Ok(mut m) if valid_run_id(&m.run_id) && !t.path().join(&m.run_id).exists() => {
                        m.error = format!(
                            "interrupted: the daemon stopped (killed or crashed) during this run, started {}; nothing of it was saved",
                            m.at
                        );
                        let json = serde_json::to_vec_pretty(&m).unwrap_or_default();
                        let dir = t.path().join(&m.run_id);
                        let write = |tmp: &Path| artifacts::write_atomic(&tmp.join("failure.json"), &json);
                        if let Err(e) = artifacts::write_dir_atomic(&dir, write) {
                            problems.push(format!("{}: {e}", path.display()));
                            continue;
                        }
                        found.push(t.file_name().to_string_lossy().into_owned());
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(format!("{}: {e}", path.display())),
                }
                let _ = std::fs::remove_file(&path);
            }
        }
        found
    }

    fn run_dirs(&self) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for t in std::fs::read_dir(&self.root)? {
            let t = t?;
            if !t.file_type()?.is_dir() {
                continue;
            }
            let target = t.file_name().to_string_lossy().into_owned();
            for r in std::fs::read_dir(t.path())? {
                let r = r?;
                if r.file_type()?.is_dir() {
                    out.push((target.clone(), r.path()));
                }
            }
        }
        Ok(out)
    }

    /// Record a finished run: written atomically, then indexed. On a write error the run is
    /// still indexed (its JSON kept in memory) and the error returned for the caller to count.
    pub fn add_result(&self, target: &str, trigger: &str, result: &RunResult) -> Result<(), String> {
        let mut summary = RunSummary::of_result(target, trigger, result);
        let dir = self.root.join(target).join(&result.run_id);
        let written = artifacts::write_dir_atomic(&dir, |tmp| artifacts::save(tmp, result)).map_err(|e| e.to_string());
        let unsaved_json = written.is_err().then(|| Arc::new(artifacts::result_json(result)));
        summary.persisted = written.is_ok();
        self.clear_marker(target, &result.run_id);
        self.push(Entry { summary, unsaved_json });
        written
    }

    /// Record a run that could not run.
    pub fn add_failure(&self, f: &Failure) -> Result<(), String> {
        let mut summary = RunSummary::of_failure(f);
        let json = serde_json::to_vec_pretty(f).unwrap_or_default();
        let dir = self.root.join(&f.target).join(&f.run_id);
        let written =
            artifacts::write_dir_atomic(&dir, |tmp| artifacts::write_atomic(&tmp.join("failure.json"), &json))
                .map_err(|e| e.to_string());
        summary.persisted = written.is_ok();
        self.clear_marker(&f.target, &f.run_id);
        let unsaved_json = written.is_err().then(|| Arc::new(json));
        self.push(Entry { summary, unsaved_json });
        written
    }

    fn push(&self, entry: Entry) {
        lock(&self.index).push(entry);
        self.prune();
    }

    /// Newest first, optionally of one target.
    pub fn list(&self, target: Option<&str>, limit: usize) -> Vec<RunSummary> {
        lock(&self.index)
            .iter()
            .rev()
            .filter(|e| target.is_none_or(|t| e.summary.target == t))
            .take(limit)
            .map(|e| e.summary.clone())
            .collect()
    }

    /// The newest run of `target`.
    pub fn last(&self, target: &str) -> Option<RunSummary> {
        self.list(Some(target), 1).pop()
    }

    /// The full JSON of a run (`result.json`, or `failure.json` for a run that could not run).
    pub fn json(&self, run_id: &str) -> Option<Result<Vec<u8>, String>> {
        if !valid_run_id(run_id) {
            return None;
        }
        let entry = lock(&self.index).iter().find(|e| e.summary.run_id == run_id).cloned()?;
        if let Some(json) = entry.unsaved_json {
            return Some(Ok(json.as_ref().clone()));
        }
        let dir = self.root.join(&entry.summary.target).join(run_id);
        let file = if entry.summary.error.is_some() { "failure.json" } else { "result.json" };
        Some(std::fs::read(dir.join(file)).map_err(|e| format!("cannot read the stored run {run_id}: {e}")))
    }

    /// Apply retention: per target at most `max_runs`, none older than `max_age`.
    fn prune(&self) {
        let now = jiff::Timestamp::now();
        let max_age = jiff::SignedDuration::try_from(self.max_age).unwrap_or(jiff::SignedDuration::MAX);
        let mut index = lock(&self.index);
        let mut per_target: std::collections::BTreeMap<String, usize> = Default::default();
        let mut drop = vec![false; index.len()];
        for (i, e) in index.iter().enumerate().rev() {
            let n = per_target.entry(e.summary.target.clone()).or_default();
            *n += 1;
            let too_old = now.duration_since(e.summary.ended_at) > max_age;
            drop[i] = *n > self.max_runs || too_old;
        }
        let mut i = 0;
        index.retain(|e| {
            let d = drop[i];
            i += 1;
            if d {
                let dir = self.root.join(&e.summary.target).join(&e.summary.run_id);
                if let Err(err) = std::fs::remove_dir_all(&dir)
                    && err.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(dir = %dir.display(), error = %err, "could not delete an expired run");
                }
            }
            !d
        });
    }
}

/// One stored run: its summary, and what to replay.
fn read_run(target: &str, dir: &Path) -> Result<(RunSummary, Replay), String> {
    let failure = dir.join("failure.json");
    if failure.exists() {
        let bytes = std::fs::read(&failure).map_err(|e| e.to_string())?;
        let f: Failure = serde_json::from_slice(&bytes).map_err(|e| format!("failure.json: {e}"))?;
        return Ok((RunSummary::of_failure(&f), Replay::Failure(f)));
    }
    let result = std::fs::read(dir.join("result.json")).map_err(|e| format!("result.json: {e}"))?;
    let r = RunResult::from_saved_file(&result, &dir.join("requests.jsonl"))?;
    let summary = RunSummary::of_result(target, "restored", &r);
    Ok((summary, Replay::Run(Box::new(r))))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
