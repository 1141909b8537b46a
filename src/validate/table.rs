//! The validation table on the terminal, in the PRD's layout.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, Table};

use super::{Comparison, Section, Spread, Status, TracesValidation, Validation, VerdictBasis};

const WIDTH: usize = 72;

fn label(check: &str) -> &str {
    match check {
        "request_count" => "Request Count",
        "prompt_tokens" => "Prompt Tokens",
        "generation_tokens" => "Generation Tokens",
        "ttft_mean" => "Avg TTFT (ms)",
        "e2e_latency_mean" => "Avg E2E Latency (ms)",
        "http_200_count" => "HTTP 200 Count",
        "generation_throughput" => "Gen Throughput (tok/s)",
        "server_errors" => "ERROR Events",
        other => other,
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
    }
}

fn badge(s: Status) -> &'static str {
    match s {
        Status::Pass => "✓ PASS",
        Status::Warn => "⚠ WARN",
        Status::Skip => "- SKIP",
    }
}

fn section(out: &mut String, title: &str, s: &Section) {
    out.push_str(&format!("{title}\n"));
    if s.comparisons.is_empty() {
        out.push_str(&format!("  {}: {}\n", badge(s.status), s.reason.as_deref().unwrap_or("nothing to compare")));
        return;
    }
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(vec!["Metric", "Client", "Server", "Diff", "Status"]);
    let mut notes = Vec::new();
    for c in &s.comparisons {
        let Comparison { check, client, server, diff_pct, status, reason, .. } = c;
        let diff = diff_pct.map_or_else(|| "-".into(), |d| format!("{d:+.1}%"));
        t.add_row(vec![
            Cell::new(label(check)),
            Cell::new(num(*client)).set_alignment(CellAlignment::Right),
            Cell::new(num(*server)).set_alignment(CellAlignment::Right),
            Cell::new(diff).set_alignment(CellAlignment::Right),
            Cell::new(badge(*status)),
        ]);
        if let Some(r) = reason {
            notes.push(format!("  {}: {r}", label(check)));
        }
    }
    out.push_str(&t.to_string());
    out.push('\n');
    if let Some(r) = &s.reason {
        out.push_str(&format!("  {r}\n"));
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
}

/// Render the validation of a run.
pub fn render_table(v: &Validation) -> String {
    let mut out = String::new();
    out.push_str(&"═".repeat(WIDTH));
    out.push('\n');
    out.push_str(&format!("{:^WIDTH$}\n", "Validation Results"));
    out.push_str(&"═".repeat(WIDTH));
    out.push('\n');
    section(&mut out, "Prometheus Metrics", &v.prometheus);
    if let Some(d) = &v.docker_logs {
        out.push_str(&"─".repeat(WIDTH));
        out.push('\n');
        let title = match &d.container {
            Some(c) if !c.name.is_empty() => format!("Docker Log Validation (container {}, {})", c.name, c.rule),
            _ if !d.containers.is_empty() => {
                let names: Vec<&str> = d.containers.iter().map(|c| c.name.as_str()).collect();
                format!("Docker Log Validation (containers {})", names.join(", "))
            }
            _ => "Docker Log Validation".to_owned(),
        };
        section(&mut out, &title, &d.section);
        if let Some(r) = &d.received {
            out.push_str(&format!(
                "  `Received request` lines: {} (ours {}, other clients {})\n",
                r.lines, r.ours, r.other_clients
            ));
        }
    }
    if let Some(t) = &v.traces {
        out.push_str(&"─".repeat(WIDTH));
        out.push('\n');
        section(&mut out, "Per Request (vLLM llm_request spans, joined by request id; exact counts)", &t.section);
        traces_details(&mut out, t);
    }
    let i = &v.server_info;
    let mut info = Vec::new();
    let mut add = |name: &str, value: Option<f64>, unit: &str| {
        if let Some(x) = value {
            info.push(format!("  {name}: {x:.1}{unit}"));
        }
    };
    add("Peak KV cache usage", i.peak_kv_cache_usage_pct, "%");
    add("Prefix cache hit rate", i.prefix_cache_hit_rate_pct, "%");
    add("Peak running", i.peak_running, "");
    add("Peak waiting", i.peak_waiting, "");
    add("Server queue time (mean)", i.queue_time_mean_ms, " ms");
    add("Server TTFT p50 (from buckets)", i.ttft_p50_ms, " ms");
    add("Server TTFT p99 (from buckets)", i.ttft_p99_ms, " ms");
    add("Preemptions", i.preemptions, "");
    add("Background request rate", i.background_request_rate, " req/s");
    if let Some(d) = &v.docker_logs
        && let Some(es) = &d.engine_stats
    {
        add("Peak KV cache usage (logs)", es["peak_kv_cache_usage_pct"].as_f64(), "%");
        add("Prefix cache hit rate (logs)", es["last_prefix_cache_hit_rate_pct"].as_f64(), "%");
        add("Log warnings", Some(d.warnings as f64), "");
    }
    if !info.is_empty() || i.version_hint.is_some() {
        out.push_str(&"─".repeat(WIDTH));
        out.push_str("\nAdditional Info\n");
        for line in info {
            out.push_str(&line);
            out.push('\n');
        }
        if let Some(h) = &i.version_hint {
            out.push_str(&format!("  Server: {h}\n"));
        }
    }
    if !i.replicas.is_empty() {
        out.push_str(&format!("  Replicas ({}, finished requests and generated tokens each):\n", i.replicas.len()));
        for r in &i.replicas {
            let n = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.0}"));
            let line = match &r.restarted {
                Some(why) => format!("    {}: restarted during the burst ({why})\n", r.replica),
                None => format!(
                    "    {}: {} requests, {} tokens\n",
                    r.replica,
                    n(r.finished_requests),
                    n(r.generation_tokens)
                ),
            };
            out.push_str(&line);
        }
    }
    out.push_str(&"═".repeat(WIDTH));
    out.push('\n');
    let word = match v.overall {
        Status::Pass => "PASSED",
        Status::Warn => "WARNING (the run itself succeeded)",
        Status::Skip => "SKIPPED",
    };
    match v.basis {
        VerdictBasis::Aggregate => out.push_str(&format!(
            "Overall: {word} (tolerance: ±{:.0}%, TTFT ±{:.0}%)\n",
            v.tolerances.request_count * 100.0,
            v.tolerances.ttft_mean * 100.0
        )),
        VerdictBasis::Traces => out.push_str(&format!(
            "Overall: {word} (per request: exact counts, TTFT ±{:.0}%; /metrics and log checks are cross-checks)\n",
            v.tolerances.ttft_mean * 100.0
        )),
    }
    out
}

fn traces_details(out: &mut String, t: &TracesValidation) {
    if t.section.status == Status::Skip && t.matched == 0 {
        return;
    }
    out.push_str(&format!("  Matched {} request(s) in {:.1} s", t.matched, t.waited_s));
    if t.other_clients_spans > 0 {
        out.push_str(&format!("; {} span(s) of other clients ignored", t.other_clients_spans));
    }
    out.push('\n');
    let spread = |name: &str, s: &Option<Spread>| {
        s.map(|s| format!("  {name}: mean {:.1}, p50 {:.1}, p90 {:.1}, p99 {:.1} ms\n", s.mean, s.p50, s.p90, s.p99))
            .unwrap_or_default()
    };
    out.push_str(&spread("TTFT client − server", &t.ttft_diff_ms));
    out.push_str(&spread("E2E client − server", &t.e2e_diff_ms));
    let b = &t.server_breakdown;
    out.push_str(&spread("Server queue", &b.queue_ms));
    out.push_str(&spread("Server prefill", &b.prefill_ms));
    out.push_str(&spread("Server decode", &b.decode_ms));
    for m in t.token_mismatches.iter().take(5) {
        out.push_str(&format!(
            "  tokens differ for {}: prompt {} vs {}, completion {} vs {}\n",
            m.request_id,
            num(m.client_prompt.map(|v| v as f64)),
            num(m.server_prompt.map(|v| v as f64)),
            num(m.client_completion.map(|v| v as f64)),
            num(m.server_completion.map(|v| v as f64)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{ServerInfo, Tolerances, compare};

    #[test]
    fn table_shows_each_check_and_the_overall_verdict() {
        let cs = vec![
            compare("request_count", Some(1000.0), &Ok(1000.0), 0.05, 0.0),
            compare("ttft_mean", Some(45.2), &Ok(43.8), 0.10, 5.0),
            compare("generation_tokens", Some(100.0), &Err("vllm:generation_tokens_total is absent".into()), 0.05, 0.0),
        ];
        let v = Validation::new(
            Section::from_comparisons(cs, None),
            None,
            None,
            ServerInfo { peak_kv_cache_usage_pct: Some(12.5), ..Default::default() },
            Tolerances::default(),
        );
        let t = render_table(&v);
        assert!(t.contains("Request Count") && t.contains("1000") && t.contains("✓ PASS"), "{t}");
        assert!(t.contains("+3.2%"), "{t}");
        assert!(t.contains("- SKIP") && t.contains("is absent"), "{t}");
        assert!(t.contains("Peak KV cache usage: 12.5%"), "{t}");
        assert!(t.contains("Overall: PASSED (tolerance: ±5%, TTFT ±10%)"), "{t}");
    }
}
