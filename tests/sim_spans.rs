//! The simulator's `llm_request` spans and `Received request` lines, as vLLM
//! 0.32 writes them, joined by a burst through the tool's own OTLP receiver:
//! exact per-request counts, a span for every finished request (none for a cut
//! stream), completion ids with vLLM's `-0`, and the span-drop fault seen as
//! requests without a span.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm_loadtest::artifacts::RunResult;
use llm_loadtest::sim::{Faults, LatencyDist, LogSink, SimConfig, SimHandle};
use llm_loadtest::traces::{Hub, Receiver};
use llm_loadtest::validate::{Status, TracesValidation};
use llm_loadtest::{burst, run};
use tokio_util::sync::CancellationToken;

mod common;

/// A simulator exporting its spans (every 200 ms) to a fresh receiver, logging to a buffer.
async fn sim_and_receiver(faults: Faults) -> (SimHandle, Receiver, Arc<Mutex<Vec<String>>>) {
    let receiver = Receiver::start("127.0.0.1:0", Hub::new()).await.unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let config = SimConfig {
        itl: LatencyDist::Fixed(Duration::from_millis(2)),
        log_sink: LogSink::Buffer(lines.clone()),
        log_requests: true,
        otlp_traces_endpoint: Some(format!("http://{}", receiver.addr)),
        otlp_batch_delay: Duration::from_millis(200),
        faults,
        ..SimConfig::default()
    };
    let sim = llm_loadtest::sim::start(config, ([127, 0, 0, 1], 0).into()).await.unwrap();
    (sim, receiver, lines)
}

async fn burst(sim: &SimHandle, receiver: &Receiver, run_id: &str, extra: &[&str]) -> RunResult {
    let base = ["--requests", "24", "--concurrency", "4", "--max-tokens", "8", "--idle-window", "0s"];
    let a = common::run_args(&sim.base_url(), &base, extra);
    let url = url::Url::parse(&sim.base_url()).unwrap();
    let plan = run::prepare(&a, &url, "sim-model", run_id, Some(Arc::clone(&receiver.hub))).unwrap();
    burst::run(plan, run_id.into(), CancellationToken::new(), None).await
}

fn traces(r: &RunResult) -> &TracesValidation {
    r.validation.as_ref().and_then(|v| v.traces.as_ref()).expect("a traces section")
}

fn check<'a>(t: &'a TracesValidation, name: &str) -> &'a llm_loadtest::validate::Comparison {
    t.section.comparisons.iter().find(|c| c.check == name).unwrap_or_else(|| panic!("no {name} in {t:#?}"))
}

fn received_ids(lines: &Mutex<Vec<String>>) -> Vec<String> {
    let lines = lines.lock().unwrap();
    lines
        .iter()
        .filter_map(|l| l.split("Received request ").nth(1))
        .map(|rest| rest.split(':').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_finished_request_has_its_span_and_its_received_line() {
    let (sim, receiver, lines) = sim_and_receiver(Faults::default()).await;
    for (run_id, endpoint, prefix, suffix) in
        [("chat1", "chat", "chatcmpl-", ""), ("cmpl1", "completions", "cmpl-", "-0")]
    {
        let r = burst(&sim, &receiver, run_id, &["--endpoint", endpoint]).await;
        let t = traces(&r);
        // Counts only: the latency checks depend on this machine's load, not on the spans.
        for name in ["request_count", "prompt_tokens", "generation_tokens"] {
            let c = check(t, name);
            assert_eq!(c.client, c.server, "{endpoint} {name}: {c:?}");
            assert_eq!(c.status, Status::Pass, "{endpoint} {name}: {c:?}");
        }
        assert_eq!(t.matched, 24);
        assert_eq!(check(t, "request_count").server, Some(24.0));
        // vLLM's latency breakdown is there: prefill is the 50 ms TTFT (no queue), decode 7 gaps.
        let prefill = t.server_breakdown.prefill_ms.as_ref().unwrap().mean;
        assert!((49.0..80.0).contains(&prefill), "prefill {prefill} ms");
        let decode = t.server_breakdown.decode_ms.as_ref().unwrap().mean;
        // 7 gaps of 2 ms; a first token sent late shortens it (the tokens keep their deadlines).
        assert!((7.0..60.0).contains(&decode), "decode {decode} ms");
        let ids: Vec<String> = received_ids(&lines).into_iter().filter(|id| id.contains(run_id)).collect();
        assert_eq!(ids.len(), 24, "{endpoint}: {ids:?}");
        assert!(ids.iter().all(|id| id.starts_with(prefix) && id.ends_with(suffix)), "{ids:?}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_has_no_span_and_dropped_spans_are_requests_without_one() {
    // Cut streams: vLLM aborts them and exports nothing; the finished ones all match.
    let (sim, receiver, _) = sim_and_receiver(Faults { stream_cut_rate: 0.3, ..Faults::default() }).await;
    let r = burst(&sim, &receiver, "cut1", &[]).await;
    let completed = r.client.completed;
    assert!(completed < 24 && completed > 0, "{completed} completed");
    let t = traces(&r);
    assert_eq!(check(t, "request_count").status, Status::Pass, "{t:#?}");
    assert_eq!(t.matched, completed);
    assert_eq!(t.spans_without_completion.count, 0);
    sim.shutdown().await;

    // A collector that loses a share of the spans: requests without a span, a WARN.
    let (sim, receiver, _) = sim_and_receiver(Faults { drop_spans_rate: 0.5, ..Faults::default() }).await;
    let r = burst(&sim, &receiver, "drop1", &["--spans-timeout", "2s"]).await;
    let t = traces(&r);
    assert_eq!(r.client.completed, 24);
    let lost = t.client_without_span.count;
    assert!((1..24).contains(&lost), "{lost} without a span: {t:#?}");
    assert_eq!(t.matched + lost, 24);
    assert_eq!(check(t, "request_count").status, Status::Warn, "{t:#?}");
    assert!(t.client_without_span.request_ids.iter().all(|id| id.starts_with("drop1-")), "{t:#?}");
    sim.shutdown().await;
}
