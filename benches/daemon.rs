//! The daemon's own cost: idle memory and CPU, and /metrics latency under a scrape every
//! 100 ms while a burst runs, with the burst's figures compared to the same burst without
//! scrapes (they must not move). Prints figures; asserts nothing about speed.
//!
//!     cargo bench --bench daemon
//!
//! The daemon runs as its own process (the release binary), the simulator in this one, so
//! the daemon's RSS and CPU are its own.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use llm_loadtest::sim::{self, LatencyDist, LogSink, SimConfig};

fn pct(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Resident memory (kB) and CPU time (clock ticks, user + system) of a process.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    (rss, ticks)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn trigger_and_wait(client: &reqwest::Client, base: &str) -> serde_json::Value {
    let r = client.post(format!("{base}/api/v1/targets/sim/runs")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    let id = v["run_id"].as_str().unwrap().to_owned();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = client.get(format!("{base}/api/v1/runs/{id}")).send().await.unwrap();
        let t: serde_json::Value =
            client.get(format!("{base}/api/v1/targets")).send().await.unwrap().json().await.unwrap();
        if r.status() == 200 && t["targets"][0]["running"] == false {
            return r.json().await.unwrap();
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let sim = rt
        .block_on(sim::start(
            SimConfig {
                log_sink: LogSink::Discard,
                ttft: LatencyDist::Fixed(Duration::from_millis(20)),
                itl: LatencyDist::Fixed(Duration::from_millis(5)),
                ..SimConfig::default()
            },
            ([127, 0, 0, 1], 0).into(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("bench.toml");
    let mut f = std::fs::File::create(&config).unwrap();
    write!(
        f,
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[targets.sim]\nurl = \"{}\"\nmodel = \"sim-model\"\n\
         [targets.sim.workload]\nrequests = 400\nconcurrency = 16\nmax_tokens = 32\ninput_tokens = 64\n\
         idle_window = \"0s\"\nsettle_timeout = \"1s\"\n",
        dir.path().join("data").display(),
        sim.base_url()
    )
    .unwrap();
    drop(f);
    let child = Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("LLM_LOADTEST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    let pid = daemon.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    rt.block_on(async {
        for _ in 0..100 {
            if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Idle: 10 s with nothing to do.
    let hz = 100.0; // USER_HZ on Linux
    std::thread::sleep(Duration::from_secs(2));
    let (_, t0) = usage(pid);
    let w = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let (idle_rss, t1) = usage(pid);
    let idle_cpu = (t1 - t0) as f64 / hz / w.elapsed().as_secs_f64() * 100.0;
    println!("idle: RSS {:.1} MiB, CPU {idle_cpu:.2}% of one core over 10 s", idle_rss as f64 / 1024.0);

    // The same burst twice: without scrapes, then with a scrape every 100 ms.
    let quiet = rt.block_on(trigger_and_wait(&client, &base));
    let (scraped, latencies_ms) = rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let c = client.clone();
        let url = format!("{base}/metrics");
        let scraper = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut every = tokio::time::interval(Duration::from_millis(100));
            while !s.is_cancelled() {
                every.tick().await;
                let t = Instant::now();
                let body = c
                    .get(&url)
                    .header("accept", "application/openmetrics-text;version=1.0.0")
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                assert!(!body.is_empty());
                out.push(t.elapsed().as_secs_f64() * 1e3);
            }
            out
        });
        let r = trigger_and_wait(&client, &base).await;
        stop.cancel();
        (r, scraper.await.unwrap())
    });
    let (busy_rss, _) = usage(pid);
    println!(
        "/metrics during a burst, every 100 ms: {} scrapes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; RSS after {:.1} MiB",
        latencies_ms.len(),
        pct(&latencies_ms, 0.5),
        pct(&latencies_ms, 0.99),
        pct(&latencies_ms, 1.0),
        busy_rss as f64 / 1024.0
    );
    println!("burst figures, without scrapes -> with scrapes (ratio):");
    for key in ["mean_ttft_ms", "p99_ttft_ms", "mean_itl_ms", "p99_itl_ms", "output_throughput"] {
        let (a, b) = (quiet[key].as_f64().unwrap(), scraped[key].as_f64().unwrap());
        println!("  {key:<18} {a:>9.3} -> {b:>9.3}  ({:.3})", b / a);
    }
    rt.block_on(sim.shutdown());
}
