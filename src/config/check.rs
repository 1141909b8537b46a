//! The rules between values. Each problem names the key it is about (and,
//! for a rule between keys, the others it depends on).

use std::collections::BTreeMap;
use std::time::Duration;

use super::walk::{Problem, join};
use super::{Config, MAX_DURATION, MAX_TARGET_NAME, MIN_INTERVAL, TargetConfig, Workload, env_segment};
use crate::validate::Tolerances;
use crate::workload::prompts::LengthSpec;

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
    if let Some(u) = &t.metrics_url {
        http_url(&key("metrics_url"), u, out);
    }
    if t.model.trim().is_empty() {
        out.push(Problem::new(key("model"), "must not be empty; the model name as the server serves it"));
    }
    if t.container.as_deref().is_some_and(|c| c.trim().is_empty()) {
        out.push(Problem::new(key("container"), "must not be empty (remove the key when there is no container)"));
    }
    if t.api_key_file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        out.push(Problem::new(key("api_key_file"), "must not be empty"));
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

pub(super) fn workload(prefix: &str, w: &Workload, out: &mut Vec<Problem>) {
    let key = |k: &str| dotted(prefix, k);
    if w.concurrency == Some(0) {
        out.push(Problem::new(key("concurrency"), "must be at least 1"));
    }
    if let Some(rate) = w.rate {
        positive(&key("rate"), rate, "requests per second", out);
    }
    if w.poisson && w.rate.is_none() {
        out.push(Problem::across(
            key("poisson"),
            &[key("rate")],
            "shapes the gaps of an open loop; set rate too (or remove poisson)",
        ));
    }
    if w.requests == Some(0) {
        out.push(Problem::new(key("requests"), "must be at least 1"));
    }
    if let Some(d) = w.duration {
        duration(&key("duration"), d, false, out);
    }
    if w.requests.is_some() && w.duration.is_some() {
        out.push(Problem::across(
            key("duration"),
            &[key("requests")],
            "set either requests or duration, not both (requests stops after N requests, duration after a time)",
        ));
    }
    at_least_one(&key("max_tokens"), u64::from(w.max_tokens), out);
    if let Some(t) = w.temperature
        && !(t.is_finite() && t >= 0.0)
    {
        out.push(Problem::new(key("temperature"), format!("must be a number from 0 up, got {t}")));
    }
    if let Some(len) = &w.input_tokens {
        // The same parser as `run --input-tokens`.
        if let Err(e) = len.to_string().parse::<LengthSpec>() {
            out.push(Problem::new(key("input_tokens"), e.to_string()));
        }
        if w.dataset.is_some() {
            out.push(Problem::across(
                key("input_tokens"),
                &[key("dataset")],
                "sets the length of synthetic prompts; it cannot be combined with dataset",
            ));
        }
    }
    if w.dataset.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        out.push(Problem::new(key("dataset"), "must not be empty"));
    }
    if w.tokenizer.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        out.push(Problem::new(key("tokenizer"), "must not be empty"));
    }
    duration(&key("timeout"), w.timeout, false, out);
    duration(&key("first_token_timeout"), w.first_token_timeout, false, out);
    duration(&key("connect_timeout"), w.connect_timeout, false, out);
    if w.first_token_timeout > w.timeout {
        out.push(Problem::across(
            key("first_token_timeout"),
            &[key("timeout")],
            format!(
                "{} is longer than timeout ({}), which bounds the whole request",
                show(w.first_token_timeout),
                show(w.timeout)
            ),
        ));
    }
    for (name, v) in [("ttft_ms", w.goodput.ttft_ms), ("tpot_ms", w.goodput.tpot_ms), ("e2el_ms", w.goodput.e2el_ms)] {
        if let Some(v) = v {
            positive(&key(&format!("goodput.{name}")), v, "milliseconds", out);
        }
    }
    duration(&key("idle_window"), w.idle_window, true, out);
    duration(&key("settle_timeout"), w.settle_timeout, true, out);
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
fn dotted(prefix: &str, keys: &str) -> String {
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
    if !(v.is_finite() && v > 0.0) {
        out.push(Problem::new(key, format!("must be a number above 0 ({unit}), got {v}")));
    }
}

fn duration(key: &str, d: Duration, zero_ok: bool, out: &mut Vec<Problem>) {
    if d.is_zero() && !zero_ok {
        out.push(Problem::new(key, "must be more than 0s"));
    } else if d > MAX_DURATION {
        out.push(Problem::new(key, format!("must be at most 365d, got {}", show(d))));
    }
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn http_url(key: &str, u: &url::Url, out: &mut Vec<Problem>) {
    if !matches!(u.scheme(), "http" | "https") {
        out.push(Problem::new(key, format!("{u} must be an http:// or https:// URL")));
    } else if u.host_str().is_none_or(str::is_empty) {
        out.push(Problem::new(key, format!("{u} has no host")));
    }
}
