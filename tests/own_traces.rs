//! The tool's own spans, checked by a receiver that is not ours: the
//! OpenTelemetry project's Python `opentelemetry-proto` types served by grpcio
//! (`tests/support/otlp_dump_receiver.py`, run with the real vLLM's venv, which
//! has both). `llm-loadtest run --otlp-endpoint` exports a run span, its phase
//! spans and one span per request; the server exports its `llm_request` spans
//! to the same receiver; the tree must hold: one trace per run, phases under
//! the run, requests under the load phase, the server's span under each request.
//!
//! Ignored in a plain `cargo test`: it needs that Python (`LLM_LOADTEST_OTLP_PYTHON`,
//! default the real vLLM's venv) and, for the second test, the real vLLM that
//! `scripts/test.sh` starts exporting to `LLM_LOADTEST_REAL_VLLM_OTLP`. Fails, never skips.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use llm_loadtest::sim::{LatencyDist, SimConfig};
use serde_json::Value;

/// The Python receiver as a child process, killed on drop.
struct PyReceiver {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyReceiver {
    fn start(listen: &str) -> PyReceiver {
        let python = std::env::var("LLM_LOADTEST_OTLP_PYTHON").unwrap_or_else(|_| {
            let home = std::env::var("REAL_VLLM_HOME").unwrap_or_else(|_| "/var/tmp/real-vllm".into());
            format!("{home}/venv/bin/python")
        });
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/otlp_dump_receiver.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--listen", listen, "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} (the real vLLM's venv, or LLM_LOADTEST_OTLP_PYTHON): {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("listening on"), "the Python receiver did not start: {line:?}");
        PyReceiver { child, out, _dir: dir }
    }

    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Wait (bounded) until `enough` says the spans so far are complete; the spans.
    fn wait_for(&self, max: Duration, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let until = Instant::now() + max;
        loop {
            let spans = self.spans();
            if enough(&spans) || Instant::now() > until {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for PyReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn attr<'a>(v: &'a Value, key: &str) -> &'a Value {
    &v["attributes"][key]
}

/// Checks the tree of one run; `server_id(request id) -> the llm_request span's id`.
fn check_tree(spans: &[Value], run_id: &str, requests: usize, phases: &[&str], server_id: impl Fn(&str) -> String) {
    let ours: Vec<&Value> = spans.iter().filter(|v| s(v, "service") == "llm-loadtest").collect();
    let runs: Vec<&&Value> = ours.iter().filter(|v| attr(v, "run_id") == run_id).collect();
    assert_eq!(runs.len(), 1, "one run span for {run_id}: {ours:#?}");
    let run = runs[0];
    assert_eq!(s(run, "name"), "llm_loadtest.run");
    assert_eq!(s(run, "parent_span_id"), "", "the run span is a root");
    let trace = s(run, "trace_id");
    let in_trace: Vec<&&Value> = ours.iter().filter(|v| s(v, "trace_id") == trace).collect();
    let children = |parent: &str| -> Vec<&Value> {
        in_trace.iter().filter(|v| s(v, "parent_span_id") == parent).map(|v| **v).collect()
    };
    let phase_spans = children(s(run, "span_id"));
    let names: Vec<&str> = phase_spans.iter().map(|v| s(v, "name")).collect();
    for p in phases {
        assert!(names.contains(p), "phase {p} missing under the run: {names:?}");
    }
    let load = phase_spans.iter().find(|v| s(v, "name") == "load").unwrap();
    let request_spans = children(s(load, "span_id"));
    assert_eq!(request_spans.len(), requests, "one span per request under load");
    let servers: BTreeMap<&str, &Value> = spans
        .iter()
        .filter(|v| s(v, "name") == "llm_request")
        .map(|v| (attr(v, "gen_ai.request.id").as_str().unwrap_or_default(), v))
        .collect();
    for r in &request_spans {
        assert!(s(r, "name").starts_with("POST /v1/"), "{r}");
        assert_eq!(attr(r, "llm_loadtest.outcome"), "ok", "{r}");
        let id = attr(r, "llm_loadtest.request.id").as_str().unwrap();
        let server = servers.get(server_id(id).as_str()).unwrap_or_else(|| panic!("no llm_request span for {id}"));
        assert_eq!(s(server, "trace_id"), trace, "the server's span is in our trace: {server}");
        assert_eq!(s(server, "parent_span_id"), s(r, "span_id"), "the server's span is under our request: {server}");
        // Inside our request in time too (the server's clock is this machine's).
        let (start, end) = (r["start_ns"].as_u64().unwrap(), r["end_ns"].as_u64().unwrap());
        assert!(server["start_ns"].as_u64().unwrap() >= start && server["end_ns"].as_u64().unwrap() <= end, "{server}");
    }
}

/// `run ... --otlp-endpoint URL --output F` as a process; the run id.
fn run_exporting(target: &str, model: &str, endpoint: &str, requests: usize, extra: &[&str]) -> String {
    let n = requests.to_string();
    let mut args = vec!["--target", target, "--model", model, "--requests", &n, "--concurrency", "3"];
    args.extend_from_slice(&["--max-tokens", "6", "--quiet", "--otlp-endpoint", endpoint]);
    args.extend_from_slice(extra);
    let (v, _) = common::run_json(&args);
    assert_eq!(v["completed"].as_u64(), Some(requests as u64), "{v}");
    v["run_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python with opentelemetry-proto and grpcio (the real vLLM's venv); scripts/test.sh runs it"]
async fn own_spans_hold_the_simulators_spans_under_each_request() {
    let listen = format!("127.0.0.1:{}", common::docker::free_port());
    let receiver = PyReceiver::start(&listen);
    let endpoint = format!("http://{listen}");
    let sim = common::sim_with(SimConfig {
        ttft: LatencyDist::Fixed(Duration::from_millis(20)),
        itl: LatencyDist::Fixed(Duration::from_millis(2)),
        otlp_traces_endpoint: Some(endpoint.clone()),
        otlp_batch_delay: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let url = sim.base_url();
    let run_id = tokio::task::spawn_blocking(move || {
        run_exporting(&url, "sim-model", &endpoint, 12, &["--idle-window", "1s", "--skip-logs"])
    })
    .await
    .unwrap();
    sim.shutdown().await;
    let spans =
        receiver.wait_for(Duration::from_secs(10), |v| v.iter().filter(|s| s["name"] == "llm_request").count() >= 12);
    let phases = ["idle_window", "metrics_before", "load", "settle", "validate"];
    check_tree(&spans, &run_id, 12, &phases, |id| format!("chatcmpl-{id}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real vLLM (scripts/test.sh) and the Python receiver"]
async fn own_spans_hold_the_real_vllms_spans_under_each_request() {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run scripts/test.sh"));
    let (url, model, listen) =
        (env("LLM_LOADTEST_REAL_VLLM_URL"), env("LLM_LOADTEST_REAL_VLLM_MODEL"), env("LLM_LOADTEST_REAL_VLLM_OTLP"));
    // vLLM exports to this address already (gRPC); our spans go to the same receiver.
    let receiver = PyReceiver::start(&listen);
    let endpoint = format!("http://{listen}");
    let (u, m) = (url.clone(), model.clone());
    let run_id = tokio::task::spawn_blocking(move || {
        run_exporting(&u, &m, &endpoint, 9, &["--endpoint", "completions", "--skip-logs", "--warmup", "2"])
    })
    .await
    .unwrap();
    // vLLM batches its spans every 5 s.
    let ours = |v: &&Value| attr(v, "gen_ai.request.id").as_str().is_some_and(|i| i.contains(&run_id));
    let spans = receiver.wait_for(Duration::from_secs(20), |v| v.iter().filter(ours).count() >= 11);
    let phases = ["warmup", "metrics_before", "load", "settle", "validate"];
    check_tree(&spans, &run_id, 9, &phases, |id| format!("cmpl-{id}-0"));
}
