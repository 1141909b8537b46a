//! One burst: the only place that sequences its steps and times each phase.
//!
//! 1. snapshot the server's /metrics (twice, around an idle window, to see
//!    other clients' traffic), 2. the load, with the server's gauges sampled
//!    alongside, 3. settle: poll /metrics until the counters stop moving.
//!
//! One worker loop serves every load shape: the schedule (closed loop or
//! absolute open-loop deadlines) and the stop condition are values.

pub mod lag;
pub mod record;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use lag::ReceiveLag;
pub use record::{Outcome, RequestRecord};
pub use worker::{RequestTarget, Timeouts};

use crate::docker::{ContainerState, DockerClient, FoundContainer, TimedLine, WindowStats};
use crate::logs::{LogAnalyzer, LogFindings, LogLine};
use crate::openai::{Endpoint, RequestOptions, build_body};
use crate::promtext::LabelFilter;
use crate::server::{GaugePeaks, MetricsClient, Scrape, ScrapeError, scrape};
use crate::workload::{ArrivalPlan, PromptSource, StopCondition};

/// Everything that defines the load of one burst.
pub struct LoadSpec {
    pub target: Arc<RequestTarget>,
    pub endpoint: Endpoint,
    pub request: RequestOptions,
    pub plan: ArrivalPlan,
    pub stop: StopCondition,
    /// Requests sent before the measured phase, left out of every statistic.
    pub warmup: u64,
}

/// Called with every finished record (progress bars, live metrics).
pub type RecordObserver = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// The raw outcome of the load phase.
pub struct LoadOutput {
    /// Measured and warm-up records, sorted by index.
    pub records: Vec<RequestRecord>,
    /// From the first measured send to the end of the last response.
    pub duration_s: f64,
    pub receive_lag: ReceiveLag,
    /// The clock origin of `records` (the measured phase's start).
    pub started_at: Instant,
    pub started_unix: jiff::Timestamp,
    pub ended_unix: jiff::Timestamp,
    pub cancelled: bool,
}

struct Shared {
    spec: LoadSpec,
    prompts: Arc<PromptSource>,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
    records: mpsc::UnboundedSender<RequestRecord>,
}

impl Shared {
    /// Build, send and measure request `index`, scheduled at `scheduled_s`.
    async fn one(&self, index: u64, warmup: bool, start: Instant, scheduled_s: f64) {
        let prompt = self.prompts.get(index);
        let body = build_body(self.spec.endpoint, &prompt.text, &self.spec.request);
        let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let record = RequestRecord::new(index, warmup, scheduled_s, scheduled_s, prompt.input_tokens);
        let record = tokio::select! {
            r = worker::execute(&self.spec.target, body, start, record.clone()) => r,
            _ = self.cancel.cancelled() => {
                let mut r = record;
                r.outcome = Outcome::Cancelled;
                r.error = Some("the burst was cancelled".into());
                r
            }
        };
        if let Some(obs) = &self.observer {
            obs(&record);
        }
        let _ = self.records.send(record);
    }
}

/// How to watch the server's /metrics around a burst.
pub struct ServerWatch {
    pub metrics: MetricsClient,
    /// Labels the gauges are read with (the target's model).
    pub filter: LabelFilter,
    /// Quiet time between two snapshots before the burst; zero: one snapshot.
    pub idle_window: Duration,
    pub settle_max: Duration,
    pub settle_poll: Duration,
    pub sample_every: Duration,
}

/// What /metrics showed around the burst.
#[derive(Debug)]
pub struct ServerObservation {
    pub metrics_url: String,
    /// The snapshot that opened the idle window (when there was one).
    pub idle_start: Option<Result<Scrape, ScrapeError>>,
    pub idle_window_s: f64,
    /// From the before snapshot to the after snapshot: what the server's deltas cover.
    pub counted_window_s: f64,
    pub before: Result<Scrape, ScrapeError>,
    pub after: Result<Scrape, ScrapeError>,
    pub settle_polls: u32,
    pub peaks: GaugePeaks,
}

/// Where the server's container logs come from.
pub struct DockerWatch {
    pub client: DockerClient,
    pub container: FoundContainer,
    /// Raw window lines kept for artifacts (the analysis sees every line).
    pub keep_lines: usize,
}

/// Lines kept from the window for artifacts by default.
pub const KEEP_LOG_LINES: usize = 200_000;
/// The PRD's "docker logs --tail 100" before the burst.
pub const TAIL_BEFORE: usize = 100;

/// What the container's logs showed for the burst window.
#[derive(Debug)]
pub struct LogObservation {
    pub container: FoundContainer,
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
    pub tail_before: Result<Vec<TimedLine>, String>,
    /// Findings of the window, or why there are none.
    pub findings: Result<(LogFindings, WindowStats), String>,
    /// Raw lines of the window (`<RFC3339Nano> <text>`), at most `keep_lines`.
    pub raw: Vec<String>,
    /// Set when the container restarted or stopped during the burst.
    pub restarted: Option<String>,
}

/// One line as `docker logs --timestamps` prints it.
pub fn raw_line(l: &TimedLine) -> String {
    match l.ts {
        Some(ts) => format!("{} {}", ts, l.text),
        None => l.text.clone(),
    }
}

async fn container_state(w: &DockerWatch) -> Result<ContainerState, String> {
    w.client.state(&w.container.id).await.map_err(|e| e.to_string())
}

/// Fetch and analyse the window [from, to]; the container state before is checked for a restart.
async fn observe_logs(
    w: DockerWatch,
    from: jiff::Timestamp,
    state_before: Result<ContainerState, String>,
    tail_before: Result<Vec<TimedLine>, String>,
) -> LogObservation {
    let to = jiff::Timestamp::now();
    let state_after = container_state(&w).await;
    let restarted = match (&state_before, &state_after) {
        (Ok(b), Ok(a)) if a.restarted_since(b) => Some(format!(
            "container {} restarted or stopped during the burst (started {:?} -> {:?}, restarts {} -> {}, running: {}): its logs cover more than one server process",
            w.container.name, b.started_at, a.started_at, b.restart_count, a.restart_count, a.running
        )),
        (Err(e), _) | (_, Err(e)) => Some(format!("cannot inspect container {}: {e}", w.container.name)),
        _ => None,
    };
    let mut analyzer = LogAnalyzer::new();
    let mut raw = Vec::new();
    let keep = w.keep_lines;
    let result = {
        let mut sink = |l: TimedLine| {
            if raw.len() < keep {
                raw.push(raw_line(&l));
            }
            analyzer.feed(&LogLine { ts: l.ts, text: l.text });
        };
        w.client.window(&w.container.id, from, to, &mut sink).await
    };
    let findings = match result {
        Ok(stats) => Ok((analyzer.finish(), stats)),
        Err(e) => Err(format!("reading the logs of container {} failed: {e}", w.container.name)),
    };
    LogObservation { container: w.container, from, to, tail_before, findings, raw, restarted }
}

/// Every phase name a burst records in [`BurstOutcome::phases`], in the order they happen.
pub const PHASES: [&str; 6] = ["idle_window", "metrics_before", "logs_before", "load", "settle", "logs"];

/// Everything a burst produced.
pub struct BurstOutcome {
    pub load: LoadOutput,
    pub server: Option<ServerObservation>,
    pub logs: Option<LogObservation>,
    /// Wall time of each phase, seconds.
    pub phases: BTreeMap<&'static str, f64>,
}

/// Run one burst: server snapshots around the load when `watch` is given.
pub async fn run(
    spec: LoadSpec,
    prompts: Arc<PromptSource>,
    watch: Option<ServerWatch>,
    docker: Option<DockerWatch>,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
) -> BurstOutcome {
    // Warm-up requests run first; the server is observed from after them, so
    // its deltas and the log window hold the measured requests only.
    let (warmed_tx, warmed_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let gate = WarmupGate { warmed: warmed_tx, go: go_rx };
    let load = run_load(spec, prompts, cancel.clone(), observer, Some(gate));
    let before = async {
        // An error only means the load ended early (cancelled): observe anyway.
        let _ = warmed_rx.await;
        let pre = observe_before(watch.as_ref(), &docker, &cancel).await;
        let _ = go_tx.send(());
        pre
    };
    let (load, pre) = tokio::join!(load, before);
    let Before { mut phases, idle_start, before, logs_from, state_before, tail_before, sampler } = pre;
    phases.insert("load", load.duration_s);

    let server = match (&watch, before) {
        (Some(w), Some(before)) => {
            let mut peaks = match sampler {
                Some((stop, h)) => {
                    stop.cancel();
                    h.await.unwrap_or_default()
                }
                None => GaugePeaks::default(),
            };
            let t = Instant::now();
            let background_per_s = match (&idle_start, &before) {
                (Some(Ok(a)), Ok(b)) => {
                    let span = b.taken_at.duration_since(a.taken_at).as_secs_f64();
                    crate::server::evaluate::background(&a.exposition, &b.exposition, span, &w.filter)
                        .map_or(0.0, |bg| bg.finished_requests_per_s)
                }
                _ => 0.0,
            };
            let (after, settle_polls) = if before.is_ok() {
                w.metrics.settle(w.settle_max, w.settle_poll, background_per_s).await
            } else {
                // Without a baseline there is nothing to settle against.
                (w.metrics.scrape().await, 1)
            };
            phases.insert("settle", t.elapsed().as_secs_f64());
            if let Ok(a) = &after {
                peaks.observe(&a.exposition, &w.filter);
            }
            // The counters' own span: idle start -> before, and before -> after.
            let span = |a: &Result<Scrape, ScrapeError>, b: &Result<Scrape, ScrapeError>| match (a, b) {
                (Ok(a), Ok(b)) => b.taken_at.duration_since(a.taken_at).as_secs_f64(),
                _ => 0.0,
            };
            let counted_window_s = span(&before, &after);
            Some(ServerObservation {
                metrics_url: w.metrics.url().to_owned(),
                idle_window_s: idle_start.as_ref().map_or(0.0, |s| span(s, &before)),
                idle_start,
                counted_window_s,
                before,
                after,
                settle_polls,
                peaks,
            })
        }
        _ => None,
    };
    let logs = match docker {
        Some(d) => {
            let t = Instant::now();
            let obs = observe_logs(d, logs_from, state_before, tail_before).await;
            phases.insert("logs", t.elapsed().as_secs_f64());
            Some(obs)
        }
        None => None,
    };
    BurstOutcome { load, server, logs, phases }
}

/// Lets `run_load` pause between the warm-up and the measured requests.
pub struct WarmupGate {
    pub warmed: oneshot::Sender<()>,
    pub go: oneshot::Receiver<()>,
}

type Sampler = (CancellationToken, tokio::task::JoinHandle<GaugePeaks>);

/// What was observed before the measured requests.
struct Before {
    phases: BTreeMap<&'static str, f64>,
    idle_start: Option<Result<Scrape, ScrapeError>>,
    before: Option<Result<Scrape, ScrapeError>>,
    logs_from: jiff::Timestamp,
    state_before: Result<ContainerState, String>,
    tail_before: Result<Vec<TimedLine>, String>,
    sampler: Option<Sampler>,
}

/// The idle window, the before snapshot, the log window's start, and the gauge sampler.
async fn observe_before(
    watch: Option<&ServerWatch>,
    docker: &Option<DockerWatch>,
    cancel: &CancellationToken,
) -> Before {
    let mut phases = BTreeMap::new();
    let (mut idle_start, mut before, mut sampler) = (None, None, None);
    if let Some(w) = watch {
        let t = Instant::now();
        if !w.idle_window.is_zero() {
            let first = w.metrics.scrape().await;
            // No point waiting out the window when the first scrape failed.
            if first.is_ok() {
                tokio::select! {
                    _ = tokio::time::sleep(w.idle_window) => {}
                    _ = cancel.cancelled() => {}
                }
            }
            idle_start = Some(first);
        }
        phases.insert("idle_window", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let b = w.metrics.scrape().await;
        phases.insert("metrics_before", t.elapsed().as_secs_f64());
        if b.is_ok() {
            let stop = CancellationToken::new();
            let h =
                tokio::spawn(scrape::sample_gauges(w.metrics.clone(), w.filter.clone(), w.sample_every, stop.clone()));
            sampler = Some((stop, h));
        }
        before = Some(b);
    }
    let t = Instant::now();
    let (logs_from, state_before, tail_before) = logs_start(docker).await;
    if docker.is_some() {
        phases.insert("logs_before", t.elapsed().as_secs_f64());
    }
    Before { phases, idle_start, before, logs_from, state_before, tail_before, sampler }
}

/// Before the load: the window's start, the container state, the last lines.
async fn logs_start(
    docker: &Option<DockerWatch>,
) -> (jiff::Timestamp, Result<ContainerState, String>, Result<Vec<TimedLine>, String>) {
    let from = jiff::Timestamp::now();
    match docker {
        None => (from, Err("no container".into()), Ok(Vec::new())),
        Some(d) => {
            let state = container_state(d).await;
            let tail = d.client.tail(&d.container.id, TAIL_BEFORE).await.map_err(|e| e.to_string());
            (from, state, tail)
        }
    }
}

/// Run the load phase: optional warm-up, then the measured requests.
pub async fn run_load(
    spec: LoadSpec,
    prompts: Arc<PromptSource>,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
    gate: Option<WarmupGate>,
) -> LoadOutput {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let warmup = spec.warmup;
    let shared = Arc::new(Shared { spec, prompts, cancel: cancel.clone(), observer, records: tx });

    if warmup > 0 {
        let c = u64::from(shared.spec.plan.max_in_flight().unwrap_or(1)).clamp(1, warmup);
        closed_loop(&shared, c, StopCondition::Requests(warmup), true, 0, Instant::now()).await;
    }
    if let Some(g) = gate {
        let _ = g.warmed.send(());
        let _ = g.go.await;
    }

    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let probe = lag::LagProbe::start(threads);
    let started_unix = jiff::Timestamp::now();
    let start = Instant::now();
    let first_index = warmup;
    match shared.spec.plan.clone() {
        ArrivalPlan::Concurrency { concurrency } => {
            closed_loop(&shared, u64::from(concurrency), shared.spec.stop, false, first_index, start).await;
        }
        ArrivalPlan::Rate { max_concurrency, .. } => {
            open_loop(&shared, max_concurrency, first_index, start).await;
        }
    }
    let duration_s = start.elapsed().as_secs_f64();
    let ended_unix = jiff::Timestamp::now();
    let receive_lag = probe.finish().await;
    drop(shared);
    let mut records = Vec::new();
    while let Some(r) = rx.recv().await {
        records.push(r);
    }
    records.sort_by_key(|r| r.index);
    LoadOutput {
        records,
        duration_s,
        receive_lag,
        started_at: start,
        started_unix,
        ended_unix,
        cancelled: cancel.is_cancelled(),
    }
}

fn should_stop(stop: StopCondition, issued: u64, start: Instant) -> bool {
    match stop {
        StopCondition::Requests(n) => issued >= n,
        StopCondition::Duration(d) => start.elapsed() >= d,
    }
}

/// `slots` workers, each starting its next request as soon as its last ended.
async fn closed_loop(
    shared: &Arc<Shared>,
    slots: u64,
    stop: StopCondition,
    warmup: bool,
    first_index: u64,
    start: Instant,
) {
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..slots {
        let shared = shared.clone();
        let issued = issued.clone();
        workers.push(tokio::spawn(async move {
            loop {
                if shared.cancel.is_cancelled() {
                    break;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if should_stop(stop, n, start) {
                    break;
                }
                let scheduled_s = start.elapsed().as_secs_f64();
                shared.one(first_index + n, warmup, start, scheduled_s).await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

/// Requests started at absolute deadlines from the plan's offsets.
async fn open_loop(shared: &Arc<Shared>, max_concurrency: Option<u32>, first_index: u64, start: Instant) {
    let Some(offsets) = shared.spec.plan.offsets() else {
        return;
    };
    let limit = max_concurrency.map(|c| Arc::new(Semaphore::new(c as usize)));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, offset) in offsets.enumerate() {
        let n = n as u64;
        let over = match shared.spec.stop {
            StopCondition::Requests(total) => n >= total,
            StopCondition::Duration(d) => offset >= d,
        };
        if over || shared.cancel.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(start + offset) => {}
            _ = shared.cancel.cancelled() => break,
        }
        // A capped plan waits here for a free slot; the wait is scheduling lag.
        let permit = match &limit {
            Some(sem) => tokio::select! {
                p = sem.clone().acquire_owned() => p.ok(),
                _ = shared.cancel.cancelled() => break,
            },
            None => None,
        };
        let shared = shared.clone();
        let scheduled_s = offset.as_secs_f64();
        tasks.spawn(async move {
            shared.one(first_index + n, false, start, scheduled_s).await;
            drop(permit);
        });
        // Reap finished tasks so a long burst does not accumulate handles.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}
