//! The body of `POST /api/v1/targets/{target}/runs`: overrides of the target's
//! workload profile, checked against `[limits]`. Pure: bytes in, workload or
//! a message out.
//!
//! The body is a JSON object with any of `requests`, `duration`, `concurrency`,
//! `rate`, `poisson`, `max_tokens`, `warmup`, `input_tokens`, `seed`,
//! `ignore_eos`, `stream`, and `workers` (share this burst among that many
//! connected workers, on a daemon with `[workers]`); an empty body runs the
//! profile as configured.
//! Unknown keys are refused (a typo would otherwise silently run the default).
//! A key of a group replaces its whole group ([`crate::workload::spec::GROUPS`]):
//! `requests` and `duration` replace each other; `concurrency`, `rate` and
//! `poisson` state the load shape together (`rate` alone is an uncapped open
//! loop, `concurrency` alone a closed loop); `input_tokens` replaces a dataset.
//! Nothing in the body names a URL, a model, a file or a header: a
//! trigger can only vary the load on a configured target.

use std::time::Duration;

use crate::config::TriggerLimits;
use crate::workload::{Workload, WorkloadPatch};

/// The largest body accepted (bytes); a larger one is a 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What a trigger asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggered {
    pub workload: Workload,
    /// The body's `workers` (1 to [`crate::coordinator::MAX_WORKERS`]): share the burst among
    /// that many workers instead of the target's configured number (or the daemon itself).
    pub workers: Option<u32>,
}

/// `profile` with the body's overrides, or why the body is refused (a 400). The body is a
/// [`WorkloadPatch`] in its serde form (only the load-shape keys exist there), laid over the
/// profile with the same [`Workload::overlay`] as config layering, plus `workers`.
pub fn apply(body: &[u8], profile: &Workload, limits: &TriggerLimits) -> Result<Triggered, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Triggered { workload: profile.clone(), workers: None });
    }
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("bad trigger body: {e}"))?;
    let workers = object.remove("workers").map(|v| workers(&v)).transpose();
    let patch: WorkloadPatch =
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| format!("bad trigger body: {e}"))?;
    let mut problems = over_limits(&patch, limits);
    let workers = workers.unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let w = profile.clone().overlaid(&patch);
    problems.extend(w.validate().iter().map(|p| p.render(str::to_owned)));
    if problems.is_empty() { Ok(Triggered { workload: w, workers }) } else { Err(problems.join("; ")) }
}

/// The body's `workers`: a whole number of workers the daemon can coordinate.
fn workers(v: &serde_json::Value) -> Result<u32, String> {
    let max = crate::coordinator::MAX_WORKERS;
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("workers: must be a whole number from 1 to {max}, got {v}"))
}

/// What the body asks for beyond `[limits]`.
fn over_limits(o: &WorkloadPatch, limits: &TriggerLimits) -> Vec<String> {
    let mut problems = Vec::new();
    let mut over = |key: &str, v: String, limit: String, name: &str| {
        problems.push(format!("{key}: {v} is over the limit of {limit} (limits.{name})"));
    };
    if let Some(n) = o.requests.filter(|n| *n > limits.max_requests) {
        over("requests", n.to_string(), limits.max_requests.to_string(), "max_requests");
    }
    if let Some(c) = o.concurrency.filter(|c| *c > limits.max_concurrency) {
        over("concurrency", c.to_string(), limits.max_concurrency.to_string(), "max_concurrency");
    }
    if let Some(r) = o.rate.filter(|r| *r > limits.max_rate) {
        over("rate", r.to_string(), limits.max_rate.to_string(), "max_rate");
    }
    if let Some(m) = o.max_tokens.filter(|m| *m > limits.max_tokens) {
        over("max_tokens", m.to_string(), limits.max_tokens.to_string(), "max_tokens");
    }
    if let Some(n) = o.warmup.filter(|n| *n > limits.max_requests) {
        over("warmup", n.to_string(), limits.max_requests.to_string(), "max_requests");
    }
    // A duration that, with the request timeout, outlasts the limit would hold the target.
    if let Some(d) = o.duration.filter(|d| *d > limits.max_duration) {
        over("duration", show(d), show(limits.max_duration), "max_duration");
    }
    problems
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::prompts::LengthSpec;

    fn profile() -> Workload {
        Workload { requests: Some(40), concurrency: Some(4), ..Workload::default() }
    }

    #[test]
    fn empty_body_runs_the_profile() {
        let l = TriggerLimits::default();
        let same = Triggered { workload: profile(), workers: None };
        assert_eq!(apply(b"", &profile(), &l).unwrap(), same);
        assert_eq!(apply(b" \n", &profile(), &l).unwrap(), same);
        assert_eq!(apply(b"{}", &profile(), &l).unwrap(), same);
    }

    #[test]
    fn overrides_replace_their_counterparts() {
        let l = TriggerLimits::default();
        let w = apply(br#"{"duration": "5s", "max_tokens": 16}"#, &profile(), &l).unwrap().workload;
        assert_eq!((w.requests, w.duration, w.max_tokens), (None, Some(Duration::from_secs(5)), 16));
        let w = apply(br#"{"rate": 2.5, "poisson": true, "input_tokens": "8..16"}"#, &profile(), &l).unwrap().workload;
        assert_eq!((w.rate, w.poisson, w.concurrency), (Some(2.5), true, None));
        assert_eq!(w.input_tokens, Some(LengthSpec::Uniform { min: 8, max: 16 }));
        let w = apply(br#"{"rate": 2.5, "concurrency": 3, "input_tokens": 7}"#, &profile(), &l).unwrap().workload;
        assert_eq!((w.concurrency, w.input_tokens), (Some(3), Some(LengthSpec::Fixed(7))));
    }

    #[test]
    fn the_body_states_the_load_shape_whole() {
        let l = TriggerLimits::default();
        let open = Workload { rate: Some(5.0), poisson: true, concurrency: Some(4), ..profile() };
        let w = apply(br#"{"concurrency": 2}"#, &open, &l).unwrap().workload;
        assert_eq!((w.concurrency, w.rate, w.poisson), (Some(2), None, false), "a closed loop of 2");
        let w = apply(br#"{"rate": 8}"#, &open, &l).unwrap().workload;
        assert_eq!((w.concurrency, w.rate, w.poisson), (None, Some(8.0), false), "an uncapped open loop");
        let w = apply(br#"{"max_tokens": 9}"#, &open, &l).unwrap().workload;
        assert_eq!((w.concurrency, w.rate, w.poisson, w.max_tokens), (Some(4), Some(5.0), true, 9), "shape kept");
    }

    #[test]
    fn a_body_may_ask_for_workers() {
        let l = TriggerLimits::default();
        let t = apply(br#"{"workers": 4, "requests": 80}"#, &profile(), &l).unwrap();
        assert_eq!((t.workers, t.workload.requests), (Some(4), Some(80)));
        let t = apply(br#"{"workers": 256}"#, &profile(), &l).unwrap();
        assert_eq!((t.workers, t.workload), (Some(256), profile()));
        // A bad `workers` and a bad workload key are both reported.
        let e = apply(br#"{"workers": -1, "requests": 0}"#, &profile(), &l).unwrap_err();
        assert!(e.contains("workers:") && e.contains("requests"), "{e}");
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let l = TriggerLimits { max_requests: 100, max_concurrency: 8, ..TriggerLimits::default() };
        let err = |body: &str| apply(body.as_bytes(), &profile(), &l).unwrap_err();
        assert!(err("{").contains("bad trigger body"), "{}", err("{"));
        assert!(err("[1]").contains("bad trigger body"));
        assert!(err(r#"{"url": "http://evil"}"#).contains("unknown field `url`"), "{}", err(r#"{"url": "x"}"#));
        assert!(err(r#"{"requests": 101}"#).contains("limits.max_requests"));
        assert!(err(r#"{"concurrency": 9}"#).contains("limits.max_concurrency"));
        assert!(err(r#"{"concurrency": 0}"#).contains("concurrency: must be at least 1"));
        assert!(err(r#"{"requests": -1}"#).contains("bad trigger body"));
        assert!(err(r#"{"duration": "soon"}"#).contains("not a duration"));
        assert!(err(r#"{"duration": "2h"}"#).contains("limits.max_duration"));
        assert!(err(r#"{"requests": 5, "duration": "5s"}"#).contains("either requests or duration"));
        assert!(err(r#"{"dataset": "/etc/passwd"}"#).contains("unknown field `dataset`"));
        assert!(err(r#"{"input_tokens": true}"#).contains("input_tokens"));
        assert!(err(r#"{"input_tokens": "9..x"}"#).contains("input_tokens"));
        assert!(err(r#"{"max_tokens": 100000}"#).contains("limits.max_tokens"));
        assert!(err(r#"{"poisson": true}"#).contains("rate"));
        assert!(err(r#"{"workers": 0}"#).contains("workers: must be a whole number from 1 to 256"));
        assert!(err(r#"{"workers": 257}"#).contains("got 257"));
        assert!(err(r#"{"workers": "4"}"#).contains("workers"));
        assert!(err(r#"{"workers": 2.5}"#).contains("workers"));
        // Several problems are reported at once.
        assert_eq!(err(r#"{"requests": 101, "concurrency": 9}"#).matches("limits.").count(), 2);
    }
}
