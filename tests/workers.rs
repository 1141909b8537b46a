//! Distributed bursts: a daemon with `[workers]` and a target with `workers = N` hands the
//! shards to N `llm-loadtest worker` processes on loopback, observes the server once around
//! them, and stores one run. Its counts equal the server's deltas exactly, its percentiles are
//! those of all records together, a killed worker's shard is lost with a SKIP that says so,
//! and the daemon keeps serving.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use llm_loadtest::sim::{LatencyDist, SimConfig};

mod common;
use common::daemon::{Running, config, get_json, post, wait_run};
use common::sim_with;

const TOKEN: &str = "worker-token-for-tests";

fn toml(data: &Path, sim_url: &str, workers: u32, workload: &str) -> String {
    let token_file = data.join("workers.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    format!(
        r#"
[workers]
token_file = "{}"

[targets.fleet]
url = "{sim_url}"
model = "sim-model"
workers = {workers}

[targets.fleet.workload]
{workload}
max_tokens = 16
input_tokens = 16
idle_window = "300ms"
settle_timeout = "3s"
"#,
        token_file.display()
    )
}

fn worker(d: &Running, data: &Path, name: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
        .args(["worker", "--coordinator", &d.base, "--token-file"])
        .arg(data.join("workers.token"))
        .args(["--name", name, "--max-shards", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait until `n` workers have polled the daemon.
async fn connected(d: &Running, n: usize) {
    for _ in 0..100 {
        let v = get_json(&d.url("/api/v1/workers")).await;
        if v["connected"].as_array().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} workers did not connect");
}

async fn trigger(d: &Running) -> serde_json::Value {
    let (s, v) = post(&d.url("/api/v1/targets/fleet/runs"), "", None).await;
    assert_eq!(s, 202, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_owned();
    wait_run(d, "fleet", &run_id).await;
    get_json(&d.url(&format!("/api/v1/runs/{run_id}"))).await
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let cs = v["validation"]["prometheus"]["comparisons"].as_array().unwrap();
    cs.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no {name}: {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_one_burst_and_it_is_judged_once() {
    let sim = sim_with(SimConfig {
        ttft: LatencyDist::Fixed(Duration::from_millis(50)),
        itl: LatencyDist::Fixed(Duration::from_millis(5)),
        ..SimConfig::default()
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let d =
        Running::start(config(&toml(data.path(), &sim.base_url(), 4, "requests = 200\nconcurrency = 8"), data.path()))
            .await;
    let mut workers: Vec<Child> = (0..4).map(|i| worker(&d, data.path(), &format!("w{i}"))).collect();
    connected(&d, 4).await;
    let v = trigger(&d).await;
    for w in &mut workers {
        assert!(w.wait().unwrap().success(), "a worker exits 0 after its one shard");
    }

    assert_eq!(v["completed"], 200, "{v:#}");
    for name in ["request_count", "prompt_tokens", "generation_tokens"] {
        let c = check(&v, name);
        assert_eq!((&c["status"], &c["client"]), (&serde_json::json!("PASS"), &c["server"]), "{c}");
    }
    assert_eq!(check(&v, "request_count")["server"], 200.0);
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4, "{shards:#?}");
    let mut names: Vec<&str> = shards.iter().map(|s| s["worker"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["w0", "w1", "w2", "w3"], "one shard per worker");
    assert!(shards.iter().all(|s| s["completed"] == 50 && s["lost"].is_null()), "{shards:#?}");
    // One start for all: each shard's measured load began at the shared instant.
    // (Within seconds: four debug-build processes on two loaded cores may start a little late.)
    assert!(shards.iter().all(|s| s["start_lag_s"].as_f64().unwrap() < 5.0), "{shards:#?}");

    // The stored records are every shard's, each request index once, and the percentiles are
    // those of all of them together (not an average of the shards').
    let run_dir = data.path().join("runs/fleet").join(v["run_id"].as_str().unwrap());
    let saved = llm_loadtest::artifacts::read_dir(&run_dir).unwrap();
    let mut indices: Vec<u64> = saved.records.to_vec().iter().map(|r| r.index).collect();
    indices.sort_unstable(); // one shard after the other, each in the order its requests finished
    assert_eq!(indices, (0..200).collect::<Vec<_>>());
    let ttfts: Vec<f64> = saved.records.to_vec().iter().filter_map(|r| r.ttft_s).map(|s| s * 1e3).collect();
    let all = llm_loadtest::stats::LatencySummary::from_samples(ttfts);
    let p99 = v["p99_ttft_ms"].as_f64().unwrap();
    assert_eq!(all.p99, Some(p99), "the p99 of all 200 records together");
    assert_eq!(saved.client.ttft_ms.p99, Some(p99));
    let summary = llm_loadtest::report::render(&saved);
    assert!(summary.contains("Shard 2/4 (w") && summary.contains("50 completed"), "{summary}");
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_runs_the_whole_plan() {
    let sim = sim_with(SimConfig { ttft: LatencyDist::Fixed(Duration::from_millis(20)), ..SimConfig::default() }).await;
    let data = tempfile::tempdir().unwrap();
    let d =
        Running::start(config(&toml(data.path(), &sim.base_url(), 1, "requests = 40\nconcurrency = 4"), data.path()))
            .await;
    let mut w = worker(&d, data.path(), "only");
    connected(&d, 1).await;
    let v = trigger(&d).await;
    assert!(w.wait().unwrap().success());
    assert_eq!(v["completed"], 40, "{v:#}");
    assert_eq!(check(&v, "request_count")["status"], "PASS", "{v:#}");
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(
        (shards.len(), &shards[0]["worker"], &shards[0]["completed"]),
        (1, &serde_json::json!("only"), &serde_json::json!(40))
    );
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_body_asks_for_workers() {
    let sim = sim_with(SimConfig { ttft: LatencyDist::Fixed(Duration::from_millis(20)), ..SimConfig::default() }).await;
    let data = tempfile::tempdir().unwrap();
    // The target has no `workers`: the daemon would send the load itself.
    let toml = toml(data.path(), &sim.base_url(), 1, "requests = 10\nconcurrency = 2").replace("workers = 1\n", "");
    let d = Running::start(config(&toml, data.path())).await;
    let runs = d.url("/api/v1/targets/fleet/runs");
    let (s, v) = post(&runs, r#"{"workers": 300}"#, None).await;
    assert_eq!(s, 400, "{v}");
    let mut workers: Vec<Child> = (0..2).map(|i| worker(&d, data.path(), &format!("asked{i}"))).collect();
    connected(&d, 2).await;
    let (s, v) = post(&runs, r#"{"workers": 2, "requests": 30, "concurrency": 4}"#, None).await;
    assert_eq!(s, 202, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_owned();
    wait_run(&d, "fleet", &run_id).await;
    let v = get_json(&d.url(&format!("/api/v1/runs/{run_id}"))).await;
    for w in &mut workers {
        assert!(w.wait().unwrap().success());
    }
    assert_eq!(v["completed"], 30, "{v:#}");
    assert_eq!(check(&v, "request_count")["status"], "PASS", "{v:#}");
    let shards = v["shards"].as_array().unwrap();
    let done: Vec<u64> = shards.iter().map(|s| s["completed"].as_u64().unwrap()).collect();
    assert_eq!(done, [15, 15], "{v:#}");
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_its_shard_and_the_daemon_keeps_serving() {
    let sim = sim_with(SimConfig {
        ttft: LatencyDist::Fixed(Duration::from_millis(20)),
        itl: LatencyDist::Fixed(Duration::from_millis(10)),
        ..SimConfig::default()
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let d = Running::start(config(
        &toml(data.path(), &sim.base_url(), 2, "duration = \"6s\"\nconcurrency = 4"),
        data.path(),
    ))
    .await;
    let keep = worker(&d, data.path(), "survivor");
    let mut doomed = worker(&d, data.path(), "doomed");
    connected(&d, 2).await;
    let (s, v) = post(&d.url("/api/v1/targets/fleet/runs"), "", None).await;
    assert_eq!(s, 202, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_owned();
    // Into the measured load (2 s lead, then 6 s): SIGKILL, no goodbye.
    tokio::time::sleep(Duration::from_secs(4)).await;
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    wait_run(&d, "fleet", &run_id).await;
    let v = get_json(&d.url(&format!("/api/v1/runs/{run_id}"))).await;
    let mut keep = keep;
    assert!(keep.wait().unwrap().success());

    let shards = v["shards"].as_array().unwrap();
    let lost: Vec<&serde_json::Value> = shards.iter().filter(|s| !s["lost"].is_null()).collect();
    assert_eq!(lost.len(), 1, "{shards:#?}");
    assert_eq!(lost[0]["worker"], "doomed");
    assert!(lost[0]["lost"].as_str().unwrap().contains("stopped reporting"), "{lost:?}");
    let survivor = shards.iter().find(|s| s["worker"] == "survivor").unwrap();
    assert!(survivor["completed"].as_u64().unwrap() > 0, "{survivor}");
    assert_eq!(v["completed"], survivor["completed"], "the run holds the survivor's records");
    for name in ["request_count", "prompt_tokens", "generation_tokens"] {
        let c = check(&v, name);
        assert_eq!(c["status"], "SKIP", "{c}");
        assert!(c["reason"].as_str().unwrap().contains("lost"), "{c}");
    }
    assert_ne!(v["validation"]["overall"], "WARN");

    // The daemon still serves, and a late report for the closed run is refused.
    let (s, _) = post(&d.url("/healthz"), "", None).await;
    assert_ne!(s, 500);
    assert_eq!(get_json(&d.url("/api/v1/targets")).await["targets"][0]["running"], false);
    let late = serde_json::json!({"worker": "doomed", "run_id": run_id, "shard": 1, "result_json": "{}"});
    let (s, body) = post(&d.url("/api/v1/workers/report"), &late.to_string(), Some(TOKEN)).await;
    assert_eq!(s, 409, "{body}");
    let (s, _) = post(&d.url("/api/v1/workers/poll"), r#"{"worker": "x"}"#, Some("wrong")).await;
    assert_eq!(s, 401);
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real vLLM: run scripts/test.sh"]
async fn four_workers_against_the_real_vllm_match_its_counters_exactly() {
    let url = std::env::var("LLM_LOADTEST_REAL_VLLM_URL")
        .expect("LLM_LOADTEST_REAL_VLLM_URL is not set: start ../shared/real-vllm/start.sh (scripts/test.sh does)");
    let model = std::env::var("LLM_LOADTEST_REAL_VLLM_MODEL").unwrap_or_else(|_| "tiny".into());
    let data = tempfile::tempdir().unwrap();
    let workload = "requests = 24\nconcurrency = 4\nignore_eos = true";
    let toml = toml(data.path(), &url, 4, workload).replace("model = \"sim-model\"", &format!("model = \"{model}\""));
    let d = Running::start(config(&toml, data.path())).await;
    let mut workers: Vec<Child> = (0..4).map(|i| worker(&d, data.path(), &format!("w{i}"))).collect();
    connected(&d, 4).await;
    let v = trigger(&d).await;
    for w in &mut workers {
        assert!(w.wait().unwrap().success());
    }
    assert_eq!(v["completed"], 24, "{v:#}");
    for name in ["request_count", "prompt_tokens", "generation_tokens"] {
        let c = check(&v, name);
        assert_eq!((&c["status"], &c["client"]), (&serde_json::json!("PASS"), &c["server"]), "{c}");
    }
    let shards = v["shards"].as_array().unwrap();
    assert!(shards.iter().all(|s| s["completed"] == 6 && s["lost"].is_null()), "{shards:#?}");
    d.shutdown().await;
}
