//! Servers that misbehave in ways the simulator does not: each misbehaviour is
//! counted under its own outcome, and the run still completes.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use clap::Parser;
use llm_loadtest::artifacts::RunResult;
use llm_loadtest::cli::{Cli, Command};
use llm_loadtest::{burst, run};
use tokio_util::sync::CancellationToken;

const SSE: &str = "text/event-stream";

fn chunk(content: &str) -> String {
    format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

async fn serve(body: &'static str, content_type: &'static str) -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || async move { ([(header::CONTENT_TYPE, content_type)], body).into_response() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn burst(url: &str) -> RunResult {
    let argv = [
        "llm-loadtest",
        "run",
        "--target",
        url,
        "--model",
        "m",
        "--requests",
        "3",
        "--concurrency",
        "1",
        "--quiet",
        // The client alone: server validation has its own tests (validate_sim.rs).
        "--skip-validation",
    ];
    let Command::Run(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    let p = run::prepare(&a, &url::Url::parse(url).unwrap(), "m", "t", None).unwrap();
    burst::run(p, "t".into(), CancellationToken::new(), None).await
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test]
async fn json_body_for_a_stream_is_malformed() {
    let url = serve(r#"{"choices":[{"message":{"content":"hi"}}]}"#, "application/json").await;
    let r = burst(&url).await;
    assert_eq!(r.client.errors.get("malformed_stream"), Some(&3));
    assert!(r.records.to_vec()[0].error.as_deref().unwrap().contains("not an SSE stream"));
}

#[tokio::test]
async fn garbage_chunk_is_malformed() {
    let body = leak(format!("{}data: {{not json\n\n", chunk("a")));
    let r = burst(&serve(body, SSE).await).await;
    assert_eq!(r.client.errors.get("malformed_stream"), Some(&3));
    assert!(r.records.to_vec()[0].error.as_deref().unwrap().contains("invalid JSON chunk"));
}

#[tokio::test]
async fn error_event_in_a_200_stream_is_a_server_error() {
    let body = leak(format!(
        "{}data: {{\"error\":{{\"message\":\"engine died\",\"code\":500}}}}\n\ndata: [DONE]\n\n",
        chunk("a")
    ));
    let r = burst(&serve(body, SSE).await).await;
    assert_eq!(r.client.errors.get("server_error"), Some(&3));
    assert_eq!(r.records.to_vec()[0].error.as_deref(), Some("engine died"));
}

#[tokio::test]
async fn stream_without_usage_falls_back_to_chunk_counts() {
    let fin = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"c\"},\"finish_reason\":\"stop\"}]}\n\n";
    let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
    let body = leak(format!("{role}{}: keep-alive\n\n{}{fin}data: [DONE]\n\n", chunk("a"), chunk("b")));
    let r = burst(&serve(body, SSE).await).await;
    assert_eq!(r.client.completed, 3);
    assert!(!r.client.tokens_from_usage);
    // The role chunk and the keep-alive comment are not tokens.
    assert_eq!(r.client.total_output_tokens, 9);
    assert!(r.notes.iter().any(|n| n.contains("approximate")));
}

#[tokio::test]
async fn stream_ending_early_is_cut() {
    let body = leak(format!("{}{}", chunk("a"), chunk("b")));
    let r = burst(&serve(body, SSE).await).await;
    assert_eq!(r.client.errors.get("stream_cut"), Some(&3));
    assert_eq!(r.records.to_vec()[0].chunk_times_s.len(), 2);
}
