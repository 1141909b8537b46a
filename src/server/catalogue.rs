//! The vLLM metric catalogue: which exposed names the checks read, with the
//! fallbacks across versions (vllm-facts.md, "Name changes in one place"),
//! the server figures of a burst computed from two snapshots, and other clients'
//! traffic from the idle window. What the server says, never a verdict. Pure.

use serde::{Deserialize, Serialize};

use crate::promtext::{DeltaError, Exposition, HistogramData, LabelFilter, counter_delta, fleet, histogram_delta};

/// A server-side figure, or why there is none.
pub type Figure = Result<f64, String>;

/// What the server's /metrics delta says over the burst.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFigures {
    /// Finished requests (every finished_reason but `abort` and `error`).
    pub finished_requests: Figure,
    /// Prompt / generation tokens of finished requests only
    /// (`request_prompt_tokens` / `request_generation_tokens` histogram sums).
    pub finished_prompt_tokens: Figure,
    pub finished_generation_tokens: Figure,
    /// The counters, which also include aborted requests' tokens.
    pub prompt_tokens_total: Figure,
    pub generation_tokens_total: Figure,
    pub ttft_mean_s: Figure,
    pub e2e_mean_s: Figure,
}

/// Server-only figures, reported without a verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Requests per second finishing on the server in the idle window before the burst (other clients).
    pub background_request_rate: Option<f64>,
    pub queue_time_mean_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub preemptions: Option<f64>,
    /// Δhits / Δqueries over the burst, percent.
    pub prefix_cache_hit_rate_pct: Option<f64>,
    /// Peaks of gauges sampled during the burst.
    pub peak_running: Option<f64>,
    pub peak_waiting: Option<f64>,
    /// Percent (vLLM exports a 0..1 fraction).
    pub peak_kv_cache_usage_pct: Option<f64>,
    /// vLLM version implied by the metric names, when known.
    pub version_hint: Option<String>,
    /// A fleet target's replicas and each one's share of the burst; empty for a single server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaShare>,
}

/// One replica's part of a fleet's deltas over the burst.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaShare {
    /// `host:port` (or the URL when that is ambiguous).
    pub replica: String,
    /// Requests it finished, background included; None when its counters cannot tell.
    pub finished_requests: Option<f64>,
    pub generation_tokens: Option<f64>,
    /// Why its counters cannot be trusted, when it restarted during the burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted: Option<String>,
}

/// Each replica's share of a fleet's deltas (a restart reported per replica); empty when the
/// snapshots are a single server's.
pub fn replica_shares(before: &Exposition, after: &Exposition, filter: &LabelFilter) -> Vec<ReplicaShare> {
    let mut names = fleet::replicas(before);
    names.extend(fleet::replicas(after));
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let (b, a) = (fleet::replica(before, &name), fleet::replica(after, &name));
            match restart_between(&b, &a, filter) {
                Some(why) => ReplicaShare { replica: name, restarted: Some(why), ..Default::default() },
                None => ReplicaShare {
                    finished_requests: finished_requests(&b, &a, filter).ok(),
                    generation_tokens: counter(&b, &a, GENERATION_TOKENS, filter).ok(),
                    replica: name,
                    restarted: None,
                },
            }
        })
        .collect()
}

/// Other clients' traffic seen in the idle window before the burst.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Background {
    pub window_s: f64,
    pub finished_requests_per_s: f64,
    pub prompt_tokens_per_s: f64,
    pub generation_tokens_per_s: f64,
}

impl Background {
    pub fn is_quiet(&self) -> bool {
        self.finished_requests_per_s == 0.0 && self.prompt_tokens_per_s == 0.0 && self.generation_tokens_per_s == 0.0
    }
}

/// Rates between the idle-window snapshots; None when they cannot be compared.
pub fn background(
    idle_start: &Exposition,
    before: &Exposition,
    window_s: f64,
    filter: &LabelFilter,
) -> Option<Background> {
    if window_s <= 0.0 {
        return None;
    }
    let rate = |name: &str| counter_delta(idle_start, before, name, filter).ok().map(|d| d / window_s);
    Some(Background {
        window_s,
        finished_requests_per_s: rate(REQUEST_SUCCESS)?,
        prompt_tokens_per_s: rate(PROMPT_TOKENS).unwrap_or(0.0),
        generation_tokens_per_s: rate(GENERATION_TOKENS).unwrap_or(0.0),
    })
}

pub const REQUEST_SUCCESS: &str = "vllm:request_success_total";
pub const PROMPT_TOKENS: &str = "vllm:prompt_tokens_total";
pub const GENERATION_TOKENS: &str = "vllm:generation_tokens_total";
pub const REQUEST_PROMPT_TOKENS: &str = "vllm:request_prompt_tokens";
pub const REQUEST_GENERATION_TOKENS: &str = "vllm:request_generation_tokens";
pub const TTFT: &str = "vllm:time_to_first_token_seconds";
pub const E2E: &str = "vllm:e2e_request_latency_seconds";
pub const QUEUE_TIME: &str = "vllm:request_queue_time_seconds";
pub const PREEMPTIONS: &str = "vllm:num_preemptions_total";
pub const RUNNING: &str = "vllm:num_requests_running";
pub const WAITING: &str = "vllm:num_requests_waiting";
/// KV-cache usage (a 0..1 fraction): the new name from 0.9.2, the old one before 0.12.
pub const KV_CACHE_USAGE: [&str; 2] = ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"];
/// Prefix-cache (queries, hits) counters: 0.9.2+ names, then the 0.7–0.11 ones.
pub const PREFIX_CACHE: [(&str, &str); 2] = [
    ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"),
    ("vllm:gpu_prefix_cache_queries_total", "vllm:gpu_prefix_cache_hits_total"),
];
/// `finished_reason` values that are not an engine-side completion of the request.
pub const NOT_FINISHED_REASONS: [&str; 2] = ["abort", "error"];

/// Which label set to read: the target's `model_name`, or every series when
/// the server does not label by that name (then say so).
pub fn model_filter(snapshot: &Exposition, model: &str) -> (LabelFilter, Option<String>) {
    let by_model = LabelFilter::new().with("model_name", model);
    if snapshot.counter_sum(REQUEST_SUCCESS, &by_model).is_some() {
        return (by_model, None);
    }
    let names: std::collections::BTreeSet<String> = snapshot
        .counter_series(REQUEST_SUCCESS, &LabelFilter::new())
        .into_iter()
        .filter_map(|(l, _)| l.get("model_name").map(str::to_owned))
        .collect();
    if names.is_empty() {
        return (LabelFilter::new(), None);
    }
    let list: Vec<String> = names.into_iter().collect();
    (
        LabelFilter::new(),
        Some(format!(
            "no series with model_name=\"{model}\"; summed over every model the server reports ({})",
            list.join(", ")
        )),
    )
}

fn explain(metric: &str, e: DeltaError) -> String {
    match e {
        DeltaError::Missing { which } => format!("{metric} is absent from the {which} snapshot"),
        DeltaError::Reset { series, reason } => match series.get(fleet::REPLICA_LABEL) {
            Some(replica) => format!(
                "counter reset on replica {replica} during the burst ({metric}: {reason}); that replica probably restarted"
            ),
            None => format!("counter reset during the burst ({metric}: {reason}); the server probably restarted"),
        },
    }
}

/// A family the parser found broken in either snapshot is never judged (issue 11: judge only
/// what was read).
fn unflawed(before: &Exposition, after: &Exposition, name: &str) -> Result<(), String> {
    for (which, snapshot) in [("before", before), ("after", after)] {
        if let Some(flaw) = snapshot.flaw_of(name) {
            return Err(format!("the /metrics snapshot {which} the burst is malformed: {flaw}"));
        }
    }
    Ok(())
}

fn counter(before: &Exposition, after: &Exposition, name: &str, filter: &LabelFilter) -> Figure {
    unflawed(before, after, name)?;
    counter_delta(before, after, name, filter).map_err(|e| explain(name, e))
}

fn histogram(
    before: &Exposition,
    after: &Exposition,
    name: &str,
    filter: &LabelFilter,
) -> Result<HistogramData, String> {
    unflawed(before, after, name)?;
    histogram_delta(before, after, name, filter).map_err(|e| explain(name, e))
}

fn mean_of(h: &Result<HistogramData, String>, name: &str) -> Figure {
    match h {
        Err(e) => Err(e.clone()),
        Ok(h) => h.mean().ok_or_else(|| format!("{name} observed nothing during the burst")),
    }
}

/// Finished requests: every `finished_reason` except abort and error.
fn finished_requests(before: &Exposition, after: &Exposition, filter: &LabelFilter) -> Figure {
    let all = counter(before, after, REQUEST_SUCCESS, filter)?;
    let mut excluded = 0.0;
    for reason in NOT_FINISHED_REASONS {
        let f = filter.clone().with("finished_reason", reason);
        match counter_delta(before, after, REQUEST_SUCCESS, &f) {
            Ok(v) => excluded += v,
            // Older versions have no such series: nothing to exclude.
            Err(DeltaError::Missing { .. }) => {}
            Err(e) => return Err(explain(REQUEST_SUCCESS, e)),
        }
    }
    Ok(all - excluded)
}

/// The server figures of a burst, plus what is reported without a verdict.
pub fn server_figures(before: &Exposition, after: &Exposition, filter: &LabelFilter) -> (ServerFigures, ServerInfo) {
    let finished_prompt = histogram(before, after, REQUEST_PROMPT_TOKENS, filter);
    let finished_gen = histogram(before, after, REQUEST_GENERATION_TOKENS, filter);
    let ttft = histogram(before, after, TTFT, filter);
    let e2e = histogram(before, after, E2E, filter);
    let figures = ServerFigures {
        finished_requests: finished_requests(before, after, filter),
        finished_prompt_tokens: finished_prompt.map(|h| h.sum),
        finished_generation_tokens: finished_gen.map(|h| h.sum),
        prompt_tokens_total: counter(before, after, PROMPT_TOKENS, filter),
        generation_tokens_total: counter(before, after, GENERATION_TOKENS, filter),
        ttft_mean_s: mean_of(&ttft, TTFT),
        e2e_mean_s: mean_of(&e2e, E2E),
    };
    let queue = histogram(before, after, QUEUE_TIME, filter);
    let prefix = PREFIX_CACHE.iter().find_map(|(q, h)| {
        let queries = counter_delta(before, after, q, filter).ok()?;
        let hits = counter_delta(before, after, h, filter).ok()?;
        (queries > 0.0).then(|| hits / queries * 100.0)
    });
    let ttft_ok = ttft.as_ref().ok();
    let info = ServerInfo {
        queue_time_mean_ms: queue.ok().and_then(|h| h.mean()).map(|s| s * 1e3),
        ttft_p50_ms: ttft_ok.and_then(|h| h.quantile(0.5)).map(|s| s * 1e3),
        ttft_p99_ms: ttft_ok.and_then(|h| h.quantile(0.99)).map(|s| s * 1e3),
        preemptions: counter_delta(before, after, PREEMPTIONS, filter).ok(),
        prefix_cache_hit_rate_pct: prefix,
        ..ServerInfo::default()
    };
    (figures, info)
}

/// A restart of the server between the snapshots, if any counter shows one
/// (went down, `_created` or `process_start_time_seconds` changed): then no
/// delta of this burst can be trusted, whichever counter showed it.
pub fn restart_between(before: &Exposition, after: &Exposition, filter: &LabelFilter) -> Option<String> {
    let counters = [REQUEST_SUCCESS, PROMPT_TOKENS, GENERATION_TOKENS];
    let histograms = [TTFT, E2E, REQUEST_GENERATION_TOKENS];
    let resets = counters
        .iter()
        .map(|n| (n, counter_delta(before, after, n, filter).err()))
        .chain(histograms.iter().map(|n| (n, histogram_delta(before, after, n, filter).err())));
    for (name, err) in resets {
        if let Some(e @ DeltaError::Reset { .. }) = err {
            return Some(explain(name, e));
        }
    }
    None
}

/// Current value of the gauges worth a peak: (running, waiting, KV-cache fraction).
pub fn gauges(snapshot: &Exposition, filter: &LabelFilter) -> (Option<f64>, Option<f64>, Option<f64>) {
    let sum = |name: &str| {
        let v = snapshot.gauge_values(name, filter);
        (!v.is_empty()).then(|| v.iter().sum())
    };
    // KV usage is a fraction per engine: the busiest engine is the peak that matters.
    let kv = KV_CACHE_USAGE.iter().find_map(|name| {
        let v = snapshot.gauge_values(name, filter);
        v.into_iter().reduce(f64::max)
    });
    (sum(RUNNING), sum(WAITING), kv)
}

/// Which vLLM versions the metric family names imply (vllm-facts.md, "Name changes").
pub fn implied_vllm_version(snapshot: &Exposition) -> Option<String> {
    if !has_vllm_metrics(snapshot) {
        return None;
    }
    let has = |name: &str| snapshot.family(name).is_some();
    let mut clues = Vec::new();
    if has("vllm:kv_cache_usage_perc") && !has("vllm:gpu_cache_usage_perc") {
        clues.push("kv_cache_usage_perc without gpu_cache_usage_perc: v1 engine, 0.12 or later");
    } else if has("vllm:kv_cache_usage_perc") {
        clues.push("both kv_ and gpu_cache_usage_perc: 0.9.2 to 0.11");
    } else if has("vllm:gpu_cache_usage_perc") {
        clues.push("gpu_cache_usage_perc only: before 0.9.2");
    }
    if has("vllm:request_time_per_output_token_seconds") {
        clues.push("request_time_per_output_token_seconds: 0.11 or later");
    } else if has("vllm:time_per_output_token_seconds") && !has("vllm:inter_token_latency_seconds") {
        clues.push("time_per_output_token_seconds without inter_token_latency_seconds: before 0.10.2");
    }
    if has("vllm:num_requests_swapped") {
        clues.push("num_requests_swapped: v0 engine");
    }
    Some(clues.join("; "))
}

/// True when the exposition has at least one `vllm:` family.
pub fn has_vllm_metrics(snapshot: &Exposition) -> bool {
    snapshot.families.iter().any(|f| f.name.starts_with("vllm:") && !f.samples.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promtext::parse;

    const REAL: &str = include_str!("../../tests/golden/vllm-0.32-metrics.txt");

    /// The real scrape with every sample of `name` (exact series prefix) bumped by `by`.
    fn bump(text: &str, name: &str, by: f64) -> String {
        text.lines()
            .map(|l| {
                // `name` is a metric name, or a name with the start of its label set.
                let whole = name.contains('{') || l[name.len().min(l.len())..].starts_with(['{', ' ']);
                if l.starts_with(name) && whole {
                    let (head, v) = l.rsplit_once(' ').unwrap();
                    format!("{head} {}", v.parse::<f64>().unwrap() + by)
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn real_scrape_against_itself_is_zero_everywhere() {
        let a = parse(REAL);
        let (filter, note) = model_filter(&a, "tiny");
        assert!(note.is_none());
        let (f, _) = server_figures(&a, &a, &filter);
        assert_eq!(f.finished_requests, Ok(0.0));
        assert_eq!(f.generation_tokens_total, Ok(0.0));
        assert!(f.ttft_mean_s.unwrap_err().contains("observed nothing"));
    }

    #[test]
    fn aborts_and_errors_are_not_finished_requests() {
        let before = parse(REAL);
        let text = bump(REAL, "vllm:request_success_total{engine=\"0\",finished_reason=\"length\"", 5.0);
        let text = bump(&text, "vllm:request_success_total{engine=\"0\",finished_reason=\"abort\"", 2.0);
        let after = parse(&text);
        let (filter, _) = model_filter(&after, "tiny");
        let (f, _) = server_figures(&before, &after, &filter);
        assert_eq!(f.finished_requests, Ok(5.0));
    }

    #[test]
    fn a_counter_that_goes_down_is_a_reset_not_a_number() {
        let before = parse(REAL);
        let after = parse(&bump(REAL, "vllm:generation_tokens_total", -100.0));
        let (f, _) = server_figures(&before, &after, &LabelFilter::new());
        let e = f.generation_tokens_total.unwrap_err();
        assert!(e.contains("counter reset"), "{e}");
    }

    #[test]
    fn unknown_model_name_falls_back_with_a_note() {
        let a = parse(REAL);
        let (filter, note) = model_filter(&a, "other");
        assert!(filter.is_empty());
        assert!(note.unwrap().contains("tiny"));
    }

    #[test]
    fn version_clues() {
        let v = implied_vllm_version(&parse(REAL)).unwrap();
        assert!(v.contains("0.12 or later") && v.contains("0.11 or later"), "{v}");
        let old = parse("# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc 0.1\n");
        assert!(implied_vllm_version(&old).unwrap().contains("before 0.9.2"));
        assert!(implied_vllm_version(&parse("http_requests_total 1.0\n")).is_none());
    }

    #[test]
    fn gauges_and_vllm_detection() {
        let a = parse(REAL);
        let (running, waiting, kv) = gauges(&a, &LabelFilter::new());
        assert!(running.is_some() && waiting.is_some() && kv.is_some());
        assert!(has_vllm_metrics(&a));
        assert!(!has_vllm_metrics(&parse("http_requests_total 1\n")));
    }
}
