//! The load phase: an optional warm-up, then the measured requests. One worker
//! loop serves every load shape: the schedule (closed loop or absolute
//! open-loop deadlines) and the stop condition are values.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use super::lag;
use super::trace::{self, RequestSampling};
use super::worker::{self, RequestTarget};
use crate::openai::{Endpoint, RequestOptions, build_body};
use crate::record::{FailureFolder, KEPT_PER_FAILURE_RUN, Outcome, ReceiveLag, RequestRecord};
use crate::spool::{Records, SpoolWriter};
use crate::stats::Accumulator;
use crate::workload::{ArrivalPlan, PromptSource, Shard, StopCondition};

/// Everything that defines the load of one burst.
pub struct LoadSpec {
    pub target: Arc<RequestTarget>,
    pub endpoint: Endpoint,
    pub request: RequestOptions,
    pub plan: ArrivalPlan,
    pub stop: StopCondition,
    /// Requests sent before the measured phase, left out of every statistic.
    pub warmup: u64,
    /// Connection failures in a row (burst-wide) that end the burst as `target_lost`; 0 never.
    pub target_lost_after: u64,
    /// Bytes the client may keep in memory for this burst's records and statistics; 0 no limit.
    pub memory_budget_bytes: u64,
    /// Connections to open before the measured start (0: none, `cold_connections`).
    pub prewarm_connections: u32,
    /// The part of the plan this generator runs (`run --shard I/N`); the whole plan by default.
    pub shard: Shard,
    /// The wall-clock instant the measured load starts at (`run --start-at`), shared by the
    /// shards of one burst; None starts at once.
    pub start_at: Option<jiff::Timestamp>,
}

/// A slot's first retry after a connection failure waits this long, doubling up to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a slot waits after `failures` connection failures in a row (bounded exponential).
fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => BACKOFF_FIRST.saturating_mul(1 << (n - 1).min(16)).min(BACKOFF_MAX),
    }
}

/// Called with every finished record (progress bars, live metrics).
pub type RecordObserver = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// The raw outcome of the load phase.
pub struct LoadOutput {
    /// Measured and warm-up records, in the order they finished (spooled to a file).
    pub records: Records,
    /// The statistics of `records`, accumulated as they finished.
    pub stats: Accumulator,
    /// From the first measured send to the end of the last response.
    pub duration_s: f64,
    pub receive_lag: ReceiveLag,
    /// The clock origin of `records` (the measured phase's start).
    pub started_at: Instant,
    pub started_unix: jiff::Timestamp,
    pub ended_unix: jiff::Timestamp,
    pub cancelled: bool,
    /// Set when the burst ended early because the target stopped accepting connections.
    pub target_lost: Option<String>,
    /// Set when the burst ended early because it reached its memory budget.
    pub over_budget: Option<String>,
    /// Runs of connection failures beyond their first records (`records` keeps those).
    pub folded: Vec<crate::record::FoldedFailures>,
    /// Connections opened before the measured start (0 with `cold_connections`).
    pub connections_opened_before: u32,
    /// How late the measured start was after `start_at` (seconds), when it was.
    pub late_start_s: Option<f64>,
}

struct Shared {
    spec: LoadSpec,
    prompts: Arc<PromptSource>,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
    records: mpsc::UnboundedSender<RequestRecord>,
    /// Which requests get a span of their own (when spans are exported).
    sampling: RequestSampling,
    /// Connection failures in a row, burst-wide (any answer resets it).
    connect_failures: AtomicU64,
    /// Cancelled when the target is lost: no new request starts.
    lost: CancellationToken,
    lost_reason: std::sync::OnceLock<String>,
}

impl Shared {
    /// Build, send and measure request `index`, scheduled at `scheduled_s`; its span (if
    /// sampled) is a child of `phase`.
    async fn one(&self, index: u64, warmup: bool, start: Instant, scheduled_s: f64, phase: &Span) -> Outcome {
        let prompt = self.prompts.get(index);
        let body = build_body(self.spec.endpoint, &prompt.text, &self.spec.request);
        let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let record = RequestRecord::new(index, warmup, scheduled_s, scheduled_s, prompt.input_tokens);
        let target = &self.spec.target;
        let span = trace::request_span(phase, &self.sampling, index, &target.request_id(index), &target.url, warmup);
        let traceparent = span.as_ref().and_then(crate::telemetry::traceparent);
        let send = worker::execute(target, body, start, record.clone(), traceparent);
        let record = tokio::select! {
            r = trace::maybe_in(span.as_ref(), send) => r,
            _ = self.cancel.cancelled() => {
                let mut r = record;
                r.outcome = Outcome::Cancelled;
                r.error = Some("the burst was cancelled".into());
                r
            }
        };
        if let Some(s) = &span {
            trace::record_outcome(s, &record);
        }
        if let Some(obs) = &self.observer {
            obs(&record);
        }
        let outcome = record.outcome;
        self.count_connect_failure(outcome);
        let _ = self.records.send(record);
        outcome
    }

    /// Count a connection failure (or reset the count on any answer); past the budget the
    /// target is lost and no new request starts.
    fn count_connect_failure(&self, outcome: Outcome) {
        if !outcome.is_connect_failure() {
            if outcome != Outcome::Cancelled {
                self.connect_failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        let n = self.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let budget = self.spec.target_lost_after;
        if budget > 0 && n >= budget {
            let _ = self
                .lost_reason
                .set(format!("{n} connection failures in a row: the target stopped accepting connections"));
            self.lost.cancel();
        }
    }

    /// No new request may start: cancelled, or the target is lost.
    fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.lost.is_cancelled()
    }
}

/// Lets `run_load` pause between the warm-up and the measured requests.
pub struct WarmupGate {
    pub warmed: oneshot::Sender<()>,
    pub go: oneshot::Receiver<()>,
}

/// Run the load phase: optional warm-up, then the measured requests.
pub async fn run_load(
    spec: LoadSpec,
    prompts: Arc<PromptSource>,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
    gate: Option<WarmupGate>,
) -> LoadOutput {
    let (tx, rx) = mpsc::unbounded_channel();
    // Records are taken in as they finish: a long burst holds none of them (issue 14).
    let lost = CancellationToken::new();
    let over_budget = Arc::new(std::sync::OnceLock::new());
    let budget = Budget { bytes: spec.memory_budget_bytes, stop: lost.clone(), reason: over_budget.clone() };
    let collector = tokio::task::spawn_blocking(move || collect(rx, budget));
    let warmup = spec.warmup;
    let expected = RequestSampling::expected(&spec.plan, spec.stop).map(|n| n.saturating_add(warmup));
    let sampling = RequestSampling::new(expected);
    let shared = Arc::new(Shared {
        spec,
        prompts,
        cancel: cancel.clone(),
        observer,
        records: tx,
        sampling,
        connect_failures: AtomicU64::new(0),
        lost,
        lost_reason: std::sync::OnceLock::new(),
    });

    let shard = shared.spec.shard;
    let warmup_share = shard.share(warmup);
    if warmup_share > 0 {
        let c = shard.share(u64::from(shared.spec.plan.max_in_flight().unwrap_or(1))).clamp(1, warmup_share);
        let span = trace::phase_span("warmup");
        let stop = StopCondition::Requests(warmup_share);
        let warm = closed_loop(&shared, c, stop, true, 0, Instant::now(), &span);
        warm.instrument(span.clone()).await;
    }
    if let Some(g) = gate {
        let _ = g.warmed.send(());
        let _ = g.go.await;
    }

    let prewarm = shared.spec.prewarm_connections;
    let opened =
        if prewarm > 0 && !shared.stopped() { worker::open_connections(&shared.spec.target, prewarm).await } else { 0 };
    let mut late_start_s = None;
    if let Some(at) = shared.spec.start_at {
        // Wait on the wall clock for the instant the other shards start at too.
        let wait = at.duration_since(jiff::Timestamp::now());
        match std::time::Duration::try_from(wait) {
            Ok(d) if !d.is_zero() => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shared.cancel.cancelled() => {}
                }
            }
            _ => late_start_s = Some(-wait.as_secs_f64()),
        }
    }
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let probe = lag::LagProbe::start(threads);
    let started_unix = jiff::Timestamp::now();
    let start = Instant::now();
    let first_index = warmup;
    let span = trace::phase_span("load");
    match shared.spec.plan.clone() {
        ArrivalPlan::Concurrency { concurrency } => {
            let slots = shard.share(u64::from(concurrency)).max(1);
            let stop = match shared.spec.stop {
                StopCondition::Requests(n) => StopCondition::Requests(shard.share(n)),
                d @ StopCondition::Duration(_) => d,
            };
            let load = closed_loop(&shared, slots, stop, false, first_index, start, &span);
            load.instrument(span.clone()).await;
        }
        ArrivalPlan::Rate { max_concurrency, .. } => {
            let cap = max_concurrency.map(|c| shard.share(u64::from(c)).max(1) as u32);
            open_loop(&shared, cap, first_index, start, &span).instrument(span.clone()).await;
        }
    }
    drop(span);
    let duration_s = start.elapsed().as_secs_f64();
    let ended_unix = jiff::Timestamp::now();
    let receive_lag = probe.finish().await;
    let target_lost = shared.lost_reason.get().cloned();
    drop(shared);
    let Collected { records, stats, folded } = match collector.await {
        Ok(c) => c,
        // The collector does no I/O that can panic; if it did, the run has no records left.
        Err(e) => {
            tracing::error!(error = %e, "the records' collector failed");
            Collected { records: Records::default(), stats: Accumulator::default(), folded: Vec::new() }
        }
    };
    LoadOutput {
        records,
        stats,
        duration_s,
        receive_lag,
        started_at: start,
        started_unix,
        ended_unix,
        cancelled: cancel.is_cancelled(),
        target_lost,
        over_budget: over_budget.get().cloned(),
        folded,
        connections_opened_before: opened,
        late_start_s,
    }
}

/// What the collector made of the records.
struct Collected {
    records: Records,
    stats: Accumulator,
    folded: Vec<crate::record::FoldedFailures>,
}

/// The memory a burst may keep; past it, `stop` ends the load (no new request starts).
struct Budget {
    bytes: u64,
    stop: CancellationToken,
    reason: Arc<std::sync::OnceLock<String>>,
}

/// The budget is checked every this many records (a sum of a few capacities).
const BUDGET_CHECK_EVERY: u64 = 1024;

/// Take every record as it finishes, until every sender is gone: fold runs of connection
/// failures, accumulate the statistics and spool what is kept. A blocking thread: the spool
/// writes to a file.
fn collect(mut rx: mpsc::UnboundedReceiver<RequestRecord>, budget: Budget) -> Collected {
    let mut folder = FailureFolder::new(KEPT_PER_FAILURE_RUN);
    let mut stats = Accumulator::default();
    let mut spool = SpoolWriter::new();
    let mut seen = 0u64;
    while let Some(r) = rx.blocking_recv() {
        if let Some(r) = folder.push(r) {
            stats.add(&r);
            spool.push(r);
        }
        seen += 1;
        if budget.bytes > 0 && seen.is_multiple_of(BUDGET_CHECK_EVERY) && budget.reason.get().is_none() {
            let kept = stats.retained_bytes().saturating_add(spool.held_bytes());
            if kept > budget.bytes {
                let _ = budget.reason.set(format!(
                    "the client kept {} MiB for {seen} requests, over its memory budget of {} MiB (memory_budget_mib)",
                    kept >> 20,
                    budget.bytes >> 20
                ));
                budget.stop.cancel();
            }
        }
    }
    Collected { records: spool.finish(), stats, folded: folder.finish() }
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
    phase: &Span,
) {
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..slots {
        let shared = shared.clone();
        let issued = issued.clone();
        let phase = phase.clone();
        workers.push(tokio::spawn(async move {
            // Connection failures of this slot in a row: the next request waits a bounded,
            // growing backoff. It was due when the last one ended, so the wait shows as
            // scheduling lag (the load the dead target did not get is visible).
            let mut failures = 0u32;
            loop {
                let due_s = start.elapsed().as_secs_f64();
                if failures > 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(failures)) => {}
                        _ = shared.cancel.cancelled() => break,
                        _ = shared.lost.cancelled() => break,
                    }
                }
                if shared.stopped() {
                    break;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if should_stop(stop, n, start) {
                    break;
                }
                let index = first_index + shared.spec.shard.plan_index(n);
                let outcome = shared.one(index, warmup, start, due_s, &phase).await;
                failures = if outcome.is_connect_failure() { failures.saturating_add(1) } else { 0 };
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

/// Requests started at absolute deadlines from the plan's offsets.
async fn open_loop(shared: &Arc<Shared>, max_concurrency: Option<u32>, first_index: u64, start: Instant, phase: &Span) {
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
        if over || shared.stopped() {
            break;
        }
        if !shared.spec.shard.owns(n) {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(start + offset) => {}
            _ = shared.cancel.cancelled() => break,
            _ = shared.lost.cancelled() => break,
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
        let phase = phase.clone();
        tasks.spawn(async move {
            shared.one(first_index + n, false, start, scheduled_s, &phase).await;
            drop(permit);
        });
        // Reap finished tasks so a long burst does not accumulate handles.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_record(index: u64) -> RequestRecord {
        let mut r = RequestRecord::new(index, false, 0.0, 0.0, 8);
        r.ttft_s = Some(0.01);
        r.e2e_s = Some(0.1);
        r.chunk_times_s = vec![0.01, 0.05, 0.1];
        r.completion_tokens = Some(3);
        r
    }

    /// Feed `n` records (and `refused` connection failures in a row after them) to a collector.
    fn collected(n: u64, refused: u64, budget_bytes: u64) -> (Collected, Budget) {
        let (tx, rx) = mpsc::unbounded_channel();
        for i in 0..n {
            tx.send(ok_record(i)).unwrap();
        }
        for i in n..n + refused {
            let mut r = RequestRecord::new(i, false, 0.0, 0.0, 8);
            r.outcome = Outcome::ConnectError;
            tx.send(r).unwrap();
        }
        drop(tx);
        let stop = CancellationToken::new();
        let reason = Arc::new(std::sync::OnceLock::new());
        let budget = Budget { bytes: budget_bytes, stop: stop.clone(), reason: reason.clone() };
        (collect(rx, budget), Budget { bytes: budget_bytes, stop, reason })
    }

    #[test]
    fn the_collector_keeps_every_record_folds_refusals_and_accumulates_the_statistics() {
        let (c, budget) = collected(5_000, 500, 0);
        assert!(c.records.is_spooled());
        assert_eq!(c.records.len(), 5_000 + KEPT_PER_FAILURE_RUN);
        assert_eq!(c.folded.len(), 1);
        assert_eq!(c.folded[0].count, 500 - KEPT_PER_FAILURE_RUN as u64);
        let stats = c.stats.finish(1.0, &ReceiveLag::default(), &crate::stats::Slo::default());
        assert_eq!((stats.completed, stats.itl_ms.count), (5_000, 10_000));
        assert!(!budget.stop.is_cancelled(), "no budget, no stop");
    }

    #[test]
    fn a_burst_past_its_memory_budget_is_stopped_and_keeps_its_records() {
        // 24 bytes a request: 100 KB is reached after about 4,000 requests.
        let (c, budget) = collected(10_000, 0, 100_000);
        assert!(budget.stop.is_cancelled(), "no new request may start");
        let why = budget.reason.get().expect("the reason");
        assert!(why.contains("over its memory budget") && why.contains("memory_budget_mib"), "{why}");
        assert_eq!(c.records.len(), 10_000, "every record that finished is kept");
    }

    #[test]
    fn backoff_doubles_from_10ms_to_a_1s_cap() {
        let waits: Vec<u64> = (0..10).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, vec![0, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
