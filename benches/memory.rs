//! Memory of a long burst (issue 14). Prints figures; asserts nothing (a noisy 2-core machine).
//!
//!     cargo bench --bench memory                       # 10,000, 100,000 and 1,000,000 requests
//!     BENCH_MEMORY_SIZES=10000,50000 cargo bench --bench memory
//!
//! Each size runs in a fresh child process (this binary again), so one size's freed memory
//! is not counted in the next one's baseline: a closed loop at concurrency 64 against a
//! zero-delay simulator in its own process (64 tokens per request, one per chunk, as in the
//! issue's measurement), then this process's resident set before the burst, after it with
//! the run's result still held, and its peak. "Retained per request" is (after - before) / N:
//! what a longer burst costs.

use std::process::Command;
use std::time::Instant;

use clap::Parser;
use llm_loadtest::cli::{Cli, Command as Cmd};
use llm_loadtest::{burst, run};
use tokio_util::sync::CancellationToken;

mod support;
use support::{free_port, simulator, status_mib};

/// Set in the child that runs one size.
const ONE: &str = "BENCH_MEMORY_ONE";

/// One size, in this (child) process: prints one row.
fn one(n: u64) {
    let port = free_port();
    let mut sim = simulator(port, 64);
    let url = format!("http://127.0.0.1:{port}");
    let n_s = n.to_string();
    let argv = [
        "llm-loadtest",
        "run",
        "--target",
        &url,
        "--model",
        "sim-model",
        "--quiet",
        "--requests",
        &n_s,
        "--concurrency",
        "64",
        "--max-tokens",
        "64",
        "--ignore-eos",
        "--input-tokens",
        "16",
        "--skip-validation",
    ];
    let Cmd::Run(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let before = status_mib("VmRSS:");
    let started = Instant::now();
    let result = rt.block_on(async {
        let p = run::prepare(&a, &url::Url::parse(&url).unwrap(), "sim-model", "bench", None).unwrap();
        burst::run(p, "bench".into(), CancellationToken::new(), None).await
    });
    let wall = started.elapsed().as_secs_f64();
    let after = status_mib("VmRSS:");
    let peak = status_mib("VmHWM:");
    let per_request = (after - before) * 1024.0 * 1024.0 / n as f64;
    println!(
        "{:>10} {:>10} {:>9.1} {:>12.1} {:>11.1} {:>10.1} {:>13.0} {:>10.1}",
        n, result.client.completed, wall, before, after, peak, per_request, result.client.request_throughput
    );
    drop(result);
    let _ = sim.kill();
    let _ = sim.wait();
}

fn main() {
    if let Some(n) = std::env::var(ONE).ok().and_then(|v| v.parse().ok()) {
        one(n);
        return;
    }
    let sizes: Vec<u64> = std::env::var("BENCH_MEMORY_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    println!("== resident memory of one burst: closed loop c=64, 64 tokens per request, zero-delay simulator ==");
    println!(
        "{:>10} {:>10} {:>9} {:>12} {:>11} {:>10} {:>13} {:>10}",
        "requests", "completed", "wall s", "RSS before", "RSS after", "peak MiB", "B/request", "req/s"
    );
    let me = std::env::current_exe().unwrap();
    for n in sizes {
        // `cargo bench` passes `--bench`; the child needs no arguments.
        let status = Command::new(&me).env(ONE, n.to_string()).status().unwrap();
        if !status.success() {
            println!("{n:>10} failed: {status}");
        }
    }
}
