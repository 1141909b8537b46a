//! The daemon's own `/metrics`: every `llm_loadtest_*` metric, updated from each run's result.
//!
//! - `metrics.rs` defines every metric (name, help, type, labels) and every label set;
//!   [`METRIC_NAMES`] is the contract with dashboards and alert rules.
//! - `last_run.rs` turns a [`RunResult`] into the "last run" gauge series of its target.
//! - This file owns the state and the encoding.
//!
//! Shape (blackbox_exporter style: a failed or drifting run is a metric value, never a scrape
//! error):
//! - **Counters and histograms** accumulate over runs (`runs_total{result}`,
//!   `requests_total{outcome}`, tokens, TTFT/ITL/TPOT/E2E histograms with one observation per
//!   completed measured request). Every per-target counter and histogram series exists from
//!   start-up at 0, so "never ran" is explicit and `increase()` sees the first run.
//! - **Last-run gauges** describe the latest run of each target and are replaced as a whole by
//!   the next one (encoded at scrape time from a snapshot, so a figure the new run lacks
//!   disappears instead of going stale). Absent before the first run.
//! - **Verdicts** are state sets: `llm_loadtest_validation_status{target,check,status}` is 1
//!   for the current status and 0 for the two others (PASS, WARN, SKIP), so a skipped check
//!   stays visible and `sum by (status)` counts checks; `llm_loadtest_validation_ok` (1 PASS,
//!   0 WARN, absent on SKIP) is the one to alert on; `llm_loadtest_validation_drift_ratio` the
//!   signed (client − server) / server. The same state-set encoding holds the overall and
//!   per-section verdicts.
//! - **Client vs server** figures share a name and differ by `source` (`client`, `server` =
//!   its /metrics, `logs` = its container logs), so one panel overlays them.
//! - Labels carry configured names (`target`, `model`) and fixed sets only; the model is on
//!   `llm_loadtest_target_info` (join on `target`), not repeated on every series.
//! - Last-run latency percentiles are labelled `percentile` (`p50`, `p90`, `p99`), not
//!   `quantile`: Prometheus reserves `quantile` for summaries (`promtool check metrics`
//!   reports it on a gauge) and prometheus-client cannot emit a summary. Dashboards that want
//!   any quantile use `histogram_quantile` over the histograms.
//!
//! Format: [`Exporter::encode`] is OpenMetrics 1.0 (serve it with [`Exporter::CONTENT_TYPE`]:
//! Prometheus 3 refuses a scrape without a valid content type). [`Exporter::encode_text`] is the
//! same content in the classic text format 0.0.4 (counters' `# TYPE` named `..._total`), for
//! scrapers that do not ask for OpenMetrics and for `promtool check metrics`, which reads only
//! the classic format; [`Exporter::encode_for_accept`] picks one from an `Accept` header.
//!
//! Restarts: counters and histograms start from 0 at every start, as in any exporter, and
//! `process_start_time_seconds` says when. Prometheus' `rate()` and `increase()` read a drop to
//! 0 as a reset and count only what came after it. Restoring them from the history instead made
//! them come back *lower* than before whenever the retention had dropped runs, which
//! `increase()` read as a reset plus the whole restored total (false pages), and mixed weeks of
//! old runs into the histograms. (prometheus-client 0.25 cannot write `_created` samples, so
//! there are none.) What is state, not a count, is restored: [`Exporter::restore_run`] and
//! [`Exporter::restore_failure`] replay the history into the last-run gauges, the last-success
//! time, the failed-run streak and the performance baselines.

mod baseline;
mod last_run;
mod metrics;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::artifacts::RunResult;

pub use metrics::*;

use last_run::Series;

/// The daemon's metrics. Cheap to clone (one `Arc`); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Exporter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    metrics: Arc<Metrics>,
}

type HistogramFamily = Family<TargetLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn token_latency_histogram() -> Histogram {
    Histogram::new(TOKEN_LATENCY_BUCKETS)
}

/// The accumulating families (updated in place) and the state the gauges are encoded from.
/// Every update and every encoding holds `state`, so a scrape never sees half a run.
#[derive(Debug)]
struct Metrics {
    version: String,
    start_time_s: f64,
    /// Set at each scrape by a daemon that takes workers.
    workers_connected: Mutex<Option<usize>>,
    state: Mutex<BTreeMap<String, TargetState>>,
    runs: Family<RunLabels, Counter>,
    run_failures: Family<FailureLabels, Counter>,
    requests: Family<OutcomeLabels, Counter>,
    prompt_tokens: Family<TargetLabels, Counter>,
    output_tokens: Family<TargetLabels, Counter>,
    ttft: HistogramFamily,
    itl: HistogramFamily,
    tpot: HistogramFamily,
    e2e: HistogramFamily,
    log_error_events: Family<TargetLabels, Counter>,
    log_warning_lines: Family<TargetLabels, Counter>,
    scheduled_runs_skipped: Family<TargetLabels, Counter>,
    history_write_errors: Counter,
    validation_checks: Family<CheckLabels, Counter>,
    validation_sections: Family<SectionLabels, Counter>,
    regressions: Family<FigureLabels, Counter>,
}

#[derive(Debug)]
struct TargetState {
    model: String,
    running: bool,
    schedule_interval_s: Option<f64>,
    /// The last run's gauges; replaced as a whole.
    last: Vec<Series>,
    /// End of the last run that ran (success or warn), seconds since the epoch.
    last_success_s: Option<f64>,
    consecutive_failed: u64,
    regression: baseline::Policy,
    baselines: baseline::Baselines,
}

impl TargetState {
    /// What every run (live or replayed) changes besides the counters: the last-run gauges,
    /// the success time and failure streak, the baseline series.
    fn remember_run(&mut self, target: &str, result: &RunResult) -> Vec<baseline::Judged> {
        let (outcome, _) = last_run::classify(result);
        let ran = outcome == RESULT_SUCCESS || outcome == RESULT_WARN;
        let at = last_run::epoch_seconds(result.ended_at);
        if ran {
            self.last_success_s = Some(at);
            self.consecutive_failed = 0;
        } else if outcome == RESULT_FAILED {
            self.consecutive_failed += 1;
        }
        self.last = last_run::series(target, result);
        let judged = match baseline::Point::of(result, ran, at) {
            Some(p) => self.baselines.judge_and_add(p, self.regression),
            None => Vec::new(),
        };
        last_run::baseline_series(target, &judged, &mut self.last);
        judged
    }

    fn remember_failure(&mut self, target: &str, at: jiff::Timestamp) {
        self.consecutive_failed += 1;
        self.last = last_run::failed_series(target, last_run::epoch_seconds(at));
    }
}

/// The regression policy a target has until [`Exporter::set_regression_policy`].
const DEFAULT_POLICY: baseline::Policy = baseline::Policy { tolerance: 0.25, floor_s: 0.005 };

impl Exporter {
    /// OpenMetrics 1.0, the format of [`Exporter::encode`].
    pub const CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    /// Classic text 0.0.4, the format of [`Exporter::encode_text`].
    pub const TEXT_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// `targets`: (name, model) of every configured target (a repeated name keeps its first
    /// model). Their series exist from now on: `target_info` 1, `running` 0, every counter and
    /// histogram at 0; last-run gauges appear with the first run.
    pub fn new(targets: &[(String, String)], version: &str) -> Exporter {
        let metrics = Metrics {
            version: version.to_owned(),
            start_time_s: last_run::epoch_seconds(jiff::Timestamp::now()),
            workers_connected: Mutex::new(None),
            state: Mutex::new(BTreeMap::new()),
            runs: Family::default(),
            run_failures: Family::default(),
            requests: Family::default(),
            prompt_tokens: Family::default(),
            output_tokens: Family::default(),
            ttft: Family::new_with_constructor(latency_histogram),
            itl: Family::new_with_constructor(token_latency_histogram),
            tpot: Family::new_with_constructor(token_latency_histogram),
            e2e: Family::new_with_constructor(latency_histogram),
            log_error_events: Family::default(),
            log_warning_lines: Family::default(),
            scheduled_runs_skipped: Family::default(),
            history_write_errors: Counter::default(),
            validation_checks: Family::default(),
            validation_sections: Family::default(),
            regressions: Family::default(),
        };
        {
            let mut state = lock(&metrics.state);
            for (name, model) in targets {
                if state.contains_key(name) {
                    continue;
                }
                state.insert(
                    name.clone(),
                    TargetState {
                        model: model.clone(),
                        running: false,
                        schedule_interval_s: None,
                        last: Vec::new(),
                        last_success_s: None,
                        consecutive_failed: 0,
                        regression: DEFAULT_POLICY,
                        baselines: baseline::Baselines::default(),
                    },
                );
                metrics.create_series(name);
            }
        }
        let metrics = Arc::new(metrics);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics.clone()));
        Exporter { inner: Arc::new(Inner { registry, metrics }) }
    }

    /// Record one finished run of `target`: counters increase (runs by result, requests by
    /// outcome, tokens), the histograms observe every completed measured request, and the
    /// target's last-run gauges are replaced. A run whose measured requests all failed to
    /// connect counts as `failed` (reason `target_unreachable`), a cancelled run as
    /// `cancelled`. `running` is left alone (see [`Exporter::set_running`]). A target that was
    /// not configured is ignored (with a warning): labels stay bounded to configured names.
    pub fn record_run(&self, target: &str, result: &RunResult) {
        let m = &self.inner.metrics;
        let mut state = lock(&m.state);
        let Some(t) = state.get_mut(target) else {
            tracing::warn!(target_name = target, "run of an unconfigured target not exported");
            return;
        };
        let (outcome, reason) = last_run::classify(result);
        m.runs.get_or_create_owned(&RunLabels { target: target.to_owned(), result: outcome }).inc();
        if let Some(reason) = reason {
            m.run_failures.get_or_create_owned(&FailureLabels { target: target.to_owned(), reason }).inc();
        }
        for (label, n) in last_run::requests_by_outcome(&result.client) {
            m.requests.get_or_create_owned(&OutcomeLabels { target: target.to_owned(), outcome: label }).inc_by(n);
        }
        let tl = TargetLabels { target: target.to_owned() };
        m.prompt_tokens.get_or_create_owned(&tl).inc_by(result.client.total_input_tokens);
        m.output_tokens.get_or_create_owned(&tl).inc_by(result.client.total_output_tokens);
        let [ttft, itl, tpot, e2e] = [&m.ttft, &m.itl, &m.tpot, &m.e2e].map(|f| f.get_or_create_owned(&tl));
        last_run::each_sample(&result.records, |figure, v| match figure {
            last_run::Figure::Ttft => ttft.observe(v),
            last_run::Figure::Itl => itl.observe(v),
            last_run::Figure::Tpot => tpot.observe(v),
            last_run::Figure::E2e => e2e.observe(v),
        });
        if let Some(d) = last_run::logs_read(result) {
            m.log_error_events.get_or_create_owned(&tl).inc_by(d.error_events);
            m.log_warning_lines.get_or_create_owned(&tl).inc_by(d.warnings);
        }
        if let Some(v) = &result.validation {
            for (section, s) in last_run::sections(v) {
                let status = s.status.as_str();
                m.validation_sections
                    .get_or_create_owned(&SectionLabels { target: target.to_owned(), section, status })
                    .inc();
                for c in s.comparisons.iter().filter(|c| last_run::bounded_check(&c.check)) {
                    let labels = CheckLabels {
                        target: target.to_owned(),
                        section,
                        check: c.check.clone(),
                        status: c.status.as_str(),
                    };
                    m.validation_checks.get_or_create_owned(&labels).inc();
                }
            }
        }
        for j in t.remember_run(target, result).iter().filter(|j| j.regressed) {
            m.regressions.get_or_create_owned(&FigureLabels { target: target.to_owned(), figure: j.figure }).inc();
        }
    }

    /// A failed run the previous process never counted (found interrupted at this start): the
    /// counters take it in; its gauges came with [`Exporter::restore_failure`].
    pub fn count_failure(&self, target: &str, reason: &'static str) {
        let m = &self.inner.metrics;
        if !lock(&m.state).contains_key(target) {
            return;
        }
        m.runs.get_or_create_owned(&RunLabels { target: target.to_owned(), result: RESULT_FAILED }).inc();
        m.run_failures.get_or_create_owned(&FailureLabels { target: target.to_owned(), reason }).inc();
    }

    /// After a restart, one run read back from the history (oldest first): the last-run gauges,
    /// the last success, the failed-run streak and the baselines take it in; no counter or
    /// histogram moves (see the module documentation).
    pub fn restore_run(&self, target: &str, result: &RunResult) {
        if let Some(t) = lock(&self.inner.metrics.state).get_mut(target) {
            t.remember_run(target, result);
        }
    }

    /// After a restart, one failure read back from the history (see [`Exporter::restore_run`]).
    pub fn restore_failure(&self, target: &str, at: jiff::Timestamp) {
        if let Some(t) = lock(&self.inner.metrics.state).get_mut(target) {
            t.remember_failure(target, at);
        }
    }

    /// The target's `tolerances.regression` and latency floor (default 25% and 5 ms).
    pub fn set_regression_policy(&self, target: &str, tolerance: f64, latency_floor_ms: f64) {
        if let Some(t) = lock(&self.inner.metrics.state).get_mut(target) {
            t.regression = baseline::Policy { tolerance, floor_s: latency_floor_ms / 1e3 };
        }
    }

    /// A run that could not run at all (bad configuration at runtime, target down before any
    /// request): `runs_total{result="failed"}` and `run_failures_total{reason}` increase, the
    /// last-run gauges are replaced by a timestamp (now) and `last_run_success` 0. `reason`
    /// must come from a fixed set (it is a label value).
    pub fn record_failure(&self, target: &str, reason: &'static str) {
        if !lock(&self.inner.metrics.state).contains_key(target) {
            tracing::warn!(target_name = target, reason, "failure of an unconfigured target not exported");
            return;
        }
        self.record_failure_at(target, reason, jiff::Timestamp::now());
    }

    /// A scheduled tick of `target` was skipped (a burst was still running).
    pub fn record_skipped_tick(&self, target: &str) {
        let m = &self.inner.metrics;
        if lock(&m.state).contains_key(target) {
            m.scheduled_runs_skipped.get_or_create_owned(&TargetLabels { target: target.to_owned() }).inc();
        }
    }

    /// A run result could not be written to the history.
    pub fn record_history_write_error(&self) {
        self.inner.metrics.history_write_errors.inc();
    }

    /// [`Exporter::record_failure`] of a failure that happened at `at` (replayed after a
    /// restart); `reason` outside [`FAILURE_REASONS`] is recorded as `other`.
    pub fn record_failure_at(&self, target: &str, reason: &str, at: jiff::Timestamp) {
        let reason = FAILURE_REASONS.iter().copied().find(|r| *r == reason).unwrap_or(REASON_OTHER);
        let m = &self.inner.metrics;
        let mut state = lock(&m.state);
        let Some(t) = state.get_mut(target) else { return };
        m.runs.get_or_create_owned(&RunLabels { target: target.to_owned(), result: RESULT_FAILED }).inc();
        m.run_failures.get_or_create_owned(&FailureLabels { target: target.to_owned(), reason }).inc();
        t.remember_failure(target, at);
    }

    /// `llm_loadtest_schedule_interval_seconds{target}` of a scheduled target.
    pub fn set_schedule_interval(&self, target: &str, interval: std::time::Duration) {
        if let Some(t) = lock(&self.inner.metrics.state).get_mut(target) {
            t.schedule_interval_s = Some(interval.as_secs_f64());
        }
    }

    /// `llm_loadtest_running{target}`: set to true when a burst starts, false when it ends.
    /// How many workers are connected now (a daemon with `[workers]` sets it at each scrape).
    pub fn set_workers_connected(&self, n: usize) {
        *lock(&self.inner.metrics.workers_connected) = Some(n);
    }

    pub fn set_running(&self, target: &str, running: bool) {
        if let Some(t) = lock(&self.inner.metrics.state).get_mut(target) {
            t.running = running;
        }
    }

    /// OpenMetrics text of everything (serve with [`Exporter::CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            // Writing to a String cannot fail and no encoder used here returns an error.
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }

    /// The same metrics in the classic text format 0.0.4 (serve with
    /// [`Exporter::TEXT_CONTENT_TYPE`]): what a scraper that does not ask for OpenMetrics, and
    /// `promtool check metrics`, understand.
    pub fn encode_text(&self) -> String {
        let mut exposition = crate::promtext::parse(&self.encode());
        for family in &mut exposition.families {
            // OpenMetrics names a counter family without `_total`; classic text names it as its sample.
            if family.kind == crate::promtext::MetricType::Counter && !family.name.ends_with("_total") {
                family.name.push_str("_total");
            }
        }
        exposition.render()
    }

    /// (content type, body) for a scrape's `Accept` header: OpenMetrics when it is accepted
    /// (Prometheus asks for it first), else the classic text format.
    pub fn encode_for_accept(&self, accept: Option<&str>) -> (&'static str, String) {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            (Self::CONTENT_TYPE, self.encode())
        } else {
            (Self::TEXT_CONTENT_TYPE, self.encode_text())
        }
    }
}

/// `result` label of a run (`success`, `warn`, `failed`, `cancelled`), as
/// [`Exporter::record_run`] counts it.
pub fn run_result_label(result: &RunResult) -> &'static str {
    last_run::classify(result).0
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Every counter and histogram series of a configured target, at 0.
    fn create_series(&self, target: &str) {
        let target = target.to_owned();
        for result in RESULTS {
            self.runs.get_or_create_owned(&RunLabels { target: target.clone(), result });
        }
        for reason in FAILURE_REASONS {
            self.run_failures.get_or_create_owned(&FailureLabels { target: target.clone(), reason });
        }
        for outcome in crate::record::Outcome::ALL {
            self.requests.get_or_create_owned(&OutcomeLabels { target: target.clone(), outcome: outcome.as_label() });
        }
        let tl = TargetLabels { target };
        for f in [
            &self.prompt_tokens,
            &self.output_tokens,
            &self.log_error_events,
            &self.log_warning_lines,
            &self.scheduled_runs_skipped,
        ] {
            f.get_or_create_owned(&tl);
        }
        for f in [&self.ttft, &self.itl, &self.tpot, &self.e2e] {
            f.get_or_create_owned(&tl);
        }
        for figure in PERFORMANCE_FIGURES {
            self.regressions.get_or_create_owned(&FigureLabels { target: tl.target.clone(), figure });
        }
        for (section, checks) in SECTION_CHECKS {
            for status in STATUSES {
                let labels = SectionLabels { target: tl.target.clone(), section, status };
                self.validation_sections.get_or_create_owned(&labels);
                for check in checks {
                    let labels = CheckLabels { target: tl.target.clone(), section, check: (*check).to_owned(), status };
                    self.validation_checks.get_or_create_owned(&labels);
                }
            }
        }
    }

    /// The registered family of a counter or histogram definition.
    fn family(&self, def: &MetricDef) -> Option<&dyn EncodeMetric> {
        let f: &dyn EncodeMetric = match def.name {
            n if n == RUNS.name => &self.runs,
            n if n == RUN_FAILURES.name => &self.run_failures,
            n if n == REQUESTS.name => &self.requests,
            n if n == PROMPT_TOKENS.name => &self.prompt_tokens,
            n if n == OUTPUT_TOKENS.name => &self.output_tokens,
            n if n == TTFT.name => &self.ttft,
            n if n == ITL.name => &self.itl,
            n if n == TPOT.name => &self.tpot,
            n if n == E2E_LATENCY.name => &self.e2e,
            n if n == LOG_ERROR_EVENTS.name => &self.log_error_events,
            n if n == LOG_WARNING_LINES.name => &self.log_warning_lines,
            n if n == SCHEDULED_RUNS_SKIPPED.name => &self.scheduled_runs_skipped,
            n if n == HISTORY_WRITE_ERRORS.name => &self.history_write_errors,
            n if n == VALIDATION_CHECKS.name => &self.validation_checks,
            n if n == VALIDATION_SECTIONS.name => &self.validation_sections,
            n if n == REGRESSIONS.name => &self.regressions,
            _ => return None,
        };
        Some(f)
    }

    /// Gauges computed at scrape time, plus every target's last-run series.
    fn gauge_series(&self, state: &BTreeMap<String, TargetState>) -> Vec<Series> {
        let mut out = vec![
            Series { def: &BUILD_INFO, labels: vec![("version", self.version.clone())], value: 1.0 },
            Series { def: &PROCESS_START_TIME, labels: vec![], value: self.start_time_s },
        ];
        if let Some(n) = *lock(&self.workers_connected) {
            out.push(Series { def: &WORKERS_CONNECTED, labels: vec![], value: n as f64 });
        }
        for (target, t) in state {
            out.push(Series {
                def: &TARGET_INFO,
                labels: vec![("target", target.clone()), ("model", t.model.clone())],
                value: 1.0,
            });
            if let Some(s) = t.schedule_interval_s {
                out.push(Series { def: &SCHEDULE_INTERVAL, labels: vec![("target", target.clone())], value: s });
            }
            out.push(Series {
                def: &RUNNING,
                labels: vec![("target", target.clone())],
                value: last_run::bool_value(t.running),
            });
            if let Some(s) = t.last_success_s {
                out.push(Series { def: &LAST_SUCCESS_TIMESTAMP, labels: vec![("target", target.clone())], value: s });
            }
            out.push(Series {
                def: &CONSECUTIVE_FAILED_RUNS,
                labels: vec![("target", target.clone())],
                value: t.consecutive_failed as f64,
            });
            out.push(Series {
                def: &REGRESSION_TOLERANCE,
                labels: vec![("target", target.clone())],
                value: t.regression.tolerance,
            });
            out.extend(t.last.iter().cloned());
        }
        out
    }
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let state = lock(&self.state);
        let gauges = self.gauge_series(&state);
        for def in &METRICS {
            let unit = def.unit();
            let help = format!("{}.", def.help);
            match def.kind {
                Kind::Counter | Kind::Histogram => {
                    let Some(family) = self.family(def) else {
                        tracing::error!(metric = def.name, "metric defined without a family");
                        continue;
                    };
                    if family.is_empty() {
                        continue;
                    }
                    let metric_encoder =
                        encoder.encode_descriptor(def.base_name(), &help, unit.as_ref(), family.metric_type())?;
                    family.encode(metric_encoder)?;
                }
                Kind::Gauge => {
                    let mut series = gauges.iter().filter(|s| s.def.name == def.name).peekable();
                    if series.peek().is_none() {
                        continue;
                    }
                    let mut metric_encoder =
                        encoder.encode_descriptor(def.base_name(), &help, unit.as_ref(), MetricType::Gauge)?;
                    for s in series {
                        encode_gauge(&mut metric_encoder, &s.labels, s.value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn encode_gauge(
    encoder: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: f64,
) -> Result<(), fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_family(labels)?)
}
