//! Distributed bursts: the daemon hands the shards of one burst to connected
//! workers (`llm-loadtest worker --coordinator URL`), and takes their records
//! back. This module is the daemon's side of it: the protocol's messages and
//! the table of workers, handed-out shards and reports. The table is a plain
//! state machine driven with explicit instants (tested without I/O);
//! [`Coordinator`] wraps it with a lock and a wake-up for the long polls.
//!
//! A worker runs only what the daemon's configuration says (target, model,
//! load): the assignment carries it, and no worker message can name a URL.
//! A worker that stops sending heartbeats loses its shard; a report for a
//! shard that is not outstanding (late, repeated, another worker's) is refused.

pub mod api;
pub mod remote;
pub mod worker;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::workload::{Shard, Workload};

/// A worker's poll waits this long for work before an empty answer (under the API's timeout).
pub const POLL_HOLD: Duration = Duration::from_secs(5);
/// A worker sends a heartbeat this often while it runs a shard.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// No heartbeat for this long: the worker is gone and its shard lost.
pub const HEARTBEAT_LOST: Duration = Duration::from_secs(6);
/// A worker that polled within this long counts as connected.
pub const CONNECTED_WITHIN: Duration = Duration::from_secs(15);
/// The most workers one burst is shared by (a target's `workers`); it bounds the `shard` label.
pub const MAX_WORKERS: u32 = 256;
/// Names of workers: bounded, so they can label metrics and fill logs safely.
pub const MAX_WORKER_NAME: usize = 64;

/// What one worker runs: one shard of one burst, everything from the daemon's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The coordinator's version: a worker of another version refuses the work.
    pub tool_version: String,
    /// The burst's run id: request ids are `<run_id>-<index>` in every shard, as in one process.
    pub run_id: String,
    pub shard: Shard,
    pub start_at: jiff::Timestamp,
    pub target_url: url::Url,
    pub model: String,
    /// The target's API key, when it has one (workers authenticate before they get it).
    pub api_key: Option<String>,
    pub workload: Workload,
}

/// A worker's poll.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Poll {
    pub worker: String,
}

/// A heartbeat while a shard runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Heartbeat {
    pub worker: String,
    pub run_id: String,
    pub shard: u32,
}

/// A finished shard: its `result.json` and `requests.jsonl`, as `run --save-artifacts` writes
/// them; or why the worker could not run it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Report {
    pub worker: String,
    pub run_id: String,
    pub shard: u32,
    #[serde(default)]
    pub result_json: String,
    #[serde(default)]
    pub requests_jsonl: String,
    /// Set when the shard could not run (its plan was refused on the worker).
    #[serde(default)]
    pub error: Option<String>,
}

/// Why a worker's message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("worker names are 1 to {MAX_WORKER_NAME} characters of [A-Za-z0-9_.-]")]
    BadName,
    #[error("run {run_id} shard {shard} is not outstanding for worker {worker} (finished, lost, or another worker's)")]
    NotOutstanding { worker: String, run_id: String, shard: u32 },
    #[error("run {run_id} shard {shard} was already reported")]
    Duplicate { run_id: String, shard: u32 },
}

pub fn check_worker_name(name: &str) -> Result<(), Refused> {
    let ok = !name.is_empty()
        && name.len() <= MAX_WORKER_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok { Ok(()) } else { Err(Refused::BadName) }
}

/// How a shard ended, as the burst sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardEnd {
    Reported { worker: String, report: Report },
    Lost { worker: Option<String>, reason: String },
}

#[derive(Debug)]
struct Outstanding {
    worker: String,
    last_heard: Instant,
    report: Option<Report>,
}

/// The coordinator's table. Every method takes the current instant.
#[derive(Debug, Default)]
pub struct Table {
    /// Worker name → when it last polled or sent a heartbeat.
    seen: BTreeMap<String, Instant>,
    /// Shards not yet taken, in order.
    queue: VecDeque<Assignment>,
    /// (run id, shard index) → who runs it.
    taken: BTreeMap<(String, u32), Outstanding>,
}

impl Table {
    /// Workers heard from within [`CONNECTED_WITHIN`], by name.
    pub fn connected(&self, now: Instant) -> Vec<String> {
        self.seen.iter().filter(|(_, t)| now.duration_since(**t) <= CONNECTED_WITHIN).map(|(n, _)| n.clone()).collect()
    }

    pub fn offer(&mut self, assignments: impl IntoIterator<Item = Assignment>) {
        self.queue.extend(assignments);
    }

    /// A poll: the first queued shard of a run this worker is not already running, if any.
    pub fn take(&mut self, worker: &str, now: Instant) -> Option<Assignment> {
        self.seen.insert(worker.to_owned(), now);
        let busy = |run_id: &str| self.taken.iter().any(|((r, _), o)| r == run_id && o.worker == worker);
        let pos = self.queue.iter().position(|a| !busy(&a.run_id))?;
        let a = self.queue.remove(pos)?;
        let outstanding = Outstanding { worker: worker.to_owned(), last_heard: now, report: None };
        self.taken.insert((a.run_id.clone(), a.shard.index), outstanding);
        Some(a)
    }

    pub fn heartbeat(&mut self, hb: &Heartbeat, now: Instant) -> Result<(), Refused> {
        self.seen.insert(hb.worker.clone(), now);
        match self.taken.get_mut(&(hb.run_id.clone(), hb.shard)) {
            Some(o) if o.worker == hb.worker && o.report.is_none() => {
                o.last_heard = now;
                Ok(())
            }
            _ => Err(Refused::NotOutstanding { worker: hb.worker.clone(), run_id: hb.run_id.clone(), shard: hb.shard }),
        }
    }

    pub fn report(&mut self, report: Report, now: Instant) -> Result<(), Refused> {
        self.seen.insert(report.worker.clone(), now);
        let key = (report.run_id.clone(), report.shard);
        match self.taken.get_mut(&key) {
            Some(o) if o.worker == report.worker && o.report.is_some() => {
                Err(Refused::Duplicate { run_id: report.run_id, shard: report.shard })
            }
            Some(o) if o.worker == report.worker => {
                o.report = Some(report);
                Ok(())
            }
            _ => Err(Refused::NotOutstanding { worker: report.worker, run_id: report.run_id, shard: report.shard }),
        }
    }

    /// Shards of `run_id` still queued: taken by nobody.
    pub fn untaken(&self, run_id: &str) -> usize {
        self.queue.iter().filter(|a| a.run_id == run_id).count()
    }

    /// Every shard of `run_id` that has ended by `now` (reported, or its worker silent for
    /// [`HEARTBEAT_LOST`]); `None` while one is still running or queued.
    pub fn ended(&self, run_id: &str, shards: u32, now: Instant) -> Option<Vec<u32>> {
        if self.untaken(run_id) > 0 {
            return None;
        }
        let mut done = Vec::new();
        for i in 0..shards {
            match self.taken.get(&(run_id.to_owned(), i)) {
                Some(o) if o.report.is_none() && now.duration_since(o.last_heard) < HEARTBEAT_LOST => return None,
                _ => done.push(i),
            }
        }
        Some(done)
    }

    /// Close `run_id`: every shard's end (queued or silent shards are lost); from now on any
    /// message about the run is refused.
    pub fn close(&mut self, run_id: &str, shards: u32, now: Instant) -> Vec<ShardEnd> {
        self.queue.retain(|a| a.run_id != run_id);
        (0..shards)
            .map(|i| match self.taken.remove(&(run_id.to_owned(), i)) {
                None => ShardEnd::Lost { worker: None, reason: format!("no worker took shard {i}/{shards}") },
                Some(Outstanding { worker, report: Some(report), .. }) => ShardEnd::Reported { worker, report },
                Some(Outstanding { worker, last_heard, report: None }) => ShardEnd::Lost {
                    reason: format!(
                        "worker {worker} stopped reporting shard {i}/{shards} (last heard {:.1} s before the end)",
                        now.duration_since(last_heard).as_secs_f64()
                    ),
                    worker: Some(worker),
                },
            })
            .collect()
    }
}

/// The table behind a lock, and the wake-up of waiting polls.
pub struct Coordinator {
    table: Mutex<Table>,
    offered: tokio::sync::Notify,
    /// The workers' bearer token.
    token: String,
}

impl Coordinator {
    pub fn new(token: String) -> Coordinator {
        Coordinator { table: Mutex::new(Table::default()), offered: tokio::sync::Notify::new(), token }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn connected(&self) -> Vec<String> {
        self.table().connected(Instant::now())
    }

    pub fn offer(&self, assignments: Vec<Assignment>) {
        self.table().offer(assignments);
        self.offered.notify_waiters();
    }

    /// Wait up to `hold` for a shard for `worker`.
    pub async fn poll(&self, worker: &str, hold: Duration) -> Option<Assignment> {
        let deadline = Instant::now() + hold;
        loop {
            // Registered before looking, so an offer between the look and the wait wakes us.
            let offered = self.offered.notified();
            if let Some(a) = self.table().take(worker, Instant::now()) {
                return Some(a);
            }
            if tokio::time::timeout_at(deadline, offered).await.is_err() {
                return None;
            }
        }
    }

    pub fn heartbeat(&self, hb: &Heartbeat) -> Result<(), Refused> {
        self.table().heartbeat(hb, Instant::now())
    }

    pub fn report(&self, report: Report) -> Result<(), Refused> {
        self.table().report(report, Instant::now())
    }

    pub fn untaken(&self, run_id: &str) -> usize {
        self.table().untaken(run_id)
    }

    pub fn ended(&self, run_id: &str, shards: u32) -> bool {
        self.table().ended(run_id, shards, Instant::now()).is_some()
    }

    pub fn close(&self, run_id: &str, shards: u32) -> Vec<ShardEnd> {
        self.table().close(run_id, shards, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(run_id: &str, index: u32, count: u32) -> Assignment {
        Assignment {
            tool_version: "t".into(),
            run_id: run_id.into(),
            shard: Shard { index, count },
            start_at: jiff::Timestamp::UNIX_EPOCH,
            target_url: url::Url::parse("http://127.0.0.1:8000").unwrap(),
            model: "m".into(),
            api_key: None,
            workload: Workload::default(),
        }
    }

    fn report(worker: &str, run_id: &str, shard: u32) -> Report {
        Report {
            worker: worker.into(),
            run_id: run_id.into(),
            shard,
            result_json: "{}".into(),
            requests_jsonl: String::new(),
            error: None,
        }
    }

    #[test]
    fn each_worker_takes_one_shard_of_a_run_and_reports_it_once() {
        let t0 = Instant::now();
        let mut t = Table::default();
        t.offer((0..2).map(|i| assignment("r", i, 2)));
        assert_eq!(t.take("w0", t0).unwrap().shard.index, 0);
        assert!(t.take("w0", t0).is_none(), "a worker runs one shard of a burst at a time");
        assert_eq!(t.take("w1", t0).unwrap().shard.index, 1);
        assert_eq!(t.ended("r", 2, t0), None);
        assert_eq!(
            t.report(report("w1", "r", 0), t0),
            Err(Refused::NotOutstanding { worker: "w1".into(), run_id: "r".into(), shard: 0 })
        );
        t.report(report("w0", "r", 0), t0).unwrap();
        assert_eq!(t.report(report("w0", "r", 0), t0), Err(Refused::Duplicate { run_id: "r".into(), shard: 0 }));
        t.report(report("w1", "r", 1), t0).unwrap();
        assert_eq!(t.ended("r", 2, t0), Some(vec![0, 1]));
        let ends = t.close("r", 2, t0);
        assert!(ends.iter().all(|e| matches!(e, ShardEnd::Reported { .. })), "{ends:?}");
        // After the close, a late report is refused.
        assert!(matches!(t.report(report("w0", "r", 0), t0), Err(Refused::NotOutstanding { .. })));
        assert_eq!(t.connected(t0), ["w0", "w1"]);
        assert!(t.connected(t0 + CONNECTED_WITHIN + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn a_silent_worker_loses_its_shard_and_an_untaken_shard_is_lost() {
        let t0 = Instant::now();
        let mut t = Table::default();
        t.offer((0..3).map(|i| assignment("r", i, 3)));
        t.take("w0", t0).unwrap();
        t.take("w1", t0).unwrap();
        assert_eq!(t.ended("r", 3, t0), None, "shard 2 is still queued");
        assert_eq!(t.untaken("r"), 1);
        let later = t0 + Duration::from_secs(2);
        t.heartbeat(&Heartbeat { worker: "w0".into(), run_id: "r".into(), shard: 0 }, later).unwrap();
        let ends = t.close("r", 3, later + HEARTBEAT_LOST);
        match &ends[1] {
            ShardEnd::Lost { worker, reason } => {
                assert_eq!(worker.as_deref(), Some("w1"));
                assert!(reason.contains("worker w1 stopped reporting shard 1/3"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(ends[2], ShardEnd::Lost { worker: None, reason: "no worker took shard 2/3".into() });
        // A heartbeat for a closed run tells the worker to stop.
        let hb = Heartbeat { worker: "w0".into(), run_id: "r".into(), shard: 0 };
        assert!(t.heartbeat(&hb, later).is_err());
    }

    #[test]
    fn ended_waits_for_heartbeating_workers_only() {
        let t0 = Instant::now();
        let mut t = Table::default();
        t.offer([assignment("r", 0, 1)]);
        t.take("w0", t0).unwrap();
        assert_eq!(t.ended("r", 1, t0 + Duration::from_secs(1)), None);
        assert_eq!(t.ended("r", 1, t0 + HEARTBEAT_LOST), Some(vec![0]), "silent past the limit: ended (lost)");
    }

    #[test]
    fn worker_names_are_bounded() {
        assert!(check_worker_name("gen-0.pod_a").is_ok());
        for bad in ["", "a b", "x/y", &"n".repeat(65)] {
            assert_eq!(check_worker_name(bad), Err(Refused::BadName), "{bad:?}");
        }
    }
}
