//! Observing the server around the load: /metrics snapshots (an idle window,
//! before, gauges sampled during, a settle poll after) and the container's
//! log window through the Docker Engine API. I/O only; the verdicts come later
//! from `validate::assess`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::trace::phase;
use crate::artifacts::SpansObservation;
use crate::docker::{ContainerSource, ContainerState, DockerClient, FoundContainer, TimedLine, WindowStats};
use crate::logs::{LogAnalyzer, LogFindings, LogLine};
use crate::promtext::LabelFilter;
use crate::server::{GaugePeaks, MetricsClient, Scrape, ScrapeError, scrape};
use crate::spool::EachRecord;
use crate::traces::Collector;

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
    /// A fleet's replicas, by name; empty for a single server.
    pub replicas: Vec<String>,
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

/// This burst's share of the OTLP receiver.
pub struct SpansWatch {
    pub collector: Collector,
    pub request_id_prefix: String,
    /// How long to wait after the load for the spans of every completed request.
    pub wait_max: Duration,
}

/// Wait for the spans of the measured requests that completed; what arrived, and how long it took.
pub async fn observe_spans(
    watch: &SpansWatch,
    records: &(impl EachRecord + ?Sized),
    cancel: &CancellationToken,
) -> SpansObservation {
    let mut wanted = BTreeSet::new();
    super::off_the_runtime(|| {
        records.each(&mut |r| {
            if !r.warmup && r.is_ok() {
                wanted.insert(r.index);
            }
        })
    });
    let waited = watch.collector.wait_for(&wanted, watch.wait_max, cancel).await;
    SpansObservation {
        request_id_prefix: watch.request_id_prefix.clone(),
        waited_s: waited.as_secs_f64(),
        wait_max_s: watch.wait_max.as_secs_f64(),
        collected: watch.collector.collected(),
    }
}

/// Where the server's container logs come from: one container, or every container of a fleet.
pub struct DockerWatch {
    pub client: DockerClient,
    /// At least one; more than one for a fleet, in the order the target names them.
    pub containers: Vec<FoundContainer>,
    /// Raw window lines kept for artifacts (the analysis sees every line).
    pub keep_lines: usize,
}

impl DockerWatch {
    fn is_fleet(&self) -> bool {
        self.containers.len() > 1
    }
}

/// Lines kept from the window for artifacts by default.
pub const KEEP_LOG_LINES: usize = 200_000;
/// The PRD's "docker logs --tail 100" before the burst.
pub const TAIL_BEFORE: usize = 100;

/// What the containers' logs showed for the burst window.
#[derive(Debug)]
pub struct LogObservation {
    pub containers: Vec<FoundContainer>,
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
    pub tail_before: Result<Vec<TimedLine>, String>,
    /// Findings of the window (a fleet's containers together), or why there are none.
    pub findings: Result<(LogFindings, WindowStats), String>,
    /// Raw lines of the window (`<RFC3339Nano> <text>`), at most `keep_lines`; a fleet's
    /// containers one after the other, each after its [`crate::logs::replica_header`].
    pub raw: Vec<String>,
    /// Set when a container restarted or stopped during the burst.
    pub restarted: Option<String>,
}

/// One line as `docker logs --timestamps` prints it.
pub fn raw_line(l: &TimedLine) -> String {
    match l.ts {
        Some(ts) => format!("{} {}", ts, l.text),
        None => l.text.clone(),
    }
}

/// A fleet part's header, as a line without a timestamp.
fn header_line(container: &FoundContainer) -> TimedLine {
    TimedLine { ts: None, stream: crate::docker::Stream::Stdout, text: crate::logs::replica_header(&container.name) }
}

/// Each container's state, in order.
async fn container_states(w: &DockerWatch) -> Vec<Result<ContainerState, String>> {
    let mut states = Vec::with_capacity(w.containers.len());
    for c in &w.containers {
        states.push(w.client.state(&c.id).await.map_err(|e| format!("cannot inspect container {}: {e}", c.name)));
    }
    states
}

/// Fetch and analyse the window [from, to] of every container; each one's state before is
/// checked for a restart. `Received request` lines are counted by the ids starting with
/// `request_id_prefix`. A fleet's containers are analysed as replicas of one server, and a
/// container whose logs cannot be read makes the whole window unreadable (never a silent
/// undercount).
pub(super) async fn observe_logs(
    w: DockerWatch,
    from: jiff::Timestamp,
    states_before: Vec<Result<ContainerState, String>>,
    tail_before: Result<Vec<TimedLine>, String>,
    request_id_prefix: String,
) -> LogObservation {
    let to = jiff::Timestamp::now();
    let states_after = container_states(&w).await;
    let mut restarts = Vec::new();
    for ((c, before), after) in w.containers.iter().zip(&states_before).zip(&states_after) {
        match (before, after) {
            (Ok(b), Ok(a)) if a.restarted_since(b) => restarts.push(format!(
                "container {} restarted or stopped during the burst (started {:?} -> {:?}, restarts {} -> {}, running: {}): its logs cover more than one server process",
                c.name, b.started_at, a.started_at, b.restart_count, a.restart_count, a.running
            )),
            (Err(e), _) | (_, Err(e)) => restarts.push(e.clone()),
            _ => {}
        }
    }
    let mut analyzer = LogAnalyzer::new().with_request_id_prefix(request_id_prefix);
    let mut raw = Vec::new();
    let keep = w.keep_lines;
    let mut stats = WindowStats::default();
    let mut failed = None;
    for (i, c) in w.containers.iter().enumerate() {
        if w.is_fleet() {
            analyzer.start_replica(i as u32);
            if raw.len() < keep {
                raw.push(raw_line(&header_line(c)));
            }
        }
        let mut sink = |l: TimedLine| {
            if raw.len() < keep {
                raw.push(raw_line(&l));
            }
            analyzer.feed(&LogLine { ts: l.ts, text: l.text });
        };
        match w.client.window(&c.id, from, to, &mut sink).await {
            Ok(s) => stats.add(&s),
            Err(e) => {
                failed = Some(format!("reading the logs of container {} failed: {e}", c.name));
                break;
            }
        }
    }
    let findings = match failed {
        None => Ok((analyzer.finish(), stats)),
        Some(e) => Err(e),
    };
    let restarted = (!restarts.is_empty()).then(|| restarts.join("; "));
    LogObservation { containers: w.containers, from, to, tail_before, findings, raw, restarted }
}

pub(super) type Sampler = (CancellationToken, tokio::task::JoinHandle<GaugePeaks>);

/// What was observed before the measured requests.
pub(super) struct Before {
    pub(super) phases: BTreeMap<&'static str, f64>,
    pub(super) idle_start: Option<Result<Scrape, ScrapeError>>,
    pub(super) before: Option<Result<Scrape, ScrapeError>>,
    pub(super) logs_from: jiff::Timestamp,
    pub(super) states_before: Vec<Result<ContainerState, String>>,
    pub(super) tail_before: Result<Vec<TimedLine>, String>,
    pub(super) sampler: Option<Sampler>,
}

/// The idle window, the before snapshot, the log window's start, and the gauge sampler.
pub(super) async fn observe_before(
    watch: Option<&ServerWatch>,
    docker: &Option<DockerWatch>,
    cancel: &CancellationToken,
) -> Before {
    let mut phases = BTreeMap::new();
    let (mut before, mut sampler) = (None, None);
    let mut idle_start = None;
    if let Some(w) = watch {
        let idle = async {
            if w.idle_window.is_zero() {
                return None;
            }
            let first = w.metrics.scrape().await;
            // No point waiting out the window when the first scrape failed.
            if first.is_ok() {
                tokio::select! {
                    _ = tokio::time::sleep(w.idle_window) => {}
                    _ = cancel.cancelled() => {}
                }
            }
            Some(first)
        };
        let (first, s) = phase("idle_window", idle).await;
        idle_start = first;
        phases.insert("idle_window", s);
        let (b, s) = phase("metrics_before", w.metrics.scrape()).await;
        phases.insert("metrics_before", s);
        if b.is_ok() {
            let stop = CancellationToken::new();
            let h =
                tokio::spawn(scrape::sample_gauges(w.metrics.clone(), w.filter.clone(), w.sample_every, stop.clone()));
            sampler = Some((stop, h));
        }
        before = Some(b);
    }
    let (logs_from, states_before, tail_before) = if docker.is_some() {
        let (start, s) = phase("logs_before", logs_start(docker)).await;
        phases.insert("logs_before", s);
        start
    } else {
        logs_start(docker).await
    };
    Before { phases, idle_start, before, logs_from, states_before, tail_before, sampler }
}

/// Before the load: the window's start, each container's state, the last lines (a fleet's
/// containers one after the other, each after its header).
async fn logs_start(
    docker: &Option<DockerWatch>,
) -> (jiff::Timestamp, Vec<Result<ContainerState, String>>, Result<Vec<TimedLine>, String>) {
    let from = jiff::Timestamp::now();
    let Some(d) = docker else { return (from, Vec::new(), Ok(Vec::new())) };
    let states = container_states(d).await;
    let mut tail = Vec::new();
    for c in &d.containers {
        if d.is_fleet() {
            tail.push(header_line(c));
        }
        match d.client.tail(&c.id, TAIL_BEFORE).await {
            Ok(lines) => tail.extend(lines),
            Err(e) => return (from, states, Err(format!("container {}: {e}", c.name))),
        }
    }
    (from, states, Ok(tail))
}

/// After the load: stop the gauge sampler, settle, take the after snapshot. None without a
/// watch (or without a before snapshot, which only a cancelled burst lacks).
pub(super) async fn observe_after(
    watch: Option<&ServerWatch>,
    before: Option<Result<Scrape, ScrapeError>>,
    idle_start: Option<Result<Scrape, ScrapeError>>,
    sampler: Option<Sampler>,
    phases: &mut BTreeMap<&'static str, f64>,
) -> Option<ServerObservation> {
    let (w, before) = (watch?, before?);
    let mut peaks = match sampler {
        Some((stop, h)) => {
            stop.cancel();
            h.await.unwrap_or_default()
        }
        None => GaugePeaks::default(),
    };
    let background_per_s = match (&idle_start, &before) {
        (Some(Ok(a)), Ok(b)) => {
            let span = b.taken_at.duration_since(a.taken_at).as_secs_f64();
            crate::server::catalogue::background(&a.exposition, &b.exposition, span, &w.filter)
                .map_or(0.0, |bg| bg.finished_requests_per_s)
        }
        _ => 0.0,
    };
    let settle = async {
        if before.is_ok() {
            w.metrics.settle(w.settle_max, w.settle_poll, background_per_s).await
        } else {
            // Without a baseline there is nothing to settle against.
            (w.metrics.scrape().await, 1)
        }
    };
    let ((after, settle_polls), s) = phase("settle", settle).await;
    phases.insert("settle", s);
    if let Ok(a) = &after {
        peaks.observe(&a.exposition, &w.filter);
    }
    // The counters' own span: idle start -> before, and before -> after.
    let span = |a: &Result<Scrape, ScrapeError>, b: &Result<Scrape, ScrapeError>| match (a, b) {
        (Ok(a), Ok(b)) => b.taken_at.duration_since(a.taken_at).as_secs_f64(),
        _ => 0.0,
    };
    Some(ServerObservation {
        metrics_url: w.metrics.url().to_owned(),
        replicas: w.metrics.replica_names(),
        idle_window_s: idle_start.as_ref().map_or(0.0, |s| span(s, &before)),
        counted_window_s: span(&before, &after),
        idle_start,
        before,
        after,
        settle_polls,
        peaks,
    })
}

/// How to find the server's containers.
#[derive(Debug, Clone)]
pub struct LogsSpec {
    /// As configured; `None`: the one container serving the target's port.
    pub source: Option<ContainerSource>,
    pub target_port: u16,
}

/// Connect to the Docker Engine and find the containers, or say why not.
pub(super) async fn resolve_containers(spec: &LogsSpec) -> Result<DockerWatch, String> {
    let client = DockerClient::connect().await.map_err(|e| e.to_string())?;
    let containers = match &spec.source {
        None => vec![client.find_container(None, spec.target_port).await.map_err(|e| e.to_string())?],
        Some(ContainerSource::Named(names)) => {
            let mut found = Vec::with_capacity(names.len());
            for name in names {
                found.push(client.find_container(Some(name), spec.target_port).await.map_err(|e| e.to_string())?);
            }
            found
        }
        Some(ContainerSource::Label(label)) => client.find_by_label(label).await.map_err(|e| e.to_string())?,
    };
    Ok(DockerWatch { client, containers, keep_lines: KEEP_LOG_LINES })
}
