//! The merged value tree -> [`Config`], key by key (see [`super::walk`]).

use config::{Map, Value, ValueKind};

use super::check::dotted;
use super::walk::{Problem, Problems, Section, join, read, serde_section};
use super::{AuthConfig, Config, HistoryConfig, LogFormat, MIN_INTERVAL, Schedule, TargetConfig, TriggerLimits};
use crate::docker::ContainerSource;
use crate::openai::Endpoint;
use crate::server::MetricsSource;
use crate::stats::Slo;
use crate::validate::Tolerances;
use crate::workload::prompts::DatasetFormat;
use crate::workload::{Workload, WorkloadPatch};

pub(super) struct Parsed {
    pub config: Config,
    /// `[defaults.workload]` read alone, so that its problems are reported once, under `defaults`.
    pub default_workload: Option<Workload>,
    pub default_tolerances: Option<Tolerances>,
}

#[derive(Default)]
struct Defaults {
    /// `[defaults.workload]`, and its keys that could not be read.
    workload: Option<(WorkloadPatch, Vec<String>)>,
    tolerances: Option<Section>,
}

pub(super) fn config(root: Map<String, Value>, p: &mut Problems) -> Parsed {
    let mut s = Section::new("", Value::new(None, ValueKind::Table(root)), p).unwrap_or_else(|| Section::empty(""));
    let mut c = Config::default();
    if let Some(v) = s.get("listen", p, read::socket_addr) {
        c.listen = v;
    }
    if let Some(v) = s.get("data_dir", p, read::path) {
        c.data_dir = v;
    }
    if let Some(v) = s.get("log_format", p, read::choice::<LogFormat>) {
        c.log_format = v;
    }
    if let Some(v) = s.get("allow_parallel_targets", p, read::bool) {
        c.allow_parallel_targets = v;
    }
    if let Some(section) = s.section("history", p) {
        c.history = history(section, p);
    }
    if let Some(section) = s.section("auth", p) {
        c.auth = auth(section, p);
    }
    if let Some(section) = s.section("workers", p) {
        c.workers = Some(auth(section, p));
    }
    if let Some(section) = s.section("limits", p) {
        c.limits = limits(section, p);
    }
    if let Some(mut section) = s.section("otlp", p) {
        c.otlp_receiver = section.get("receiver", p, read::socket_addr);
        c.otlp_endpoint = section.get("endpoint", p, read::url);
        section.finish(p);
    }
    let mut parsed = Parsed { config: Config::default(), default_workload: None, default_tolerances: None };
    let mut defaults = Defaults::default();
    if let Some(mut d) = s.section("defaults", p) {
        defaults.workload = d.section("workload", p).map(|w| {
            let patch = workload(w, p);
            let prefix = "defaults.workload.";
            let unreadable = p.unreadable.iter().filter_map(|k| k.strip_prefix(prefix)).map(str::to_owned).collect();
            (patch, unreadable)
        });
        defaults.tolerances = d.section("tolerances", p);
        d.finish(p);
        parsed.default_workload = defaults.workload.as_ref().map(|(w, _)| Workload::default().overlaid(w));
        parsed.default_tolerances = defaults.tolerances.clone().map(|t| serde_section::<Tolerances>(t, p));
    }
    if let Some(mut targets) = s.section("targets", p) {
        for (name, value, _) in targets.drain(p) {
            match target(&name, value, &defaults, p) {
                Some(t) => c.targets.push(t),
                None => {
                    p.unreadable.insert(super::check::NO_TARGET_READ.to_owned());
                }
            }
        }
        targets.finish(p);
    }
    c.targets.sort_by(|a, b| a.name.cmp(&b.name));
    s.finish(p);
    parsed.config = c;
    parsed
}

fn history(mut s: Section, p: &mut Problems) -> HistoryConfig {
    let d = HistoryConfig::default();
    let h = HistoryConfig {
        max_runs: s.get("max_runs", p, read::u32).unwrap_or(d.max_runs),
        max_age: s.get("max_age", p, read::duration).unwrap_or(d.max_age),
    };
    s.finish(p);
    h
}

fn auth(mut s: Section, p: &mut Problems) -> AuthConfig {
    let a = AuthConfig { token: s.get("token", p, read::string), token_file: s.get("token_file", p, read::path) };
    s.finish(p);
    a
}

fn limits(mut s: Section, p: &mut Problems) -> TriggerLimits {
    let d = TriggerLimits::default();
    let l = TriggerLimits {
        max_requests: s.get("max_requests", p, read::u64).unwrap_or(d.max_requests),
        max_duration: s.get("max_duration", p, read::duration).unwrap_or(d.max_duration),
        max_concurrency: s.get("max_concurrency", p, read::u32).unwrap_or(d.max_concurrency),
        max_rate: s.get("max_rate", p, read::f64).unwrap_or(d.max_rate),
        max_tokens: s.get("max_tokens", p, read::u32).unwrap_or(d.max_tokens),
    };
    s.finish(p);
    l
}

fn target(name: &str, value: Value, defaults: &Defaults, p: &mut Problems) -> Option<TargetConfig> {
    let path = join("targets", name);
    let mut s = Section::new(&path, value, p)?;
    let url = s.require("url", "\"http://127.0.0.1:8000\"", p, read::url);
    let model = s.require("model", "\"meta-llama/Llama-3.1-8B-Instruct\"", p, read::string);
    let metrics_urls = s.get("metrics_url", p, read::urls);
    let metrics_dns = s.get("metrics_dns", p, read::url);
    let metrics = match (metrics_urls, metrics_dns) {
        (Some(_), Some(d)) => {
            let shown = crate::http::redact_url(d.as_str());
            p.push(Problem::across(
                join(&path, "metrics_dns"),
                &[join(&path, "metrics_url")],
                format!("{shown} and metrics_url both name the replicas; keep one"),
            ));
            None
        }
        (Some(urls), None) => Some(MetricsSource::Urls(urls)),
        (None, Some(template)) => Some(MetricsSource::Dns(template)),
        (None, None) => None,
    };
    let container_names = s.get("container", p, read::strings);
    let container_label = s.get("container_label", p, read::string);
    let container = match (container_names, container_label) {
        (Some(_), Some(_)) => {
            p.push(Problem::across(
                join(&path, "container_label"),
                &[join(&path, "container")],
                "container_label and container both name the containers; keep one".to_owned(),
            ));
            None
        }
        (Some(names), None) => Some(ContainerSource::Named(names)),
        (None, Some(label)) => Some(ContainerSource::Label(label)),
        (None, None) => None,
    };
    let api_key_file = s.get("api_key_file", p, read::path);
    let skip_validation = s.get("skip_validation", p, read::bool).unwrap_or(false);
    let workers = s.get("workers", p, read::u32);

    let own = s.section("workload", p).unwrap_or_else(|| Section::empty(&s.key("workload")));
    let prefix = own.path().to_owned();
    let unread_defaults: Vec<String> = match &defaults.workload {
        Some((_, unreadable)) => unreadable.iter().filter(|k| !own.has(k)).cloned().collect(),
        None => Vec::new(),
    };
    let own = workload(own, p);
    // The target's table over [defaults.workload] over the defaults. What the target takes
    // from [defaults.workload] is checked (and reported) there, once.
    let mut workload = Workload::default();
    if let Some((d, _)) = &defaults.workload {
        workload.overlay(d);
        for k in d.keys_kept_under(&own) {
            p.inherited.insert(dotted(&prefix, k));
        }
        for k in &unread_defaults {
            p.unreadable.insert(dotted(&prefix, k));
        }
    }
    workload.overlay(&own);

    let mut t = s.section("tolerances", p).unwrap_or_else(|| Section::empty(&s.key("tolerances")));
    let own_tolerances = t.own_len();
    if let Some(d) = &defaults.tolerances {
        t.inherit(d, &[]);
    }
    if own_tolerances == 0 && defaults.tolerances.is_some() {
        // Every tolerance comes from [defaults.tolerances], whose check reports any problem.
        p.inherited.insert(t.path().to_owned());
    }
    let tolerances = serde_section::<Tolerances>(t, p);

    let schedule = s.section("schedule", p).map(|sch| schedule(sch, p));
    s.finish(p);
    Some(TargetConfig {
        name: name.to_owned(),
        // Stand-ins for missing or unreadable values, whose problems are already recorded.
        url: url.unwrap_or_else(placeholder_url),
        model: model.unwrap_or_default(),
        metrics,
        container,
        api_key_file,
        skip_validation,
        workers,
        workload,
        tolerances,
        schedule,
    })
}

fn placeholder_url() -> url::Url {
    url::Url::parse("http://invalid.invalid/").expect("a constant, valid URL")
}

fn schedule(mut s: Section, p: &mut Problems) -> Schedule {
    let interval = s.require("interval", "\"15m\"", p, read::duration).unwrap_or(MIN_INTERVAL);
    let jitter = s.get("jitter", p, read::duration).unwrap_or_default();
    s.finish(p);
    Schedule { interval, jitter }
}

fn workload(mut s: Section, p: &mut Problems) -> WorkloadPatch {
    let w = WorkloadPatch {
        endpoint: s.get("endpoint", p, read::choice::<Endpoint>),
        stream: s.get("stream", p, read::bool),
        requests: s.get("requests", p, read::u64),
        duration: s.get("duration", p, read::duration),
        concurrency: s.get("concurrency", p, read::u32),
        rate: s.get("rate", p, read::f64),
        poisson: s.get("poisson", p, read::bool),
        seed: s.get("seed", p, read::u64),
        warmup: s.get("warmup", p, read::u64),
        max_tokens: s.get("max_tokens", p, read::u32),
        ignore_eos: s.get("ignore_eos", p, read::bool),
        temperature: s.get("temperature", p, read::f64),
        extra_body: s.get("extra_body", p, read::json_object),
        input_tokens: s.get("input_tokens", p, read::length),
        dataset: s.get("dataset", p, read::path),
        dataset_format: s.get("dataset_format", p, read::choice::<DatasetFormat>),
        tokenizer: s.get("tokenizer", p, read::path),
        timeout: s.get("timeout", p, read::duration),
        first_token_timeout: s.get("first_token_timeout", p, read::duration),
        connect_timeout: s.get("connect_timeout", p, read::duration),
        inter_chunk_timeout: s.get("inter_chunk_timeout", p, read::duration),
        target_lost_after: s.get("target_lost_after", p, read::u64),
        memory_budget_mib: s.get("memory_budget_mib", p, read::u64),
        cold_connections: s.get("cold_connections", p, read::bool),
        goodput: s.section("goodput", p).map(|g| vec![slo(g, p)]),
        idle_window: s.get("idle_window", p, read::duration),
        settle_timeout: s.get("settle_timeout", p, read::duration),
        spans_timeout: s.get("spans_timeout", p, read::duration),
    };
    s.finish(p);
    w
}

fn slo(mut s: Section, p: &mut Problems) -> Slo {
    let slo = Slo {
        ttft_ms: s.get("ttft_ms", p, read::f64),
        tpot_ms: s.get("tpot_ms", p, read::f64),
        e2el_ms: s.get("e2el_ms", p, read::f64),
    };
    s.finish(p);
    slo
}
