//! A run's result -> the "last run" gauge series of its target (replaced as a whole by the
//! next run, so a figure the new run lacks disappears instead of going stale), and the figures
//! the counters and histograms take from it.
//!
//! Adding a figure: a [`MetricDef`] in `metrics.rs`, then one `push` in the matching section of
//! [`series`] (client, client vs server, validation, server-only, server logs).

use crate::artifacts::RunResult;
use crate::record::Outcome;
use crate::spool::EachRecord;
use crate::stats::{ClientStats, LatencySummary};
use crate::validate::{Comparison, DockerLogsValidation, Section, Status, Validation};

use super::metrics::{self as m, MetricDef};

/// One gauge sample: its metric, its labels (`target` first, names exactly `def.labels`) and
/// its value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Series {
    pub def: &'static MetricDef,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// Collects the series of one target, dropping values that are not finite numbers.
pub(super) struct SeriesBuilder<'t> {
    target: &'t str,
    pub out: Vec<Series>,
}

impl<'t> SeriesBuilder<'t> {
    pub fn new(target: &'t str) -> SeriesBuilder<'t> {
        SeriesBuilder { target, out: Vec::new() }
    }

    /// A series labelled `target` plus `extra` (in `def.labels` order after `target`).
    pub fn push(&mut self, def: &'static MetricDef, extra: &[&str], value: Option<f64>) {
        let Some(value) = value.filter(|v| v.is_finite()) else { return };
        let mut labels = Vec::with_capacity(1 + extra.len());
        labels.push(("target", self.target.to_owned()));
        for (name, v) in def.labels.iter().skip(1).zip(extra) {
            labels.push((*name, (*v).to_owned()));
        }
        self.out.push(Series { def, labels, value });
    }

    /// `def{target, ..extra, status}` = 1 for `current`, 0 for the other statuses.
    fn state_set(&mut self, def: &'static MetricDef, extra: &[&str], current: Status) {
        for status in [Status::Pass, Status::Warn, Status::Skip] {
            let mut labels: Vec<&str> = extra.to_vec();
            labels.push(status.as_str());
            self.push(def, &labels, Some(bool_value(status == current)));
        }
    }
}

pub(super) fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// How a finished run is counted in `llm_loadtest_runs_total`, with its failure reason.
pub(super) fn classify(result: &RunResult) -> (&'static str, Option<&'static str>) {
    if result.cancelled {
        (m::RESULT_CANCELLED, None)
    } else if result.target_unreachable() {
        (m::RESULT_FAILED, Some(m::REASON_TARGET_UNREACHABLE))
    } else if result.target_lost.is_some() {
        (m::RESULT_FAILED, Some(m::REASON_TARGET_LOST))
    } else if result.all_requests_failed() {
        (m::RESULT_FAILED, Some(m::REASON_ALL_REQUESTS_FAILED))
    } else if result.validation.as_ref().is_some_and(|v| v.overall == Status::Warn) {
        (m::RESULT_WARN, None)
    } else {
        (m::RESULT_SUCCESS, None)
    }
}

/// Measured requests by outcome label: `ok` = completed, the others from the error counts.
pub(super) fn requests_by_outcome(client: &ClientStats) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    Outcome::ALL.into_iter().map(move |o| {
        let label = o.as_label();
        let n = if o == Outcome::Ok { client.completed } else { client.errors.get(label).copied().unwrap_or(0) };
        (label, n)
    })
}

/// The histograms a request's samples go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Figure {
    Ttft,
    Itl,
    Tpot,
    E2e,
}

/// Every per-request sample for the histograms, seconds, to `observe`, one record at a time (a
/// long burst's gaps are too many to gather first): completed measured requests only, as the
/// statistics use (definitions of `stats`).
pub(super) fn each_sample(records: &(impl EachRecord + ?Sized), mut observe: impl FnMut(Figure, f64)) {
    let mut put = |f: Figure, x: f64| {
        if x.is_finite() && x >= 0.0 {
            observe(f, x);
        }
    };
    records.each(&mut |r| {
        if r.warmup || !r.is_ok() {
            return;
        }
        r.ttft_s.into_iter().for_each(|x| put(Figure::Ttft, x));
        r.e2e_s.into_iter().for_each(|x| put(Figure::E2e, x));
        r.chunk_times_s.windows(2).for_each(|w| put(Figure::Itl, w[1] - w[0]));
        if let (Some(t), Some(e), Some(n)) = (r.ttft_s, r.e2e_s, r.completion_tokens)
            && n > 1
        {
            put(Figure::Tpot, (e - t) / (n - 1) as f64);
        }
    });
}

/// Seconds since the epoch of a wall-clock timestamp.
pub(super) fn epoch_seconds(t: jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1e3
}

/// The last-run series of `target` after a run that could not run at all.
pub(super) fn failed_series(target: &str, at_epoch_s: f64) -> Vec<Series> {
    let mut b = SeriesBuilder::new(target);
    b.push(&m::LAST_RUN_TIMESTAMP, &[], Some(at_epoch_s));
    b.push(&m::LAST_RUN_SUCCESS, &[], Some(0.0));
    b.out
}

/// A client-vs-server figure: the check that compares it, its gauge, where the other side
/// comes from (`server` = /metrics, `logs` = container logs), the factor to base units, and the
/// client's own figure for when validation did not run the check.
struct Overlay {
    check: &'static str,
    def: &'static MetricDef,
    other: &'static str,
    scale: f64,
    client: Option<fn(&ClientStats) -> Option<f64>>,
}

const OVERLAYS: [Overlay; 7] = [
    Overlay {
        check: "request_count",
        def: &m::LAST_RUN_COMPLETED_REQUESTS,
        other: m::SOURCE_SERVER,
        scale: 1.0,
        client: Some(|c| Some(c.completed as f64)),
    },
    Overlay {
        check: "prompt_tokens",
        def: &m::LAST_RUN_PROMPT_TOKENS,
        other: m::SOURCE_SERVER,
        scale: 1.0,
        client: Some(|c| Some(c.total_input_tokens as f64)),
    },
    Overlay {
        check: "generation_tokens",
        def: &m::LAST_RUN_OUTPUT_TOKENS,
        other: m::SOURCE_SERVER,
        scale: 1.0,
        client: Some(|c| Some(c.total_output_tokens as f64)),
    },
    Overlay {
        check: "ttft_mean",
        def: &m::LAST_RUN_TTFT_MEAN,
        other: m::SOURCE_SERVER,
        scale: 1e-3,
        client: Some(|c| c.ttft_ms.mean),
    },
    Overlay {
        check: "e2e_latency_mean",
        def: &m::LAST_RUN_E2E_LATENCY_MEAN,
        other: m::SOURCE_SERVER,
        scale: 1e-3,
        client: Some(|c| c.e2el_ms.mean),
    },
    Overlay {
        check: "generation_throughput",
        def: &m::LAST_RUN_OUTPUT_THROUGHPUT,
        other: m::SOURCE_LOGS,
        scale: 1.0,
        client: Some(|c| (c.duration_s > 0.0).then_some(c.output_throughput)),
    },
    // The client side counts warm-up requests too (they are in the log window): only from the check.
    Overlay {
        check: "http_200_count",
        def: &m::LAST_RUN_HTTP_200_RESPONSES,
        other: m::SOURCE_LOGS,
        scale: 1.0,
        client: None,
    },
];

/// A check name fit to be a label value: snake_case, short. Validation's names are code
/// constants; this keeps a free-text name from ever becoming a series.
pub(super) fn bounded_check(check: &str) -> bool {
    (1..=64).contains(&check.len()) && check.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Every validation section of a run, named as the `section` label.
pub(super) fn sections(v: &Validation) -> Vec<(&'static str, &Section)> {
    let mut out = vec![(m::SECTION_PROMETHEUS, &v.prometheus)];
    out.extend(v.docker_logs.as_ref().map(|d| (m::SECTION_DOCKER_LOGS, &d.section)));
    out.extend(v.traces.as_ref().map(|t| (m::SECTION_TRACES, &t.section)));
    out
}

/// The docker-log section of a run when its logs were actually read (a section skipped as a
/// whole, e.g. no container found, has no comparisons and no findings).
pub(super) fn logs_read(result: &RunResult) -> Option<&DockerLogsValidation> {
    result.validation.as_ref()?.docker_logs.as_ref().filter(|d| !d.section.comparisons.is_empty())
}

/// The last-run series of `target` from a finished run.
pub(super) fn series(target: &str, result: &RunResult) -> Vec<Series> {
    let mut b = SeriesBuilder::new(target);
    let client = &result.client;
    let (outcome, _) = classify(result);

    // Run.
    b.push(&m::LAST_RUN_TIMESTAMP, &[], Some(epoch_seconds(result.ended_at)));
    b.push(&m::LAST_RUN_SUCCESS, &[], Some(bool_value(outcome == m::RESULT_SUCCESS)));
    for (&phase, &secs) in &result.phases {
        b.push(&m::LAST_RUN_PHASE_DURATION, &[phase], Some(secs));
    }

    // Shards of a distributed run.
    for shard in &result.shards {
        let index = shard.shard.index.to_string();
        let ran = shard.lost.is_none();
        b.push(&m::LAST_RUN_SHARD_LOST, &[&index], Some(bool_value(!ran)));
        b.push(&m::LAST_RUN_SHARD_REQUEST_THROUGHPUT, &[&index], ran.then_some(shard.request_throughput));
        b.push(&m::LAST_RUN_SHARD_START_LAG, &[&index], ran.then_some(shard.start_lag_s));
    }

    // Client.
    let ms = |v: Option<f64>| v.map(|x| x / 1e3);
    for (def, summary) in [
        (&m::LAST_RUN_TTFT, &client.ttft_ms),
        (&m::LAST_RUN_ITL, &client.itl_ms),
        (&m::LAST_RUN_TPOT, &client.tpot_ms),
        (&m::LAST_RUN_E2E_LATENCY, &client.e2el_ms),
    ] {
        let LatencySummary { median, p90, p99, .. } = summary;
        for (p, v) in m::PERCENTILES.into_iter().zip([median, p90, p99]) {
            b.push(def, &[p], ms(*v));
        }
    }
    let measured_time = client.duration_s > 0.0;
    b.push(&m::LAST_RUN_REQUEST_THROUGHPUT, &[], measured_time.then_some(client.request_throughput));
    b.push(
        &m::LAST_RUN_ERROR_RATIO,
        &[],
        (client.num_requests > 0).then(|| client.failed as f64 / client.num_requests as f64),
    );
    let cb = &client.client_bound;
    for (figure, flag) in m::CLIENT_BOUND_FIGURES.into_iter().zip([cb.ttft, cb.itl, cb.schedule]) {
        b.push(&m::LAST_RUN_CLIENT_BOUND, &[figure], Some(bool_value(flag)));
    }

    // Client vs server: the client's figure (from the check, else its own statistics), the
    // server's when a check produced one.
    // `source="server"` is the server's /metrics, `source="logs"` its container logs.
    let comparisons: Vec<(&str, &Comparison)> = result
        .validation
        .iter()
        .flat_map(sections)
        .flat_map(|(section, s)| s.comparisons.iter().map(move |c| (section, c)))
        .collect();
    for o in &OVERLAYS {
        let section = if o.other == m::SOURCE_LOGS { m::SECTION_DOCKER_LOGS } else { m::SECTION_PROMETHEUS };
        let compared = comparisons.iter().find(|(s, c)| *s == section && c.check == o.check).map(|(_, c)| *c);
        let client_value = compared.and_then(|c| c.client).or_else(|| o.client.and_then(|f| f(client)));
        b.push(o.def, &[m::SOURCE_CLIENT], client_value.map(|v| v * o.scale));
        b.push(o.def, &[o.other], compared.and_then(|c| c.server).map(|v| v * o.scale));
    }

    // Validation.
    match &result.validation {
        None => b.state_set(&m::VALIDATION_OVERALL_STATUS, &[], Status::Skip),
        Some(v) => validation(&mut b, v),
    }

    // Server only (its /metrics).
    if let Some(v) = &result.validation {
        let i = &v.server_info;
        let pct = |v: Option<f64>| v.map(|x| x / 100.0);
        b.push(&m::LAST_RUN_KV_CACHE_USAGE_PEAK, &[m::SOURCE_SERVER], pct(i.peak_kv_cache_usage_pct));
        b.push(&m::LAST_RUN_PREFIX_CACHE_HIT, &[m::SOURCE_SERVER], pct(i.prefix_cache_hit_rate_pct));
        b.push(&m::LAST_RUN_RUNNING_PEAK, &[m::SOURCE_SERVER], i.peak_running);
        b.push(&m::LAST_RUN_WAITING_PEAK, &[m::SOURCE_SERVER], i.peak_waiting);
        b.push(&m::LAST_RUN_BACKGROUND_RATE, &[], i.background_request_rate);
        b.push(&m::LAST_RUN_QUEUE_TIME_MEAN, &[], ms(i.queue_time_mean_ms));
        b.push(&m::LAST_RUN_PREEMPTIONS, &[], i.preemptions);
    }
    // Per request, from vLLM's spans.
    if let Some(t) = result.validation.as_ref().and_then(|v| v.traces.as_ref()) {
        let spread = |b: &mut SeriesBuilder<'_>, def, label: &str, s: &Option<crate::validate::Spread>| {
            if let Some(s) = s {
                for (p, v) in m::PERCENTILES.into_iter().zip([s.p50, s.p90, s.p99]) {
                    b.push(def, &[label, p], Some(v / 1e3));
                }
            }
        };
        for (figure, s) in m::SPAN_DIFFERENCE_FIGURES.into_iter().zip([&t.ttft_diff_ms, &t.e2e_diff_ms]) {
            spread(&mut b, &m::LAST_RUN_SPAN_DIFFERENCE, figure, s);
        }
        let phases = &t.server_breakdown;
        for (phase, s) in m::SERVER_PHASES.into_iter().zip([
            &phases.queue_ms,
            &phases.prefill_ms,
            &phases.decode_ms,
            &phases.inference_ms,
        ]) {
            spread(&mut b, &m::LAST_RUN_SERVER_PHASE, phase, s);
        }
    }
    if let Some(s) = &result.server {
        b.push(&m::LAST_RUN_METRICS_PARSE_ERRORS, &[], s.line_errors_after.map(|n| n as f64));
    }

    // Server logs (the counters are increased in `Exporter::record_run`).
    if let Some(d) = logs_read(result) {
        b.push(&m::LAST_RUN_LOG_ERROR_EVENTS, &[], Some(d.error_events as f64));
        b.push(&m::LAST_RUN_LOG_WARNING_LINES, &[], Some(d.warnings as f64));
        let stat = |key: &str| d.engine_stats.as_ref().and_then(|s| s.get(key)).and_then(serde_json::Value::as_f64);
        let pct = |key: &str| stat(key).map(|x| x / 100.0);
        b.push(&m::LAST_RUN_KV_CACHE_USAGE_PEAK, &[m::SOURCE_LOGS], pct("peak_kv_cache_usage_pct"));
        b.push(&m::LAST_RUN_PREFIX_CACHE_HIT, &[m::SOURCE_LOGS], pct("last_prefix_cache_hit_rate_pct"));
        b.push(&m::LAST_RUN_RUNNING_PEAK, &[m::SOURCE_LOGS], stat("peak_running"));
        b.push(&m::LAST_RUN_WAITING_PEAK, &[m::SOURCE_LOGS], stat("peak_waiting"));
    }
    b.out
}

/// Verdicts: overall and per section as state sets; per check a state set, ok, drift, tolerance.
fn validation(b: &mut SeriesBuilder<'_>, v: &Validation) {
    b.state_set(&m::VALIDATION_OVERALL_STATUS, &[], v.overall);
    for (section, s) in sections(v) {
        b.state_set(&m::VALIDATION_SECTION_STATUS, &[section], s.status);
        if s.status == Status::Skip {
            let reason = bounded_reason(s.reason.as_deref().unwrap_or("no reason given"));
            b.push(&m::VALIDATION_SECTION_SKIP_REASON, &[section, &reason], Some(1.0));
        }
        let mut seen: Vec<&str> = Vec::new();
        for c in &s.comparisons {
            if !bounded_check(&c.check) || seen.contains(&c.check.as_str()) {
                tracing::warn!(section, check = %c.check, "validation check not exported: not a snake_case name, or a duplicate");
                continue;
            }
            seen.push(&c.check);
            let labels = [section, c.check.as_str()];
            b.state_set(&m::VALIDATION_STATUS, &labels, c.status);
            let ok = match c.status {
                Status::Pass => Some(1.0),
                Status::Warn => Some(0.0),
                Status::Skip => None,
            };
            b.push(&m::VALIDATION_OK, &labels, ok);
            let drift = c.diff_pct.filter(|_| c.status != Status::Skip).map(|p| p / 100.0);
            b.push(&m::VALIDATION_DRIFT, &labels, drift);
            b.push(&m::VALIDATION_TOLERANCE, &labels, Some(c.tolerance));
        }
    }
}

/// A skip reason fit to be a label value: numbers (counts, percentages, times) become `#` and
/// the text is cut at 160 characters, so one cause stays one series however its figures vary.
pub(super) fn bounded_reason(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len().min(160));
    let mut in_number = false;
    for c in reason.chars() {
        if out.len() >= 160 {
            break;
        }
        let digit = c.is_ascii_digit() || (in_number && c == '.');
        if digit {
            if !in_number {
                out.push('#');
            }
        } else {
            out.push(c);
        }
        in_number = digit;
    }
    out
}

/// The baseline and regression series of one run, appended to its last-run series.
pub(super) fn baseline_series(target: &str, judged: &[super::baseline::Judged], out: &mut Vec<Series>) {
    let mut b = SeriesBuilder::new(target);
    for j in judged {
        if j.figure == "output_throughput" {
            b.push(&m::BASELINE_OUTPUT_THROUGHPUT, &[], Some(j.baseline));
        } else {
            b.push(&m::BASELINE_LATENCY, &[j.figure], Some(j.baseline));
        }
        b.push(&m::LAST_RUN_REGRESSION, &[j.figure], Some(j.worse_ratio));
    }
    out.append(&mut b.out);
}
