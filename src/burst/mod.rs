//! One burst, start to [`RunResult`]: the only place that sequences its steps
//! and times each phase. The `run` command, the daemon's schedule and its
//! trigger API all come here with a [`BurstPlan`] ([`plan::plan`]).
//!
//! 1. find the server's container (Docker Engine API);
//! 2. warm-up requests, then the server observed from after them: two /metrics
//!    snapshots around an idle window (other clients' traffic), the log
//!    window's start and the last lines before it;
//! 3. the measured load, with the server's gauges sampled alongside;
//! 4. settle: poll /metrics until the counters stop moving, the after snapshot;
//! 5. the container's log window for exactly the burst, and meanwhile vLLM's
//!    `llm_request` spans of the completed requests (the OTLP receiver);
//! 6. client statistics, then `validate::assess` on what was observed;
//! 7. the result, with every raw observation kept for the artifacts.

pub mod lag;
pub mod load;
mod observe;
pub mod plan;
pub mod trace;
pub mod worker;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use load::{LoadOutput, LoadSpec, RecordObserver};
pub use observe::{LogsSpec, ServerWatch, SpansWatch, TAIL_BEFORE};
pub use plan::{BurstPlan, Target, plan};
pub use worker::RequestTarget;

use crate::artifacts::{self, LogsSummary, RunResult, ServerSummary, SpansObservation};
use crate::server::{Scrape, ScrapeError};
use crate::stats;
use crate::traces::request_id_prefix;
use crate::validate::{self, ClientSide, ContainerInfo, LogsInput, Observation, PrometheusInputs, TracesInput};
use crate::workload::ArrivalPlan;
use observe::{Before, LogObservation, ServerObservation};

/// Run one burst and assemble its result. Never fails: what could not be
/// observed is a SKIP with its reason, and a cancelled burst keeps what it measured.
/// The whole burst is one span (`trace`), its phases and sampled requests inside it.
pub async fn run(
    plan: BurstPlan,
    run_id: String,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
) -> RunResult {
    let server = plan.spec.target.url.host_str().unwrap_or_default().to_owned();
    let span = trace::run_span(&run_id, &plan.model, &server);
    run_in_span(plan, run_id, cancel, observer).instrument(span).await
}

async fn run_in_span(
    plan: BurstPlan,
    run_id: String,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
) -> RunResult {
    let BurstPlan {
        spec,
        prompts,
        recorded,
        model,
        slo,
        mut watch,
        logs: logs_spec,
        spans: spans_watch,
        tolerances,
        remote,
    } = plan;
    // A fleet named by DNS: every snapshot of this burst reads the replicas found now.
    if let Some(w) = &mut watch {
        w.metrics = w.metrics.pinned().await;
    }
    let mut notes = Vec::new();
    let skipped = prompts.skipped_lines();
    if !skipped.is_empty() {
        notes.push(format!("{} dataset line(s) skipped; first: {:?}", skipped.len(), skipped[0]));
    }
    let (docker, docker_error) = match &logs_spec {
        None => (None, None),
        Some(s) => match observe::resolve_containers(s).await {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e)),
        },
    };

    // Warm-up requests run first; the server is observed from after them, so
    // its deltas and the log window hold the measured requests only.
    let (warmed_tx, warmed_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let gate = load::WarmupGate { warmed: warmed_tx, go: go_rx };
    if remote.as_ref().is_some_and(|r| r.workload.warmup > 0) {
        notes.push(
            "warm-up requests are not run in a distributed burst (they would land inside its server window)".into(),
        );
    }
    let load = async {
        match remote {
            None => (load::run_load(spec, prompts, cancel.clone(), observer, Some(gate)).await, None),
            Some(r) => {
                let o = r.run(&run_id, gate, cancel.clone()).await;
                (o.load, Some((o.shards, o.notes)))
            }
        }
    };
    let before = async {
        // An error only means the load ended early (cancelled): observe anyway.
        let _ = warmed_rx.await;
        let pre = observe::observe_before(watch.as_ref(), &docker, &cancel).await;
        let _ = go_tx.send(());
        pre
    };
    let ((mut out, distributed), pre) = tokio::join!(load, before);
    let (shards, shard_notes) = distributed.unwrap_or_default();
    notes.extend(shard_notes);
    let Before { mut phases, idle_start, before, logs_from, states_before, tail_before, sampler } = pre;
    phases.insert("load", out.duration_s);
    // vLLM exports spans in batches (every 5 s): wait for them while /metrics settles.
    let spans = async {
        match &spans_watch {
            Some(w) => Some(trace::phase("spans", observe::observe_spans(w, &out.records, &cancel)).await.0),
            None => None,
        }
    };
    let server_and_logs = async {
        let server = observe::observe_after(watch.as_ref(), before, idle_start, sampler, &mut phases).await;
        let logs = match docker {
            Some(d) => {
                let prefix = request_id_prefix(&run_id);
                let read = observe::observe_logs(d, logs_from, states_before, tail_before, prefix);
                let (obs, s) = trace::phase("logs", read).await;
                phases.insert("logs", s);
                Some(obs)
            }
            None => None,
        };
        (server, logs)
    };
    let ((server, logs), spans) = tokio::join!(server_and_logs, spans);
    drop(spans_watch);
    if let Some(s) = &spans {
        phases.insert("spans", s.waited_s);
    }

    let mut client = std::mem::take(&mut out.stats).finish(out.duration_s, &out.receive_lag, &slo);
    stats::add_folded(&mut client, &out.folded);
    // No container was named and none was found (no Docker Engine here, as in a Kubernetes pod,
    // or no container publishes the port): there is no log section to judge, which is not a
    // section that failed. A named container that cannot be read is a SKIP, which alerts.
    let logs_not_sought = match (&logs_spec, &logs) {
        (Some(spec), None) if spec.source.is_none() => Some(format!(
            "container logs not read: no `container` given, and none found by the target's port ({})",
            docker_error.as_deref().unwrap_or("not found")
        )),
        _ => None,
    };
    if let Some(n) = &logs_not_sought {
        notes.push(n.clone());
    }
    let observation = Observation {
        prometheus: server.as_ref().map(|s| prometheus_inputs(s, &model)),
        logs: logs_spec.as_ref().filter(|_| logs_not_sought.is_none()).map(|_| logs_input(docker_error, logs.as_ref())),
        traces: server.as_ref().and(spans.as_ref()).map(traces_input),
    };
    let client_side = ClientSide {
        stats: &client,
        records: &out.records,
        endpoint: recorded.endpoint,
        load: (out.started_unix, out.ended_unix),
    };
    let mut validation = trace::phase_span("validate")
        .in_scope(|| off_the_runtime(|| validate::assess(&observation, &client_side, &tolerances)));
    if let Some(reason) = crate::coordinator::remote::lost_reason(&shards) {
        validation = validation.map(|v| v.without_verdicts(&reason));
        notes.push(reason);
    }
    drop(observation);

    let mut snapshots = server.as_ref().map(raw_snapshots).unwrap_or_default();
    if let Some(o) = &logs {
        let mut window = o.raw.join("\n");
        window.push('\n');
        snapshots.push((artifacts::LOGS_WINDOW, window));
        if let Ok(tail) = &o.tail_before {
            let text: String = tail.iter().map(|l| observe::raw_line(l) + "\n").collect();
            snapshots.push((artifacts::LOGS_TAIL_BEFORE, text));
        }
    }
    if let Some(s) = &spans {
        snapshots.push((artifacts::SPANS_JSON, artifacts::spans_json(s)));
    }
    if !client.tokens_from_usage && client.completed > 0 {
        notes.push("the server sent no `usage`: token counts are chunk counts (approximate)".into());
    }
    notes.extend(client.client_bound.reasons.iter().cloned());
    if let Some(late) = out.late_start_s.filter(|s| *s > 0.1) {
        notes.push(format!("the measured load started {late:.1} s after --start-at (it was reached late)"));
    }
    if out.connections_opened_before > 0 {
        notes.push(format!(
            "{} connections opened before the measured start (cold_connections = true measures them instead)",
            out.connections_opened_before
        ));
    }
    if let Some(why) = &out.target_lost {
        notes.push(format!("the burst ended early (target_lost): {why}"));
    }
    if let Some(why) = &out.over_budget {
        notes.push(format!("the burst ended early (memory_budget): {why}"));
    }
    let (request_rate, max_concurrency) = match &recorded.arrival {
        ArrivalPlan::Concurrency { concurrency } => (serde_json::Value::from("inf"), Some(*concurrency)),
        ArrivalPlan::Rate { rate, max_concurrency, .. } => (serde_json::Value::from(*rate), *max_concurrency),
    };
    RunResult {
        schema_version: artifacts::RESULT_SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        run_id,
        date: out.started_unix.strftime("%Y%m%d-%H%M%S").to_string(),
        model_id: model,
        num_prompts: client.num_requests,
        request_rate,
        max_concurrency,
        plan: recorded,
        started_at: out.started_unix,
        ended_at: out.ended_unix,
        cancelled: out.cancelled,
        target_lost: out.target_lost,
        memory_budget_exceeded: out.over_budget,
        folded_failures: out.folded,
        client,
        shards,
        validation,
        server: server.as_ref().map(server_summary),
        logs: logs.as_ref().map(logs_summary),
        phases,
        notes,
        records: out.records,
        start_instant: Some(out.started_at.into_std()),
        snapshots,
    }
}

/// Run `f`, which reads the records back from their spool (file I/O: seconds for a burst of
/// millions), without stalling the runtime's other tasks (a daemon's API) where the runtime
/// allows it (a multi-thread one).
pub(crate) fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn exposition(r: &Result<Scrape, ScrapeError>) -> Result<&crate::promtext::Exposition, String> {
    r.as_ref().map(|s| &s.exposition).map_err(ToString::to_string)
}

fn prometheus_inputs<'a>(obs: &'a ServerObservation, model: &'a str) -> PrometheusInputs<'a> {
    PrometheusInputs {
        before: exposition(&obs.before),
        after: exposition(&obs.after),
        idle_start: obs.idle_start.as_ref().and_then(|r| r.as_ref().ok()).map(|s| &s.exposition),
        idle_window_s: obs.idle_window_s,
        counted_window_s: obs.counted_window_s,
        model,
        peaks: obs.peaks,
    }
}

fn traces_input(s: &SpansObservation) -> TracesInput<'_> {
    TracesInput::Collected {
        collected: &s.collected,
        request_id_prefix: &s.request_id_prefix,
        waited_s: s.waited_s,
        wait_max_s: s.wait_max_s,
    }
}

fn logs_input(docker_error: Option<String>, obs: Option<&LogObservation>) -> LogsInput<'_> {
    let Some(obs) = obs else {
        let reason = format!("container logs: {}", docker_error.unwrap_or_else(|| "not read".into()));
        return LogsInput::Unavailable { reason, containers: Vec::new() };
    };
    let containers = obs
        .containers
        .iter()
        .map(|c| ContainerInfo { id: c.id.clone(), name: c.name.clone(), image: c.image.clone(), rule: c.rule.clone() })
        .collect();
    match &obs.findings {
        Err(e) => LogsInput::Unavailable { reason: e.clone(), containers },
        Ok((findings, _)) => LogsInput::Read { containers, findings, restarted: obs.restarted.clone() },
    }
}

fn server_summary(obs: &ServerObservation) -> ServerSummary {
    ServerSummary {
        metrics_url: obs.metrics_url.clone(),
        replicas: obs.replicas.clone(),
        idle_window_s: obs.idle_window_s,
        counted_window_s: obs.counted_window_s,
        settle_polls: obs.settle_polls,
        scrape_before_ms: obs.before.as_ref().ok().map(|s| s.elapsed_s * 1e3),
        scrape_after_ms: obs.after.as_ref().ok().map(|s| s.elapsed_s * 1e3),
        line_errors_after: obs.after.as_ref().ok().map(|s| s.exposition.line_errors.len()),
        peaks: obs.peaks,
    }
}

fn logs_summary(o: &LogObservation) -> LogsSummary {
    LogsSummary {
        container: o.containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
        containers: if o.containers.len() > 1 {
            o.containers.iter().map(|c| c.name.clone()).collect()
        } else {
            Vec::new()
        },
        from: o.from,
        to: o.to,
        lines: o.findings.as_ref().map(|(_, w)| w.delivered).ok(),
        kept_lines: o.raw.len() as u64,
    }
}

/// The scrapes' raw text, as the artifacts keep it.
fn raw_snapshots(obs: &ServerObservation) -> Vec<(&'static str, String)> {
    let mut snaps = Vec::new();
    if let Some(Ok(s)) = &obs.idle_start {
        snaps.push((artifacts::SNAPSHOT_IDLE_START, s.text.clone()));
    }
    for (name, r) in [(artifacts::SNAPSHOT_BEFORE, &obs.before), (artifacts::SNAPSHOT_AFTER, &obs.after)] {
        if let Ok(s) = r {
            snaps.push((name, s.text.clone()));
        }
    }
    snaps
}
