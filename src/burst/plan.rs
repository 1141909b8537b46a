//! From a target, a workload and tolerances to a [`BurstPlan`]: everything a
//! burst needs, checked before anything is sent. The only place a burst's
//! HTTP client is built (one client for the load and the /metrics scrapes) and
//! the API key is read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::LoadSpec;
use super::observe::{LogsSpec, ServerWatch, SpansWatch};
use super::worker::RequestTarget;
use crate::artifacts::RunPlan;
use crate::docker::ContainerSource;
use crate::error::RunError;
use crate::openai::RequestOptions;
use crate::promtext::LabelFilter;
use crate::server::{MetricsClient, MetricsSource};
use crate::stats::Slo;
use crate::traces::{Hub, request_id_prefix};
use crate::validate::Tolerances;
use crate::workload::{ArrivalPlan, PromptSource, Shard, Workload};

/// The server side of a burst: where it is and how to observe it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL of the OpenAI-compatible server (a trailing `/v1` is accepted).
    pub url: url::Url,
    pub model: String,
    /// Default: `URL/metrics`.
    pub metrics: Option<MetricsSource>,
    /// The server's containers (a fleet's, by names or a label); default: the one found by the
    /// target's port.
    pub container: Option<ContainerSource>,
    pub api_key: Option<String>,
    /// Read the API key from this file's first line (when `api_key` is None).
    pub api_key_file: Option<PathBuf>,
    /// Measure the client only: no /metrics, no logs.
    pub skip_validation: bool,
    pub skip_logs: bool,
    /// The OTLP receiver's routing table, when vLLM's spans are received.
    pub spans: Option<Arc<Hub>>,
    /// The part of the plan this generator runs (`run --shard I/N`).
    pub shard: Shard,
    /// When the measured load starts, on the wall clock (`run --start-at`).
    pub start_at: Option<jiff::Timestamp>,
}

impl Target {
    pub fn new(url: url::Url, model: impl Into<String>) -> Target {
        Target {
            url,
            model: model.into(),
            metrics: None,
            container: None,
            api_key: None,
            api_key_file: None,
            skip_validation: false,
            skip_logs: false,
            spans: None,
            shard: Shard::WHOLE,
            start_at: None,
        }
    }
}

/// The resolved inputs of one burst.
pub struct BurstPlan {
    pub spec: LoadSpec,
    pub prompts: Arc<PromptSource>,
    /// What the result records as asked for.
    pub recorded: RunPlan,
    pub model: String,
    pub slo: Slo,
    pub watch: Option<ServerWatch>,
    /// Where to look for the server's container; None with `skip_logs` / `skip_validation`.
    pub logs: Option<LogsSpec>,
    /// This burst's registration with the OTLP receiver; None without one.
    pub spans: Option<SpansWatch>,
    pub tolerances: Tolerances,
    /// Set by the daemon for a target with `workers`: the load runs on connected workers.
    pub remote: Option<crate::coordinator::remote::RemoteLoad>,
}

/// Strip a trailing `/v1` so both `http://h:8000` and `http://h:8000/v1` work.
pub fn normalize_base_url(url: &url::Url) -> String {
    let s = url.as_str().trim_end_matches('/');
    s.strip_suffix("/v1").unwrap_or(s).to_owned()
}

/// The key itself, else the first line of `file`, else none.
pub fn read_api_key(key: Option<&String>, file: Option<&Path>) -> Result<Option<String>, RunError> {
    if let Some(k) = key {
        return Ok(Some(k.trim().to_owned()));
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::BadInput(format!("cannot read the API key file {}: {e}", path.display())))?;
    let key = text.lines().next().unwrap_or("").trim().to_owned();
    if key.is_empty() {
        return Err(RunError::BadInput(format!("the API key file {} is empty", path.display())));
    }
    Ok(Some(key))
}

/// Check the workload's rules and the target, read the prompts and the API key, build the
/// client. Nothing is sent. Workload problems name the keys bare (`concurrency: ...`); a
/// surface with other names (the `run` flags) checks [`Workload::validate`] itself first.
pub fn plan(target: &Target, workload: &Workload, tolerances: Tolerances, run_id: &str) -> Result<BurstPlan, RunError> {
    let problems = workload.validate();
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| p.render(str::to_owned)).collect();
        return Err(RunError::BadInput(lines.join("; ")));
    }
    tolerances.check().map_err(RunError::BadInput)?;
    let base = normalize_base_url(&target.url);
    let url = reqwest::Url::parse(&format!("{base}{}", workload.endpoint.path()))
        .map_err(|e| RunError::BadInput(format!("bad target URL {}: {e}", crate::http::redact_url(&base))))?;
    let api_key = read_api_key(target.api_key.as_ref(), target.api_key_file.as_deref())?;
    let prompts = PromptSource::from_workload(workload)?;
    let arrival = workload.arrival();
    let shard = target.shard;
    if let ArrivalPlan::Concurrency { concurrency } = arrival
        && u64::from(concurrency) < u64::from(shard.count)
    {
        return Err(RunError::BadInput(format!(
            "concurrency {concurrency} cannot be shared by {} shards: each shard needs at least one slot",
            shard.count
        )));
    }
    if let Some(at) = target.start_at
        && at.duration_since(jiff::Timestamp::now()) > jiff::SignedDuration::from_hours(24)
    {
        return Err(RunError::BadInput(format!("--start-at {at} is more than a day away")));
    }
    let stop = workload.stop();
    let timeouts = workload.timeouts();
    let metrics = match (&target.metrics, target.skip_validation) {
        (_, true) => None,
        (Some(source), false) => Some(source.clone()),
        (None, false) => {
            let u = url::Url::parse(&format!("{base}/metrics")).map_err(|e| {
                RunError::BadInput(format!("bad /metrics URL {}/metrics: {e}", crate::http::redact_url(&base)))
            })?;
            Some(MetricsSource::Urls(vec![u]))
        }
    };
    let options = crate::http::ClientOptions {
        connect_timeout: workload.connect_timeout,
        timeout: None,
        idle_per_host: arrival.max_in_flight().unwrap_or(256) as usize,
    };
    let client = crate::http::client(options).map_err(RunError::BadInput)?;
    let watch = metrics.as_ref().map(|source| ServerWatch {
        metrics: MetricsClient::for_source(
            client.clone(),
            source,
            workload.connect_timeout.max(Duration::from_secs(5)),
        ),
        filter: LabelFilter::new().with("model_name", &target.model),
        idle_window: workload.idle_window,
        settle_max: workload.settle_timeout,
        settle_poll: Duration::from_millis(500),
        sample_every: Duration::from_millis(250),
    });
    let request = RequestOptions {
        model: target.model.clone(),
        stream: workload.stream,
        max_tokens: Some(workload.max_tokens),
        ignore_eos: workload.ignore_eos,
        temperature: workload.temperature,
        extra_body: workload.extra_body.clone(),
    };
    let recorded = RunPlan {
        // What is stored and shown never holds a password from the URLs.
        base_url: crate::http::redact_url(&base),
        endpoint: workload.endpoint,
        stream: workload.stream,
        arrival: arrival.clone(),
        stop,
        warmup: workload.warmup,
        max_tokens: workload.max_tokens,
        ignore_eos: workload.ignore_eos,
        prompts: prompts.describe(),
        prompt_tokens_exact: prompts.is_exact(),
        timeouts,
        goodput_slo: workload.goodput,
        metrics_url: metrics.as_ref().map(MetricsSource::describe),
        shard: (!shard.is_whole()).then_some(shard),
        start_at: target.start_at,
    };
    let request_target = RequestTarget {
        client,
        url,
        api_key,
        stream: workload.stream,
        timeouts,
        request_id_prefix: request_id_prefix(run_id),
    };
    // Registered now, so no span of this burst can arrive before its owner.
    let spans = target.spans.as_ref().filter(|_| !target.skip_validation).map(|hub| {
        let planned = match stop {
            crate::workload::StopCondition::Requests(n) => n.saturating_add(workload.warmup),
            crate::workload::StopCondition::Duration(_) => u64::MAX,
        };
        let prefix = request_id_prefix(run_id);
        SpansWatch {
            collector: hub.register(prefix.clone(), usize::try_from(planned).unwrap_or(usize::MAX)),
            request_id_prefix: prefix,
            wait_max: workload.spans_timeout,
        }
    });
    let prewarm_connections = match workload.cold_connections {
        true => 0,
        false => shard.share(u64::from(arrival.expected_in_flight())).max(1) as u32,
    };
    let spec = LoadSpec {
        target: Arc::new(request_target),
        endpoint: workload.endpoint,
        request,
        plan: arrival,
        stop,
        warmup: workload.warmup,
        target_lost_after: workload.target_lost_after,
        memory_budget_bytes: workload.memory_budget_mib.saturating_mul(1 << 20),
        prewarm_connections,
        shard,
        start_at: target.start_at,
    };
    let logs = (!target.skip_validation && !target.skip_logs).then(|| LogsSpec {
        source: target.container.clone(),
        target_port: target.url.port_or_known_default().unwrap_or(80),
    });
    Ok(BurstPlan {
        spec,
        prompts: Arc::new(prompts),
        recorded,
        model: target.model.clone(),
        slo: workload.goodput,
        watch,
        logs,
        spans,
        tolerances,
        remote: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_normalization() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(normalize_base_url(&u("http://h:8000")), "http://h:8000");
        assert_eq!(normalize_base_url(&u("http://h:8000/v1/")), "http://h:8000");
        assert_eq!(normalize_base_url(&u("http://h:8000/proxy/v1")), "http://h:8000/proxy");
    }

    #[test]
    fn api_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "sk-secret\n").unwrap();
        assert_eq!(read_api_key(None, Some(&p)).unwrap().as_deref(), Some("sk-secret"));
        std::fs::write(&p, "\n").unwrap();
        assert!(read_api_key(None, Some(&p)).unwrap_err().to_string().contains("empty"));
        let missing = dir.path().join("nope");
        assert!(read_api_key(None, Some(&missing)).unwrap_err().to_string().contains("cannot read"));
    }

    #[test]
    fn a_broken_rule_is_refused_before_anything_is_built() {
        let t = Target::new(url::Url::parse("http://127.0.0.1:1").unwrap(), "m");
        let w = Workload { concurrency: Some(0), ..Workload::default() };
        let e = plan(&t, &w, Tolerances::default(), "r").err().unwrap().to_string();
        assert_eq!(e, "concurrency: must be at least 1");
    }
}
