//! `doctor`: the first thing to run when a load test fails. It gathers
//! observations of a target (I/O, `observe`) and turns them into findings
//! (pure, `diagnose`), each in the troubleshooting guide's shape:
//! Symptom, Root cause, Evidence, Solution, Verification.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::DoctorArgs;
use crate::error::describe_reqwest;
use crate::openai::{self, Endpoint, RequestOptions, build_body};

/// What one HTTP probe saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Probe {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub elapsed_ms: f64,
    pub body_excerpt: String,
}

/// What the streamed test request saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamProbe {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub content_type: Option<String>,
    pub ttft_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    pub token_chunks: u64,
    pub usage: Option<openai::Usage>,
    pub finish_reason: Option<String>,
    pub saw_done: bool,
}

/// Everything observed about a target.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Observations {
    pub base_url: String,
    pub model: String,
    pub health: Probe,
    pub models: Probe,
    pub served_models: Option<Vec<String>>,
    pub version: Option<String>,
    pub stream: StreamProbe,
    pub metrics: Probe,
    pub vllm_families: usize,
    pub implied_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, in the troubleshooting guide's format.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub symptom: String,
    pub root_cause: String,
    pub evidence: Vec<String>,
    pub solution: Vec<String>,
    pub verification: String,
}

fn excerpt(s: &str) -> String {
    let s = s.trim();
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

async fn get(client: &reqwest::Client, url: &str, accept: Option<&str>) -> (Probe, String) {
    let t0 = Instant::now();
    let mut req = client.get(url);
    if let Some(a) = accept {
        req = req.header(reqwest::header::ACCEPT, a);
    }
    match req.send().await {
        Err(e) => (
            Probe {
                error: Some(describe_reqwest(&e)),
                elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
                ..Default::default()
            },
            String::new(),
        ),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let probe = Probe {
                status: Some(status),
                error: None,
                elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
                body_excerpt: excerpt(&body),
            };
            (probe, body)
        }
    }
}

/// Gather observations. Never fails: every problem becomes an observation.
pub async fn observe(
    base_url: &str,
    model: &str,
    endpoint: Endpoint,
    api_key: Option<&str>,
    timeout: Duration,
) -> Observations {
    let mut obs = Observations { base_url: base_url.to_owned(), model: model.to_owned(), ..Default::default() };
    let options = crate::http::ClientOptions {
        connect_timeout: timeout.min(Duration::from_secs(5)),
        timeout: Some(timeout),
        ..Default::default()
    };
    let client = match crate::http::client(options) {
        Ok(c) => c,
        Err(e) => {
            obs.health.error = Some(e);
            return obs;
        }
    };
    (obs.health, _) = get(&client, &format!("{base_url}/health"), None).await;
    let (models, body) = get(&client, &format!("{base_url}/v1/models"), None).await;
    obs.models = models;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
        obs.served_models =
            v["data"].as_array().map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect());
    }
    let (_, version) = get(&client, &format!("{base_url}/version"), None).await;
    obs.version =
        serde_json::from_str::<serde_json::Value>(&version).ok().and_then(|v| v["version"].as_str().map(str::to_owned));
    obs.stream = stream_probe(&client, base_url, model, endpoint, api_key, timeout).await;
    let (metrics, body) = get(&client, &format!("{base_url}/metrics"), Some("text/plain; version=0.0.4")).await;
    obs.metrics = metrics;
    obs.vllm_families = body.lines().filter(|l| l.starts_with("# TYPE vllm:")).count();
    obs.implied_version = crate::server::catalogue::implied_vllm_version(&crate::promtext::parse(&body));
    obs
}

async fn stream_probe(
    client: &reqwest::Client,
    base_url: &str,
    model: &str,
    endpoint: Endpoint,
    api_key: Option<&str>,
    timeout: Duration,
) -> StreamProbe {
    let opts = RequestOptions { model: model.to_owned(), stream: true, max_tokens: Some(16), ..Default::default() };
    let body = build_body(endpoint, "Say hello.", &opts);
    let mut req = client.post(format!("{base_url}{}", endpoint.path())).json(&body);
    if let Some(k) = api_key {
        req = req.bearer_auth(k);
    }
    let mut p = StreamProbe::default();
    let t0 = Instant::now();
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            p.error = Some(describe_reqwest(&e));
            return p;
        }
    };
    p.status = Some(resp.status().as_u16());
    p.content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if !resp.status().is_success() {
        p.error = Some(excerpt(&resp.text().await.unwrap_or_default()));
        return p;
    }
    // The client's total timeout ends the request; the reader also re-checks it between reads.
    let until = tokio::time::Instant::now() + timeout;
    let mut events = crate::burst::worker::EventReader::new(resp.bytes_stream());
    loop {
        let next = events.next((until, crate::record::Outcome::Timeout, "the doctor's timeout")).await;
        let at = t0.elapsed().as_secs_f64() * 1e3;
        let data = match next {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(fault) => {
                p.error = Some(format!("stream error: {}", fault.describe()));
                break;
            }
        };
        if data == "[DONE]" {
            p.saw_done = true;
            p.e2e_ms = Some(at);
            break;
        }
        match openai::parse_chunk(&data) {
            Ok(c) => {
                if let Some(e) = c.error {
                    p.error = Some(e);
                }
                if c.carries_token {
                    p.token_chunks += 1;
                    p.ttft_ms.get_or_insert(at);
                }
                p.usage = c.usage.or(p.usage);
                p.finish_reason = c.finish_reason.or(p.finish_reason.take());
            }
            Err(e) => {
                p.error = Some(format!("{e} (data: {})", excerpt(&data)));
                break;
            }
        }
    }
    p.e2e_ms.get_or_insert(t0.elapsed().as_secs_f64() * 1e3);
    p
}

fn finding(
    severity: Severity,
    symptom: &str,
    cause: &str,
    evidence: Vec<String>,
    solution: Vec<String>,
    verification: &str,
) -> Finding {
    Finding {
        severity,
        symptom: symptom.into(),
        root_cause: cause.into(),
        evidence,
        solution,
        verification: verification.into(),
    }
}

/// Turn observations into findings. Pure.
pub fn diagnose(o: &Observations) -> Vec<Finding> {
    let mut f = Vec::new();
    let base = &o.base_url;
    if let Some(err) = &o.health.error
        && o.models.status.is_none()
    {
        f.push(finding(
            Severity::Error,
            "No response from the server: every request would fail (timeouts or connection errors).",
            "Nothing answers at this address: the server is not running, still loading the model, listening on another port or interface, or a firewall drops the traffic.",
            vec![format!("GET {base}/health: {err}")],
            vec![
                "Check that the server process or container is running and finished loading (vLLM prints `Application startup complete.`).".into(),
                "Check host and port: vLLM listens on --host/--port (default 0.0.0.0:8000).".into(),
            ],
            &format!("curl -v {base}/health answers 200."),
        ));
        return f;
    }
    if let Some(s) = o.health.status
        && s >= 500
    {
        f.push(finding(
            Severity::Error,
            "The server is up but unhealthy.",
            "vLLM answers 503 on /health when its engine died (0.11+); requests will fail until it restarts.",
            vec![format!("GET {base}/health: HTTP {s} {}", o.health.body_excerpt)],
            vec!["Read the server log for `EngineDeadError` or `EngineCore encountered a fatal error` and restart the server.".into()],
            &format!("curl {base}/health answers 200."),
        ));
    }
    match &o.served_models {
        Some(models) if !models.iter().any(|m| m == &o.model) => f.push(finding(
            Severity::Error,
            "Requests fail with HTTP 404.",
            "The model name in the request is not one the server serves (vLLM serves --served-model-name, else the model path).",
            vec![format!("GET {base}/v1/models lists: {}", models.join(", ")), format!("asked for: {}", o.model)],
            vec![format!("Use --model {}", models.first().map_or("<a served name>", String::as_str))],
            "doctor reports the model as served.",
        )),
        None if o.models.status.is_some() => f.push(finding(
            Severity::Warning,
            "The server does not list its models.",
            "GET /v1/models did not return an OpenAI model list: not an OpenAI-compatible server, a proxy path, or an auth error.",
            vec![format!("GET {base}/v1/models: HTTP {} {}", o.models.status.unwrap_or(0), o.models.body_excerpt)],
            vec!["Check the base URL (it must be the server root, with or without /v1) and the API key.".into()],
            &format!("curl {base}/v1/models returns a list containing the model."),
        )),
        _ => {}
    }
    let s = &o.stream;
    if let Some(err) = &s.error {
        let status = s.status.map(|c| format!("HTTP {c}: ")).unwrap_or_default();
        let cause = match s.status {
            Some(401 | 403) => "The server wants an API key (or a different one).",
            Some(400) => {
                "The server rejected the request body (prompt too long, max_tokens over the context, or an unsupported field)."
            }
            Some(404) => "Wrong endpoint path or model name.",
            Some(c) if c >= 500 => "The server failed while handling the request.",
            _ => "The streamed response could not be read to its end.",
        };
        f.push(finding(
            Severity::Error,
            "The test request failed.",
            cause,
            vec![format!("{status}{err}")],
            vec![
                "Fix the cause above, then run doctor again.".into(),
                "For keys: --api-key-file or LLM_LOADTEST_API_KEY.".into(),
            ],
            "doctor's test request completes with a finish_reason.",
        ));
    } else if s.status.is_some() {
        if !s.content_type.as_deref().unwrap_or("").starts_with("text/event-stream") {
            f.push(finding(
                Severity::Error,
                "Streaming responses cannot be parsed; TTFT cannot be measured.",
                "The server (or a proxy) does not answer `stream: true` with Server-Sent Events.",
                vec![format!("content-type: {}", s.content_type.as_deref().unwrap_or("none"))],
                vec!["Point --target at the server itself, or use --no-stream (TTFT then equals E2E).".into()],
                "doctor shows a TTFT and token chunks.",
            ));
        }
        if s.usage.is_none() {
            f.push(finding(
                Severity::Warning,
                "Token counts will be approximate.",
                "The stream carried no `usage` chunk although `stream_options.include_usage` was asked for (servers before this OpenAI feature, or a proxy that drops it).",
                vec![format!("{} token chunks, no usage", s.token_chunks)],
                vec!["Upgrade the server, or accept chunk-counted tokens (labelled approximate in results).".into()],
                "doctor shows usage with prompt and completion tokens.",
            ));
        }
        if s.token_chunks == 0 {
            f.push(finding(
                Severity::Warning,
                "No output token arrived; TTFT would fall back to the end of the response.",
                "The stream had no chunk with content: the model produced nothing (EOS first) or the chunks have an unexpected shape.",
                vec![format!("finish_reason: {:?}, usage: {:?}", s.finish_reason, s.usage)],
                vec!["Try --ignore-eos so the model generates exactly --max-tokens.".into()],
                "doctor shows token chunks > 0.",
            ));
        }
    }
    if o.metrics.status != Some(200) || o.vllm_families == 0 {
        let ev = match (&o.metrics.error, o.metrics.status) {
            (Some(e), _) => format!("GET {base}/metrics: {e}"),
            (None, Some(200)) => format!("GET {base}/metrics: 200 but no `vllm:` metric family"),
            (None, st) => format!("GET {base}/metrics: HTTP {}", st.unwrap_or(0)),
        };
        f.push(finding(
            Severity::Warning,
            "Server-side cross-validation will be skipped.",
            "No vLLM Prometheus metrics at /metrics: not a vLLM server, metrics served elsewhere, or `--disable-log-stats` (which removes every vllm: metric).",
            vec![ev],
            vec!["Give --metrics-url if /metrics lives elsewhere; drop --disable-log-stats on the server.".into()],
            &format!("curl {base}/metrics | grep '^vllm:' shows counters."),
        ));
    }
    f
}

/// Render findings as the troubleshooting guide's Markdown.
pub fn render(o: &Observations, findings: &[Finding]) -> String {
    let mut s = format!("## Diagnosis: {} ({})\n\n", o.base_url, o.model);
    s.push_str(&format!(
        "Checks: /health {}, /v1/models {}, streamed request {}, /metrics {} ({} vllm: families{})\n",
        status_word(&o.health),
        status_word(&o.models),
        match (&o.stream.error, o.stream.ttft_ms) {
            (None, Some(t)) => format!(
                "ok (TTFT {t:.1} ms, E2E {:.1} ms, {} token chunks, usage {})",
                o.stream.e2e_ms.unwrap_or(0.0),
                o.stream.token_chunks,
                if o.stream.usage.is_some() { "yes" } else { "no" }
            ),
            (Some(_), _) => "failed".into(),
            (None, None) => "no tokens".into(),
        },
        status_word(&o.metrics),
        o.vllm_families,
        o.version.as_ref().map(|v| format!(", /version says {v}")).unwrap_or_default(),
    ));
    if let Some(v) = &o.implied_version {
        s.push_str(&format!("Metric names imply: {v}\n"));
    }
    if findings.is_empty() {
        s.push_str("\nNo problem found: the target is ready for a load test.\n");
    }
    for (i, f) in findings.iter().enumerate() {
        let sev = if f.severity == Severity::Error { "ERROR" } else { "WARNING" };
        s.push_str(&format!(
            "\n### {}. [{sev}] Symptom\n{}\n\n#### Root Cause\n{}\n\n#### Evidence\n",
            i + 1,
            f.symptom,
            f.root_cause
        ));
        for e in &f.evidence {
            s.push_str(&format!("- {e}\n"));
        }
        s.push_str("\n#### Solution\n");
        for (n, step) in f.solution.iter().enumerate() {
            s.push_str(&format!("{}. {step}\n", n + 1));
        }
        s.push_str(&format!("\n#### Verification\n{}\n", f.verification));
    }
    s
}

fn status_word(p: &Probe) -> String {
    match (p.status, &p.error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(_)) => "unreachable".into(),
        (None, None) => "not checked".into(),
    }
}

pub async fn run_command(args: DoctorArgs) -> ExitCode {
    let key = match crate::burst::plan::read_api_key(args.api_key.as_ref(), args.api_key_file.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let base = crate::burst::plan::normalize_base_url(&args.target);
    let mut obs = observe(&base, &args.model, args.endpoint, key.as_deref(), args.timeout).await;
    obs.base_url = crate::http::redact_url(&obs.base_url);
    let findings = diagnose(&obs);
    if args.json {
        let v = serde_json::json!({ "observations": obs, "findings": findings });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", render(&obs, &findings));
    }
    if findings.iter().any(|f| f.severity == Severity::Error) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Observations {
        Observations {
            base_url: "http://h".into(),
            model: "m".into(),
            health: Probe { status: Some(200), ..Default::default() },
            models: Probe { status: Some(200), ..Default::default() },
            served_models: Some(vec!["m".into()]),
            stream: StreamProbe {
                status: Some(200),
                content_type: Some("text/event-stream; charset=utf-8".into()),
                ttft_ms: Some(10.0),
                e2e_ms: Some(20.0),
                token_chunks: 16,
                usage: Some(openai::Usage { prompt_tokens: 5, completion_tokens: 16 }),
                saw_done: true,
                ..Default::default()
            },
            metrics: Probe { status: Some(200), ..Default::default() },
            vllm_families: 30,
            ..Default::default()
        }
    }

    #[test]
    fn healthy_target_has_no_findings() {
        assert!(diagnose(&healthy()).is_empty());
    }

    #[test]
    fn unreachable_is_one_error() {
        let o = Observations {
            base_url: "http://h".into(),
            health: Probe { error: Some("connection refused".into()), ..Default::default() },
            ..Default::default()
        };
        let f = diagnose(&o);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].evidence[0].contains("connection refused"));
    }

    #[test]
    fn wrong_model_names_the_served_one() {
        let mut o = healthy();
        o.model = "llama".into();
        let f = diagnose(&o);
        assert!(f.iter().any(|x| x.symptom.contains("404") && x.solution[0].contains("--model m")), "{f:?}");
    }

    #[test]
    fn missing_usage_and_metrics_are_warnings() {
        let mut o = healthy();
        o.stream.usage = None;
        o.vllm_families = 0;
        let f = diagnose(&o);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|x| x.severity == Severity::Warning));
        let text = render(&o, &f);
        assert!(text.contains("#### Root Cause") && text.contains("#### Verification"));
    }
}
