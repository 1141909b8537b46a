//! The rules between values. Each problem names the key it is about (and,
//! for a rule between keys, the others it depends on).

use std::collections::BTreeMap;
use std::time::Duration;

use super::walk::{Problem, join};
use super::{Config, MAX_TARGET_NAME, MIN_INTERVAL, TargetConfig, Workload, env_segment};
use crate::docker::{ContainerSource, MAX_FLEET_CONTAINERS};
use crate::server::MetricsSource;
use crate::validate::Tolerances;
use crate::workload::spec::{duration_problem, positive_problem, show};

pub(super) fn config(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    if c.targets.is_empty() {
        // Not when a target was given but could not be read (`NO_TARGET_READ`).
        out.push(Problem::across(
            "targets",
            &[NO_TARGET_READ.to_owned()],
            "no target configured; add a [targets.NAME] table with url and model",
        ));
    }

    at_least_one("history.max_runs", u64::from(c.history.max_runs), &mut out);
    duration("history.max_age", c.history.max_age, false, &mut out);

    if let Some(token) = &c.auth.token
        && token.trim().is_empty()
    {
        out.push(Problem::new("auth.token", "must not be empty (remove the key to leave the API open)"));
    }
    if c.auth.token.is_some() && c.auth.token_file.is_some() {
        out.push(Problem::across(
            "auth.token",
            &["auth.token_file".to_owned()],
            "set either auth.token or auth.token_file, not both",
        ));
    }
    if let Some(path) = &c.auth.token_file
        && path.as_os_str().is_empty()
    {
        out.push(Problem::new("auth.token_file", "must not be empty"));
    }

    if let Some(w) = &c.workers
        && w.token.as_deref().is_none_or(|t| t.trim().is_empty())
        && w.token_file.as_ref().is_none_or(|f| f.as_os_str().is_empty())
    {
        out.push(Problem::new("workers", "needs token_file (or token): workers authenticate with it"));
    }
    for t in c.targets.iter().filter(|t| t.workers.is_some()) {
        if c.workers.is_none() {
            out.push(Problem::across(
                dotted(&join("targets", &t.name), "workers"),
                &["workers".to_owned()],
                "needs a [workers] section with the workers' token_file",
            ));
        }
    }

    let l = &c.limits;
    at_least_one("limits.max_requests", l.max_requests, &mut out);
    duration("limits.max_duration", l.max_duration, false, &mut out);
    at_least_one("limits.max_concurrency", u64::from(l.max_concurrency), &mut out);
    positive("limits.max_rate", l.max_rate, "requests per second", &mut out);
    at_least_one("limits.max_tokens", u64::from(l.max_tokens), &mut out);

    let mut by_segment: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for t in &c.targets {
        by_segment.entry(env_segment(&t.name)).or_default().push(&t.name);
        target(t, &mut out);
    }
    for names in by_segment.values().filter(|n| n.len() > 1) {
        for name in &names[1..] {
            out.push(Problem::new(
                join("targets", name),
                format!(
                    "differs from targets.{} only in case or in -, . and _; LLM_LOADTEST__TARGETS__* \
                     variables could not tell them apart",
                    names[0]
                ),
            ));
        }
    }
    out
}

fn target(t: &TargetConfig, out: &mut Vec<Problem>) {
    let path = join("targets", &t.name);
    let key = |k: &str| dotted(&path, k);
    if let Err(why) = target_name(&t.name) {
        out.push(Problem::new(&path, why));
    }
    http_url(&key("url"), &t.url, out);
    match &t.metrics {
        Some(MetricsSource::Urls(urls)) => {
            for u in urls {
                http_url(&key("metrics_url"), u, out);
            }
        }
        Some(MetricsSource::Dns(u)) => {
            http_url(&key("metrics_dns"), u, out);
            if u.host().is_some_and(|h| !matches!(h, url::Host::Domain(_))) {
                out.push(Problem::new(
                    key("metrics_dns"),
                    format!(
                        "{} names an address, not a DNS name; use metrics_url",
                        crate::http::redact_url(u.as_str())
                    ),
                ));
            }
        }
        None => {}
    }
    if t.model.trim().is_empty() {
        out.push(Problem::new(key("model"), "must not be empty; the model name as the server serves it"));
    }
    match &t.container {
        Some(ContainerSource::Named(names)) => {
            if names.iter().any(|c| c.trim().is_empty()) {
                out.push(Problem::new(
                    key("container"),
                    "must not be empty (remove the key when there is no container)",
                ));
            }
            if names.len() > MAX_FLEET_CONTAINERS {
                out.push(Problem::new(key("container"), format!("at most {MAX_FLEET_CONTAINERS} containers")));
            }
        }
        Some(ContainerSource::Label(label)) if label.trim().is_empty() => {
            out.push(Problem::new(key("container_label"), "must not be empty: `key` or `key=value`"));
        }
        _ => {}
    }
    if t.api_key_file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        out.push(Problem::new(key("api_key_file"), "must not be empty"));
    }
    if let Some(n) = t.workers {
        if n == 0 {
            out.push(Problem::new(
                key("workers"),
                "must be at least 1 (remove the key to send the load from the daemon)",
            ));
        }
        if n > crate::coordinator::MAX_WORKERS {
            out.push(Problem::new(
                key("workers"),
                format!("must be at most {}, got {n}", crate::coordinator::MAX_WORKERS),
            ));
        }
        if t.workload.dataset.is_some() || t.workload.tokenizer.is_some() {
            out.push(Problem::new(
                key("workers"),
                "a distributed burst cannot use workload.dataset or workload.tokenizer yet (files on the daemon's machine)",
            ));
        }
    }
    workload(&key("workload"), &t.workload, out);
    tolerances(&key("tolerances"), &t.tolerances, out);
    if let Some(s) = &t.schedule {
        let interval = key("schedule.interval");
        if s.interval < MIN_INTERVAL {
            out.push(Problem::new(&interval, format!("must be at least 1s, got {}", show(s.interval))));
        }
        duration(&interval, s.interval, true, out);
        duration(&key("schedule.jitter"), s.jitter, true, out);
        if s.jitter >= s.interval {
            out.push(Problem::across(
                key("schedule.jitter"),
                std::slice::from_ref(&interval),
                format!("must be less than schedule.interval ({}), got {}", show(s.interval), show(s.jitter)),
            ));
        }
        if let Some(d) = t.workload.duration
            && s.interval <= d
        {
            out.push(Problem::across(
                &interval,
                &[key("workload.duration")],
                format!(
                    "{} is not longer than workload.duration ({}): every burst would overrun the next tick",
                    show(s.interval),
                    show(d)
                ),
            ));
        }
    }
}

/// `[A-Za-z0-9_.-]{1,64}`, and not `.` or `..` (a URL path segment).
pub(super) fn target_name(name: &str) -> Result<(), String> {
    let allowed = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if name.is_empty() || name.len() > MAX_TARGET_NAME || !allowed {
        return Err(format!(
            "a target name must be 1 to {MAX_TARGET_NAME} of the characters A-Z a-z 0-9 _ . - \
             (it becomes a metric label value and a URL path segment)"
        ));
    }
    if name.bytes().all(|b| b == b'.') {
        return Err("a target name cannot be only dots (it becomes a URL path segment)".into());
    }
    Ok(())
}

/// The workload's own rules ([`Workload::validate`]), each named by its key under `prefix`.
pub(super) fn workload(prefix: &str, w: &Workload, out: &mut Vec<Problem>) {
    for problem in w.validate() {
        let related: Vec<String> = problem.related.iter().map(|k| dotted(prefix, k)).collect();
        out.push(Problem::across(dotted(prefix, problem.key), &related, problem.message(str::to_owned)));
    }
}

pub(super) fn tolerances(key: &str, t: &Tolerances, out: &mut Vec<Problem>) {
    if let Err(why) = t.check() {
        out.push(Problem::new(key, why));
    }
}

/// Files the config names can be read (a problem at load, not a burst later).
pub(super) fn files(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    if c.auth.token.is_none()
        && c.auth.token_file.as_ref().is_some_and(|f| !f.as_os_str().is_empty())
        && let Err(why) = c.auth.read_token()
    {
        out.push(Problem::new("auth.token_file", why));
    }
    for t in &c.targets {
        let path = join("targets", &t.name);
        let key = |k: &str| dotted(&path, k);
        if let Some(f) = t.api_key_file.as_ref().filter(|f| !f.as_os_str().is_empty()) {
            let auth = super::AuthConfig { token: None, token_file: Some(f.clone()) };
            if let Err(why) = auth.read_token() {
                out.push(Problem::new(key("api_key_file"), why));
            }
        }
        for (k, f) in [("workload.dataset", &t.workload.dataset), ("workload.tokenizer", &t.workload.tokenizer)] {
            if let Some(f) = f.as_ref().filter(|f| !f.as_os_str().is_empty())
                && !f.is_file()
            {
                let why = if f.exists() { "is not a file" } else { "does not exist" };
                out.push(Problem::new(key(k), format!("{} {why}", f.display())));
            }
        }
    }
    out
}

/// `prefix` + `a.b`, each segment quoted as needed.
pub(super) fn dotted(prefix: &str, keys: &str) -> String {
    keys.split('.').fold(prefix.to_owned(), |acc, k| join(&acc, k))
}

/// Marked unreadable when a `[targets.NAME]` entry is not a table.
pub(super) const NO_TARGET_READ: &str = "targets.*";

fn at_least_one(key: &str, v: u64, out: &mut Vec<Problem>) {
    if v == 0 {
        out.push(Problem::new(key, "must be at least 1"));
    }
}

fn positive(key: &str, v: f64, unit: &str, out: &mut Vec<Problem>) {
    out.extend(positive_problem(v, unit).map(|m| Problem::new(key, m)));
}

fn duration(key: &str, d: Duration, zero_ok: bool, out: &mut Vec<Problem>) {
    out.extend(duration_problem(d, zero_ok).map(|m| Problem::new(key, m)));
}

fn http_url(key: &str, u: &url::Url, out: &mut Vec<Problem>) {
    let shown = crate::http::redact_url(u.as_str());
    if !matches!(u.scheme(), "http" | "https") {
        out.push(Problem::new(key, format!("{shown} must be an http:// or https:// URL")));
    } else if u.host_str().is_none_or(str::is_empty) {
        out.push(Problem::new(key, format!("{shown} has no host")));
    }
}
