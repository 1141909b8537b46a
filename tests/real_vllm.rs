//! End-to-end against a real vLLM server (`scripts/test.sh` starts one and
//! sets LLM_LOADTEST_REAL_VLLM_URL). Ignored in a plain `cargo test`; the
//! test script runs them with --include-ignored, and then they fail, never
//! skip, when the server is missing.

mod common;

use std::process::Command;

use common::run_json;

/// One burst at a time: a test running beside another would be the other's
/// background traffic (which the validation detects, and then reports).
static SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn real_vllm() -> (String, String) {
    let url = std::env::var("LLM_LOADTEST_REAL_VLLM_URL")
        .expect("LLM_LOADTEST_REAL_VLLM_URL is not set: start ../shared/real-vllm/start.sh (scripts/test.sh does)");
    let model = std::env::var("LLM_LOADTEST_REAL_VLLM_MODEL").unwrap_or_else(|_| "tiny".into());
    (url, model)
}

/// PASS, or a SKIP whose reason is the client-bound marking; anything else
/// (a WARN, or a SKIP for another reason) fails.
fn assert_verdict_pass_or_client_bound(c: &serde_json::Value) {
    if c["status"] == "PASS" {
        return;
    }
    let reason = c["reason"].as_str().unwrap_or("");
    assert!(c["status"] == "SKIP" && reason.contains("client was the bottleneck"), "{c}");
}

#[test]
#[ignore = "needs a real vLLM: run scripts/test.sh"]
fn streamed_chat_burst_counts_tokens_from_usage() {
    let _one_at_a_time = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let (url, model) = real_vllm();
    // One burst on a 2-core machine shared with the server can be starved by
    // anything else running (the CPU-only vLLM itself takes both cores). Counts
    // must be exact in every burst. The latency verdicts must never WARN: each
    // is PASS, or SKIP because the receive-lag probe marked the client as the
    // bottleneck (the tool saying it cannot judge, which is right). Up to three
    // bursts are tried for an all-PASS one; the last is checked either way.
    let mut attempt = 0;
    let (v, stdout, dir, art) = loop {
        attempt += 1;
        let dir = tempfile::tempdir().unwrap();
        let art = dir.path().join("artifacts");
        let (v, stdout) = run_json(&[
            "--target",
            &url,
            "--model",
            &model,
            "--requests",
            "24",
            "--concurrency",
            "6",
            "--max-tokens",
            "32",
            "--ignore-eos",
            "--input-tokens",
            "24",
            "--warmup",
            "4",
            "--save-artifacts",
            art.to_str().unwrap(),
        ]);
        let comparisons = v["validation"]["prometheus"]["comparisons"].as_array().unwrap().clone();
        for c in &comparisons {
            if ["request_count", "prompt_tokens", "generation_tokens"].contains(&c["check"].as_str().unwrap()) {
                assert_eq!(c["client"], c["server"], "attempt {attempt}: {c}");
            }
        }
        // A latency verdict can tip on a starved burst (seen in CI with e2e_latency_mean +21%
        // while the machine was busy): another burst is tried; the last must hold.
        if v["validation"]["overall"] == "PASS" || attempt == 3 {
            comparisons.iter().for_each(assert_verdict_pass_or_client_bound);
            break (v, stdout, dir, art);
        }
        eprintln!("attempt {attempt} was not PASS, trying once more: {:#}", v["validation"]["prometheus"]);
    };
    let _keep = &dir;
    assert_eq!(v["completed"], 24, "{stdout}");
    assert_eq!(v["failed"], 0, "{stdout}");
    assert_eq!(v["tokens_from_usage"], true);
    // ignore_eos + max_tokens pins the output length: the server's usage says so too.
    assert_eq!(v["total_output_tokens"], 24 * 32);
    // The totals are the sums of each request's server-reported usage.
    let records = std::fs::read_to_string(art.join("requests.jsonl")).unwrap();
    let (mut prompt, mut completion, mut n) = (0u64, 0u64, 0);
    for line in records.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["outcome"], "ok");
        assert_eq!(r["tokens_from_usage"], true);
        n += 1;
        if r["warmup"] == true {
            continue;
        }
        prompt += r["prompt_tokens"].as_u64().unwrap();
        completion += r["completion_tokens"].as_u64().unwrap();
        // Every output chunk is timestamped; the first one is the TTFT.
        let chunks = r["chunk_times_s"].as_array().unwrap();
        assert!(!chunks.is_empty());
        assert_eq!(r["ttft_s"], chunks[0]);
    }
    assert_eq!(n, 24 + 4, "24 measured + 4 warm-up records");
    assert_eq!(v["total_input_tokens"].as_u64().unwrap(), prompt);
    assert_eq!(v["total_output_tokens"].as_u64().unwrap(), completion);
    assert!(v["mean_ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(v["p99_itl_ms"].as_f64().unwrap() > 0.0);
    assert!(v["finish_reasons"]["length"] == 24, "{}", v["finish_reasons"]);

    // Cross-validation with the server's own /metrics: exact counts, TTFT within tolerance.
    let val = &v["validation"];
    assert_ne!(val["overall"], "WARN", "{val:#}\n{stdout}");
    for c in val["prometheus"]["comparisons"].as_array().unwrap() {
        assert_verdict_pass_or_client_bound(c);
        if ["request_count", "prompt_tokens", "generation_tokens"].contains(&c["check"].as_str().unwrap()) {
            assert_eq!(c["client"], c["server"], "{c}");
        }
    }
    assert!(stdout.contains("Validation Results"), "{stdout}");
    // The same verdicts, recomputed offline from the saved artifacts.
    let out = Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
        .args(["validate", art.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let offline: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["prometheus"]["comparisons"], val["prometheus"]["comparisons"]);
}

#[test]
#[ignore = "needs a real vLLM: run scripts/test.sh"]
fn completions_endpoint_and_unknown_model() {
    let _one_at_a_time = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let (url, model) = real_vllm();
    let (v, _) = run_json(&[
        "--target",
        &url,
        "--model",
        &model,
        "--endpoint",
        "completions",
        "--requests",
        "6",
        "--concurrency",
        "3",
        "--max-tokens",
        "16",
        "--ignore-eos",
    ]);
    assert_eq!(v["completed"], 6);
    assert_eq!(v["total_output_tokens"], 6 * 16);

    // A model the server does not serve: every request is an HTTP 404, counted, and the run still completes.
    let (v, stdout) =
        run_json(&["--target", &url, "--model", "no-such-model", "--requests", "3", "--concurrency", "1"]);
    assert_eq!(v["completed"], 0);
    assert_eq!(v["errors"]["http_error"], 3);
    assert_eq!(v["http_statuses"]["404"], 3);
    assert!(stdout.contains("does not exist"), "{stdout}");
}

#[test]
#[ignore = "needs a real vLLM: run scripts/test.sh"]
fn doctor_finds_a_healthy_real_server() {
    let _one_at_a_time = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let (url, model) = real_vllm();
    let out = Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
        .args(["doctor", "--target", &url, "--model", &model, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{v:#}");
    assert_eq!(v["findings"].as_array().unwrap().len(), 0, "{v:#}");
    assert_eq!(v["observations"]["version"], "0.32.0");
    assert!(v["observations"]["vllm_families"].as_u64().unwrap() > 20);
    assert!(v["observations"]["stream"]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

#[test]
#[ignore = "needs a real vLLM in a container: run scripts/test.sh"]
fn docker_log_validation_on_the_real_server() {
    let _one_at_a_time = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let (url, model) = real_vllm();
    let container = std::env::var("LLM_LOADTEST_REAL_VLLM_CONTAINER")
        .expect("LLM_LOADTEST_REAL_VLLM_CONTAINER is not set: start the real vLLM with start.sh --docker (scripts/test.sh does)");
    // 12 s: longer than vLLM's 10 s stats interval, so engine-stats lines fall in the window.
    let (v, stdout) = run_json(&[
        "--target",
        &url,
        "--model",
        &model,
        "--duration",
        "12s",
        "--concurrency",
        "2",
        "--max-tokens",
        "32",
        "--ignore-eos",
        "--container",
        &container,
    ]);
    let d = &v["validation"]["docker_logs"];
    assert_eq!(d["container"]["name"], container.as_str(), "{d:#}");
    let http = d["comparisons"].as_array().unwrap().iter().find(|c| c["check"] == "http_200_count").unwrap();
    assert_eq!(http["status"], "PASS", "{d:#}\n{stdout}");
    assert_eq!(http["client"], http["server"], "exact: {http}");
    assert!(d["engine_stats"]["lines"].as_u64().unwrap() >= 1, "engine-stats section filled: {d:#}");
    // The stats line saw our load: tokens generated in its interval, or requests running when it
    // was written (with 2 in flight both may have just finished at that instant: running 0).
    let stats = &d["engine_stats"];
    let generated = stats["mean_generation_throughput"].as_f64().unwrap_or(0.0);
    assert!(generated > 0.0 || stats["peak_running"].as_u64().unwrap() >= 1, "{d:#}");
    assert!(stdout.contains("Docker Log Validation"), "{stdout}");
}

#[test]
#[ignore = "needs a real vLLM in a container: run scripts/test.sh"]
fn a_real_server_restarted_mid_burst_is_lost_with_bounded_failures() {
    let _one_at_a_time = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let (url, model) = real_vllm();
    let container = std::env::var("LLM_LOADTEST_REAL_VLLM_CONTAINER")
        .expect("LLM_LOADTEST_REAL_VLLM_CONTAINER is not set: start the real vLLM with start.sh --docker (scripts/test.sh does)");
    // 3 s into a 40 s closed loop at concurrency 8, the container restarts (vLLM needs ~30 s
    // to serve again): the burst must end as target_lost, with its failures bounded.
    let c = container.clone();
    let restart = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        let out = std::process::Command::new("docker").args(["restart", "-t", "2", &c]).output().unwrap();
        assert!(out.status.success(), "docker restart: {}", String::from_utf8_lossy(&out.stderr));
    });
    let t = std::time::Instant::now();
    let (v, _) = run_json(&[
        "--target",
        &url,
        "--model",
        &model,
        "--duration",
        "40s",
        "--concurrency",
        "8",
        "--max-tokens",
        "8",
        "--skip-validation",
    ]);
    let took = t.elapsed();
    restart.join().unwrap();
    let errors = &v["errors"];
    let failed = v["failed"].as_u64().unwrap();
    println!("restarted mid-burst: {took:?}, completed {}, failed {failed}, errors {errors}", v["completed"]);
    assert!(v["target_lost"].is_string(), "{v:#}");
    assert!(failed < 1000, "{failed} failure records");
    assert!(took < std::time::Duration::from_secs(40), "ended early: {took:?}");
    let by_kind: u64 = errors.as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(by_kind, failed, "every failure counted by kind: {errors}");
    // Leave the server as the other tests expect it: serving, and warm.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("warm.json");
    loop {
        let _ = std::fs::remove_file(&out);
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
            .args(["run", "--target", &url, "--model", &model, "--requests", "8", "--concurrency", "2"])
            .args(["--max-tokens", "8", "--skip-validation", "--quiet", "--output"])
            .arg(&out)
            .output();
        let completed = std::fs::read(&out)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["completed"].as_u64());
        if completed == Some(8) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the real vLLM did not come back within 180 s");
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

#[test]
#[ignore = "needs a real vLLM: run scripts/test.sh"]
fn a_fleet_of_the_real_server_and_a_simulator_sums_their_counters() {
    let _one_at_a_time = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let (url, model) = real_vllm();
    // The real server's /metrics (process_start_time_seconds, _created gauges, every vLLM
    // family) combined with a simulator replica serving the same model name, behind one
    // round-robin balancer: the checks compare the client with the sum of both.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let real: std::net::SocketAddr = url::Url::parse(&url).unwrap().socket_addrs(|| None).unwrap()[0];
    let (sim, balancer) = rt.block_on(async {
        let config = llm_loadtest::sim::SimConfig { model: model.clone(), ..Default::default() };
        let sim = common::sim_with(config).await;
        let balancer = common::balancer(vec![real, sim.addr()]).await;
        (sim, balancer)
    });
    let real_metrics = format!("{}/metrics", url.trim_end_matches('/'));
    let sim_metrics = format!("{}/metrics", sim.base_url());
    let (v, stdout) = run_json(&[
        "--target",
        &balancer,
        "--model",
        &model,
        "--requests",
        "16",
        "--concurrency",
        "4",
        "--max-tokens",
        "16",
        "--ignore-eos",
        // Opened by the load, so the balancer gives each replica two of the four connections.
        "--cold-connections",
        "--metrics-url",
        &real_metrics,
        "--metrics-url",
        &sim_metrics,
    ]);
    assert_eq!(v["completed"], 16, "{stdout}");
    for c in v["validation"]["prometheus"]["comparisons"].as_array().unwrap() {
        if ["request_count", "prompt_tokens", "generation_tokens"].contains(&c["check"].as_str().unwrap()) {
            assert_eq!((&c["status"], &c["client"]), (&serde_json::json!("PASS"), &c["server"]), "{c}");
        }
    }
    let replicas = v["validation"]["server_info"]["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    let finished: Vec<f64> = replicas.iter().map(|r| r["finished_requests"].as_f64().unwrap()).collect();
    assert!(finished.iter().all(|&n| n > 0.0), "both replicas served part of the burst: {replicas:?}");
    assert_eq!(finished.iter().sum::<f64>(), 16.0, "{replicas:?}");
    assert!(stdout.contains("Replicas (2"), "{stdout}");
    rt.block_on(sim.shutdown());
}
