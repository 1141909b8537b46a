//! The OTLP receiver's throughput and what the tool's own tracing costs a run.
//! Prints figures; asserts nothing about speed.
//!
//!     cargo bench --bench traces
//!
//! 1. Receiver: exports of 500 vLLM-shaped `llm_request` spans each (half ours, half
//!    another client's), decoded and joined to a burst in flight: in memory (decode +
//!    route), over OTLP/HTTP protobuf and over OTLP/gRPC, two senders at once.
//! 2. Tracing on vs off: `llm-loadtest run` as a process against the in-process
//!    simulator, alternately without and with `--otlp-endpoint` (spans sent to an
//!    in-process receiver), the same burst each time; the client's TTFT p50 and the
//!    run's wall time, each side's median over the repeats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_loadtest::sim::{self, LatencyDist, LogSink, SimConfig};
use llm_loadtest::traces::span::llm_spans;
use llm_loadtest::traces::{Hub, Receiver, ReceiverCounters};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const SPANS_PER_EXPORT: u64 = 500;
const EXPORTS: u64 = 400;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
}

/// Export `e`: ours (`run-<i>`) for even spans, another client's for odd ones.
fn export(e: u64) -> ExportTraceServiceRequest {
    let spans = (0..SPANS_PER_EXPORT)
        .map(|k| {
            let i = e * SPANS_PER_EXPORT + k;
            let id = if k % 2 == 0 { format!("chatcmpl-run-{i}") } else { format!("chatcmpl-other-{i}") };
            Span {
                name: "llm_request".into(),
                trace_id: i.to_be_bytes().repeat(2),
                span_id: i.to_be_bytes().to_vec(),
                attributes: vec![
                    kv("gen_ai.request.id", Value::StringValue(id)),
                    kv("gen_ai.usage.prompt_tokens", Value::IntValue(128)),
                    kv("gen_ai.usage.completion_tokens", Value::IntValue(64)),
                    kv("gen_ai.latency.time_to_first_token", Value::DoubleValue(0.02)),
                    kv("gen_ai.latency.e2e", Value::DoubleValue(0.7)),
                    kv("gen_ai.latency.time_in_queue", Value::DoubleValue(0.001)),
                    kv("gen_ai.latency.time_in_model_prefill", Value::DoubleValue(0.019)),
                    kv("gen_ai.latency.time_in_model_decode", Value::DoubleValue(0.68)),
                    kv("gen_ai.latency.time_in_model_inference", Value::DoubleValue(0.699)),
                ],
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
}

fn kept(hub: &Hub) -> u64 {
    ReceiverCounters::get(&hub.counters.spans_kept)
}

fn rate(spans: u64, t: Instant) -> String {
    format!("{:.0} spans/s ({:.2} s for {spans})", spans as f64 / t.elapsed().as_secs_f64(), t.elapsed().as_secs_f64())
}

fn receiver_throughput(rt: &tokio::runtime::Runtime) {
    let exports: Vec<ExportTraceServiceRequest> = (0..EXPORTS).map(export).collect();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(exports.iter().map(Message::encode_to_vec).collect());
    let total = EXPORTS * SPANS_PER_EXPORT;
    let mb = bodies.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!("receiver: {EXPORTS} exports x {SPANS_PER_EXPORT} spans ({mb:.1} MB protobuf), half of them ours");

    // Decode + route, no network.
    let hub = Hub::new();
    let _burst = hub.register("run-".into(), total as usize);
    let t = Instant::now();
    for b in bodies.iter() {
        let e = ExportTraceServiceRequest::decode(&b[..]).expect("decode");
        hub.accept(llm_spans(&e));
    }
    println!("  in memory (decode + join):  {}", rate(total, t));
    assert_eq!(kept(&hub), total / 2);

    rt.block_on(async {
        // OTLP/HTTP protobuf, two senders.
        let r = Receiver::start("127.0.0.1:0", Hub::new()).await.unwrap();
        let _burst = r.hub.register("run-".into(), total as usize);
        let url = format!("http://{}/v1/traces", r.addr);
        let client = reqwest::Client::new();
        let t = Instant::now();
        let senders: Vec<_> = (0..2)
            .map(|w| {
                let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
                tokio::spawn(async move {
                    for b in bodies.iter().skip(w).step_by(2) {
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(b.clone())
                            .send()
                            .await
                            .unwrap();
                        assert!(resp.status().is_success());
                    }
                })
            })
            .collect();
        for s in senders {
            s.await.unwrap();
        }
        println!("  OTLP/HTTP protobuf:         {}", rate(total, t));
        assert_eq!(kept(&r.hub), total / 2);

        // OTLP/gRPC, two senders.
        let r = Receiver::start("127.0.0.1:0", Hub::new()).await.unwrap();
        let _burst = r.hub.register("run-".into(), total as usize);
        let url = format!("http://{}", r.addr);
        let exports = Arc::new(exports);
        let t = Instant::now();
        let senders: Vec<_> = (0..2)
            .map(|w| {
                let (url, exports) = (url.clone(), exports.clone());
                tokio::spawn(async move {
                    let mut client = TraceServiceClient::connect(url).await.unwrap();
                    for e in exports.iter().skip(w).step_by(2) {
                        client.export(e.clone()).await.unwrap();
                    }
                })
            })
            .collect();
        for s in senders {
            s.await.unwrap();
        }
        println!("  OTLP/gRPC:                  {}", rate(total, t));
        assert_eq!(kept(&r.hub), total / 2);
    });
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One `run` process: (TTFT p50 ms, wall time s).
fn one_run(target: &str, otlp: Option<&str>) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_llm-loadtest"));
    cmd.args(["run", "--target", target, "--model", "sim-model", "--requests", "400", "--concurrency", "8"]);
    cmd.args(["--max-tokens", "16", "--skip-validation", "--quiet", "--output"]).arg(&out);
    if let Some(e) = otlp {
        cmd.args(["--otlp-endpoint", e]);
    }
    let t = Instant::now();
    let status = cmd.output().unwrap().status;
    let wall = t.elapsed().as_secs_f64();
    assert!(status.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["completed"], 400);
    (v["median_ttft_ms"].as_f64().unwrap(), wall)
}

fn tracing_on_vs_off(rt: &tokio::runtime::Runtime) {
    let sim = rt
        .block_on(sim::start(
            SimConfig {
                log_sink: LogSink::Discard,
                ttft: LatencyDist::Fixed(Duration::from_millis(20)),
                itl: LatencyDist::Fixed(Duration::from_millis(2)),
                ..SimConfig::default()
            },
            ([127, 0, 0, 1], 0).into(),
        ))
        .unwrap();
    let sink = rt.block_on(Receiver::start("127.0.0.1:0", Hub::new())).unwrap();
    let endpoint = format!("http://{}", sink.addr);
    let target = sim.base_url();
    let (mut off_ttft, mut on_ttft, mut off_wall, mut on_wall) = (vec![], vec![], vec![], vec![]);
    one_run(&target, None); // warm the simulator and the page cache
    for _ in 0..5 {
        let (t, w) = one_run(&target, None);
        off_ttft.push(t);
        off_wall.push(w);
        let (t, w) = one_run(&target, Some(&endpoint));
        on_ttft.push(t);
        on_wall.push(w);
    }
    let spans = ReceiverCounters::get(&sink.hub.counters.spans_other_name);
    println!("tracing on vs off: 5 x (off, on) alternately, 400 requests at concurrency 8, simulator TTFT 20 ms");
    println!("  spans received from the runs with tracing on: {spans} (run, phases, 400 requests each)");
    let (a, b) = (median(&mut off_ttft), median(&mut on_ttft));
    println!("  client TTFT p50: off {a:.3} ms, on {b:.3} ms, on - off {:+.3} ms", b - a);
    let (a, b) = (median(&mut off_wall), median(&mut on_wall));
    println!(
        "  run wall time (process, incl. the final span flush): off {a:.3} s, on {b:.3} s, on - off {:+.3} s",
        b - a
    );
    rt.block_on(sim.shutdown());
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    receiver_throughput(&rt);
    tracing_on_vs_off(&rt);
}
