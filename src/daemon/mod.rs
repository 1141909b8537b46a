//! `llm-loadtest serve`: the long-running exporter.
//!
//! The daemon owns the configuration, the [`Exporter`], the [`History`] and
//! the set of targets with a burst in flight. Bursts start from the scheduler
//! ([`schedule`]) or the API ([`api`]) through one door, [`Daemon::start_run`],
//! which enforces one burst per target (and one daemon-wide unless
//! `allow_parallel_targets`), lays the trigger's patch over the target's
//! workload, builds the burst with `burst::plan` (as `llm-loadtest run` does)
//! and spawns it. When a burst ends its
//! result is exported and written to the history; a write error is counted
//! and logged, never fatal.
//!
//! Shutdown (SIGTERM/SIGINT): the listener stops accepting, bursts in flight
//! are cancelled and recorded as `cancelled` with their partial results, then
//! the process exits.

pub mod api;
pub mod history;
pub mod page;
pub mod schedule;
pub mod trigger;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::burst::Target;
use crate::config::{Config, TargetConfig};
use crate::exporter::{self, Exporter};
use history::{Failure, History, Replay};

/// How long shutdown waits for cancelled bursts to record their partial results.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why a burst did not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartError {
    #[error("unknown target {0:?}: triggers run configured targets only")]
    UnknownTarget(String),
    #[error("{0}")]
    Busy(String),
    /// Another target's burst holds the daemon (`allow_parallel_targets = false`): a
    /// scheduled run waits for it rather than skipping, so serialized targets take turns.
    #[error("target {0:?} is running a burst and allow_parallel_targets is false")]
    OtherTargetBusy(String),
    #[error("{0}")]
    BadBody(String),
    #[error("the burst could not be prepared: {0}")]
    Prepare(String),
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// Who started a burst (kept in the history listing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Api,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
        }
    }
}

pub struct Daemon {
    pub config: Config,
    pub exporter: Exporter,
    pub history: History,
    /// The trigger API's bearer token, read once at start.
    token: Option<String>,
    /// Targets with a burst in flight.
    running: Mutex<BTreeSet<String>>,
    /// Signalled whenever a burst ends and frees its target.
    pub freed: tokio::sync::Notify,
    pub shutdown: CancellationToken,
    tasks: TaskTracker,
    pub started: Instant,
    /// The OTLP receiver's routing table (`[otlp] receiver`); the receiver runs in `serve`.
    pub spans: Option<Arc<crate::traces::Hub>>,
    /// The workers' table, with `[workers]` configured.
    pub coordinator: Option<Arc<crate::coordinator::Coordinator>>,
}

/// Removes a target from the running set however its task ends (panics included).
struct RunningGuard {
    daemon: Arc<Daemon>,
    target: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.daemon.exporter.set_running(&self.target, false);
        lock(&self.daemon.running).remove(&self.target);
        self.daemon.freed.notify_waiters();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Daemon {
    /// Read the history, replay it into a new exporter. Problems with single stored runs are
    /// logged and skipped; only an unusable data directory or token file is an error.
    pub fn new(config: Config) -> Result<Arc<Daemon>, String> {
        let spans = config.otlp_receiver.map(|_| crate::traces::Hub::new());
        let token = config.auth.read_token().map_err(|e| format!("auth: {e}"))?;
        let coordinator = match &config.workers {
            None => None,
            Some(w) => {
                let token = w.read_token().map_err(|e| format!("workers: {e}"))?.ok_or("workers: no token")?;
                Some(Arc::new(crate::coordinator::Coordinator::new(token)))
            }
        };
        let loaded = History::open(&config.data_dir, config.history.max_runs, config.history.max_age)?;
        for p in &loaded.problems {
            tracing::warn!("history: skipped a stored run: {p}");
        }
        let targets: Vec<(String, String)> = config.targets.iter().map(|t| (t.name.clone(), t.model.clone())).collect();
        let exporter = Exporter::new(&targets, env!("CARGO_PKG_VERSION"));
        for t in &config.targets {
            if let Some(s) = t.schedule {
                exporter.set_schedule_interval(&t.name, s.interval);
            }
            exporter.set_regression_policy(&t.name, t.tolerances.regression, t.tolerances.latency_floor_ms);
        }
        let mut replayed = 0;
        for (target, r) in &loaded.replay {
            if config.target(target).is_none() {
                continue;
            }
            match r {
                Replay::Run(r) => exporter.restore_run(target, r),
                Replay::Failure(f) => exporter.restore_failure(target, f.at),
            }
            replayed += 1;
        }
        for target in loaded.interrupted.iter().filter(|t| config.target(t).is_some()) {
            exporter.count_failure(target, crate::exporter::REASON_INTERRUPTED);
        }
        tracing::info!(runs = replayed, data_dir = %config.data_dir.display(), "history loaded");
        Ok(Arc::new(Daemon {
            config,
            exporter,
            history: loaded.history,
            token,
            running: Mutex::new(BTreeSet::new()),
            freed: tokio::sync::Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started: Instant::now(),
            spans,
            coordinator,
        }))
    }

    pub fn is_running(&self, target: &str) -> bool {
        lock(&self.running).contains(target)
    }

    /// Start a burst on `target` (with a trigger body's overrides, if any) and return its run
    /// id at once; the burst runs in the background.
    pub fn start_run(
        self: &Arc<Self>,
        target: &str,
        body: Option<&[u8]>,
        trigger: Trigger,
    ) -> Result<String, StartError> {
        if self.shutdown.is_cancelled() {
            return Err(StartError::ShuttingDown);
        }
        let Some(t) = self.config.target(target) else {
            return Err(StartError::UnknownTarget(target.to_owned()));
        };
        let (workload, workers) = match body {
            None => (t.workload.clone(), t.workers),
            Some(b) => {
                let asked = trigger::apply(b, &t.workload, &self.config.limits).map_err(StartError::BadBody)?;
                if asked.workers.is_some() && self.coordinator.is_none() {
                    return Err(StartError::BadBody(
                        "workers: this daemon coordinates no workers (it has no [workers] section)".into(),
                    ));
                }
                (asked.workload, asked.workers.or(t.workers))
            }
        };
        if workers.is_some() && (workload.dataset.is_some() || workload.tokenizer.is_some()) {
            return Err(StartError::BadBody(
                "workers: a distributed burst cannot use a dataset or a tokenizer yet (files on the daemon's machine)"
                    .into(),
            ));
        }
        let mut running = lock(&self.running);
        if running.contains(target) {
            return Err(StartError::Busy(format!("target {target:?} is already running a burst")));
        }
        if !self.config.allow_parallel_targets
            && let Some(other) = running.iter().next()
        {
            return Err(StartError::OtherTargetBusy(other.clone()));
        }
        // Reserve the slot, then prepare outside the lock: reading a dataset or a tokenizer
        // must not hold up other triggers. The guard frees the slot however this ends.
        running.insert(target.to_owned());
        drop(running);
        let guard = RunningGuard { daemon: self.clone(), target: target.to_owned() };
        let run_id = crate::artifacts::new_run_id();
        let prepared = crate::burst::plan(&target_of(t, self.spans.clone()), &workload, t.tolerances.clone(), &run_id);
        let prepared = prepared.and_then(|mut p| {
            if let (Some(n), Some(c)) = (workers, &self.coordinator) {
                p.remote = Some(crate::coordinator::remote::RemoteLoad {
                    coordinator: c.clone(),
                    workers: n,
                    target_url: t.url.clone(),
                    model: t.model.clone(),
                    api_key: crate::burst::plan::read_api_key(None, t.api_key_file.as_deref())?,
                    workload: workload.clone(),
                });
            }
            Ok(p)
        });
        let prepared = match prepared.map_err(|e| e.to_string()) {
            Ok(p) => p,
            Err(e) => {
                drop(guard);
                self.record_failure(target, &run_id, trigger, exporter::REASON_INVALID_WORKLOAD, &e);
                return Err(StartError::Prepare(e));
            }
        };
        self.exporter.set_running(target, true);
        if let Err(e) = self.history.mark_started(target, &run_id, trigger.as_str()) {
            // The run goes ahead; only a crash during it would go unrecorded.
            tracing::warn!(target_name = %target, run_id, "could not write the run's start marker: {e}");
        }
        let cancel = self.shutdown.child_token();
        let id = run_id.clone();
        self.tasks.spawn(async move {
            let daemon = guard.daemon.clone();
            let target = guard.target.clone();
            let result = crate::burst::run(prepared, id, cancel, None).await;
            // The exporter reads every record back (its histograms): off the runtime.
            crate::burst::off_the_runtime(|| daemon.exporter.record_run(&target, &result));
            let verdict = result.validation.as_ref().map(|v| v.overall.as_str());
            tracing::info!(
                target_name = %target,
                run_id = %result.run_id,
                trigger = trigger.as_str(),
                result = exporter::run_result_label(&result),
                completed = result.client.completed,
                failed = result.client.failed,
                verdict = verdict.unwrap_or("none"),
                "run finished"
            );
            let history = daemon.clone();
            let saved = tokio::task::spawn_blocking(move || {
                let r = history.history.add_result(&target, trigger.as_str(), &result);
                (r, result.run_id)
            })
            .await;
            match saved {
                Ok((Ok(()), _)) => {}
                Ok((Err(e), run_id)) => {
                    daemon.exporter.record_history_write_error();
                    tracing::error!(run_id, "the run result could not be written to the history: {e}");
                }
                Err(e) => {
                    daemon.exporter.record_history_write_error();
                    tracing::error!("writing the run result panicked: {e}");
                }
            }
            drop(guard);
        });
        Ok(run_id)
    }

    fn record_failure(&self, target: &str, run_id: &str, trigger: Trigger, reason: &'static str, error: &str) {
        tracing::error!(target_name = target, run_id, reason, "run could not start: {error}");
        self.exporter.record_failure(target, reason);
        let f = Failure {
            run_id: run_id.to_owned(),
            target: target.to_owned(),
            trigger: trigger.as_str().to_owned(),
            at: jiff::Timestamp::now(),
            reason: reason.to_owned(),
            error: error.to_owned(),
        };
        if let Err(e) = self.history.add_failure(&f) {
            self.exporter.record_history_write_error();
            tracing::error!(run_id, "the failure could not be written to the history: {e}");
        }
    }

    /// Cancel bursts in flight and wait (up to [`SHUTDOWN_GRACE`]) for their partial results
    /// to be exported and written.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait()).await.is_err() {
            tracing::error!("bursts did not finish within {SHUTDOWN_GRACE:?} of shutdown; exiting anyway");
        }
    }
}

/// The server side of a configured target's bursts.
fn target_of(t: &TargetConfig, spans: Option<Arc<crate::traces::Hub>>) -> Target {
    Target {
        spans,
        metrics: t.metrics.clone(),
        container: t.container.clone(),
        api_key_file: t.api_key_file.clone(),
        skip_validation: t.skip_validation,
        ..Target::new(t.url.clone(), t.model.clone())
    }
}

/// Where `serve` listens and keeps its history, after `--listen` / `--data-dir`.
pub struct ServeOverrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// The OTLP receiver's socket, bound already (the demo binds it before starting the
    /// simulator that exports to it); `config.otlp_receiver` must name its address.
    pub otlp_listener: Option<tokio::net::TcpListener>,
}

/// Run the daemon until `stop` is cancelled (the binary cancels it on SIGTERM/SIGINT).
/// `on_listening` gets the bound address (port 0 in tests picks a free one).
pub async fn serve(
    mut config: Config,
    overrides: ServeOverrides,
    stop: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    if let Some(l) = overrides.listen {
        config.listen = l;
    }
    if let Some(d) = overrides.data_dir {
        config.data_dir = d;
    }
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let daemon = Daemon::new(config)?;
    tracing::info!(listen = %addr, targets = daemon.config.targets.len(), "serving");
    // The receiver lives as long as the daemon.
    let _receiver = match (daemon.config.otlp_receiver, &daemon.spans, overrides.otlp_listener) {
        (Some(_), Some(hub), Some(l)) => Some(crate::traces::Receiver::start_on(l, Arc::clone(hub))?),
        (Some(a), Some(hub), None) => Some(crate::traces::Receiver::start(&a.to_string(), Arc::clone(hub)).await?),
        _ => None,
    };
    on_listening(addr);
    for t in &daemon.config.targets {
        if let Some(s) = t.schedule {
            tokio::spawn(schedule::run(daemon.clone(), t.name.clone(), s));
        }
    }
    let app = api::router(daemon.clone());
    let shutdown = daemon.shutdown.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        shutdown.cancel();
    });
    let shutdown = daemon.shutdown.clone();
    let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
    // Bursts in flight are cancelled and recorded before the process exits.
    daemon.stop().await;
    served.map_err(|e| format!("the HTTP server failed: {e}"))
}

/// The config of `serve`: the file, or the demo's (its simulator is started later, in the
/// runtime; the target URL is filled in then).
pub fn load_serve_config(file: Option<&std::path::Path>) -> Result<(Config, bool), String> {
    match file {
        Some(path) => crate::config::load(path).map(|c| (c, false)).map_err(|e| e.to_string()),
        None => {
            let placeholder = url::Url::parse("http://127.0.0.1:1").map_err(|e| e.to_string())?;
            crate::config::demo(&placeholder, "sim-model").map(|c| (c, true)).map_err(|e| e.to_string())
        }
    }
}

/// `llm-loadtest serve`: the daemon until `stop` (SIGTERM/SIGINT); `demo` starts the simulator first.
pub async fn serve_command(
    config: Config,
    mut overrides: ServeOverrides,
    demo: bool,
    stop: CancellationToken,
) -> ExitCode {
    let mut config = config;
    let mut sim = None;
    if demo {
        // The demo's own OTLP receiver, bound first so the simulator knows where to export.
        if config.otlp_receiver.is_none() {
            match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.and_then(|l| Ok((l.local_addr()?, l))) {
                Ok((addr, l)) => {
                    config.otlp_receiver = Some(addr);
                    overrides.otlp_listener = Some(l);
                }
                Err(e) => {
                    eprintln!("error: cannot listen for the demo's OTLP traces: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        match crate::sim::start_demo(config.otlp_receiver).await {
            Ok((h, url, model)) => {
                for t in &mut config.targets {
                    t.url = url.clone();
                    t.model = model.clone();
                }
                let _ = writeln!(std::io::stderr(), "demo: simulator serving {model} at {url}");
                sim = Some(h);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let result = serve(config, overrides, stop, |addr| {
        // Not eprintln!: a daemon whose stderr went away (a closed pipe) must keep serving.
        let _ =
            writeln!(std::io::stderr(), "llm-loadtest serving on http://{addr}/ (status page), /metrics, /api/v1/runs");
    })
    .await;
    if let Some(h) = sim {
        h.shutdown().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `llm-loadtest healthcheck`: exit 0 when a daemon answers its readiness probe.
pub async fn healthcheck_command(url: &url::Url, timeout: Duration) -> ExitCode {
    let options = crate::http::ClientOptions { connect_timeout: timeout, timeout: Some(timeout), ..Default::default() };
    let client = match crate::http::client(options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match client.get(url.as_str()).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("unhealthy: {} answered {}", url, r.status());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("unhealthy: {}: {}", url, crate::error::error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// `llm-loadtest check-config FILE`: every problem, or the targets it would run.
pub fn check_config_command(file: &std::path::Path) -> ExitCode {
    match crate::config::load(file) {
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::from(1)
        }
        Ok(c) => {
            println!("{}: OK, {} target(s)", file.display(), c.targets.len());
            for t in &c.targets {
                let schedule = match t.schedule {
                    None => "on trigger only".to_owned(),
                    Some(s) => format!("every {}", humantime::format_duration(s.interval)),
                };
                println!("  {} -> {} ({}), {schedule}", t.name, crate::http::redact_url(t.url.as_str()), t.model);
            }
            for w in c.warnings() {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
    }
}
