//! Connections opened before the measured start: a closed loop at concurrency C starts with C
//! idle connections, so no measured request pays a connection set-up; `--cold-connections`
//! measures them on purpose, and each such request reports its set-up time apart.

use clap::Parser;
use llm_loadtest::cli::{Cli, Command};
use llm_loadtest::sim::{LatencyDist, SimConfig};
use llm_loadtest::{burst, run};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod common;

async fn burst_with(url: &str, extra: &[&str]) -> llm_loadtest::artifacts::RunResult {
    let mut argv = vec!["llm-loadtest", "run", "--target", url, "--model", "sim-model", "--quiet", "--skip-validation"];
    argv.extend(["--requests", "64", "--concurrency", "16", "--max-tokens", "4"]);
    argv.extend(extra);
    let Command::Run(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    let p = run::prepare(&a, &url::Url::parse(url).unwrap(), "sim-model", "t", None).unwrap();
    burst::run(p, "t".into(), CancellationToken::new(), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_is_opened_before_the_clock_and_cold_connections_are_reported_apart() {
    let sim =
        common::sim_with(SimConfig { ttft: LatencyDist::Fixed(Duration::from_millis(20)), ..SimConfig::default() })
            .await;
    let url = sim.base_url();
    let warm = burst_with(&url, &[]).await;
    let cold = burst_with(&url, &["--cold-connections"]).await;
    for (name, r) in [("warm", &warm), ("cold", &cold)] {
        println!(
            "{name}: {} completed, connects during the run {} (p50 {:?} ms), TTFT with a connect {}, notes {:?}",
            r.client.completed,
            r.client.connect_ms.count,
            r.client.connect_ms.median,
            r.client.ttft_with_connect,
            r.notes
        );
        assert_eq!(r.client.completed, 64);
    }
    let opened: u64 = warm
        .notes
        .iter()
        .find_map(|n| {
            n.strip_suffix(
                " connections opened before the measured start (cold_connections = true measures them instead)",
            )
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", warm.notes));
    // Cold: at least one connection per slot is opened inside the measured requests. Warm: the
    // slots reuse the connections opened before the clock, so far fewer are opened inside (on
    // a quiet machine 1 or 2 of 64; a busy one opened 9 of the 16 first and 8 inside: hyper's
    // pool gives a connection back asynchronously).
    assert!(cold.client.ttft_with_connect >= 16, "{}", cold.client.ttft_with_connect);
    assert!((1..=16).contains(&opened), "{opened}");
    assert!(
        warm.client.ttft_with_connect < cold.client.ttft_with_connect,
        "{} {}",
        warm.client.ttft_with_connect,
        cold.client.ttft_with_connect
    );
    assert!(cold.client.connect_ms.median.is_some_and(|m| m > 0.0));
    assert!(!cold.notes.iter().any(|n| n.contains("opened before")), "{:?}", cold.notes);
    sim.shutdown().await;
}
