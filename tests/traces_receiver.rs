//! The OTLP receiver over real sockets: vLLM's two protocols on one address,
//! and every kind of bad input a peer can send, each a counted refusal while
//! the receiver keeps serving.

use llm_loadtest::traces::receiver::{GRPC_EXPORT_PATH, MAX_EXPORT_BYTES};
use llm_loadtest::traces::{Hub, Receiver, ReceiverCounters};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
}

fn span(id: &str) -> Span {
    Span {
        name: "llm_request".into(),
        trace_id: vec![7; 16],
        span_id: vec![9; 8],
        attributes: vec![
            kv("gen_ai.request.id", Value::StringValue(id.into())),
            kv("gen_ai.usage.prompt_tokens", Value::IntValue(11)),
            kv("gen_ai.usage.completion_tokens", Value::IntValue(5)),
            kv("gen_ai.latency.time_to_first_token", Value::DoubleValue(0.02)),
            kv("gen_ai.latency.e2e", Value::DoubleValue(0.1)),
        ],
        ..Span::default()
    }
}

fn export(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
}

async fn start() -> (Receiver, String) {
    let r = Receiver::start("127.0.0.1:0", Hub::new()).await.unwrap();
    let url = format!("http://{}", r.addr);
    (r, url)
}

fn count(r: &Receiver, f: impl Fn(&ReceiverCounters) -> &std::sync::atomic::AtomicU64) -> u64 {
    ReceiverCounters::get(f(&r.hub.counters))
}

async fn post(url: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/traces"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn grpc_and_http_on_one_address_reach_the_burst_that_owns_the_ids() {
    let (r, url) = start().await;
    let burst = r.hub.register("runA-".into(), 100);
    let mut client = TraceServiceClient::connect(url.clone()).await.unwrap();
    client.export(export(vec![span("chatcmpl-runA-0"), span("chatcmpl-someone-else")])).await.unwrap();

    let (status, body) =
        post(&url, "application/x-protobuf", export(vec![span("cmpl-runA-1-0")]).encode_to_vec()).await;
    assert_eq!(status, 200);
    assert!(opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(&body[..]).is_ok());

    // OTLP/JSON: ids in hex, as the OTLP specification writes them.
    let json = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "llm_request",
        "attributes": [{"key": "gen_ai.request.id", "value": {"stringValue": "chatcmpl-runA-2"}},
                       {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "11"}}]}]}]}]});
    let (status, _) = post(&url, "application/json", serde_json::to_vec(&json).unwrap()).await;
    assert_eq!(status, 200);

    let c = burst.collected();
    assert_eq!(c.spans.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(c.spans[&2].trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(c.spans[&2].prompt_tokens, Some(11));
    assert_eq!(c.foreign, 1);
    assert_eq!((count(&r, |c| &c.exports_ok), count(&r, |c| &c.spans_not_ours)), (3, 1));
}

#[tokio::test]
async fn bad_http_exports_are_counted_refusals() {
    let (r, url) = start().await;
    let (status, body) = post(&url, "application/x-protobuf", b"\xff\xff\xff garbage".to_vec()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not OTLP protobuf"));
    let (status, _) = post(&url, "application/json", b"{\"resourceSpans\": 3}".to_vec()).await;
    assert_eq!(status, 400);
    let (status, _) = post(&url, "text/plain", b"hello".to_vec()).await;
    assert_eq!(status, 415);
    assert_eq!(count(&r, |c| &c.exports_malformed), 3);

    let (status, _) = post(&url, "application/x-protobuf", vec![0u8; MAX_EXPORT_BYTES + 1]).await;
    assert_eq!(status, 413);
    assert_eq!(count(&r, |c| &c.exports_too_large), 1);

    // Wrong attribute types and missing ids: decoded, counted, nothing kept.
    let burst = r.hub.register("r-".into(), 10);
    let mut bad = span("chatcmpl-r-0");
    bad.attributes[1] = kv("gen_ai.usage.prompt_tokens", Value::StringValue("eleven".into()));
    let mut no_id = span("x");
    no_id.attributes.remove(0);
    let (status, _) = post(&url, "application/x-protobuf", export(vec![bad, no_id]).encode_to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!((count(&r, |c| &c.attribute_wrong_types), count(&r, |c| &c.spans_without_id)), (1, 1));
    assert_eq!(burst.collected().spans[&0].prompt_tokens, None);
    assert_eq!(count(&r, |c| &c.exports_ok), 1);
}

/// One gRPC call with a raw body, over plain HTTP/2: what a broken exporter could send.
async fn raw_grpc(addr: std::net::SocketAddr, frame: Vec<u8>) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post(format!("http://{addr}{GRPC_EXPORT_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (resp, mut stream) = client.send_request(req, false).unwrap();
    stream.send_data(frame.into(), true).unwrap();
    let resp = resp.await.unwrap();
    let (parts, mut body) = resp.into_parts();
    let mut status = parts.headers.get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    while let Some(chunk) = body.data().await {
        let _ = chunk;
    }
    if let Ok(Some(trailers)) = body.trailers().await {
        status = status.or(trailers.get("grpc-status").map(|v| v.to_str().unwrap().to_owned()));
    }
    status.unwrap_or_default()
}

#[tokio::test]
async fn bad_grpc_exports_are_counted_refusals_and_the_receiver_keeps_serving() {
    let (r, url) = start().await;
    // A length-prefixed message whose bytes are not protobuf.
    let garbage = b"\xff\xff\xff\xff\xff";
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(garbage.len() as u32).to_be_bytes());
    frame.extend_from_slice(garbage);
    assert_eq!(raw_grpc(r.addr, frame).await, "13");
    assert_eq!(count(&r, |c| &c.exports_malformed), 1);

    // A length prefix over the limit is refused before the body is buffered.
    let mut huge = vec![0u8];
    huge.extend_from_slice(&((MAX_EXPORT_BYTES as u32) * 4).to_be_bytes());
    huge.extend_from_slice(&[0u8; 1024]);
    assert_eq!(raw_grpc(r.addr, huge).await, "11");
    assert_eq!(count(&r, |c| &c.exports_too_large), 1);

    // A well-formed but huge export from a real client.
    let mut big = span("chatcmpl-x-0");
    big.attributes.push(kv("filler", Value::StringValue("x".repeat(MAX_EXPORT_BYTES))));
    let mut client = TraceServiceClient::connect(url).await.unwrap();
    let err = client.export(export(vec![big])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    assert_eq!(count(&r, |c| &c.exports_too_large), 2);

    let burst = r.hub.register("x-".into(), 10);
    client.export(export(vec![span("chatcmpl-x-1")])).await.unwrap();
    assert_eq!(burst.collected().spans.len(), 1, "still serving");
}
