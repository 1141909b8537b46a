//! Offline commands over saved files: `validate DIR` recomputes a run's
//! verdicts from its artifacts; `inspect metrics FILE` shows what the parser
//! understood of a saved exposition. File I/O here, logic in the pure modules.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::artifacts::{self, RunResult};
use crate::error::RunError;
use crate::promtext::{self, Exposition, LabelFilter};
use crate::server::catalogue;
use crate::traces::request_id_prefix;
use crate::validate::{
    ClientSide, DockerLogsValidation, LogsInput, Observation, PrometheusInputs, Status, Tolerances, TracesInput,
    TracesValidation, Validation,
};

/// Recompute the validation of a run from its artifact directory: the saved run read back
/// by the one typed reader, its saved observations, and the same `validate::assess` as live.
pub fn validate_dir(dir: &Path, tolerance_override: Option<f64>) -> Result<Validation, RunError> {
    let run = artifacts::read_dir(dir)?;
    let saved = run.validation.as_ref();
    let tolerances = match tolerance_override {
        Some(t) => Tolerances::uniform(t),
        None => saved.map(|v| v.tolerances.clone()).unwrap_or_default(),
    };
    tolerances.check().map_err(RunError::BadInput)?;
    let parse = |name: &str| -> Result<Exposition, String> {
        let text = run.snapshot(name).ok_or_else(|| format!("{} not readable", dir.join(name).display()))?;
        let source = dir.join(name).display().to_string();
        crate::server::scrape::parse_body(&source, text.to_owned(), "text/plain".into(), 0.0)
            .map(|s| s.exposition)
            .map_err(|e| e.to_string())
    };
    let (before, after, idle) = (
        parse(artifacts::SNAPSHOT_BEFORE),
        parse(artifacts::SNAPSHOT_AFTER),
        parse(artifacts::SNAPSHOT_IDLE_START).ok(),
    );
    let analyzer = || crate::logs::LogAnalyzer::new().with_request_id_prefix(request_id_prefix(&run.run_id));
    let fleet = run.logs.as_ref().is_some_and(|l| l.containers.len() > 1);
    let findings = run.snapshot(artifacts::LOGS_WINDOW).map(|text| match fleet {
        true => crate::logs::analyze_fleet_text_with(text, analyzer()),
        false => crate::logs::analyze_text_with(text, analyzer()),
    });
    let spans = run.snapshot(artifacts::SPANS_JSON).map(|text| {
        serde_json::from_str::<artifacts::SpansObservation>(text)
            .map_err(|e| format!("{} is not a spans observation: {e}", dir.join(artifacts::SPANS_JSON).display()))
    });
    let server = run.server.as_ref();
    let observation = Observation {
        prometheus: Some(PrometheusInputs {
            before: before.as_ref().map_err(Clone::clone),
            after: after.as_ref().map_err(Clone::clone),
            idle_start: idle.as_ref(),
            idle_window_s: server.map_or(0.0, |s| s.idle_window_s),
            counted_window_s: server.map_or(run.client.duration_s, |s| s.counted_window_s),
            model: &run.model_id,
            peaks: server.map(|s| s.peaks).unwrap_or_default(),
        }),
        logs: saved.and_then(|v| v.docker_logs.as_ref()).map(|d| saved_logs(dir, &run, d, findings.as_ref())),
        traces: saved.and_then(|v| v.traces.as_ref()).map(|t| saved_traces(t, spans.as_ref())),
    };
    let client = ClientSide {
        stats: &run.client,
        records: &run.records,
        endpoint: run.plan.endpoint,
        load: (run.started_at, run.ended_at),
    };
    crate::validate::assess(&observation, &client, &tolerances)
        .ok_or_else(|| RunError::BadInput("internal error: no Prometheus observation".into()))
}

/// The spans of a saved run: `spans.json` when the live run received any, else the live
/// run's reason.
fn saved_traces<'a>(
    saved: &TracesValidation,
    spans: Option<&'a Result<artifacts::SpansObservation, String>>,
) -> TracesInput<'a> {
    match spans {
        Some(Ok(s)) => TracesInput::Collected {
            collected: &s.collected,
            request_id_prefix: &s.request_id_prefix,
            waited_s: s.waited_s,
            wait_max_s: s.wait_max_s,
        },
        Some(Err(e)) => TracesInput::Unavailable { reason: e.clone() },
        None => TracesInput::Unavailable { reason: saved.section.reason.clone().unwrap_or_default() },
    }
}

/// The log observation of a saved run: the saved window when the live run read one, else
/// the live run's reason (no engine, no container, a failed read); a restart seen live is
/// not visible in the saved lines, so it is kept.
fn saved_logs<'a>(
    dir: &Path,
    run: &RunResult,
    saved: &DockerLogsValidation,
    findings: Option<&'a crate::logs::LogFindings>,
) -> LogsInput<'a> {
    let live_reason = || saved.section.reason.clone().unwrap_or_default();
    let containers: Vec<_> = saved.container.iter().chain(&saved.containers).cloned().collect();
    if containers.is_empty() {
        return LogsInput::Unavailable { reason: live_reason(), containers };
    }
    let read_failed = run.logs.as_ref().is_some_and(|l| l.lines.is_none());
    match findings {
        _ if read_failed => LogsInput::Unavailable { reason: live_reason(), containers },
        None => LogsInput::Unavailable {
            reason: format!("{} not readable", dir.join(artifacts::LOGS_WINDOW).display()),
            containers,
        },
        Some(findings) => {
            let restarted = (saved.section.status == Status::Skip)
                .then(|| saved.section.reason.clone())
                .flatten()
                .filter(|r| r.contains("restarted"));
            LogsInput::Read { containers, findings, restarted }
        }
    }
}

/// `llm-loadtest validate DIR`: the recomputed verdicts; 3 on WARN with `--fail-on-mismatch`.
pub fn validate_command(args: &crate::cli::ValidateArgs) -> ExitCode {
    match validate_dir(&args.dir, args.tolerance) {
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Ok(v) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", crate::validate::render_table(&v));
            }
            if args.fail_on_mismatch && v.overall == crate::validate::Status::Warn {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// `llm-loadtest inspect metrics|logs FILE`: what the parsers understood.
pub fn inspect_command(what: &crate::cli::InspectCommand) -> ExitCode {
    use crate::cli::InspectCommand;
    match what {
        InspectCommand::Metrics { file, json } => match std::fs::read(file) {
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                ExitCode::from(1)
            }
            Ok(bytes) => {
                // Saved files may hold anything: decode lossily, never fail on bytes.
                let v = inspect_metrics(&String::from_utf8_lossy(&bytes));
                if *json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    print!("{}", render_inspect_metrics(&v));
                }
                ExitCode::SUCCESS
            }
        },
        InspectCommand::Logs { file, json } => match std::fs::read(file) {
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                ExitCode::from(1)
            }
            Ok(bytes) => {
                let findings = crate::logs::analyze_text(&String::from_utf8_lossy(&bytes));
                let v = findings.summary_json();
                if *json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    print!("{}", render_inspect_logs(&findings));
                }
                ExitCode::SUCCESS
            }
        },
    }
}

/// What `inspect metrics` reports: the fixed keys plus a family list.
pub fn inspect_metrics(text: &str) -> Value {
    let e = promtext::parse(text);
    let all = LabelFilter::new();
    let counter = |name: &str| e.counter_sum(name, &all);
    let hist = |name: &str| e.histogram(name, &all);
    let ttft = hist(catalogue::TTFT);
    let e2e = hist(catalogue::E2E);
    let families: Vec<Value> = e
        .families
        .iter()
        .map(|f| json!({ "name": f.name, "type": f.kind.as_str(), "samples": f.samples.len() }))
        .collect();
    let errors: Vec<Value> =
        e.line_errors.iter().take(20).map(|l| json!({ "line": l.line_no, "message": l.message })).collect();
    json!({
        "format": format!("{:?}", e.format),
        "families": e.families.len(),
        "samples": e.sample_count(),
        "line_errors": e.line_errors.len(),
        "first_line_errors": errors,
        "vllm": {
            "request_success_total": counter(catalogue::REQUEST_SUCCESS),
            "prompt_tokens_total": counter(catalogue::PROMPT_TOKENS),
            "generation_tokens_total": counter(catalogue::GENERATION_TOKENS),
            "time_to_first_token_seconds_sum": ttft.as_ref().map(|h| h.sum),
            "time_to_first_token_seconds_count": ttft.as_ref().map(|h| h.count),
            "e2e_request_latency_seconds_sum": e2e.as_ref().map(|h| h.sum),
            "e2e_request_latency_seconds_count": e2e.as_ref().map(|h| h.count),
            "version_hint": catalogue::implied_vllm_version(&e),
        },
        "family_list": families,
    })
}

/// The text form of `inspect metrics`.
pub fn render_inspect_metrics(v: &Value) -> String {
    let mut s = format!(
        "format {}, {} families, {} samples, {} line errors\n",
        v["format"].as_str().unwrap_or("?"),
        v["families"],
        v["samples"],
        v["line_errors"]
    );
    for e in v["first_line_errors"].as_array().into_iter().flatten() {
        s.push_str(&format!("  line {}: {}\n", e["line"], e["message"].as_str().unwrap_or("")));
    }
    s.push_str("vLLM figures (summed over every label set):\n");
    if let Some(m) = v["vllm"].as_object() {
        for (k, val) in m {
            let shown = if val.is_null() { "absent".to_owned() } else { val.to_string() };
            s.push_str(&format!("  {k:<36} {shown}\n"));
        }
    }
    s.push_str("families:\n");
    for f in v["family_list"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  {:<10} {:>5}  {}\n",
            f["type"].as_str().unwrap_or(""),
            f["samples"],
            f["name"].as_str().unwrap_or("")
        ));
    }
    s
}

/// The text form of `inspect logs`.
pub fn render_inspect_logs(f: &crate::logs::LogFindings) -> String {
    let mut s = format!("{} lines ({} not access, stats, error or warning lines)\n", f.lines, f.unparsed_lines);
    s.push_str(&format!("access lines: {}\n", f.access.total));
    for (endpoint, statuses) in &f.access.by_endpoint {
        let st: Vec<String> = statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        s.push_str(&format!("  {endpoint:<40} {}\n", st.join(", ")));
    }
    let e = &f.engine_stats_summary;
    let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |x| format!("{x:.1}"));
    s.push_str(&format!(
        "engine stats lines: {} (engines {}), mean generation {} tok/s, mean prompt {} tok/s, peak running {}, peak waiting {}, peak KV cache {}%, last prefix cache hit rate {}%\n",
        e.lines,
        e.engines.map_or_else(|| "-".into(), |n| n.to_string()),
        opt(e.mean_generation_throughput),
        opt(e.mean_prompt_throughput),
        e.peak_running.map_or_else(|| "-".into(), |n| n.to_string()),
        e.peak_waiting.map_or_else(|| "-".into(), |n| n.to_string()),
        opt(e.peak_kv_cache_usage_pct),
        opt(e.last_prefix_cache_hit_rate_pct),
    ));
    s.push_str(&format!(
        "errors: {} lines in {} events; warnings: {} lines\n",
        f.error_lines, f.error_events, f.warning_lines
    ));
    for m in &f.first_errors {
        s.push_str(&format!("  ERROR {m}\n"));
    }
    for m in &f.first_warnings {
        s.push_str(&format!("  WARNING {m}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_real_vllm_scrape() {
        let v = inspect_metrics(include_str!("../tests/golden/vllm-0.32-metrics.txt"));
        assert_eq!(v["line_errors"], 0);
        assert_eq!(v["vllm"]["request_success_total"], 30.0);
        assert_eq!(v["vllm"]["prompt_tokens_total"], 472.0);
        assert_eq!(v["vllm"]["generation_tokens_total"], 4322.0);
        assert_eq!(v["vllm"]["time_to_first_token_seconds_count"], 31.0);
        assert_eq!(v["vllm"]["e2e_request_latency_seconds_count"], 30.0);
        assert!(render_inspect_metrics(&v).contains("vllm:iteration_tokens_total"));
    }

    #[test]
    fn inspect_garbage_reports_errors_and_nulls() {
        let v = inspect_metrics("this is not { metrics\n<html>\n");
        assert_eq!(v["families"], 0);
        assert!(v["line_errors"].as_u64().unwrap() >= 1);
        assert!(v["vllm"]["request_success_total"].is_null());
    }
}
