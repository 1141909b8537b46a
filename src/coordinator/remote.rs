//! The load of a distributed burst, seen from the daemon: once the server has been observed
//! before the burst, the shards are offered to the connected workers with one start instant,
//! and the burst waits for every shard to be reported or lost. The shards' records are then
//! the burst's records, as if one process had sent them all.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Assignment, Coordinator, ShardEnd};
use crate::artifacts::RunResult;
use crate::burst::load::{LoadOutput, WarmupGate};
use crate::workload::{Shard, Workload};

/// Between the offer and the measured start: long enough for a polling worker to get its
/// shard, build its client and open its connections.
pub const LEAD: Duration = Duration::from_secs(2);

/// What the daemon hands out: the burst's target and workload, from its configuration.
#[derive(Clone)]
pub struct RemoteLoad {
    pub coordinator: Arc<Coordinator>,
    pub workers: u32,
    pub target_url: url::Url,
    pub model: String,
    pub api_key: Option<String>,
    pub workload: Workload,
}

/// One shard of a distributed burst, as the result reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardReport {
    pub shard: Shard,
    /// The worker that took it (None when no worker did).
    pub worker: Option<String>,
    pub completed: u64,
    pub failed: u64,
    /// Requests per second it delivered over its own measured phase.
    pub request_throughput: f64,
    /// How long after the shared start instant its measured load began, seconds.
    pub start_lag_s: f64,
    /// The worker's own receive lag p99 (its runtime's delay in reading what arrived), seconds.
    pub receive_lag_p99_s: f64,
    /// Why its records are missing, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
}

/// The load's outcome and each shard's report.
pub struct RemoteOutput {
    pub load: LoadOutput,
    pub shards: Vec<ShardReport>,
    /// The shards' own notes, each prefixed with its shard.
    pub notes: Vec<String>,
}

impl RemoteLoad {
    /// Offer the shards after `gate` says go, wait for every one to end, join their records.
    pub async fn run(self, run_id: &str, gate: WarmupGate, cancel: CancellationToken) -> RemoteOutput {
        // Warm-up requests would land after the server's before snapshot: not run (see the note).
        let _ = gate.warmed.send(());
        let _ = gate.go.await;
        let n = self.workers.max(1);
        let start_at = jiff::Timestamp::now() + LEAD;
        let workload = Workload { warmup: 0, ..self.workload.clone() };
        let assignments = (0..n)
            .map(|index| Assignment {
                tool_version: env!("CARGO_PKG_VERSION").to_owned(),
                run_id: run_id.to_owned(),
                shard: Shard { index, count: n },
                start_at,
                target_url: self.target_url.clone(),
                model: self.model.clone(),
                api_key: self.api_key.clone(),
                workload: workload.clone(),
            })
            .collect();
        let c = &self.coordinator;
        c.offer(assignments);
        tracing::info!(run_id, shards = n, connected = c.connected().len(), %start_at, "shards offered to the workers");
        // Shards nobody has taken by the start are lost: a late worker would start late.
        let take_by = Instant::now() + LEAD + Duration::from_secs(1);
        while c.untaken(run_id) > 0 && Instant::now() < take_by && !cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            if c.untaken(run_id) > 0 && Instant::now() >= take_by {
                break;
            }
            if c.ended(run_id, n) || cancel.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = cancel.cancelled() => {}
            }
        }
        let ends = c.close(run_id, n);
        let cancelled = cancel.is_cancelled();
        // Parsing the reports and joining their records is a pass over every record (about a
        // second per million): off the runtime, so the daemon's API keeps answering meanwhile.
        crate::burst::off_the_runtime(|| join(ends, n, start_at, cancelled))
    }
}

/// The shards' ends as one load: reported shards' records joined, lost shards named.
fn join(ends: Vec<ShardEnd>, n: u32, start_at: jiff::Timestamp, cancelled: bool) -> RemoteOutput {
    let mut results: Vec<RunResult> = Vec::new();
    let mut shards = Vec::new();
    for (index, end) in ends.into_iter().enumerate() {
        let shard = Shard { index: index as u32, count: n };
        let lost = |worker: Option<String>, reason: String| ShardReport {
            shard,
            worker,
            completed: 0,
            failed: 0,
            request_throughput: 0.0,
            start_lag_s: 0.0,
            receive_lag_p99_s: 0.0,
            lost: Some(reason),
        };
        match end {
            ShardEnd::Lost { worker, reason } => shards.push(lost(worker, reason)),
            ShardEnd::Reported { worker, report } => {
                if let Some(e) = report.error {
                    shards.push(lost(Some(worker), format!("worker could not run shard {shard}: {e}")));
                    continue;
                }
                let read = RunResult::from_saved(report.result_json.as_bytes(), report.requests_jsonl.as_bytes());
                match read {
                    // A whole plan (1 shard) is recorded without a shard.
                    Ok(r) if r.plan.shard.unwrap_or_default() == shard => {
                        shards.push(ShardReport {
                            shard,
                            worker: Some(worker),
                            completed: r.client.completed,
                            failed: r.client.failed,
                            request_throughput: r.client.request_throughput,
                            start_lag_s: r
                                .plan
                                .start_at
                                .map_or(0.0, |at| r.started_at.duration_since(at).as_secs_f64().max(0.0)),
                            receive_lag_p99_s: r.client.receive_lag.p99_us / 1e6,
                            lost: None,
                        });
                        results.push(r);
                    }
                    Ok(r) => shards.push(lost(
                        Some(worker),
                        format!("the report of shard {shard} holds shard {}", r.plan.shard.unwrap_or_default()),
                    )),
                    Err(e) => shards.push(lost(Some(worker), format!("unreadable report of shard {shard}: {e}"))),
                }
            }
        }
    }
    let joined = match crate::merge::join(&mut results) {
        Ok(j) => j,
        Err(e) => {
            // Overlapping request indices: the reports cannot be one burst's.
            for s in &mut shards {
                s.lost.get_or_insert_with(|| e.clone());
            }
            crate::merge::join(&mut []).expect("joining nothing cannot fail")
        }
    };
    let begin = if results.is_empty() { start_at } else { joined.begin };
    let ago = jiff::Timestamp::now().duration_since(begin);
    let started_at =
        Instant::now().checked_sub(Duration::try_from(ago).unwrap_or_default()).unwrap_or_else(Instant::now);
    let mut notes = joined.notes;
    notes.sort();
    RemoteOutput {
        load: LoadOutput {
            stats: joined.stats,
            records: joined.records,
            duration_s: joined.duration_s,
            receive_lag: joined.lag,
            started_at,
            started_unix: begin,
            ended_unix: if results.is_empty() { begin } else { joined.end },
            cancelled: cancelled || joined.cancelled,
            target_lost: joined.target_lost,
            over_budget: None,
            folded: joined.folded,
            connections_opened_before: 0,
            late_start_s: None,
        },
        shards,
        notes,
    }
}

/// Why the server checks cannot judge this burst, when a shard's records are missing.
pub fn lost_reason(shards: &[ShardReport]) -> Option<String> {
    let lost: Vec<String> =
        shards.iter().filter_map(|s| s.lost.as_ref().map(|why| format!("shard {} lost ({why})", s.shard))).collect();
    (!lost.is_empty()).then(|| {
        format!("{}: the server served requests whose client records are missing, nothing to compare", lost.join("; "))
    })
}
