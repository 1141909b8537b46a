//! Observing the server around the load: /metrics snapshots (an idle window,
//! before, gauges sampled during, a settle poll after) and the container's
//! log window through the Docker Engine API. I/O only; the verdicts come later
//! from `validate::assess`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::trace::phase;
use crate::artifacts::SpansObservation;
use crate::docker::{ContainerState, DockerClient, FoundContainer, TimedLine, WindowStats};
use crate::logs::{LogAnalyzer, LogFindings, LogLine};
use crate::promtext::LabelFilter;
use crate::record::RequestRecord;
use crate::server::{GaugePeaks, MetricsClient, Scrape, ScrapeError, scrape};
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
    records: &[RequestRecord],
    cancel: &CancellationToken,
) -> SpansObservation {
    let wanted: BTreeSet<u64> = records.iter().filter(|r| !r.warmup && r.is_ok()).map(|r| r.index).collect();
    let waited = watch.collector.wait_for(&wanted, watch.wait_max, cancel).await;
    SpansObservation {
        request_id_prefix: watch.request_id_prefix.clone(),
        waited_s: waited.as_secs_f64(),
        wait_max_s: watch.wait_max.as_secs_f64(),
        collected: watch.collector.collected(),
    }
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
/// `Received request` lines are counted by the ids starting with `request_id_prefix`.
pub(super) async fn observe_logs(
    w: DockerWatch,
    from: jiff::Timestamp,
    state_before: Result<ContainerState, String>,
    tail_before: Result<Vec<TimedLine>, String>,
    request_id_prefix: String,
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
    let mut analyzer = LogAnalyzer::new().with_request_id_prefix(request_id_prefix);
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

pub(super) type Sampler = (CancellationToken, tokio::task::JoinHandle<GaugePeaks>);

/// What was observed before the measured requests.
pub(super) struct Before {
    pub(super) phases: BTreeMap<&'static str, f64>,
    pub(super) idle_start: Option<Result<Scrape, ScrapeError>>,
    pub(super) before: Option<Result<Scrape, ScrapeError>>,
    pub(super) logs_from: jiff::Timestamp,
    pub(super) state_before: Result<ContainerState, String>,
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
    let (logs_from, state_before, tail_before) = if docker.is_some() {
        let (start, s) = phase("logs_before", logs_start(docker)).await;
        phases.insert("logs_before", s);
        start
    } else {
        logs_start(docker).await
    };
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

/// How to find the server's container.
#[derive(Debug, Clone)]
pub struct LogsSpec {
    pub explicit: Option<String>,
    pub target_port: u16,
}

/// Connect to the Docker Engine and find the container, or say why not.
pub(super) async fn resolve_container(spec: &LogsSpec) -> Result<DockerWatch, String> {
    let client = DockerClient::connect().await.map_err(|e| e.to_string())?;
    let container =
        client.find_container(spec.explicit.as_deref(), spec.target_port).await.map_err(|e| e.to_string())?;
    Ok(DockerWatch { client, container, keep_lines: KEEP_LOG_LINES })
}
