//! Side by side with `vllm bench serve` (issue 14): the same reference server, the same load, in
//! one run, one client after the other. Prints figures; asserts nothing (a noisy 2-core machine).
//!
//!     cargo bench --bench versus
//!
//! Two reference servers, each answering with the first token at once (true TTFT about 0), then
//! one token per chunk: the smallest streaming server (`support/reference.rs`, on its own two
//! threads in this process: no engine, metrics or logs, so its cost is as small as a server's can
//! be and the clients are what is measured), and `llm-loadtest sim` in its own process (the
//! whole simulated vLLM: engine, metrics, access log). Two loads on each:
//! 1. 512 concurrent streams, 3,072 requests of 64 tokens 10 ms apart: median and p99 TTFT
//!    (the first wave included: both clients open their connections as they do by default).
//! 2. 64 concurrent streams with no delay at all, 6,400 requests of 64 tokens: requests/s.
//!
//! Our client is `llm-loadtest run` (this build's binary, its own process, as a user runs it);
//! theirs is `vllm bench serve` from `$REAL_VLLM_HOME` (default /var/tmp/real-vllm: set up by
//! ../shared/real-vllm/setup.sh), with the tiny model's tokenizer for its random prompts. Both
//! read their figures from their own result files (the same key names).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::Duration;

mod support;
use support::{BIN, free_port, simulator_with_gaps};
#[path = "support/reference.rs"]
mod reference;
use reference::ReferenceServer;

struct Load {
    name: &'static str,
    concurrency: u32,
    requests: u32,
    itl_ms: u32,
}

const LOADS: [Load; 2] = [
    Load { name: "c=512, 64 tokens 10 ms apart", concurrency: 512, requests: 3072, itl_ms: 10 },
    Load { name: "c=64, zero delay", concurrency: 64, requests: 6400, itl_ms: 0 },
];

/// The figures both clients write under the same keys.
struct Figures {
    median_ttft_ms: f64,
    p99_ttft_ms: f64,
    request_throughput: f64,
    completed: u64,
}

fn figures(result_json: &Path) -> Result<Figures, String> {
    let text = std::fs::read(result_json).map_err(|e| format!("{}: {e}", result_json.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    let f = |k: &str| v[k].as_f64().ok_or_else(|| format!("no {k} in {}", result_json.display()));
    Ok(Figures {
        median_ttft_ms: f("median_ttft_ms")?,
        p99_ttft_ms: f("p99_ttft_ms")?,
        request_throughput: f("request_throughput")?,
        completed: v["completed"].as_u64().unwrap_or(0),
    })
}

fn ours(url: &str, load: &Load, dir: &Path) -> Result<Figures, String> {
    let out = dir.join("ours");
    let mut run = Command::new(BIN);
    run.args(["run", "--target", url, "--model", "sim-model", "--quiet", "--skip-validation"])
        .args(["--requests", &load.requests.to_string(), "--concurrency", &load.concurrency.to_string()])
        .args(["--max-tokens", "64", "--ignore-eos", "--input-tokens", "32"])
        .arg("--save-artifacts")
        .arg(&out);
    run_client("llm-loadtest run", &mut run, &out.join("result.json"))
}

/// Run one client to its end, then read the figures from the result file it wrote.
fn run_client(client: &str, command: &mut Command, result_json: &Path) -> Result<Figures, String> {
    let status = command.stdout(Stdio::null()).status().map_err(|e| format!("{client}: {e}"))?;
    if !status.success() {
        return Err(format!("{client}: {status}"));
    }
    figures(result_json)
}

fn theirs(url: &str, load: &Load, dir: &Path, home: &Path) -> Result<Figures, String> {
    let vllm = home.join("venv/bin/vllm");
    if !vllm.exists() {
        return Err(format!("{} not found: run ../shared/real-vllm/setup.sh", vllm.display()));
    }
    let mut bench = Command::new(&vllm);
    bench
        .env("VLLM_TARGET_DEVICE", "cpu")
        .env("HF_HUB_OFFLINE", "1")
        .args(["bench", "serve", "--backend", "openai-chat", "--base-url", url])
        .args(["--endpoint", "/v1/chat/completions", "--model", "sim-model", "--tokenizer"])
        .arg(home.join("model"))
        .args(["--dataset-name", "random", "--random-input-len", "32", "--random-output-len", "64"])
        .args(["--num-prompts", &load.requests.to_string(), "--max-concurrency", &load.concurrency.to_string()])
        .args(["--request-rate", "inf", "--ignore-eos", "--percentile-metrics", "ttft,tpot,itl,e2el"])
        .args(["--metric-percentiles", "50,99", "--save-result", "--result-dir"])
        .arg(dir)
        .args(["--result-filename", "theirs.json"])
        .stderr(Stdio::null());
    run_client("vllm bench serve", &mut bench, &dir.join("theirs.json"))
}

fn row(client: &str, f: &Result<Figures, String>) {
    match f {
        Ok(f) => println!(
            "  {client:<20} {:>9} {:>12.2} {:>12.2} {:>10.0}",
            f.completed, f.median_ttft_ms, f.p99_ttft_ms, f.request_throughput
        ),
        Err(e) => println!("  {client:<20} failed: {e}"),
    }
}

/// A reference server, stopped when dropped.
enum Server {
    /// Held for its `Drop`, which stops it.
    Minimal(#[allow(dead_code)] ReferenceServer),
    Sim(std::process::Child),
}

impl Server {
    fn start(minimal: bool, port: u16, load: &Load) -> Server {
        if minimal {
            Server::Minimal(ReferenceServer::start(port, 64, Duration::from_millis(load.itl_ms.into())))
        } else {
            Server::Sim(simulator_with_gaps(port, 64, load.itl_ms))
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Sim(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn main() {
    let home = PathBuf::from(std::env::var("REAL_VLLM_HOME").unwrap_or_else(|_| "/var/tmp/real-vllm".into()));
    let dir = tempfile::tempdir().unwrap();
    for (minimal, server_name) in [(true, "the minimal streaming server"), (false, "llm-loadtest sim")] {
        for load in &LOADS {
            let port = free_port();
            let server = Server::start(minimal, port, load);
            let url = format!("http://127.0.0.1:{port}");
            println!("== {} ({} requests), reference server: {server_name} ==", load.name, load.requests);
            println!(
                "  {:<20} {:>9} {:>12} {:>12} {:>10}",
                "client", "completed", "TTFT p50 ms", "TTFT p99 ms", "req/s"
            );
            let ours = ours(&url, load, dir.path());
            row("llm-loadtest run", &ours);
            let theirs = theirs(&url, load, dir.path(), &home);
            row("vllm bench serve", &theirs);
            if let (Ok(o), Ok(t)) = (&ours, &theirs) {
                println!(
                    "  ratio (ours / theirs): TTFT p99 {:.3}, req/s {:.1}",
                    o.p99_ttft_ms / t.p99_ttft_ms,
                    o.request_throughput / t.request_throughput
                );
            }
            drop(server);
        }
    }
}
