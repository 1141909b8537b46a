//! The simulator over real HTTP: chunk sequences, exact /metrics deltas,
//! faults, logs. Every test starts its own simulator on 127.0.0.1:0.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llm_loadtest::sim::{self, Faults, LatencyDist, LengthDist, LogSink, SimConfig, SimHandle};
use serde_json::{Value, json};

const MODEL: &str = "sim-test";

struct Sim {
    handle: SimHandle,
    logs: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

fn ms(n: u64) -> LatencyDist {
    LatencyDist::Fixed(Duration::from_millis(n))
}

fn config(logs: &Arc<Mutex<Vec<String>>>) -> SimConfig {
    SimConfig {
        model: MODEL.to_string(),
        ttft: ms(5),
        itl: ms(1),
        output_tokens: LengthDist::Fixed(16),
        max_model_len: 1024,
        log_sink: LogSink::Buffer(logs.clone()),
        seed: 7,
        ..SimConfig::default()
    }
}

async fn start_with(f: impl FnOnce(&mut SimConfig)) -> Sim {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let mut cfg = config(&logs);
    f(&mut cfg);
    let handle = sim::start(cfg, "127.0.0.1:0".parse().unwrap()).await.expect("simulator starts");
    Sim { handle, logs, http: reqwest::Client::new() }
}

async fn start() -> Sim {
    start_with(|_| {}).await
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(&body).send().await.expect("request sent")
    }

    async fn metrics(&self) -> String {
        let resp = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        resp.text().await.unwrap()
    }

    fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

/// The value of one exact series (`name{labels}`) in an exposition text.
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("series {name} not found"))
        .parse()
        .unwrap()
}

fn vllm(name: &str) -> String {
    format!("vllm:{name}{{engine=\"0\",model_name=\"{MODEL}\"}}")
}

fn success(reason: &str) -> String {
    format!("vllm:request_success_total{{engine=\"0\",finished_reason=\"{reason}\",model_name=\"{MODEL}\"}}")
}

fn chat_body(content: &str, max_tokens: u32, stream: bool) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "ignore_eos": true,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// `data:` payloads of an SSE body.
fn sse_events(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
}

#[tokio::test]
async fn streamed_chat_has_role_chunk_tokens_usage_and_done() {
    let sim = start().await;
    let resp = sim.post("/v1/chat/completions", chat_body("Say hello", 5, true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    let text = resp.text().await.unwrap();
    let events = sse_events(&text);
    assert_eq!(events.len(), 1 + 5 + 1 + 1, "{text}");
    let chunks: Vec<Value> = events[..7].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for c in &chunks {
        assert_eq!(c["id"], id);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], MODEL);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    for (i, c) in chunks[1..6].iter().enumerate() {
        let choice = &c["choices"][0];
        assert!(choice["delta"]["content"].as_str().unwrap().starts_with(' '));
        assert!(choice["delta"].get("role").is_none());
        let want = if i == 4 { json!("length") } else { Value::Null };
        assert_eq!(choice["finish_reason"], want, "chunk {i}");
    }
    let usage = &chunks[6];
    assert_eq!(usage["choices"], json!([]));
    // "Say hello": 8 template + 4 per message + 2 words.
    assert_eq!(usage["usage"], json!({"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19}));
    assert_eq!(events[7], "[DONE]");
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn completions_stream_and_json_replies() {
    let sim = start().await;
    let resp =
        sim.post("/v1/completions", json!({"model": MODEL, "prompt": "a b c", "max_tokens": 3, "stream": true})).await;
    let events = sse_events(&resp.text().await.unwrap());
    // No role chunk, no usage chunk without stream_options.
    assert_eq!(events.len(), 3 + 1);
    let last: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(last["object"], "text_completion");
    assert!(last["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert!(last["system_fingerprint"].is_string());

    // Non-streaming, with the id taken from X-Request-Id as vLLM does.
    let resp = sim
        .http
        .post(sim.url("/v1/completions"))
        .header("X-Request-Id", "abc")
        .json(&json!({"model": MODEL, "prompt": "a b c", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], "cmpl-abc");
    assert_eq!(body["usage"]["prompt_tokens"], 4);
    assert_eq!(body["usage"]["completion_tokens"], 4);
    assert_eq!(body["choices"][0]["text"].as_str().unwrap().split_whitespace().count(), 4);

    // Output length 16 by default: EOS before max_tokens is a "stop".
    let body: Value = sim
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 16);
    assert_eq!(body["object"], "chat.completion");
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn metrics_move_by_exactly_what_was_served() {
    let sim = start().await;
    let before = sim.metrics().await;
    // 3 streamed chats (14 prompt tokens each), 2 JSON completions (4 each).
    for max in [3, 5, 7] {
        let text = sim.post("/v1/chat/completions", chat_body("Say hello", max, true)).await.text().await.unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
    }
    for max in [2, 4] {
        let resp = sim
            .post("/v1/completions", json!({"model": MODEL, "prompt": "a b c", "max_tokens": max, "ignore_eos": true}))
            .await;
        assert_eq!(resp.status(), 200);
    }
    let after = sim.metrics().await;
    let delta = |name: &str| series(&after, name) - series(&before, name);
    assert_eq!(delta(&success("length")), 5.0);
    assert_eq!(delta(&success("stop")), 0.0);
    assert_eq!(delta(&success("abort")), 0.0);
    assert_eq!(delta(&vllm("prompt_tokens_total")), 3.0 * 14.0 + 2.0 * 4.0);
    assert_eq!(delta(&vllm("generation_tokens_total")), 15.0 + 6.0);
    assert_eq!(delta(&vllm("prefix_cache_queries_total")), 50.0);
    assert_eq!(delta(&vllm("request_generation_tokens_sum")), 21.0);
    assert_eq!(delta(&vllm("request_prompt_tokens_count")), 5.0);
    assert_eq!(delta(&vllm("time_to_first_token_seconds_count")), 5.0);
    assert_eq!(delta(&vllm("e2e_request_latency_seconds_count")), 5.0);
    // One ITL sample per token after the first.
    assert_eq!(delta(&vllm("inter_token_latency_seconds_count")), 21.0 - 5.0);
    // TTFT is at least the configured 5 ms.
    assert!(delta(&vllm("time_to_first_token_seconds_sum")) >= 5.0 * 0.005);
    assert_eq!(series(&after, &vllm("num_requests_running")), 0.0);
    assert_eq!(series(&after, &vllm("kv_cache_usage_perc")), 0.0);
    let http = |handler: &str| format!("http_requests_total{{handler=\"{handler}\",method=\"POST\",status=\"2xx\"}}");
    assert_eq!(series(&after, &http("/v1/chat/completions")), 3.0);
    assert_eq!(series(&after, &http("/v1/completions")), 2.0);
    // /metrics itself is not instrumented.
    assert!(!after.contains("handler=\"/metrics\""));
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn http_error_fault_answers_every_request_with_the_status() {
    let sim = start().await;
    sim.handle.set_faults(Faults { http_error_rate: 1.0, http_error_status: 500, ..Faults::default() });
    for stream in [false, true] {
        let resp = sim.post("/v1/chat/completions", chat_body("Say hello", 4, stream)).await;
        assert_eq!(resp.status(), 500);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], 500);
        assert_eq!(body["error"]["type"], "InternalServerError");
    }
    let metrics = sim.metrics().await;
    assert_eq!(series(&metrics, &success("length")), 0.0);
    assert_eq!(
        series(&metrics, "http_requests_total{handler=\"/v1/chat/completions\",method=\"POST\",status=\"5xx\"}"),
        2.0
    );
    let logs = sim.log_lines();
    let access_500 =
        logs.iter().filter(|l| l.ends_with("\"POST /v1/chat/completions HTTP/1.1\" 500 Internal Server Error")).count();
    assert_eq!(access_500, 2, "{logs:#?}");
    let errors: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains(") ERROR ") && l.contains("Engine Exception caught. Request id: chatcmpl-"))
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(errors[0].starts_with("(APIServer pid="));
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn extra_ttft_fault_slows_the_first_token_and_the_server_histogram_sees_it() {
    let sim = start().await;
    let time_to_body = async |sim: &Sim| {
        let t = Instant::now();
        let resp = sim.post("/v1/completions", json!({"model": MODEL, "prompt": "hi", "max_tokens": 2})).await;
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        t.elapsed()
    };
    let plain = time_to_body(&sim).await;
    assert!(plain < Duration::from_millis(200), "{plain:?}");
    sim.handle.set_faults(Faults { extra_ttft_ms: 300, ..Faults::default() });
    let slowed = time_to_body(&sim).await;
    assert!(slowed >= Duration::from_millis(305), "5 ms TTFT + 300 ms: {slowed:?}");
    // The server's own TTFT histogram records the slower first token (vLLM would too).
    let metrics = sim.metrics().await;
    let sum = series(&metrics, &format!("vllm:time_to_first_token_seconds_sum{{engine=\"0\",model_name=\"{MODEL}\"}}"));
    assert!(sum >= 0.305, "{sum}");
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn drop_from_metrics_fault_serves_the_client_but_hides_the_request() {
    let sim = start().await;
    // Through the control route this time.
    let resp = sim.post("/sim/faults", json!({"drop_from_metrics_rate": 1.0})).await;
    assert_eq!(resp.status(), 200);
    let faults: Faults = sim.http.get(sim.url("/sim/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!(faults.drop_from_metrics_rate, 1.0);
    let before = sim.metrics().await;
    let text = sim.post("/v1/chat/completions", chat_body("Say hello", 6, true)).await.text().await.unwrap();
    assert!(text.contains("\"completion_tokens\":6"));
    assert!(text.ends_with("data: [DONE]\n\n"));
    let json_reply = sim.post("/v1/chat/completions", chat_body("Say hello", 6, false)).await;
    assert_eq!(json_reply.status(), 200);
    let after = sim.metrics().await;
    for name in [
        success("length"),
        vllm("generation_tokens_total"),
        vllm("prompt_tokens_total"),
        vllm("time_to_first_token_seconds_count"),
    ] {
        assert_eq!(series(&after, &name), series(&before, &name), "{name}");
    }
    assert!(!after.contains("handler=\"/v1/chat/completions\""));
    // Bad fault settings are refused.
    let bad = sim.post("/sim/faults", json!({"stream_cut_rate": 3})).await;
    assert_eq!(bad.status(), 400);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn stream_cut_fault_closes_streams_without_done() {
    let sim = start().await;
    sim.handle.set_faults(Faults { stream_cut_rate: 1.0, ..Faults::default() });
    for _ in 0..3 {
        let resp = sim.post("/v1/chat/completions", chat_body("Say hello", 10, true)).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let mut received = Vec::new();
        let mut failed = false;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => received.extend_from_slice(&bytes),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let text = String::from_utf8(received).unwrap();
        assert!(failed, "the connection should break: {text}");
        assert!(!text.contains("[DONE]"));
        assert!(text.contains("\"role\":\"assistant\""), "some tokens first: {text}");
    }
    // A cut stream is an abort for the engine: tokens yes, success no.
    let metrics = sim.metrics().await;
    assert_eq!(series(&metrics, &success("length")), 0.0);
    assert!(series(&metrics, &vllm("generation_tokens_total")) >= 3.0);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn client_disconnect_is_an_abort() {
    let sim = start_with(|c| c.itl = ms(20)).await;
    let resp = sim.post("/v1/chat/completions", chat_body("Say hello", 200, true)).await;
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\":\" ") {
        let chunk = body.next().await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(body);
    // Wait until the engine noticed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let m = sim.metrics().await;
        if series(&m, &vllm("num_requests_running")) == 0.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "request never aborted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(series(&metrics, &success("length")), 0.0);
    assert_eq!(series(&metrics, &success("abort")), 0.0);
    assert_eq!(series(&metrics, &vllm("prompt_tokens_total")), 14.0);
    let generated = series(&metrics, &vllm("generation_tokens_total"));
    assert!((1.0..200.0).contains(&generated), "{generated}");
    assert_eq!(series(&metrics, &vllm("e2e_request_latency_seconds_count")), 0.0);
    assert_eq!(series(&metrics, &vllm("time_to_first_token_seconds_count")), 1.0);
    assert_eq!(series(&metrics, &vllm("kv_cache_usage_perc")), 0.0);
    // The access line was written at arrival, with 200.
    assert!(sim.log_lines().iter().any(|l| l.ends_with("\"POST /v1/chat/completions HTTP/1.1\" 200 OK")));
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn reset_counters_simulates_a_restart() {
    let sim = start().await;
    sim.post("/v1/chat/completions", chat_body("Say hello", 3, false)).await;
    let before = sim.metrics().await;
    assert_eq!(series(&before, &success("length")), 1.0);
    let created_before = series(&before, &vllm("prompt_tokens_created"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.handle.reset_counters();
    let after = sim.metrics().await;
    assert_eq!(series(&after, &success("length")), 0.0);
    assert_eq!(series(&after, &vllm("prompt_tokens_total")), 0.0);
    assert!(series(&after, &vllm("prompt_tokens_created")) > created_before);
    // And through the control route.
    sim.post("/v1/chat/completions", chat_body("Say hello", 3, false)).await;
    let resp = sim.post("/sim/reset-counters", json!({})).await;
    assert_eq!(resp.status(), 200);
    let again = sim.metrics().await;
    assert_eq!(series(&again, &vllm("generation_tokens_total")), 0.0);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn validation_errors_have_vllm_bodies() {
    let sim = start().await;
    let resp = sim
        .post("/v1/chat/completions", json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        format!(
            r#"{{"error":{{"message":"The model `nope` does not exist. Valid aliases: {MODEL}.","type":"NotFoundError","param":"model","code":404}}}}"#
        )
    );
    let logs = sim.log_lines();
    assert!(logs.iter().any(|l| l.contains(") ERROR ")
        && l.contains("[serving.py:274] Error with model error=ErrorInfo(message='The model `nope` does not exist.")
        && l.ends_with("type='NotFoundError', param='model', code=404)")));
    assert!(logs.iter().any(|l| l.ends_with("\"POST /v1/chat/completions HTTP/1.1\" 404 Not Found")));

    let resp = sim
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [], "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Stream options can only be defined when `stream=True`. (parameter=stream_options)"
    );

    let resp = sim.post("/v1/chat/completions", chat_body("x", 5000, false)).await;
    assert_eq!(resp.status(), 400);
    let resp = sim
        .http
        .post(sim.url("/v1/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "Bad Request");

    let metrics = sim.metrics().await;
    assert_eq!(series(&metrics, &vllm("prompt_tokens_total")), 0.0);
    assert_eq!(
        series(&metrics, "http_requests_total{handler=\"/v1/chat/completions\",method=\"POST\",status=\"4xx\"}"),
        3.0
    );
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn info_routes_look_like_vllm() {
    let sim = start().await;
    let models: Value = sim.http.get(sim.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    let m = &models["data"][0];
    assert_eq!(m["id"], MODEL);
    assert_eq!(m["owned_by"], "vllm");
    assert_eq!(m["root"], MODEL);
    assert_eq!(m["max_model_len"], 1024);
    let health = sim.http.get(sim.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["server"], "uvicorn");
    assert_eq!(health.text().await.unwrap(), "");
    let version: Value = sim.http.get(sim.url("/version")).send().await.unwrap().json().await.unwrap();
    assert_eq!(version, json!({"version": "0.32.0"}));
    let slash = sim.http.get(sim.url("/metrics/")).send().await.unwrap();
    assert_eq!(slash.status(), 200);
    assert!(slash.text().await.unwrap().contains("# TYPE vllm:prompt_tokens_total counter"));
    let logs = sim.log_lines();
    assert!(logs.iter().any(|l| l.contains("[entry.py:140] Starting vLLM server on http://127.0.0.1:")));
    assert!(logs.iter().any(|l| l == "INFO:     Application startup complete."));
    assert!(logs.iter().any(|l| l.ends_with("\"GET /health HTTP/1.1\" 200 OK")));
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn max_running_queues_requests_fifo() {
    // Long beside the fixed pause below, so a late task on a loaded machine changes nothing.
    let ttft = Duration::from_millis(1000);
    let sim = start_with(|c| {
        c.max_running = 1;
        c.ttft = LatencyDist::Fixed(ttft);
        c.itl = ms(0);
        c.record_timings = true;
    })
    .await;
    let send = |id: &'static str| {
        let req = sim.http.post(sim.url("/v1/chat/completions")).header("X-Request-Id", id).json(&chat_body(
            "Say hello",
            1,
            true,
        ));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let start = Instant::now();
    let first = tokio::spawn(send("first"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = tokio::spawn(send("second"));
    // While the first runs, the second waits (polled: it is there once the second arrived).
    let mut during = sim.metrics().await;
    while series(&during, &vllm("num_requests_waiting")) < 1.0 && start.elapsed() < ttft.mul_f64(0.8) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        during = sim.metrics().await;
    }
    assert_eq!(series(&during, &vllm("num_requests_running")), 1.0);
    assert_eq!(series(&during, &vllm("num_requests_waiting")), 1.0);
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert!(a.ends_with("[DONE]\n\n") && b.ends_with("[DONE]\n\n"));
    let t = sim.handle.first_token_instants();
    let (t1, t2) = (t["first"], t["second"]);
    assert!(t1.duration_since(start) >= ttft);
    // The second request's TTFT clock starts only when a slot frees up.
    assert!(t2.duration_since(t1) >= ttft.mul_f64(0.9), "{:?}", t2 - t1);
    let after = sim.metrics().await;
    // The second waited from its arrival (about 50 ms after the first) to the first's end.
    assert!(series(&after, &vllm("request_queue_time_seconds_sum")) >= 0.5);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn stats_line_follows_the_idle_rule() {
    let sim = start_with(|c| c.log_stats_interval = Duration::from_millis(150)).await;
    sim.post("/v1/chat/completions", chat_body("Say hello", 10, false)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats: Vec<String> =
        sim.log_lines().into_iter().filter(|l| l.contains("[loggers.py:335] Engine 000: ")).collect();
    // Lines with the request's tokens (one, unless it straddled a tick),
    // then exactly one all-zero line, then silence.
    let zero = "Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 0.0 tokens/s, Running: 0 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.0%, Prefix cache hit rate: 0.0%";
    assert!(stats.len() >= 2, "{stats:#?}");
    let (last, busy) = stats.split_last().unwrap();
    assert!(last.ends_with(zero), "{stats:#?}");
    assert!(busy.iter().all(|l| !l.contains("Avg generation throughput: 0.0 tokens/s")), "{stats:#?}");
    assert!(stats.iter().all(|l| l.starts_with("(APIServer pid=")));
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn error_log_bursts_look_like_tracebacks() {
    let sim = start().await;
    sim.handle.set_faults(Faults { error_log_burst_every: Some(Duration::from_millis(50)), ..Faults::default() });
    tokio::time::sleep(Duration::from_millis(180)).await;
    sim.handle.set_faults(Faults::default());
    let errors: Vec<String> = sim.log_lines().into_iter().filter(|l| l.contains(") ERROR ")).collect();
    assert!(errors.len() >= 7, "{errors:#?}");
    assert!(errors.iter().all(|l| l.contains("[serving.py:929] ")));
    assert!(errors[0].ends_with("Error in chat completion stream generator.\r"));
    assert!(errors[6].ends_with("vllm.v1.engine.exceptions.EngineGenerateError"));
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn zero_latency_mode_is_fast() {
    let sim = start_with(|c| {
        c.ttft = ms(0);
        c.itl = ms(0);
        c.log_sink = LogSink::Discard;
    })
    .await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let http = sim.http.clone();
        let url = sim.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let text =
                    http.post(&url).json(&chat_body("Say hello", 64, true)).send().await.unwrap().text().await.unwrap();
                assert!(text.contains("\"completion_tokens\":64"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let metrics = sim.metrics().await;
    assert_eq!(series(&metrics, &success("length")), 200.0);
    assert_eq!(series(&metrics, &vllm("generation_tokens_total")), 200.0 * 64.0);
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_streams_in_flight_and_logs_like_uvicorn() {
    let sim = start_with(|c| c.itl = ms(50)).await;
    let resp = sim.post("/v1/chat/completions", chat_body("Say hello", 1000, true)).await;
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(std::str::from_utf8(&first).unwrap().contains("\"role\":\"assistant\""));
    let logs = sim.logs.clone();
    let started = Instant::now();
    sim.handle.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let mut rest = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        rest.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(!rest.contains("[DONE]"));
    let lines = logs.lock().unwrap().clone();
    let tail: Vec<&str> = lines[lines.len() - 4..].iter().map(String::as_str).collect();
    assert_eq!(
        tail[..3],
        [
            "INFO:     Shutting down",
            "INFO:     Waiting for application shutdown.",
            "INFO:     Application shutdown complete.",
        ]
    );
    assert!(tail[3].starts_with("INFO:     Finished server process ["));
}
