//! Per-request validation against the real vLLM on a shared server:
//! `scripts/test.sh` starts it in a container with `--otlp-traces-endpoint
//! http://$LLM_LOADTEST_REAL_VLLM_OTLP` (gRPC, vLLM's default) and
//! `--enable-log-requests`. Other clients send a changing mix of chat and
//! completion requests the whole time; every burst's counts must match the
//! server exactly, and no count check of any section may WARN because of them.
//! Ignored in a plain `cargo test`; fails, never skips, without the server.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh"))
}

/// Other clients: lulls, light and heavy phases, chat and completions, no ids of ours.
fn background(url: String, model: String, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let phases = [(0usize, 700u64), (1, 1500), (3, 2000), (0, 400), (2, 1500)];
        let mut round = 0u64;
        // Bounded: stops when told, and after five minutes whatever happens.
        while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(300) {
            let (parallel, ms) = phases[(round as usize) % phases.len()];
            let phase_end = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < phase_end && !stop.load(Ordering::Relaxed) {
                if parallel == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                let calls = (0..parallel).map(|i| {
                    let max_tokens = 4 + ((round + i as u64) % 5) * 6;
                    let (path, body) = if (round + i as u64).is_multiple_of(2) {
                        (
                            "/v1/chat/completions",
                            serde_json::json!({"model": model, "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": format!("background {round} {i}")}]}),
                        )
                    } else {
                        (
                            "/v1/completions",
                            serde_json::json!({"model": model, "max_tokens": max_tokens,
                            "prompt": format!("other client {round} {i}"), "stream": true}),
                        )
                    };
                    let req = client.post(format!("{url}{path}")).json(&body).timeout(Duration::from_secs(30));
                    async move {
                        if let Ok(r) = req.send().await {
                            let _ = r.bytes().await;
                        }
                    }
                });
                futures_util::future::join_all(calls).await;
                sent.fetch_add(parallel as u64, Ordering::Relaxed);
            }
            round += 1;
        }
    })
}

fn burst(url: &str, model: &str, otlp: &str, container: Option<&str>, endpoint: &str) -> serde_json::Value {
    let mut args = vec![
        "--target",
        url,
        "--model",
        model,
        "--endpoint",
        endpoint,
        "--requests",
        "40",
        "--concurrency",
        "4",
        "--max-tokens",
        "16",
        "--input-tokens",
        "24",
        "--otlp-receiver",
        otlp,
        "--quiet",
    ];
    if let Some(c) = container {
        args.extend(["--container", c]);
    }
    common::run_json(&args).0
}

fn check<'a>(section: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    section["comparisons"].as_array().unwrap().iter().find(|c| c["check"] == name).unwrap_or_else(|| {
        panic!("no {name} check in {section:#}");
    })
}

/// Bursts of `endpoints` against the shared server; the container's logs are
/// checked too when there is one.
async fn shared_server_bursts(otlp: String, container: Option<String>, endpoints: &[&'static str]) {
    let (url, model) = (env("LLM_LOADTEST_REAL_VLLM_URL"), env("LLM_LOADTEST_REAL_VLLM_MODEL"));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let others = background(url.clone(), model.clone(), Arc::clone(&stop), Arc::clone(&sent));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut foreign = 0;
    for (i, &endpoint) in endpoints.iter().enumerate() {
        let (u, m, o, c) = (url.clone(), model.clone(), otlp.clone(), container.clone());
        let v = tokio::task::spawn_blocking(move || burst(&u, &m, &o, c.as_deref(), endpoint)).await.unwrap();
        let validation = &v["validation"];
        let traces = &validation["traces"];
        for name in ["request_count", "prompt_tokens", "generation_tokens"] {
            let c = check(traces, name);
            assert_eq!(c["status"], "PASS", "burst {i} ({endpoint}) traces.{name}: {c:#}\n{traces:#}");
            assert_eq!(c["client"], c["server"], "burst {i}: {c:#}");
        }
        assert_eq!(check(traces, "request_count")["client"], 40.0);
        assert_eq!(traces["client_without_span"]["count"], 0, "{traces:#}");
        assert_eq!(validation["basis"], "traces");
        // No count check of any section cries wolf because of the other clients.
        let mut counts = vec![
            (&validation["prometheus"], "request_count"),
            (&validation["prometheus"], "prompt_tokens"),
            (&validation["prometheus"], "generation_tokens"),
        ];
        if container.is_some() {
            assert!(validation["docker_logs"].is_object(), "the container's logs were read: {validation:#}");
            counts.push((&validation["docker_logs"], "http_200_count"));
        }
        for (section, name) in counts {
            assert_ne!(check(section, name)["status"], "WARN", "burst {i}: {name}: {section:#}");
        }
        let latency = |name| check(traces, name)["status"].as_str().unwrap_or("").to_owned();
        eprintln!(
            "burst {i} ({endpoint}): traces ttft {} e2e {}; ttft client-server {}; overall {}",
            latency("ttft_mean"),
            latency("e2e_latency_mean"),
            traces["ttft_diff_ms"],
            validation["overall"]
        );
        foreign += traces["other_clients_spans"].as_u64().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    others.await.unwrap();
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 20, "the other clients sent {sent} requests: the server was not shared");
    assert!(foreign > 0, "no span of another client arrived during any burst: the server was not shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real vLLM exporting spans: run scripts/test.sh"]
async fn every_request_is_accounted_for_on_a_shared_real_server() {
    let (otlp, container) = (env("LLM_LOADTEST_REAL_VLLM_OTLP"), env("LLM_LOADTEST_REAL_VLLM_CONTAINER"));
    shared_server_bursts(otlp, Some(container), &["chat", "completions", "chat"]).await;
}

/// vLLM's other transport, to the same receiver address: scripts/test.sh
/// restarts the server (outside a container) with
/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf` for this test alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real vLLM exporting spans over OTLP/HTTP: run scripts/test.sh"]
async fn over_otlp_http_every_request_is_accounted_for_too() {
    let protocol = env("LLM_LOADTEST_REAL_VLLM_OTLP_PROTOCOL");
    assert_eq!(protocol, "http/protobuf", "this test needs the vLLM that scripts/test.sh starts for it");
    shared_server_bursts(env("LLM_LOADTEST_REAL_VLLM_OTLP"), None, &["completions", "chat"]).await;
}
