//! Load-generator benchmark against the in-process simulator. Prints figures;
//! asserts nothing about speed (this is a noisy 2-core machine).
//!
//!     cargo bench --bench load
//!
//! 1. Max requests/s and streamed tokens/s at concurrency 1, 64 and 1024,
//!    with zero server delay.
//! 2. 512 concurrent streams of 64 tokens at 10 ms gaps, first token at once:
//!    the TTFT the client adds over the simulator's own first-token instant
//!    (both are `Instant`s of this process), p50 / p99.
//!
//! The simulator runs on its own single-thread runtime, the client on a
//! two-thread runtime, as it would in `llm-loadtest run`.

use std::time::Duration;

use clap::Parser;
use llm_loadtest::cli::{Cli, Command};
use llm_loadtest::sim::{self, LatencyDist, LengthDist, LogSink, SimConfig, SimHandle};
use llm_loadtest::{artifacts, burst, run};
use tokio_util::sync::CancellationToken;

fn sim_runtime(config: SimConfig) -> (tokio::runtime::Runtime, SimHandle) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let handle = rt.block_on(sim::start(config, ([127, 0, 0, 1], 0).into())).unwrap();
    (rt, handle)
}

fn burst(client_rt: &tokio::runtime::Runtime, url: &str, extra: &[&str]) -> artifacts::RunResult {
    let mut argv = vec!["llm-loadtest", "run", "--target", url, "--model", "sim-model", "--quiet"];
    argv.extend_from_slice(extra);
    let Command::Run(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    client_rt.block_on(async {
        let p = run::prepare(&a, &url::Url::parse(url).unwrap(), "sim-model", "bench", None).unwrap();
        burst::run(p, "bench".into(), CancellationToken::new(), None).await
    })
}

fn zero() -> LatencyDist {
    LatencyDist::Fixed(Duration::ZERO)
}

fn main() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let threads = std::env::var("BENCH_CLIENT_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    println!("client runtime: {threads} worker threads; simulator: 1");
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();

    println!("== throughput, zero server delay, 16 tokens per request, 5 s per point ==");
    println!(
        "{:>12} {:>12} {:>14} {:>10} {:>16}",
        "concurrency", "requests/s", "tokens/s", "failed", "recv lag p99 ms"
    );
    let points: Vec<u32> = if std::env::var_os("BENCH_SKIP_THROUGHPUT").is_some() { vec![] } else { vec![1, 64, 1024] };
    for c in points {
        let (sim_rt, sim) = sim_runtime(SimConfig {
            ttft: zero(),
            itl: zero(),
            log_sink: LogSink::Discard,
            max_model_len: 4096,
            ..SimConfig::default()
        });
        let c_s = c.to_string();
        let r = burst(
            &client_rt,
            &sim.base_url(),
            &["--concurrency", &c_s, "--duration", "5s", "--max-tokens", "16", "--ignore-eos", "--input-tokens", "32"],
        );
        println!(
            "{:>12} {:>12.0} {:>14.0} {:>10} {:>16.2}",
            c,
            r.client.request_throughput,
            r.client.output_throughput,
            r.client.failed,
            r.client.receive_lag.p99_us / 1e3
        );
        sim_rt.block_on(sim.shutdown());
    }

    println!("\n== TTFT added by the client: 512 streams, 64 tokens at 10 ms, first token at once ==");
    let (sim_rt, sim) = sim_runtime(SimConfig {
        ttft: zero(),
        itl: LatencyDist::Fixed(Duration::from_millis(10)),
        output_tokens: LengthDist::Fixed(64),
        log_sink: LogSink::Discard,
        record_timings: true,
        ..SimConfig::default()
    });
    let r = burst(
        &client_rt,
        &sim.base_url(),
        &["--concurrency", "512", "--requests", "4096", "--max-tokens", "64", "--ignore-eos", "--input-tokens", "32"],
    );
    let first = sim.first_token_instants();
    let start = r.start_instant.expect("the burst start instant");
    let added_for = |from_index: u64| -> Vec<f64> {
        let mut v: Vec<f64> = r
            .records
            .to_vec()
            .iter()
            .filter(|x| x.is_ok() && x.index >= from_index)
            .filter_map(|x| {
                let sim_at = *first.get(&format!("bench-{}", x.index))?;
                let client_at = start + Duration::from_secs_f64(x.sent_s + x.ttft_s?);
                Some(
                    client_at.saturating_duration_since(sim_at).as_secs_f64() * 1e3
                        - sim_at.saturating_duration_since(client_at).as_secs_f64() * 1e3,
                )
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let pct = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let all = added_for(0);
    println!(
        "matched {} of {} requests; completed {}, failed {}",
        all.len(),
        r.records.len(),
        r.client.completed,
        r.client.failed
    );
    println!(
        "client TTFT: median {:.2} ms, p99 {:.2} ms",
        r.client.ttft_ms.median.unwrap_or(0.0),
        r.client.ttft_ms.p99.unwrap_or(0.0)
    );
    println!(
        "added over the simulator's first-token instant, all requests: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0)
    );
    // The first 512 start together (512 connects, 512 first tokens at once).
    let steady = added_for(512);
    println!(
        "  after the first wave of 512:              p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        pct(&steady, 0.5),
        pct(&steady, 0.99),
        pct(&steady, 1.0)
    );
    println!(
        "client ITL: median {:.2} ms, p99 {:.2} ms; receive lag p50 {:.3} ms, p99 {:.3} ms",
        r.client.itl_ms.median.unwrap_or(0.0),
        r.client.itl_ms.p99.unwrap_or(0.0),
        r.client.receive_lag.p50_us / 1e3,
        r.client.receive_lag.p99_us / 1e3
    );
    println!(
        "client-bound flags: ttft={} itl={} schedule={}",
        r.client.client_bound.ttft, r.client.client_bound.itl, r.client.client_bound.schedule
    );
    sim_rt.block_on(sim.shutdown());
}
