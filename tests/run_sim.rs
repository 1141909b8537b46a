//! The load generator against the in-process simulator: timing accuracy,
//! exact token totals, and every fault with its documented outcome.

use std::time::Duration;

use llm_loadtest::artifacts::RunResult;
use llm_loadtest::cli::RunArgs;
use llm_loadtest::sim::{Faults, LatencyDist, SimConfig};
use llm_loadtest::{burst, run};
use tokio_util::sync::CancellationToken;

mod common;
use common::{run_args, sim_with};

/// The client alone: server validation has its own tests (validate_sim.rs).
fn args(extra: &[&str]) -> RunArgs {
    run_args("http://127.0.0.1:1", &["--skip-validation"], extra)
}

async fn burst(url: &str, extra: &[&str]) -> RunResult {
    common::burst_with(url, "sim-model", &args(extra)).await
}

fn ms(d: u64) -> LatencyDist {
    LatencyDist::Fixed(Duration::from_millis(d))
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_and_itl_match_the_simulator_and_tokens_are_exact() {
    let sim = sim_with(SimConfig { ttft: ms(50), itl: ms(10), ..SimConfig::default() }).await;
    let before = metric(&sim.base_url(), "vllm:generation_tokens_total").await;
    let r =
        burst(&sim.base_url(), &["--requests", "24", "--concurrency", "4", "--max-tokens", "16", "--ignore-eos"]).await;
    assert_eq!(r.client.completed, 24, "{:?}", r.client.errors);
    assert!(r.client.tokens_from_usage);
    assert_eq!(r.client.total_output_tokens, 24 * 16);
    let after = metric(&sim.base_url(), "vllm:generation_tokens_total").await;
    assert_eq!(after - before, (24 * 16) as f64, "the server generated exactly what the client counted");
    let ttft = r.client.ttft_ms.median.unwrap();
    // Above 50 by the client's own delays: a few ms alone, up to tens of ms on a loaded 2-core
    // machine running the other tests of this binary.
    assert!((50.0..75.0).contains(&ttft), "median TTFT {ttft} ms should be a few ms above 50");
    let itl = r.client.itl_ms.median.unwrap();
    assert!((9.0..13.0).contains(&itl), "median ITL {itl} ms should be about 10");
    // 15 gaps per request: one per chunk after the first.
    assert_eq!(r.client.itl_ms.count, 24 * 15);
    let tpot = r.client.tpot_ms.mean.unwrap();
    assert!((9.0..14.0).contains(&tpot), "TPOT {tpot}");
    assert_eq!(r.client.finish_reasons.get("length"), Some(&24));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_non_streamed_requests() {
    let sim = sim_with(SimConfig { ttft: ms(5), itl: ms(1), ..SimConfig::default() }).await;
    let r =
        burst(&sim.base_url(), &["--endpoint", "completions", "--requests", "6", "--max-tokens", "8", "--ignore-eos"])
            .await;
    assert_eq!((r.client.completed, r.client.total_output_tokens), (6, 48));
    let r = burst(&sim.base_url(), &["--no-stream", "--requests", "6", "--max-tokens", "8", "--ignore-eos"]).await;
    assert_eq!((r.client.completed, r.client.total_output_tokens), (6, 48));
    assert!(r.client.tokens_from_usage);
    // Without a stream the first token is seen with the whole body.
    assert!(r.records.to_vec().iter().all(|x| x.ttft_s == x.e2e_s));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_counted_by_status() {
    let sim = sim_with(SimConfig { ttft: ms(1), itl: ms(1), ..SimConfig::default() }).await;
    sim.set_faults(Faults { http_error_rate: 1.0, http_error_status: 503, ..Faults::default() });
    let r = burst(&sim.base_url(), &["--requests", "5", "--max-tokens", "4"]).await;
    assert_eq!(r.client.completed, 0);
    assert_eq!(r.client.errors.get("http_error"), Some(&5));
    assert_eq!(r.client.http_statuses.get(&503), Some(&5));
    assert!(r.records.to_vec()[0].error.as_deref().unwrap().starts_with("HTTP 503"));
    assert!(!r.target_unreachable(), "the server answered: it was reachable");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_streams_are_stream_cut_and_keep_their_partial_timing() {
    let sim = sim_with(SimConfig { ttft: ms(1), itl: ms(2), ..SimConfig::default() }).await;
    sim.set_faults(Faults { stream_cut_rate: 1.0, ..Faults::default() });
    let r = burst(&sim.base_url(), &["--requests", "4", "--max-tokens", "32", "--ignore-eos"]).await;
    assert_eq!(r.client.errors.get("stream_cut"), Some(&4), "{:?}", r.records.to_vec()[0]);
    // The cut point is random (possibly before the first token); what arrived before it is kept.
    assert!(r.records.to_vec().iter().any(|x| !x.chunk_times_s.is_empty()));
    assert!(r.records.to_vec().iter().all(|x| x.chunk_times_s.is_empty() || x.ttft_s == Some(x.chunk_times_s[0])));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_is_a_404_with_the_server_message() {
    let sim = sim_with(SimConfig::default()).await;
    let a = args(&["--requests", "2"]);
    let p = run::prepare(&a, &url::Url::parse(&sim.base_url()).unwrap(), "nope", "t", None).unwrap();
    let r = burst::run(p, "t".into(), CancellationToken::new(), None).await;
    assert_eq!(r.client.http_statuses.get(&404), Some(&2));
    assert!(
        r.records.to_vec()[0].error.as_deref().unwrap().contains("does not exist"),
        "{:?}",
        r.records.to_vec()[0].error
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_have_distinct_kinds() {
    let sim = sim_with(SimConfig { ttft: ms(1500), itl: ms(1), ..SimConfig::default() }).await;
    let r = burst(&sim.base_url(), &["--requests", "2", "--first-token-timeout", "200ms", "--timeout", "5s"]).await;
    assert_eq!(r.client.errors.get("first_token_timeout"), Some(&2));
    sim.shutdown().await;

    let sim = sim_with(SimConfig { ttft: ms(1), itl: ms(50), ..SimConfig::default() }).await;
    let r = burst(
        &sim.base_url(),
        &[
            "--requests",
            "2",
            "--max-tokens",
            "64",
            "--ignore-eos",
            "--first-token-timeout",
            "300ms",
            "--timeout",
            "400ms",
        ],
    )
    .await;
    assert_eq!(r.client.errors.get("timeout"), Some(&2));
    assert!(r.records.to_vec().iter().all(|x| !x.chunk_times_s.is_empty()), "partial chunk times are kept");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_is_connect_error() {
    // Bind then drop a listener: nothing listens on that port now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = burst(&format!("http://127.0.0.1:{port}"), &["--requests", "3"]).await;
    assert_eq!(r.client.errors.get("connect_error"), Some(&3));
    assert!(r.target_unreachable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisson_schedule_is_reproducible_and_recorded() {
    let sim = sim_with(SimConfig { ttft: ms(1), itl: ms(1), ..SimConfig::default() }).await;
    let shape = ["--rate", "200", "--poisson", "--seed", "42", "--requests", "30", "--max-tokens", "2"];
    let a = burst(&sim.base_url(), &shape).await;
    let b = burst(&sim.base_url(), &shape).await;
    // Records are spooled in the order they finished; the schedule is in request order.
    let sched = |r: &RunResult| {
        let mut v = r.records.to_vec();
        v.sort_by_key(|x| x.index);
        v.iter().map(|x| x.scheduled_s).collect::<Vec<_>>()
    };
    assert_eq!(sched(&a), sched(&b));
    assert!(sched(&a).windows(2).all(|w| w[0] <= w[1]));
    assert!(a.records.to_vec().iter().all(|x| x.sent_s >= x.scheduled_s - 1e-9));
    assert_eq!(a.client.completed, 30);
    assert_eq!(a.request_rate, serde_json::json!(200.0));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_warmup_and_cancel() {
    let sim = sim_with(SimConfig { ttft: ms(5), itl: ms(5), ..SimConfig::default() }).await;
    let r =
        burst(&sim.base_url(), &["--duration", "500ms", "--concurrency", "2", "--max-tokens", "4", "--warmup", "3"])
            .await;
    assert_eq!(r.records.to_vec().iter().filter(|x| x.warmup).count(), 3);
    assert!(r.client.completed >= 4, "{}", r.client.completed);
    assert!(r.records.to_vec().iter().filter(|x| !x.warmup).all(|x| x.scheduled_s < 0.5 + 1e-3));
    assert_eq!(r.client.num_requests + 3, r.records.len() as u64);

    // Cancel mid-burst: records in flight are kept as cancelled.
    let a = args(&["--requests", "50", "--concurrency", "4", "--max-tokens", "200", "--ignore-eos"]);
    let p = run::prepare(&a, &url::Url::parse(&sim.base_url()).unwrap(), "sim-model", "t", None).unwrap();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let sim_url = sim.base_url();
    tokio::spawn(async move {
        // Once the server runs all 4 (each takes about a second): a fixed pause could end before
        // a loaded machine had sent them, and then nothing would be in flight to cancel.
        let t = std::time::Instant::now();
        while metric(&sim_url, "vllm:num_requests_running").await < 4.0 && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c2.cancel();
    });
    let r = burst::run(p, "t".into(), cancel, None).await;
    assert!(r.cancelled);
    assert_eq!(r.client.errors.get("cancelled"), Some(&4), "{:?}", r.client.errors);
    assert!(r.records.len() < 50);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_inputs_are_refused_before_sending() {
    let t = url::Url::parse("http://127.0.0.1:1").unwrap();
    let err = |extra: &[&str]| {
        run::prepare(&args(extra), &t, "m", "t", None).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(err(&["--dataset", "/no/such/file.jsonl"]).contains("/no/such/file.jsonl"));
    assert!(err(&["--concurrency", "0"]).contains("concurrency"));
    assert!(err(&["--rate=-3"]).contains("rate"));
    assert!(err(&["--requests", "0"]).contains("--requests"));
    assert!(err(&["--first-token-timeout", "90s", "--timeout", "10s"]).contains("longer than --timeout"));
    // A malformed SLO term is refused while the flags are parsed, before any plan.
    let parse = <llm_loadtest::cli::Cli as clap::Parser>::try_parse_from([
        "llm-loadtest",
        "run",
        "--target",
        "http://127.0.0.1:1",
        "--model",
        "m",
        "--goodput",
        "ttft",
    ]);
    assert!(parse.err().map(|e| e.to_string()).unwrap_or_default().contains("metric:milliseconds"));
    assert!(err(&["--api-key-file", "/no/key"]).contains("/no/key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_the_simulator_and_names_the_served_model() {
    use llm_loadtest::doctor;
    use llm_loadtest::openai::Endpoint;
    let sim = sim_with(SimConfig { ttft: ms(2), itl: ms(1), ..SimConfig::default() }).await;
    let obs = doctor::observe(&sim.base_url(), "sim-model", Endpoint::Chat, None, Duration::from_secs(5)).await;
    assert!(doctor::diagnose(&obs).is_empty(), "{:#?}", doctor::diagnose(&obs));
    assert_eq!(obs.version.as_deref(), Some("0.32.0"));
    assert!(obs.stream.usage.is_some() && obs.stream.token_chunks > 0);

    let obs = doctor::observe(&sim.base_url(), "llama", Endpoint::Chat, None, Duration::from_secs(5)).await;
    let f = doctor::diagnose(&obs);
    assert!(f.iter().any(|x| x.solution.iter().any(|s| s.contains("--model sim-model"))), "{f:#?}");
    sim.shutdown().await;
}

/// Issue 14: a burst's records are streamed to a spool as they finish, not held; its statistics,
/// accumulated on the way, are those of every record it saved, and the saved run read back (as
/// `validate DIR` and the daemon's history read it, records left on disk) gives them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_burst_has_the_statistics_of_its_saved_records() {
    let sim = sim_with(SimConfig {
        ttft: LatencyDist::Uniform { min: Duration::from_millis(1), max: Duration::from_millis(6) },
        itl: LatencyDist::Uniform { min: Duration::ZERO, max: Duration::from_millis(3) },
        faults: Faults { http_error_rate: 0.1, ..Faults::default() },
        ..SimConfig::default()
    })
    .await;
    let shape = ["--requests", "400", "--concurrency", "16", "--max-tokens", "12", "--warmup", "8"];
    let r = burst(&sim.base_url(), &shape).await;
    assert!(r.records.is_spooled(), "the records are in the spool file, not in memory");
    assert_eq!(r.records.len(), 408);
    let records = r.records.to_vec();
    assert!(records.iter().any(|x| !x.is_ok()), "some requests failed (the fault)");
    let all = llm_loadtest::stats::compute(&records, r.client.duration_s, &r.client.receive_lag, &r.plan.goodput_slo);
    assert_eq!(all, r.client);

    let dir = tempfile::tempdir().unwrap();
    llm_loadtest::artifacts::save(dir.path(), &r).unwrap();
    let saved = llm_loadtest::artifacts::read_dir(dir.path()).unwrap();
    assert!(saved.records.is_spooled(), "read back, the records stay in the file");
    assert_eq!(saved.records.to_vec(), records);
    assert_eq!(serde_json::to_value(&saved.client).unwrap(), serde_json::to_value(&r.client).unwrap());
    sim.shutdown().await;
}
