//! Offline commands over saved files: `validate DIR` recomputes a run's
//! verdicts from its artifacts; `inspect metrics FILE` shows what the parser
//! understood of a saved exposition. File I/O here, logic in the pure modules.

use std::path::Path;

use serde_json::{Value, json};

use crate::burst::RequestRecord;
use crate::error::RunError;
use crate::openai::Endpoint;
use crate::promtext::{self, Exposition, LabelFilter};
use crate::run::{
    LOGS_WINDOW, SNAPSHOT_AFTER, SNAPSHOT_BEFORE, SNAPSHOT_IDLE_START, client_figures, client_log_figures,
};
use crate::server::GaugePeaks;
use crate::server::catalogue;
use crate::server::evaluate::{PrometheusInputs, evaluate};
use crate::stats::{self, Slo};
use crate::validate::{ContainerInfo, DockerLogsValidation, Tolerances, Validation, docker_logs_validation};

fn read(path: &Path) -> Result<String, RunError> {
    std::fs::read_to_string(path).map_err(|e| RunError::BadInput(format!("cannot read {}: {e}", path.display())))
}

/// Records from a `requests.jsonl`; a bad line is an error naming it.
pub fn read_records(path: &Path) -> Result<Vec<RequestRecord>, RunError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r = serde_json::from_str(line)
            .map_err(|e| RunError::BadInput(format!("{} line {}: not a request record: {e}", path.display(), i + 1)))?;
        out.push(r);
    }
    Ok(out)
}

/// Recompute the validation of a run from its artifact directory.
pub fn validate_dir(dir: &Path, tolerance_override: Option<f64>) -> Result<Validation, RunError> {
    let result: Value = serde_json::from_str(&read(&dir.join("result.json"))?)
        .map_err(|e| RunError::BadInput(format!("{}: not a result JSON: {e}", dir.join("result.json").display())))?;
    let records = read_records(&dir.join("requests.jsonl"))?;
    let duration = result["duration"].as_f64().unwrap_or(0.0);
    let model = result["model_id"].as_str().unwrap_or("").to_owned();
    let tolerances = match tolerance_override {
        Some(t) => Tolerances::uniform(t),
        None => serde_json::from_value(result["validation"]["tolerances"].clone()).unwrap_or_default(),
    };
    tolerances.check().map_err(RunError::BadInput)?;
    let peaks: GaugePeaks = serde_json::from_value(result["server"]["peaks"].clone()).unwrap_or_default();
    let idle_window_s = result["server"]["idle_window_s"].as_f64().unwrap_or(0.0);

    let client = stats::compute(&records, duration, &Default::default(), &Slo::default());
    let figures = client_figures(&client, &records);
    let load = |name: &str| -> Result<Exposition, String> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{} not readable: {e}", path.display()))?;
        crate::server::scrape::parse_body(&path.display().to_string(), text, "text/plain".into(), 0.0)
            .map(|s| s.exposition)
            .map_err(|e| e.to_string())
    };
    let before = load(SNAPSHOT_BEFORE);
    let after = load(SNAPSHOT_AFTER);
    let idle = load(SNAPSHOT_IDLE_START).ok();
    let inputs = PrometheusInputs {
        before: before.as_ref().map_err(Clone::clone),
        after: after.as_ref().map_err(Clone::clone),
        idle_start: idle.as_ref(),
        idle_window_s,
        counted_window_s: result["server"]["counted_window_s"].as_f64().unwrap_or(duration),
        model: &model,
        peaks,
    };
    let (section, info) = evaluate(&inputs, &figures, &tolerances);
    let docker_logs = logs_from_dir(dir, &result, &client, &records, &tolerances);
    Ok(Validation::new(section, docker_logs, info, tolerances))
}

/// Re-check the saved container-log window, when the run read one.
fn logs_from_dir(
    dir: &Path,
    result: &Value,
    client: &stats::ClientStats,
    records: &[RequestRecord],
    tol: &Tolerances,
) -> Option<DockerLogsValidation> {
    let saved = result["validation"].get("docker_logs")?;
    let container: Option<ContainerInfo> = serde_json::from_value(saved["container"].clone()).ok();
    let Some(container) = container else {
        // The live run skipped the logs (no engine, no container): keep its reason.
        return serde_json::from_value(saved.clone()).ok();
    };
    let path = dir.join(LOGS_WINDOW);
    let text = match std::fs::read(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            return Some(DockerLogsValidation::skipped(
                format!("{} not readable: {e}", path.display()),
                Some(container),
            ));
        }
    };
    let findings = crate::logs::analyze_text(&text);
    let ts = |k: &str| result[k].as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
    let endpoint: Endpoint = serde_json::from_value(result["plan"]["endpoint"].clone()).unwrap_or(Endpoint::Chat);
    let (Some(start), Some(end)) = (ts("started_at"), ts("ended_at")) else {
        return Some(DockerLogsValidation::skipped("result.json has no started_at/ended_at", Some(container)));
    };
    let figures = client_log_figures(endpoint, client, records, (start, end));
    // A restart seen live is not visible in the saved lines: keep that verdict.
    let restart = saved["status"]
        .as_str()
        .filter(|s| *s == "SKIP")
        .and(saved["reason"].as_str())
        .filter(|r| r.contains("restarted"))
        .map(str::to_owned);
    Some(docker_logs_validation(&figures, &findings, container, restart, tol))
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
