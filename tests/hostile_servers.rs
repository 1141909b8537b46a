//! Hostile servers, each a named scenario played by one small fake server (as
//! kube-rs controllers drive theirs): every deadline must hold whatever bytes
//! arrive, memory stays bounded by the SSE limits, a cancelled burst ends at
//! once, and each misbehaviour ends under its own outcome. The margins on the
//! deadlines are wide (this is a shared 2-core machine); before the SSE reader
//! was bounded, the flood cases ran for minutes or for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use llm_loadtest::artifacts::RunResult;
use llm_loadtest::cli::{Cli, Command};
use llm_loadtest::{burst, run};
use tokio_util::sync::CancellationToken;

mod common;

/// What the fake server does after its 200 `text/event-stream` headers.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// 1 MiB writes with no newline, as fast as the socket takes them (100 MiB at most).
    NoNewlineFlood,
    /// One 2 MiB line, then its newline.
    HugeLine,
    /// One token, then nothing (for 60 s at most).
    StallAfterFirstToken,
    /// SSE comments as fast as possible, never a token (for 10 s at most).
    KeepAliveFlood,
    /// One byte every 10 ms, never a newline (60 s at most).
    Trickle,
    /// A plain-text body under an SSE content type.
    PlainText,
    /// One token and a `usage` of 2^64 - 1 completion tokens.
    AbsurdUsage,
}

const TOKEN: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n";

fn body(s: Scenario) -> Body {
    use futures_util::stream::{self, StreamExt};
    type Item = Result<Bytes, std::io::Error>;
    let mib = Bytes::from(vec![b'x'; 1 << 20]);
    match s {
        Scenario::NoNewlineFlood => {
            Body::from_stream(stream::iter((0..100).map(move |_| Ok::<_, std::io::Error>(mib.clone()))))
        }
        Scenario::HugeLine => {
            let mut line = b"data: ".to_vec();
            line.extend(std::iter::repeat_n(b'y', 2 << 20));
            line.extend(b"\n\n");
            Body::from(line)
        }
        Scenario::StallAfterFirstToken => Body::from_stream(
            stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(TOKEN.as_bytes())) }).chain(stream::once(
                async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, std::io::Error>(Bytes::new())
                },
            )),
        ),
        Scenario::KeepAliveFlood => {
            let ping = Bytes::from(b": ping\n".repeat(1 << 14));
            let until = Instant::now() + Duration::from_secs(10);
            Body::from_stream(stream::unfold((), move |()| {
                let ping = ping.clone();
                async move { (Instant::now() < until).then_some((Ok::<_, std::io::Error>(ping), ())) }
            }))
        }
        Scenario::Trickle => Body::from_stream(stream::unfold(0u32, |n| async move {
            if n >= 6000 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"z")) as Item, n + 1))
        })),
        Scenario::PlainText => Body::from("Internal proxy says hello, this is not an event stream."),
        Scenario::AbsurdUsage => Body::from(format!(
            "{TOKEN}data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
            u64::MAX
        )),
    }
}

async fn serve(s: Scenario) -> String {
    serve_counting(s).await.0
}

/// [`serve`], and how many chat requests it has been sent.
async fn serve_counting(s: Scenario) -> (String, Arc<AtomicUsize>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut r: Response = body(s).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
            r
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), sent)
}

async fn burst(url: &str, extra: &[&str], cancel: CancellationToken) -> RunResult {
    let mut argv = vec!["llm-loadtest", "run", "--target", url, "--model", "m", "--requests", "2"];
    argv.extend(["--concurrency", "2", "--quiet", "--skip-validation"]);
    argv.extend(extra);
    let Command::Run(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    let p = run::prepare(&a, &url::Url::parse(url).unwrap(), "m", "t", None).unwrap();
    burst::run(p, "t".into(), cancel, None).await
}

/// The one outcome of both requests, and how long the burst took.
async fn outcome(s: Scenario, extra: &[&str]) -> (String, Duration, RunResult) {
    let url = serve(s).await;
    let t = Instant::now();
    let r = burst(&url, extra, CancellationToken::new()).await;
    let took = t.elapsed();
    let kinds: Vec<&str> = r.client.errors.keys().copied().collect();
    assert_eq!(r.client.failed, 2, "{s:?}: {:?}", r.client.errors);
    assert_eq!(kinds.len(), 1, "{s:?}: {kinds:?}");
    (kinds[0].to_owned(), took, r)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_without_newlines_is_a_line_too_long_at_once_in_bounded_memory() {
    let before = rss_kib();
    let (kind, took, r) = outcome(Scenario::NoNewlineFlood, &["--first-token-timeout", "5s"]).await;
    let grew = rss_kib().saturating_sub(before);
    println!("no-newline flood: {kind} after {took:?}; RSS grew {grew} KiB");
    assert_eq!(kind, "line_too_long");
    assert!(r.records.to_vec().iter().all(|x| x.error.as_deref().unwrap().contains("longer than 1048576 bytes")));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(grew < 64 << 10, "RSS grew {grew} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_line_with_its_newline_is_too_long_not_a_timeout() {
    let (kind, _, _) = outcome(Scenario::HugeLine, &[]).await;
    assert_eq!(kind, "line_too_long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_ends_at_the_inter_chunk_timeout() {
    let (kind, took, r) = outcome(Scenario::StallAfterFirstToken, &["--inter-chunk-timeout", "500ms"]).await;
    assert_eq!(kind, "stall_timeout");
    assert!(r.records.to_vec().iter().all(|x| x.ttft_s.is_some()), "the first token was seen");
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_keep_coming_do_not_hold_off_the_first_token_deadline() {
    let (kind, took, _) = outcome(Scenario::KeepAliveFlood, &["--first-token-timeout", "1s"]).await;
    assert_eq!(kind, "first_token_timeout");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_ends_at_the_request_timeout() {
    let (kind, took, _) = outcome(Scenario::Trickle, &["--timeout", "1s", "--first-token-timeout", "1s"]).await;
    assert_eq!(kind, "first_token_timeout");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_labelled_as_sse_is_malformed_not_cut() {
    let (kind, _, r) = outcome(Scenario::PlainText, &[]).await;
    assert_eq!(kind, "malformed_stream", "{:?}", r.records.to_vec()[0].error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_during_a_flood_ends_the_burst_and_keeps_its_records() {
    for s in [Scenario::Trickle, Scenario::KeepAliveFlood] {
        let (url, sent) = serve_counting(s).await;
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            // Once both requests reached the server: a fixed pause could end before a loaded
            // machine had sent them, and then nothing would be in flight to cancel.
            let t = Instant::now();
            while sent.load(Ordering::SeqCst) < 2 && t.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Then into their bodies: the cancel must end a read of the flood, not the sending.
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel();
        });
        let t = Instant::now();
        let r = burst(&url, &["--first-token-timeout", "60s", "--timeout", "60s"], cancel).await;
        assert!(t.elapsed() < Duration::from_secs(5), "{s:?}: {:?}", t.elapsed());
        assert!(r.cancelled);
        assert_eq!(r.client.errors.get("cancelled"), Some(&2), "{s:?}: {:?}", r.client.errors);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_usage_saturates_the_totals_instead_of_wrapping_them() {
    let url = serve(Scenario::AbsurdUsage).await;
    let r = burst(&url, &[], CancellationToken::new()).await;
    assert_eq!(r.client.completed, 2, "{:?}", r.client.errors);
    // Two requests of 2^64 - 1 tokens: saturated, not wrapped to 2^64 - 2 (nor a panic).
    assert_eq!(r.client.total_output_tokens, u64::MAX);
    assert_eq!(r.client.total_input_tokens, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_dies_mid_burst_is_lost_with_its_failures_bounded_and_counted() {
    // A 10 s closed loop at concurrency 8; the server stops listening after about a second.
    let sim = common::sim_with(llm_loadtest::sim::SimConfig::default()).await;
    let url = sim.base_url();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sim.shutdown().await;
    });
    let t = Instant::now();
    let extra = ["--duration", "10s", "--concurrency", "8", "--max-tokens", "4", "--target-lost-after", "50"];
    let mut argv = vec!["llm-loadtest", "run", "--target", &url, "--model", "sim-model", "--quiet"];
    argv.extend(["--skip-validation"]);
    argv.extend(extra);
    let Command::Run(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    let p = run::prepare(&a, &url::Url::parse(&url).unwrap(), "sim-model", "t", None).unwrap();
    let r = burst::run(p, "t".into(), CancellationToken::new(), None).await;
    let took = t.elapsed();
    killer.await.unwrap();
    let refused = r.client.errors.get("connect_error").copied().unwrap_or(0);
    println!("target lost after {took:?}: {} completed, {refused} refused, {:?}", r.client.completed, r.client.errors);
    assert!(r.target_lost.is_some(), "{:?}", r.notes);
    assert!(took < Duration::from_secs(8), "ended early: {took:?}");
    assert!(r.client.completed > 0);
    // Bounded: the budget in a row plus what the other slots had in flight, not millions.
    assert!((50..1000).contains(&refused), "{refused} refused");
    // Counts exact: the records kept plus the folded failures are every request.
    let folded: u64 = r.folded_failures.iter().filter(|f| !f.warmup).map(|f| f.count).sum();
    let kept = r.records.to_vec().iter().filter(|x| !x.warmup).count() as u64;
    assert_eq!(kept + folded, r.client.completed + r.client.failed);
    assert!(r.notes.iter().any(|n| n.contains("target_lost")), "{:?}", r.notes);
}

/// A target refusing every connection for the whole burst, with no error budget (open loop,
/// `target_lost_after = 0`): the failures in a row are stored as one folded entry after the
/// first few records, the counts stay exact, and a saved run reads back to the same figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_in_a_row_are_stored_compactly_with_exact_counts() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let argv = ["llm-loadtest", "run", "--target", &url, "--model", "m", "--quiet", "--skip-validation"];
    let extra = ["--rate", "400", "--requests", "600", "--target-lost-after", "0"];
    let Command::Run(a) = Cli::try_parse_from(argv.into_iter().chain(extra)).unwrap().command else { unreachable!() };
    let p = run::prepare(&a, &url::Url::parse(&url).unwrap(), "m", "t", None).unwrap();
    let r = burst::run(p, "t".into(), CancellationToken::new(), None).await;
    let refused = r.client.errors.get("connect_error").copied().unwrap_or(0);
    println!(
        "{} requests, {refused} refused, {} records, {:?}",
        r.client.num_requests,
        r.records.len(),
        r.folded_failures.len()
    );
    assert_eq!(r.client.num_requests, 600, "{:?}", r.client.errors);
    assert_eq!(refused, 600);
    assert!(r.target_unreachable());
    assert_eq!(r.records.len(), llm_loadtest::record::KEPT_PER_FAILURE_RUN, "the first of the run only");
    assert_eq!(r.folded_failures.len(), 1, "{:?}", r.folded_failures);
    assert_eq!(r.folded_failures[0].count, 590);
    // Saved and read back (`validate DIR`, the daemon's history): the same counts.
    let dir = tempfile::tempdir().unwrap();
    llm_loadtest::artifacts::save(dir.path(), &r).unwrap();
    let lines = std::fs::read_to_string(dir.path().join("requests.jsonl")).unwrap().lines().count();
    assert_eq!(lines, 10);
    let back = llm_loadtest::artifacts::read_dir(dir.path()).unwrap();
    assert_eq!(back.client.num_requests, 600);
    assert_eq!(back.client.errors, r.client.errors);
    assert_eq!(back.folded_failures, r.folded_failures);
}
