//! The terminal summary of a run.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, Table};

use crate::artifacts::RunResult;
use crate::stats::LatencySummary;

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

/// The run summary, in the spirit of `vllm bench serve`'s, with the client's
/// own lag and any client-bound figure called out.
pub fn render(r: &RunResult) -> String {
    let c = &r.client;
    let mut out = String::new();
    let title = format!(" llm-loadtest run {} ", r.run_id);
    out.push_str(&format!("{title:=^64}\n"));
    let mut t = Table::new();
    t.load_style(NOTHING);
    let approx = if c.tokens_from_usage { "" } else { " (approx.)" };
    let rows: Vec<(String, String)> = vec![
        ("Target".into(), format!("{}{} ({})", r.plan.base_url, r.plan.endpoint.path(), r.model_id)),
        ("Load".into(), describe_load(r)),
        ("Prompts".into(), r.plan.prompts.clone()),
        ("Successful requests".into(), c.completed.to_string()),
        ("Failed requests".into(), c.failed.to_string()),
        ("Benchmark duration (s)".into(), format!("{:.2}", c.duration_s)),
        (format!("Total input tokens{approx}"), c.total_input_tokens.to_string()),
        (format!("Total generated tokens{approx}"), c.total_output_tokens.to_string()),
        ("Request throughput (req/s)".into(), format!("{:.2}", c.request_throughput)),
        ("Output token throughput (tok/s)".into(), format!("{:.2}", c.output_throughput)),
        ("Total token throughput (tok/s)".into(), format!("{:.2}", c.total_token_throughput)),
    ];
    for (k, v) in rows {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    }
    if let Some(g) = c.request_goodput {
        t.add_row(vec![Cell::new("Request goodput (req/s)"), Cell::new(format!("{g:.2}"))]);
    }
    out.push_str(&t.to_string());
    out.push('\n');

    let mut lat = Table::new();
    lat.load_style(NOTHING);
    lat.set_header(vec!["ms", "mean", "median", "p90", "p95", "p99", "max"]);
    let mut add = |name: &str, s: &LatencySummary, client_bound: bool| {
        let label = if client_bound { format!("{name} (client-bound)") } else { name.to_owned() };
        let mut row = vec![Cell::new(label)];
        for v in [s.mean, s.median, s.p90, s.p95, s.p99, s.max] {
            row.push(Cell::new(fmt_opt(v)).set_alignment(CellAlignment::Right));
        }
        lat.add_row(row);
    };
    add("TTFT", &c.ttft_ms, c.client_bound.ttft);
    add("TPOT", &c.tpot_ms, false);
    add("ITL", &c.itl_ms, c.client_bound.itl);
    add("E2E latency", &c.e2el_ms, false);
    add("Schedule lag", &c.schedule_lag_ms, c.client_bound.schedule);
    if c.connect_ms.count > 0 {
        add("Connect", &c.connect_ms, false);
    }
    out.push_str(&lat.to_string());
    out.push('\n');
    out.push_str(&format!(
        "Connections opened during the run: {} ({} completed requests have one inside their TTFT)\n",
        c.connect_ms.count, c.ttft_with_connect
    ));
    out.push_str(&format!(
        "Client receive lag: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} probes)\n",
        c.receive_lag.p50_us / 1e3,
        c.receive_lag.p99_us / 1e3,
        c.receive_lag.max_us / 1e3,
        c.receive_lag.samples
    ));
    if !c.errors.is_empty() {
        let errs: Vec<String> = c.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        out.push_str(&format!("Errors by kind: {}\n", errs.join(", ")));
        if let Some(first) = r.records.find_map(|x| (!x.warmup).then(|| x.error.clone()).flatten()) {
            out.push_str(&format!("First error: {first}\n"));
        }
    }
    if r.cancelled {
        out.push_str("The run was cancelled: the figures cover the requests made until then.\n");
    }
    for s in &r.shards {
        let worker = s.worker.as_deref().unwrap_or("no worker");
        match &s.lost {
            Some(why) => out.push_str(&format!("Shard {} ({worker}): lost: {why}\n", s.shard)),
            None => out.push_str(&format!(
                "Shard {} ({worker}): {} completed, {} failed, {:.2} req/s, started {:.3} s after the shared start, receive lag p99 {:.2} ms\n",
                s.shard,
                s.completed,
                s.failed,
                s.request_throughput,
                s.start_lag_s,
                s.receive_lag_p99_s * 1e3
            )),
        }
    }
    for n in &r.notes {
        out.push_str(&format!("Note: {n}\n"));
    }
    out.push_str(&"=".repeat(64));
    out.push('\n');
    out
}

fn describe_load(r: &RunResult) -> String {
    use crate::workload::{ArrivalPlan, StopCondition};
    let shape = match &r.plan.arrival {
        ArrivalPlan::Concurrency { concurrency } => format!("closed loop, concurrency {concurrency}"),
        ArrivalPlan::Rate { rate, poisson, max_concurrency, .. } => {
            let kind = if *poisson { "Poisson" } else { "constant" };
            let cap = max_concurrency.map(|c| format!(", at most {c} in flight")).unwrap_or_default();
            format!("{kind} rate {rate}/s{cap}")
        }
    };
    let stop = match r.plan.stop {
        StopCondition::Requests(n) => format!("{n} requests"),
        StopCondition::Duration(d) => format!("for {}", humantime::format_duration(d)),
    };
    let stream = if r.plan.stream { "streamed" } else { "not streamed" };
    format!("{shape}, {stop}, {stream}, max_tokens {}", r.plan.max_tokens)
}
