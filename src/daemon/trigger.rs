//! The body of `POST /api/v1/targets/{target}/runs`: overrides of the target's
//! workload profile, checked against `[limits]`. Pure: bytes in, workload or
//! a message out.
//!
//! The body is a JSON object with any of `requests`, `duration`, `concurrency`,
//! `rate`, `poisson`, `max_tokens`, `warmup`, `input_tokens`, `seed`,
//! `ignore_eos`, `stream`; an empty body runs the profile as configured.
//! Unknown keys are refused (a typo would otherwise silently run the default).
//! `requests` and `duration` replace each other, as `rate` replaces a closed
//! loop. Nothing in the body names a URL, a model, a file or a header: a
//! trigger can only vary the load on a configured target.

use std::time::Duration;

use crate::config::{TriggerLimits, Workload, check_workload};
use crate::workload::prompts::LengthSpec;

/// The largest body accepted (bytes); a larger one is a 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    requests: Option<u64>,
    /// humantime, e.g. `"30s"`.
    duration: Option<String>,
    concurrency: Option<u32>,
    rate: Option<f64>,
    poisson: Option<bool>,
    max_tokens: Option<u32>,
    warmup: Option<u64>,
    /// `128` or `"32..256"`.
    input_tokens: Option<serde_json::Value>,
    seed: Option<u64>,
    ignore_eos: Option<bool>,
    stream: Option<bool>,
}

/// `profile` with the body's overrides, or why the body is refused (a 400).
pub fn apply(body: &[u8], profile: &Workload, limits: &TriggerLimits) -> Result<Workload, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(profile.clone());
    }
    let o: Overrides = serde_json::from_slice(body).map_err(|e| format!("bad trigger body: {e}"))?;
    let mut w = profile.clone();
    let mut problems = Vec::new();
    if let Some(n) = o.requests {
        w.requests = Some(n);
        w.duration = None;
        if n > limits.max_requests {
            problems.push(format!("requests: {n} is over the limit of {} (limits.max_requests)", limits.max_requests));
        }
    }
    if let Some(d) = &o.duration {
        if o.requests.is_some() {
            problems.push("duration: set either requests or duration, not both".to_owned());
        }
        match humantime::parse_duration(d) {
            Ok(d) => {
                w.duration = Some(d);
                w.requests = None;
            }
            Err(e) => problems.push(format!("duration: {d:?} is not a duration like \"30s\" ({e})")),
        }
    }
    if let Some(c) = o.concurrency {
        w.concurrency = Some(c);
        if c > limits.max_concurrency {
            problems.push(format!(
                "concurrency: {c} is over the limit of {} (limits.max_concurrency)",
                limits.max_concurrency
            ));
        }
    }
    if let Some(r) = o.rate {
        w.rate = Some(r);
        if o.concurrency.is_none() && profile.rate.is_none() {
            // A closed loop's concurrency is not meant as an open loop's cap.
            w.concurrency = None;
        }
        if r > limits.max_rate {
            problems.push(format!("rate: {r} is over the limit of {} (limits.max_rate)", limits.max_rate));
        }
    }
    if let Some(p) = o.poisson {
        w.poisson = p;
    }
    if let Some(m) = o.max_tokens {
        w.max_tokens = m;
        if m > limits.max_tokens {
            problems.push(format!("max_tokens: {m} is over the limit of {} (limits.max_tokens)", limits.max_tokens));
        }
    }
    if let Some(n) = o.warmup {
        w.warmup = n;
        if n > limits.max_requests {
            problems.push(format!("warmup: {n} is over the limit of {} (limits.max_requests)", limits.max_requests));
        }
    }
    if let Some(v) = &o.input_tokens {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                problems.push(format!("input_tokens: expected N or \"MIN..MAX\", got {other}"));
                String::new()
            }
        };
        if !text.is_empty() {
            match text.parse::<LengthSpec>() {
                Ok(len) => {
                    w.input_tokens = Some(len);
                    w.dataset = None;
                }
                Err(e) => problems.push(format!("input_tokens: {e}")),
            }
        }
    }
    if let Some(s) = o.seed {
        w.seed = s;
    }
    if let Some(b) = o.ignore_eos {
        w.ignore_eos = b;
    }
    if let Some(b) = o.stream {
        w.stream = b;
    }
    // A duration that, with the request timeout, outlasts the limit would hold the target.
    if let Some(d) = w.duration
        && o.duration.is_some()
        && d > limits.max_duration
    {
        problems.push(format!(
            "duration: {} is over the limit of {} (limits.max_duration)",
            show(d),
            show(limits.max_duration)
        ));
    }
    problems.extend(check_workload(&w));
    if problems.is_empty() { Ok(w) } else { Err(problems.join("; ")) }
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Workload {
        Workload { requests: Some(40), concurrency: Some(4), ..Workload::default() }
    }

    #[test]
    fn empty_body_runs_the_profile() {
        let l = TriggerLimits::default();
        assert_eq!(apply(b"", &profile(), &l).unwrap(), profile());
        assert_eq!(apply(b" \n", &profile(), &l).unwrap(), profile());
        assert_eq!(apply(b"{}", &profile(), &l).unwrap(), profile());
    }

    #[test]
    fn overrides_replace_their_counterparts() {
        let l = TriggerLimits::default();
        let w = apply(br#"{"duration": "5s", "max_tokens": 16}"#, &profile(), &l).unwrap();
        assert_eq!((w.requests, w.duration, w.max_tokens), (None, Some(Duration::from_secs(5)), 16));
        let w = apply(br#"{"rate": 2.5, "poisson": true, "input_tokens": "8..16"}"#, &profile(), &l).unwrap();
        assert_eq!((w.rate, w.poisson, w.concurrency), (Some(2.5), true, None));
        assert_eq!(w.input_tokens, Some(LengthSpec::Uniform { min: 8, max: 16 }));
        let w = apply(br#"{"rate": 2.5, "concurrency": 3, "input_tokens": 7}"#, &profile(), &l).unwrap();
        assert_eq!((w.concurrency, w.input_tokens), (Some(3), Some(LengthSpec::Fixed(7))));
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
        assert!(err(r#"{"input_tokens": true}"#).contains("input_tokens"));
        assert!(err(r#"{"input_tokens": "9..x"}"#).contains("input_tokens"));
        assert!(err(r#"{"max_tokens": 100000}"#).contains("limits.max_tokens"));
        assert!(err(r#"{"poisson": true}"#).contains("rate"));
        // Several problems are reported at once.
        assert_eq!(err(r#"{"requests": 101, "concurrency": 9}"#).matches("limits.").count(), 2);
    }
}
