//! Every `llm_loadtest_*` metric and every label set, defined here and nowhere else.
//!
//! Each metric is one [`MetricDef`] constant: its name exactly as PromQL sees it, its help
//! text, its type and its label names. [`METRICS`] lists them in exposition order and
//! [`METRIC_NAMES`] is derived from it, so the contract with dashboards and alert rules
//! cannot drift from what is encoded. Label values come only from configured names
//! (`target`, `model`), from the fixed sets below, or from code-defined names (`phase` from
//! the burst, `check` from validation, `reason` from the daemon's `&'static str`s).

use prometheus_client::encoding::EncodeLabelSet;

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The name as PromQL sees it: counters end in `_total`; a histogram's name is the base of
    /// its `_bucket`, `_sum` and `_count` series.
    pub name: &'static str,
    /// `# HELP` text, without a final period (the encoder adds one).
    pub help: &'static str,
    pub kind: Kind,
    /// Label names, in the order they are written (histograms add `le`).
    pub labels: &'static [&'static str],
}

impl MetricDef {
    /// The name handed to prometheus-client, which appends the unit (`_seconds`) and, for
    /// counters, `_total` itself.
    pub(super) fn base_name(&self) -> &'static str {
        let n = match self.kind {
            Kind::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            Kind::Gauge | Kind::Histogram => self.name,
        };
        n.strip_suffix("_seconds").unwrap_or(n)
    }

    /// `Seconds` for names ending in `_seconds` (written as `# UNIT` in OpenMetrics).
    pub(super) fn unit(&self) -> Option<prometheus_client::registry::Unit> {
        let n = match self.kind {
            Kind::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            Kind::Gauge | Kind::Histogram => self.name,
        };
        n.ends_with("_seconds").then_some(prometheus_client::registry::Unit::Seconds)
    }
}

const T: &[&str] = &["target"];

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

/// When this daemon process started (seconds since the epoch). Every counter and histogram
/// starts from 0 at a start, as in any exporter: this series tells a restart from a drop.
pub const PROCESS_START_TIME: MetricDef = MetricDef {
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds",
    kind: Kind::Gauge,
    labels: &[],
};

/// End of the last run of each target that ran (result `success` or `warn`), seconds since the
/// epoch; restored from the history at start. Absent while no such run is known.
pub const LAST_SUCCESS_TIMESTAMP: MetricDef = MetricDef {
    name: "llm_loadtest_last_success_timestamp_seconds",
    help: "End time of the last run of the target that ran (success or warn), seconds since the epoch",
    kind: Kind::Gauge,
    labels: T,
};

/// Runs of the target that failed one after the other, up to the latest (0 after a run that
/// ran; cancelled runs leave it alone). Restored from the history at start.
pub const CONSECUTIVE_FAILED_RUNS: MetricDef = MetricDef {
    name: "llm_loadtest_consecutive_failed_runs",
    help: "Runs of the target that failed in a row, up to the latest run",
    kind: Kind::Gauge,
    labels: T,
};

/// Runs per target by `result`: `success` (ran; validation PASS or SKIP or not asked for),
/// `warn` (ran; validation WARN), `failed` (could not run: `record_failure`, or no measured
/// request reached the target), `cancelled` (stopped by shutdown). All four exist at 0 from
/// start-up.
pub const RUNS: MetricDef = MetricDef {
    name: "llm_loadtest_runs_total",
    help: "Bursts run against the target, by result: success (validation PASS or SKIP), warn (validation WARN), failed (could not run), cancelled",
    kind: Kind::Counter,
    labels: &["target", "result"],
};
/// Failed runs by bounded `reason` (the daemon's `&'static str`, or `target_unreachable` when
/// no measured request reached the target). `target_unreachable` exists at 0 from start-up.
pub const RUN_FAILURES: MetricDef = MetricDef {
    name: "llm_loadtest_run_failures_total",
    help: "Runs that could not run, by reason",
    kind: Kind::Counter,
    labels: &["target", "reason"],
};
/// Scheduled ticks skipped because the target was still running a burst (or, without
/// `allow_parallel_targets`, another target's burst lasted until the next tick): a schedule
/// tighter than the bursts shows here.
pub const SCHEDULED_RUNS_SKIPPED: MetricDef = MetricDef {
    name: "llm_loadtest_scheduled_runs_skipped_total",
    help: "Scheduled runs skipped because a burst was still running",
    kind: Kind::Counter,
    labels: T,
};
/// Run results the daemon could not write to its history (full disk, permissions); the run is
/// still exported and served from memory until the next restart.
pub const HISTORY_WRITE_ERRORS: MetricDef = MetricDef {
    name: "llm_loadtest_history_write_errors_total",
    help: "Run results that could not be written to the history directory",
    kind: Kind::Counter,
    labels: &[],
};
/// `llm_loadtest_build_info{version} 1`.
pub const BUILD_INFO: MetricDef = MetricDef {
    name: "llm_loadtest_build_info",
    help: "Always 1; the version of llm-loadtest as a label",
    kind: Kind::Gauge,
    labels: &["version"],
};
/// `llm_loadtest_target_info{target,model} 1` for every configured target, run or not: join on
/// `target` to get the model of any other series.
pub const TARGET_INFO: MetricDef = MetricDef {
    name: "llm_loadtest_target_info",
    help: "Always 1 for every configured target; the model as a label",
    kind: Kind::Gauge,
    labels: &["target", "model"],
};
/// The schedule interval of a target that runs by itself; absent for a target that runs only
/// when triggered (so staleness alerts can tell "late" from "not scheduled").
pub const SCHEDULE_INTERVAL: MetricDef = MetricDef {
    name: "llm_loadtest_schedule_interval_seconds",
    help: "Interval between scheduled runs of the target; absent when it runs only when triggered",
    kind: Kind::Gauge,
    labels: T,
};
/// 1 while a burst against the target is in progress, else 0 (set by the daemon).
pub const RUNNING: MetricDef = MetricDef {
    name: "llm_loadtest_running",
    help: "1 while a burst against the target is in progress, else 0",
    kind: Kind::Gauge,
    labels: T,
};
/// When the last run ended (or failed), seconds since the epoch. Absent until the first run.
pub const LAST_RUN_TIMESTAMP: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_timestamp_seconds",
    help: "When the last run against the target ended or failed, seconds since the Unix epoch",
    kind: Kind::Gauge,
    labels: T,
};
/// 1 when the last run's result was `success`, 0 for `warn`, `failed` and `cancelled` (like
/// blackbox_exporter's `probe_success`: a WARN verdict is a failed probe). Absent until the
/// first run.
pub const LAST_RUN_SUCCESS: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_success",
    help: "1 when the last run ran and its validation was PASS or SKIP, 0 when it warned, failed or was cancelled",
    kind: Kind::Gauge,
    labels: T,
};
/// Wall time of each phase of the last run (`phase` as the burst names them: `idle_window`,
/// `metrics_before`, `load`, `settle`, ...).
pub const LAST_RUN_PHASE_DURATION: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_phase_duration_seconds",
    help: "Wall time of each phase of the last run",
    kind: Kind::Gauge,
    labels: &["target", "phase"],
};

// ---------------------------------------------------------------------------------------------
// Client measurements (measured requests only: warm-up requests are never counted)
// ---------------------------------------------------------------------------------------------

/// Measured requests by `outcome` (`ok`, `http_error`, ... as `record::Outcome::as_label`); every
/// outcome exists at 0 from start-up.
pub const REQUESTS: MetricDef = MetricDef {
    name: "llm_loadtest_requests_total",
    help: "Measured requests sent to the target, by outcome",
    kind: Kind::Counter,
    labels: &["target", "outcome"],
};
/// Prompt tokens of completed measured requests (server `usage`, else approximate).
pub const PROMPT_TOKENS: MetricDef = MetricDef {
    name: "llm_loadtest_prompt_tokens_total",
    help: "Prompt tokens of completed measured requests",
    kind: Kind::Counter,
    labels: T,
};
/// Output tokens of completed measured requests (server `usage`, else counted chunks).
pub const OUTPUT_TOKENS: MetricDef = MetricDef {
    name: "llm_loadtest_output_tokens_total",
    help: "Output tokens of completed measured requests",
    kind: Kind::Counter,
    labels: T,
};
/// Time to first token of every completed measured request.
pub const TTFT: MetricDef = MetricDef {
    name: "llm_loadtest_ttft_seconds",
    help: "Time to first token of completed requests, as the client measured it",
    kind: Kind::Histogram,
    labels: T,
};
/// Every gap between consecutive output-carrying chunks of completed requests.
pub const ITL: MetricDef = MetricDef {
    name: "llm_loadtest_itl_seconds",
    help: "Inter-token latency: every gap between consecutive output chunks of completed requests",
    kind: Kind::Histogram,
    labels: T,
};
/// (e2e - ttft) / (output tokens - 1) of every completed request with more than one token.
pub const TPOT: MetricDef = MetricDef {
    name: "llm_loadtest_tpot_seconds",
    help: "Time per output token after the first, per completed request with more than one output token",
    kind: Kind::Histogram,
    labels: T,
};
/// Send to end of response of every completed measured request.
pub const E2E_LATENCY: MetricDef = MetricDef {
    name: "llm_loadtest_e2e_latency_seconds",
    help: "End-to-end latency of completed requests, from send to the end of the response",
    kind: Kind::Histogram,
    labels: T,
};
/// Percentiles of the last run's TTFT (`percentile` = `p50`, `p90`, `p99`). The label is not
/// called `quantile`: Prometheus reserves that for summaries (`promtool check metrics`).
pub const LAST_RUN_TTFT: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_ttft_seconds",
    help: "Time to first token of the last run, by percentile (p50, p90, p99)",
    kind: Kind::Gauge,
    labels: &["target", "percentile"],
};
/// Percentiles of the last run's inter-token latency.
pub const LAST_RUN_ITL: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_itl_seconds",
    help: "Inter-token latency of the last run, by percentile (p50, p90, p99)",
    kind: Kind::Gauge,
    labels: &["target", "percentile"],
};
/// Percentiles of the last run's time per output token.
pub const LAST_RUN_TPOT: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_tpot_seconds",
    help: "Time per output token of the last run, by percentile (p50, p90, p99)",
    kind: Kind::Gauge,
    labels: &["target", "percentile"],
};
/// Percentiles of the last run's end-to-end latency.
pub const LAST_RUN_E2E_LATENCY: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_e2e_latency_seconds",
    help: "End-to-end latency of the last run, by percentile (p50, p90, p99)",
    kind: Kind::Gauge,
    labels: &["target", "percentile"],
};
/// Completed requests per second of the last run (`vllm bench serve`'s `request_throughput`).
pub const LAST_RUN_REQUEST_THROUGHPUT: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_requests_per_second",
    help: "Completed requests per second of the last run",
    kind: Kind::Gauge,
    labels: T,
};
/// Failed / measured requests of the last run (absent when it measured no request).
pub const LAST_RUN_ERROR_RATIO: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_error_ratio",
    help: "Share of the last run's measured requests that did not complete",
    kind: Kind::Gauge,
    labels: T,
};
/// 1 when the client's own lag distorted a figure of the last run (`figure` = `ttft`, `itl`,
/// `schedule`), else 0.
pub const LAST_RUN_CLIENT_BOUND: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_client_bound",
    help: "1 when the load generator itself was the bottleneck for a figure of the last run (ttft, itl, schedule)",
    kind: Kind::Gauge,
    labels: &["target", "figure"],
};

// ---------------------------------------------------------------------------------------------
// Client vs server, overlaid: `source` = client | server (its /metrics) | logs (its container logs)
// ---------------------------------------------------------------------------------------------

/// Completed requests of the last run: `source="client"` as the client saw them,
/// `source="server"` as finished in the server's /metrics delta (check `request_count`).
pub const LAST_RUN_COMPLETED_REQUESTS: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_completed_requests",
    help: "Requests completed in the last run, as the client saw them and as the server counted them",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Prompt tokens of the last run, client vs server (check `prompt_tokens`).
pub const LAST_RUN_PROMPT_TOKENS: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_prompt_tokens",
    help: "Prompt tokens of the last run, as the client counted them and as the server counted them",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Output (generation) tokens of the last run, client vs server (check `generation_tokens`).
pub const LAST_RUN_OUTPUT_TOKENS: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_output_tokens",
    help: "Output tokens of the last run, as the client counted them and as the server counted them",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Mean TTFT of the last run, client vs server (check `ttft_mean`; the client figure is the
/// raw mean, the check compares it net of time outside the engine).
pub const LAST_RUN_TTFT_MEAN: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_ttft_mean_seconds",
    help: "Mean time to first token of the last run, as the client measured it and as the server reported it",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Output tokens per second of the last run: `source="client"` (`vllm bench serve`'s
/// `output_throughput`), `source="logs"` from the engine-stats log lines over the same window
/// (check `generation_throughput`).
pub const LAST_RUN_OUTPUT_THROUGHPUT: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_output_tokens_per_second",
    help: "Output tokens per second of the last run, as the client measured it and as the server logged it",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// HTTP 200 responses of the last run's window: `source="client"` (warm-up included),
/// `source="logs"` from the server's access log (check `http_200_count`).
pub const LAST_RUN_HTTP_200_RESPONSES: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_http_200_responses",
    help: "HTTP 200 responses in the last run, as the client received them and as the server access log shows them",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Mean end-to-end latency of the last run, client vs server (check `e2e_latency_mean`).
pub const LAST_RUN_E2E_LATENCY_MEAN: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_e2e_latency_mean_seconds",
    help: "Mean end-to-end latency of the last run, as the client measured it and as the server reported it",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};

// ---------------------------------------------------------------------------------------------
// Validation verdicts of the last run
// ---------------------------------------------------------------------------------------------

/// Overall verdict of the last run as a state set: one series per `status` (`PASS`, `WARN`,
/// `SKIP`), 1 for the current one, 0 for the others. `SKIP` when validation was not asked for.
/// Absent before the first run and after a run that could not run.
pub const VALIDATION_OVERALL_STATUS: MetricDef = MetricDef {
    name: "llm_loadtest_validation_overall_status",
    help: "Overall validation verdict of the last run: 1 for the current status (PASS, WARN, SKIP), 0 for the others",
    kind: Kind::Gauge,
    labels: &["target", "status"],
};
/// Verdict of each validation section (`section` = `prometheus`, `docker_logs`) as a state set;
/// shows a section that skipped as a whole (no /metrics, no container) and so has no checks.
pub const VALIDATION_SECTION_STATUS: MetricDef = MetricDef {
    name: "llm_loadtest_validation_section_status",
    help: "Validation verdict of each section of the last run: 1 for the current status (PASS, WARN, SKIP), 0 for the others",
    kind: Kind::Gauge,
    labels: &["target", "section", "status"],
};
/// Verdict of each check of the last run as a state set (1 for the current `status`, 0 for the
/// other two), so SKIP stays visible and `sum by (status)` counts checks.
pub const VALIDATION_STATUS: MetricDef = MetricDef {
    name: "llm_loadtest_validation_status",
    help: "Verdict of each client-vs-server check of the last run: 1 for the current status (PASS, WARN, SKIP), 0 for the others",
    kind: Kind::Gauge,
    labels: &["target", "section", "check", "status"],
};
/// 1 when the check passed, 0 when it warned, absent when it skipped: `== 0` is the alert.
pub const VALIDATION_OK: MetricDef = MetricDef {
    name: "llm_loadtest_validation_ok",
    help: "1 when the check passed in the last run, 0 when it warned; absent when it was skipped",
    kind: Kind::Gauge,
    labels: &["target", "section", "check"],
};
/// Signed (client - server) / server of the compared figures (0.03 = client 3% above the
/// server); absent when the check skipped or the server figure was 0.
pub const VALIDATION_DRIFT: MetricDef = MetricDef {
    name: "llm_loadtest_validation_drift_ratio",
    help: "Signed relative difference (client - server) / server of each check in the last run; absent when skipped",
    kind: Kind::Gauge,
    labels: &["target", "section", "check"],
};
/// The relative tolerance each check was judged with (0.05 = ±5%), for threshold lines.
pub const VALIDATION_TOLERANCE: MetricDef = MetricDef {
    name: "llm_loadtest_validation_tolerance_ratio",
    help: "Relative tolerance each check of the last run was judged with",
    kind: Kind::Gauge,
    labels: &["target", "section", "check"],
};

/// Verdicts per check and status, one per run that judged (or skipped) the check: rules count
/// WARN runs over a window (`increase(...{status="WARN"}[6h]) >= 2`) instead of reading one run.
pub const VALIDATION_CHECKS: MetricDef = MetricDef {
    name: "llm_loadtest_validation_checks_total",
    help: "Client-vs-server check verdicts of the runs, by check and status",
    kind: Kind::Counter,
    labels: &["target", "section", "check", "status"],
};
/// Verdicts per section and status, one per run (a section skipped as a whole counts `SKIP`).
pub const VALIDATION_SECTIONS: MetricDef = MetricDef {
    name: "llm_loadtest_validation_sections_total",
    help: "Validation section verdicts of the runs, by section and status",
    kind: Kind::Counter,
    labels: &["target", "section", "status"],
};
/// Why a section of the last run was skipped: `reason` is the section's reason with every
/// number replaced by `#` and cut at 160 characters (the reasons come from a fixed set of
/// sentences, so the values stay bounded). Absent for sections that were judged.
pub const VALIDATION_SECTION_SKIP_REASON: MetricDef = MetricDef {
    name: "llm_loadtest_validation_section_skip_reason_info",
    help: "Why a validation section of the last run was skipped (1; the reason is a label)",
    kind: Kind::Gauge,
    labels: &["target", "section", "reason"],
};

// ---------------------------------------------------------------------------------------------
// Performance against the target's own baseline
// ---------------------------------------------------------------------------------------------

/// The baseline of each latency figure (`figure`: `ttft_p90`, `itl_p90`, `tpot_p90`): the median
/// of the runs that ran with the same workload in the 24 h before the last run (at least 3).
pub const BASELINE_LATENCY: MetricDef = MetricDef {
    name: "llm_loadtest_baseline_latency_seconds",
    help: "Median of the p90 latency figure over the target's runs of the same workload in the 24 h before the last run",
    kind: Kind::Gauge,
    labels: &["target", "figure"],
};
/// The baseline output throughput (same window and runs as the latency baseline).
pub const BASELINE_OUTPUT_THROUGHPUT: MetricDef = MetricDef {
    name: "llm_loadtest_baseline_output_tokens_per_second",
    help: "Median output throughput over the target's runs of the same workload in the 24 h before the last run",
    kind: Kind::Gauge,
    labels: T,
};
/// How much worse the last run was than the baseline, per figure (`ttft_p90`, `itl_p90`,
/// `tpot_p90`, `output_throughput`): latency / baseline - 1, or baseline / throughput - 1; 0.3 =
/// 30% worse, negative = better. Absent without a baseline.
pub const LAST_RUN_REGRESSION: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_regression_ratio",
    help: "How much worse the last run was than the target's baseline per figure (0.3 = 30% worse, negative = better)",
    kind: Kind::Gauge,
    labels: &["target", "figure"],
};
/// The configured `tolerances.regression` of the target.
pub const REGRESSION_TOLERANCE: MetricDef = MetricDef {
    name: "llm_loadtest_regression_tolerance_ratio",
    help: "Relative regression against the baseline above which a run counts as regressed",
    kind: Kind::Gauge,
    labels: T,
};
/// Runs that regressed beyond the tolerance, per figure.
pub const REGRESSIONS: MetricDef = MetricDef {
    name: "llm_loadtest_performance_regressions_total",
    help: "Runs whose figure was worse than the target's baseline by more than the tolerance",
    kind: Kind::Counter,
    labels: &["target", "figure"],
};

// ---------------------------------------------------------------------------------------------
// Server-only figures of the last run (no verdict)
// ---------------------------------------------------------------------------------------------

/// Peak KV-cache usage during the last run, 0..1 (`source="server"`: sampled /metrics gauge;
/// `source="logs"`: the engine stats lines).
pub const LAST_RUN_KV_CACHE_USAGE_PEAK: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_kv_cache_usage_peak_ratio",
    help: "Peak KV-cache usage of the server during the last run, 0 to 1",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Prefix-cache hit ratio, 0..1 (`source="server"`: hits / queries over the burst).
pub const LAST_RUN_PREFIX_CACHE_HIT: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_prefix_cache_hit_ratio",
    help: "Prefix-cache hit ratio of the server during the last run, 0 to 1",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Peak number of requests the server was running during the last run.
pub const LAST_RUN_RUNNING_PEAK: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_running_requests_peak",
    help: "Peak number of requests the server was running during the last run",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Peak number of requests waiting in the server's queue during the last run.
pub const LAST_RUN_WAITING_PEAK: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_waiting_requests_peak",
    help: "Peak number of requests waiting in the server queue during the last run",
    kind: Kind::Gauge,
    labels: &["target", "source"],
};
/// Requests per second the server finished for other clients in the idle window before the run.
pub const LAST_RUN_BACKGROUND_RATE: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_background_requests_per_second",
    help: "Requests per second the server finished for other clients just before the last run",
    kind: Kind::Gauge,
    labels: T,
};
/// Mean time requests spent queued in the server during the last run.
pub const LAST_RUN_QUEUE_TIME_MEAN: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_queue_time_mean_seconds",
    help: "Mean time requests spent in the server queue during the last run",
    kind: Kind::Gauge,
    labels: T,
};
/// Paired per request from vLLM's `llm_request` spans: client minus server, by percentile.
pub const LAST_RUN_SPAN_DIFFERENCE: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_span_difference_seconds",
    help: "Per request of the last run, the client's figure minus vLLM's llm_request span figure (ttft, e2e_latency), by percentile",
    kind: Kind::Gauge,
    labels: &["target", "figure", "percentile"],
};
/// Where vLLM's time went for our requests, from their spans, by percentile.
pub const LAST_RUN_SERVER_PHASE: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_server_phase_seconds",
    help: "Time vLLM spent on the last run's requests in each phase (queue, prefill, decode, inference) per its llm_request spans, by percentile",
    kind: Kind::Gauge,
    labels: &["target", "phase", "percentile"],
};
/// Preemptions the server counted during the last run.
pub const LAST_RUN_PREEMPTIONS: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_preemptions",
    help: "Preemptions the server counted during the last run",
    kind: Kind::Gauge,
    labels: T,
};
/// Lines of the server's /metrics the parser could not read (after the last run): a vLLM upgrade
/// that changed the format shows here first.
pub const LAST_RUN_METRICS_PARSE_ERRORS: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_metrics_parse_errors",
    help: "Lines of the server /metrics that could not be parsed after the last run",
    kind: Kind::Gauge,
    labels: T,
};

// ---------------------------------------------------------------------------------------------
// Server logs (docker), when the run read them. Counters exist at 0 from start-up.
// ---------------------------------------------------------------------------------------------

/// Error events (a traceback is one event) in the server's logs during runs.
pub const LOG_ERROR_EVENTS: MetricDef = MetricDef {
    name: "llm_loadtest_log_error_events_total",
    help: "Error events in the server container logs during runs (a traceback is one event)",
    kind: Kind::Counter,
    labels: T,
};
/// WARNING lines in the server's logs during runs.
pub const LOG_WARNING_LINES: MetricDef = MetricDef {
    name: "llm_loadtest_log_warning_lines_total",
    help: "Warning lines in the server container logs during runs",
    kind: Kind::Counter,
    labels: T,
};
/// Error events (a traceback is one event) in the server's logs during the last run; absent
/// when the logs were not read.
pub const LAST_RUN_LOG_ERROR_EVENTS: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_log_error_events",
    help: "Error events in the server container logs during the last run (a traceback is one event)",
    kind: Kind::Gauge,
    labels: T,
};
/// WARNING lines in the server's logs during the last run; absent when the logs were not read.
pub const LAST_RUN_LOG_WARNING_LINES: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_log_warning_lines",
    help: "Warning lines in the server container logs during the last run",
    kind: Kind::Gauge,
    labels: T,
};

// ---------------------------------------------------------------------------------------------
// Distributed bursts (`workers = N`): `shard` is the shard's index, bounded by the configured N
// (worker names are free text, so they are in the result, never a label)
// ---------------------------------------------------------------------------------------------

/// Workers that polled the daemon within the last 15 s; absent without `[workers]`.
pub const WORKERS_CONNECTED: MetricDef = MetricDef {
    name: "llm_loadtest_workers_connected",
    help: "Workers (llm-loadtest worker) that polled this daemon within the last 15 s",
    kind: Kind::Gauge,
    labels: &[],
};
/// Completed requests per second each shard of the last distributed run delivered.
pub const LAST_RUN_SHARD_REQUEST_THROUGHPUT: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_shard_requests_per_second",
    help: "Completed requests per second of each shard of the last distributed run, over its own measured phase",
    kind: Kind::Gauge,
    labels: &["target", "shard"],
};
/// How long after the shared start instant each shard's measured load began (a worker's lag).
pub const LAST_RUN_SHARD_START_LAG: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_shard_start_lag_seconds",
    help: "How long after the shared start instant each shard of the last distributed run began its load",
    kind: Kind::Gauge,
    labels: &["target", "shard"],
};
/// 1 for a shard of the last distributed run whose worker stopped reporting (its records are
/// missing and every verdict of the run is SKIP), else 0.
pub const LAST_RUN_SHARD_LOST: MetricDef = MetricDef {
    name: "llm_loadtest_last_run_shard_lost",
    help: "1 for each shard of the last distributed run that was lost (its worker stopped reporting), else 0",
    kind: Kind::Gauge,
    labels: &["target", "shard"],
};

/// Every metric, in exposition order.
pub const METRICS: [MetricDef; 67] = [
    BUILD_INFO,
    PROCESS_START_TIME,
    TARGET_INFO,
    SCHEDULE_INTERVAL,
    RUNNING,
    RUNS,
    RUN_FAILURES,
    SCHEDULED_RUNS_SKIPPED,
    HISTORY_WRITE_ERRORS,
    LAST_RUN_TIMESTAMP,
    LAST_RUN_SUCCESS,
    LAST_SUCCESS_TIMESTAMP,
    CONSECUTIVE_FAILED_RUNS,
    LAST_RUN_PHASE_DURATION,
    REQUESTS,
    PROMPT_TOKENS,
    OUTPUT_TOKENS,
    TTFT,
    ITL,
    TPOT,
    E2E_LATENCY,
    LAST_RUN_TTFT,
    LAST_RUN_ITL,
    LAST_RUN_TPOT,
    LAST_RUN_E2E_LATENCY,
    LAST_RUN_REQUEST_THROUGHPUT,
    LAST_RUN_ERROR_RATIO,
    LAST_RUN_CLIENT_BOUND,
    LAST_RUN_COMPLETED_REQUESTS,
    LAST_RUN_PROMPT_TOKENS,
    LAST_RUN_OUTPUT_TOKENS,
    LAST_RUN_TTFT_MEAN,
    LAST_RUN_E2E_LATENCY_MEAN,
    LAST_RUN_OUTPUT_THROUGHPUT,
    LAST_RUN_HTTP_200_RESPONSES,
    VALIDATION_OVERALL_STATUS,
    VALIDATION_SECTION_STATUS,
    VALIDATION_STATUS,
    VALIDATION_OK,
    VALIDATION_DRIFT,
    VALIDATION_TOLERANCE,
    VALIDATION_CHECKS,
    VALIDATION_SECTIONS,
    VALIDATION_SECTION_SKIP_REASON,
    BASELINE_LATENCY,
    BASELINE_OUTPUT_THROUGHPUT,
    LAST_RUN_REGRESSION,
    REGRESSION_TOLERANCE,
    REGRESSIONS,
    LAST_RUN_KV_CACHE_USAGE_PEAK,
    LAST_RUN_PREFIX_CACHE_HIT,
    LAST_RUN_RUNNING_PEAK,
    LAST_RUN_WAITING_PEAK,
    LAST_RUN_BACKGROUND_RATE,
    LAST_RUN_QUEUE_TIME_MEAN,
    LAST_RUN_PREEMPTIONS,
    LAST_RUN_SPAN_DIFFERENCE,
    LAST_RUN_SERVER_PHASE,
    LAST_RUN_METRICS_PARSE_ERRORS,
    LOG_ERROR_EVENTS,
    LOG_WARNING_LINES,
    LAST_RUN_LOG_ERROR_EVENTS,
    LAST_RUN_LOG_WARNING_LINES,
    WORKERS_CONNECTED,
    LAST_RUN_SHARD_REQUEST_THROUGHPUT,
    LAST_RUN_SHARD_START_LAG,
    LAST_RUN_SHARD_LOST,
];

const fn names<const N: usize>(defs: &[MetricDef; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = defs[i].name;
        i += 1;
    }
    out
}

const NAMES: [&str; METRICS.len()] = names(&METRICS);

/// Every exported metric name as PromQL sees it (counters with `_total`; histograms by their
/// base name, queried as `_bucket`/`_sum`/`_count`), for contract tests with dashboards and
/// alert rules.
pub const METRIC_NAMES: &[&str] = &NAMES;

// ---------------------------------------------------------------------------------------------
// Bounded label values
// ---------------------------------------------------------------------------------------------

/// `result` of `llm_loadtest_runs_total`.
pub const RESULT_SUCCESS: &str = "success";
pub const RESULT_WARN: &str = "warn";
pub const RESULT_FAILED: &str = "failed";
pub const RESULT_CANCELLED: &str = "cancelled";
pub const RESULTS: [&str; 4] = [RESULT_SUCCESS, RESULT_WARN, RESULT_FAILED, RESULT_CANCELLED];
/// `reason` of a run whose measured requests all failed to connect.
pub const REASON_TARGET_UNREACHABLE: &str = "target_unreachable";
/// The daemon stopped (SIGKILL, a crash) during the run; found at the next start.
pub const REASON_INTERRUPTED: &str = "interrupted";
/// The target stopped accepting connections mid-burst, which then ended early.
pub const REASON_TARGET_LOST: &str = "target_lost";
/// The target answered, but not one measured request completed (every one an error).
pub const REASON_ALL_REQUESTS_FAILED: &str = "all_requests_failed";
/// The daemon could not prepare the burst (a dataset or tokenizer file vanished, ...).
pub const REASON_INVALID_WORKLOAD: &str = "invalid_workload";
/// A reason this build does not know (replayed from an older history).
pub const REASON_OTHER: &str = "other";
/// Every `reason` of `llm_loadtest_run_failures_total`.
pub const FAILURE_REASONS: [&str; 6] = [
    REASON_TARGET_UNREACHABLE,
    REASON_TARGET_LOST,
    REASON_ALL_REQUESTS_FAILED,
    REASON_INVALID_WORKLOAD,
    REASON_INTERRUPTED,
    REASON_OTHER,
];
/// `percentile` of the last-run latency gauges.
pub const PERCENTILES: [&str; 3] = ["p50", "p90", "p99"];
/// `figure` of `llm_loadtest_last_run_span_difference_seconds`.
pub const SPAN_DIFFERENCE_FIGURES: [&str; 2] = ["ttft", "e2e_latency"];
/// `phase` of `llm_loadtest_last_run_server_phase_seconds`.
pub const SERVER_PHASES: [&str; 4] = ["queue", "prefill", "decode", "inference"];
/// `figure` of `llm_loadtest_last_run_client_bound`.
pub const CLIENT_BOUND_FIGURES: [&str; 3] = ["ttft", "itl", "schedule"];
/// `source`: the client, the server's /metrics, the server's container logs.
pub const SOURCE_CLIENT: &str = "client";
pub const SOURCE_SERVER: &str = "server";
pub const SOURCE_LOGS: &str = "logs";
pub const SOURCES: [&str; 3] = [SOURCE_CLIENT, SOURCE_SERVER, SOURCE_LOGS];
/// `status` of the validation state sets (as the JSON result and the table spell them).
pub const STATUSES: [&str; 3] = ["PASS", "WARN", "SKIP"];
/// `section` of `llm_loadtest_validation_section_status`.
pub const SECTION_PROMETHEUS: &str = "prometheus";
pub const SECTION_DOCKER_LOGS: &str = "docker_logs";
/// The per-request checks from vLLM's `llm_request` spans.
pub const SECTION_TRACES: &str = "traces";
pub const SECTIONS: [&str; 3] = [SECTION_PROMETHEUS, SECTION_DOCKER_LOGS, SECTION_TRACES];
/// `check` values validation produces today. Other snake_case check names are exported too (a
/// new check must not vanish from /metrics); the contract test fails until it is listed here.
pub const CHECKS: [&str; 8] = [
    "request_count",
    "prompt_tokens",
    "generation_tokens",
    "ttft_mean",
    "e2e_latency_mean",
    "http_200_count",
    "generation_throughput",
    "server_errors",
];

/// The checks each section produces, so their verdict counters exist at 0 from start-up and
/// `increase()` sees a check's first WARN run (a series born at 1 hides it).
pub const SECTION_CHECKS: [(&str, &[&str]); 3] = [
    (SECTION_PROMETHEUS, &["request_count", "prompt_tokens", "generation_tokens", "ttft_mean", "e2e_latency_mean"]),
    (SECTION_DOCKER_LOGS, &["request_count", "http_200_count", "generation_throughput", "server_errors"]),
    (SECTION_TRACES, &["request_count", "prompt_tokens", "generation_tokens", "ttft_mean", "e2e_latency_mean"]),
];

// ---------------------------------------------------------------------------------------------
// Label sets of the registered families (the last-run gauges build theirs in `Series`)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TargetLabels {
    pub target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RunLabels {
    pub target: String,
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FailureLabels {
    pub target: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CheckLabels {
    pub target: String,
    pub section: &'static str,
    pub check: String,
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SectionLabels {
    pub target: String,
    pub section: &'static str,
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FigureLabels {
    pub target: String,
    pub figure: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub target: String,
    pub outcome: &'static str,
}

/// Buckets of the time-to-first-token and end-to-end latency histograms: 5 ms to 10 min (a
/// long generation or a queued server exceeds a minute).
pub const LATENCY_BUCKETS: [f64; 27] = [
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0,
    20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0,
];

/// Buckets of the inter-token latency and time-per-output-token histograms: 0.5 ms to 2 s
/// (small models on current GPUs emit a token every 2 to 8 ms).
pub const TOKEN_LATENCY_BUCKETS: [f64; 22] = [
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 1.0, 2.0,
];

/// `figure` of the performance baseline series: what a regression is judged on.
pub const PERFORMANCE_FIGURES: [&str; 4] = ["ttft_p90", "itl_p90", "tpot_p90", "output_throughput"];
