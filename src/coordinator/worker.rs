//! `llm-loadtest worker --coordinator URL`: a load generator that takes shards from a daemon.
//! It polls for work, runs its shard exactly as `run --shard I/N --start-at T` would (the
//! server side is the daemon's), sends a heartbeat every second while it runs, and reports the
//! result and every record. It never chooses a target: everything comes from the assignment.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Assignment, HEARTBEAT_EVERY, Heartbeat, POLL_HOLD, Poll, Report, check_worker_name};
use crate::burst::{self, Target};
use crate::validate::Tolerances;

/// How the worker reaches its coordinator.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The daemon's base URL.
    pub coordinator: url::Url,
    /// The file whose first line is the workers' token (`[workers] token_file` on the daemon).
    pub token_file: PathBuf,
    /// How this worker is named in results and logs.
    pub name: String,
    /// Stop after this many shards (tests, one-shot pods); None: until stopped.
    pub max_shards: Option<u64>,
}

/// A failed poll waits this long before the next (doubling to the cap).
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Attempts to deliver a report before it is given up (the coordinator then counts it lost).
const REPORT_ATTEMPTS: u32 = 5;

/// A default name: the host's name (a pod's name on Kubernetes) and the process id.
pub fn default_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| check_worker_name(h).is_ok());
    let host = host.unwrap_or_else(|| "worker".into());
    let name = format!("{host}-{}", std::process::id());
    name.chars().take(super::MAX_WORKER_NAME).collect()
}

/// Serve shards until `cancel` (or `max_shards`). Errors only for what retrying cannot fix:
/// an unreadable token, a refused token, a daemon that takes no workers.
pub async fn serve(opts: WorkerOptions, cancel: CancellationToken) -> Result<(), String> {
    check_worker_name(&opts.name).map_err(|e| format!("--name {:?}: {e}", opts.name))?;
    let token = crate::burst::plan::read_api_key(None, Some(&opts.token_file))
        .map_err(|e| e.to_string())?
        .ok_or("the token file is empty")?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let base = opts.coordinator.as_str().trim_end_matches('/').to_owned();
    let api = |path: &str| format!("{base}/api/v1/workers/{path}");
    let mut retry = RETRY_FIRST;
    let mut done = 0u64;
    tracing::info!(worker = %opts.name, coordinator = %crate::http::redact_url(&base), "worker started");
    while opts.max_shards.is_none_or(|m| done < m) && !cancel.is_cancelled() {
        let poll = client
            .post(api("poll"))
            .bearer_auth(&token)
            .json(&Poll { worker: opts.name.clone() })
            .timeout(POLL_HOLD + Duration::from_secs(10))
            .send();
        let resp = tokio::select! {
            r = poll => r,
            _ = cancel.cancelled() => break,
        };
        let assignment = match resp {
            Ok(r) if r.status() == reqwest::StatusCode::NO_CONTENT => {
                retry = RETRY_FIRST;
                continue;
            }
            Ok(r) if r.status().is_success() => match r.json::<Assignment>().await {
                Ok(a) => a,
                Err(e) => return Err(format!("the coordinator sent an unreadable assignment: {e}")),
            },
            Ok(r) if matches!(r.status().as_u16(), 401 | 404) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                return Err(format!("the coordinator refused this worker ({status}): {}", text.trim()));
            }
            other => {
                let why = match other {
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => crate::error::describe_reqwest(&e),
                };
                tracing::warn!(worker = %opts.name, "poll failed ({why}); retrying in {retry:?}");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = cancel.cancelled() => break,
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        retry = RETRY_FIRST;
        tracing::info!(worker = %opts.name, run_id = %assignment.run_id, shard = %assignment.shard, "shard taken");
        let report = run_shard(&client, &api("heartbeat"), &token, &opts.name, assignment, &cancel).await;
        deliver(&client, &api("report"), &token, &report).await;
        done += 1;
    }
    Ok(())
}

/// Run one shard with heartbeats; the report of its result, or of why it could not run.
async fn run_shard(
    client: &reqwest::Client,
    heartbeat_url: &str,
    token: &str,
    worker: &str,
    a: Assignment,
    cancel: &CancellationToken,
) -> Report {
    let mut report = Report {
        worker: worker.to_owned(),
        run_id: a.run_id.clone(),
        shard: a.shard.index,
        result_json: String::new(),
        requests_jsonl: String::new(),
        error: None,
    };
    if a.tool_version != env!("CARGO_PKG_VERSION") {
        report.error =
            Some(format!("worker version {} cannot run for coordinator {}", env!("CARGO_PKG_VERSION"), a.tool_version));
        return report;
    }
    let target = Target {
        api_key: a.api_key.clone(),
        // The daemon observes the server around the whole distributed burst.
        skip_validation: true,
        shard: a.shard,
        start_at: Some(a.start_at),
        ..Target::new(a.target_url.clone(), a.model.clone())
    };
    let plan = match burst::plan(&target, &a.workload, Tolerances::default(), &a.run_id) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    let shard_cancel = cancel.child_token();
    let beats = heartbeats(
        client.clone(),
        heartbeat_url.to_owned(),
        token.to_owned(),
        Heartbeat { worker: worker.to_owned(), run_id: a.run_id.clone(), shard: a.shard.index },
        shard_cancel.clone(),
    );
    let beating = tokio::spawn(beats);
    let result = burst::run(plan, a.run_id.clone(), shard_cancel.clone(), None).await;
    beating.abort();
    report.result_json = String::from_utf8_lossy(&crate::artifacts::result_json(&result)).into_owned();
    let mut jsonl = Vec::new();
    if let Err(e) = result.records.write_jsonl(&mut jsonl) {
        tracing::error!(error = %e, "the shard's records could not be read back for the report");
    }
    report.requests_jsonl = String::from_utf8_lossy(&jsonl).into_owned();
    report
}

/// A heartbeat every [`HEARTBEAT_EVERY`]; when the coordinator says the shard is no longer
/// expected (409: it was counted lost, or the burst was cancelled), the shard stops.
async fn heartbeats(client: reqwest::Client, url: String, token: String, hb: Heartbeat, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let sent = client.post(&url).bearer_auth(&token).json(&hb).timeout(HEARTBEAT_EVERY * 3).send().await;
        if let Ok(r) = sent
            && r.status() == reqwest::StatusCode::CONFLICT
        {
            tracing::warn!(run_id = %hb.run_id, shard = hb.shard, "the coordinator no longer expects this shard; stopping it");
            stop.cancel();
            return;
        }
    }
}

async fn deliver(client: &reqwest::Client, url: &str, token: &str, report: &Report) {
    let mut wait = RETRY_FIRST;
    for attempt in 1..=REPORT_ATTEMPTS {
        match client.post(url).bearer_auth(token).json(report).timeout(Duration::from_secs(120)).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::warn!(run_id = %report.run_id, shard = report.shard, "report refused ({status}): {}", text.trim());
                return;
            }
            Err(e) => {
                tracing::warn!(attempt, "report not delivered: {}", crate::error::describe_reqwest(&e));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}
