//! Distributed bursts (issue 13). Prints figures; asserts nothing about speed (a noisy 2-core
//! machine, where the simulator, the coordinator and every worker share the same two cores).
//!
//!     cargo bench --bench workers
//!
//! 1. One burst of 20,000 requests (closed loop, concurrency 64, 8 tokens each, a zero-delay
//!    simulator in its own process) shared by 1, 2 and 4 worker processes through an in-process
//!    daemon: requests/s delivered, and the coordinator's own CPU time and memory growth per
//!    10,000 merged records (this process is the coordinator: /proc/self).
//! 2. `merge` of 1,000,000 records (4 shards of 250,000): wall time (goal: under 2 s).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use llm_loadtest::cli::{Cli, Command as Cmd};
use llm_loadtest::config;
use llm_loadtest::daemon::{self, ServeOverrides};
use llm_loadtest::sim::{self, LatencyDist, LogSink, SimConfig};
use llm_loadtest::{artifacts, burst, run};
use tokio_util::sync::CancellationToken;

mod support;
use support::{BIN, free_port, simulator, status_mib};

const REQUESTS: u64 = 20_000;

/// User + system CPU seconds of this process (every thread), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0 // CLK_TCK, 100 on Linux (`getconf CLK_TCK`)
}

fn daemon_toml(dir: &std::path::Path, sim_port: u16, workers: u32) -> String {
    let token = dir.join("token");
    std::fs::write(&token, "bench-token\n").unwrap();
    format!(
        r#"
[workers]
token_file = "{}"
[targets.fleet]
url = "http://127.0.0.1:{sim_port}"
model = "sim-model"
workers = {workers}
[targets.fleet.workload]
requests = {REQUESTS}
concurrency = 64
max_tokens = 8
input_tokens = 16
idle_window = "0s"
settle_timeout = "2s"
"#,
        token.display()
    )
}

async fn get(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// One distributed burst with `n` worker processes: (requests/s, load seconds, coordinator CPU s,
/// RSS growth MB, records).
async fn point(sim_port: u16, n: u32) -> (f64, f64, f64, f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config::load_from_str(&daemon_toml(dir.path(), sim_port, n), &[]).unwrap();
    c.data_dir = dir.path().join("data");
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let s = stop.clone();
    let overrides = ServeOverrides { listen: Some(([127, 0, 0, 1], 0).into()), data_dir: None, otlp_listener: None };
    let task = tokio::spawn(async move {
        daemon::serve(c, overrides, s, move |addr| {
            let _ = tx.send(addr);
        })
        .await
    });
    let base = format!("http://{}", rx.await.unwrap());
    let mut workers: Vec<Child> = (0..n)
        .map(|i| {
            Command::new(BIN)
                .args(["worker", "--coordinator", &base, "--token-file"])
                .arg(dir.path().join("token"))
                .args(["--name", &format!("w{i}"), "--max-shards", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    while get(&format!("{base}/api/v1/workers")).await["connected"].as_array().unwrap().len() < n as usize {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu0, rss0) = (cpu_seconds(), status_mib("VmRSS:"));
    let resp = reqwest::Client::new().post(format!("{base}/api/v1/targets/fleet/runs")).send().await.unwrap();
    let run_id = resp.json::<serde_json::Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
    let run = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = reqwest::get(format!("{base}/api/v1/runs/{run_id}")).await.unwrap();
        if r.status().is_success() {
            break r.json::<serde_json::Value>().await.unwrap();
        }
    };
    let (cpu1, rss1) = (cpu_seconds(), status_mib("VmRSS:"));
    for w in &mut workers {
        let _ = w.wait();
    }
    stop.cancel();
    let _ = task.await;
    let completed = run["completed"].as_u64().unwrap();
    let failed = run["failed"].as_u64().unwrap();
    assert_eq!((completed, failed), (REQUESTS, 0), "every request of the burst completed: {}", run["shards"]);
    let duration = run["duration"].as_f64().unwrap();
    (run["request_throughput"].as_f64().unwrap(), duration, cpu1 - cpu0, rss1 - rss0, completed + failed)
}

/// Four shard results of one plan with 250,000 records each (copies of a real shard's records).
fn million_record_shards() -> Vec<artifacts::RunResult> {
    let sim_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let zero = LatencyDist::Fixed(Duration::ZERO);
    let config = SimConfig { ttft: zero, itl: zero, log_sink: LogSink::Discard, ..SimConfig::default() };
    let sim = sim_rt.block_on(sim::start(config, ([127, 0, 0, 1], 0).into())).unwrap();
    let url = sim.base_url();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    (0..4u64)
        .map(|i| {
            let shard = format!("{i}/4");
            let argv = ["llm-loadtest", "run", "--target", &url, "--model", "sim-model", "--quiet"];
            let extra = ["--requests", "400", "--concurrency", "8", "--max-tokens", "8", "--skip-validation"];
            let argv: Vec<&str> = argv.iter().chain(&extra).copied().chain(["--shard", &shard]).collect();
            let Cmd::Run(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
            let mut r = rt.block_on(async {
                let p = run::prepare(&a, &url::Url::parse(&url).unwrap(), "sim-model", "bench", None).unwrap();
                burst::run(p, "bench".into(), CancellationToken::new(), None).await
            });
            let template = r.records.to_vec();
            r.records = llm_loadtest::spool::Records::held(
                (0..250_000u64)
                    .map(|k| {
                        let mut rec = template[(k as usize) % template.len()].clone();
                        rec.index = i + 4 * k;
                        rec
                    })
                    .collect(),
            );
            r
        })
        .collect()
}

fn main() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let sim_port = free_port();
    let mut sim = simulator(sim_port, 8);
    println!(
        "== one burst of {REQUESTS} requests (concurrency 64, 8 tokens, zero-delay simulator) shared by N workers =="
    );
    println!(
        "{:>8} {:>12} {:>10} {:>24} {:>26}",
        "workers", "requests/s", "load s", "coordinator CPU s / 10k", "coordinator RSS MB / 10k"
    );
    for n in [1, 2, 4] {
        let (rps, secs, cpu, rss, records) = rt.block_on(point(sim_port, n));
        let per = records as f64 / 10_000.0;
        println!("{n:>8} {rps:>12.0} {secs:>10.2} {:>24.3} {:>26.1}", cpu / per, rss / per);
    }
    let _ = sim.kill();
    let _ = sim.wait();

    println!("== merge of 1,000,000 records (4 shards of 250,000) ==");
    let shards = million_record_shards();
    // The same shards saved, for `llm-loadtest merge DIR...` as a user runs it (its own process).
    let saved = tempfile::tempdir().unwrap();
    let dirs: Vec<std::path::PathBuf> = shards
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let d = saved.path().join(format!("shard-{i}"));
            artifacts::save(&d, r).unwrap();
            d
        })
        .collect();
    let rss_before = status_mib("VmRSS:");
    let t = Instant::now();
    let merged = llm_loadtest::merge::merge(shards).unwrap();
    let took = t.elapsed();
    println!(
        "merged {} records in {:.2} s (goal < 2 s); p99 TTFT {:.3} ms; RSS {:.0} MB -> {:.0} MB",
        merged.records.len(),
        took.as_secs_f64(),
        merged.client.ttft_ms.p99.unwrap_or(f64::NAN),
        rss_before,
        status_mib("VmRSS:")
    );
    drop(merged);
    // `/usr/bin/time -f "%e %M"`: wall seconds and the process's peak RSS in KiB.
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", BIN, "merge"])
        .args(&dirs)
        .arg("--out")
        .arg(saved.path().join("merged"))
        .stdout(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stderr);
            let mut last = text.lines().last().unwrap_or("").split_whitespace();
            let secs: f64 = last.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
            let peak_kib: f64 = last.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
            println!(
                "llm-loadtest merge of the 4 saved shard directories (read, joined, written): {secs:.2} s, peak RSS {:.0} MiB",
                peak_kib / 1024.0
            );
        }
        Ok(o) => println!("llm-loadtest merge failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("llm-loadtest merge not measured (/usr/bin/time: {e})"),
    }
}
