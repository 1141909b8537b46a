//! The HTTP face of the simulator: vLLM 0.32's OpenAI-compatible routes,
//! the access log and HTTP metrics (uvicorn / prometheus-fastapi-instrumentator
//! semantics), streamed and JSON replies, and the `/sim/*` control routes.
//!
//! JSON reply shapes are copied field for field from a real 0.32 server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Extension, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, SERVER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngExt;
use serde::Serialize;

use super::config::Faults;
use super::engine::{FaultDecision, Plan, RequestRun, Shared, SpanPlan, plan_length, unix_now};
use super::logs::{self, Level};
use super::metrics::{self, HttpObservation};
use super::request::{ApiError, Endpoint, check_lengths, json_response, parse_request};
use super::spans;
use super::sse::{ChunkTemplate, DONE};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(prometheus))
        .route("/metrics/", get(prometheus))
        .route("/sim/faults", get(get_faults).post(set_faults))
        .route("/sim/reset-counters", post(reset_counters))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), http_layer))
        .with_state(shared)
}

/// The routes printed at startup (`Route: …, Methods: …`).
pub const ROUTES: &[(&str, &str)] = &[
    ("/version", "GET"),
    ("/health", "GET"),
    ("/metrics", "GET"),
    ("/v1/models", "GET"),
    ("/v1/chat/completions", "POST"),
    ("/v1/completions", "POST"),
];

// ---------------------------------------------------------------------------
// Access log and prometheus-fastapi-instrumentator metrics

/// Per-request facts the middleware hands to handlers.
#[derive(Debug, Clone, Copy)]
pub struct HttpContext {
    start: Instant,
    /// `None` for routes the instrumentator excludes.
    handler: Option<&'static str>,
    request_bytes: u64,
}

/// Marks a response whose HTTP metrics are recorded elsewhere (streams, at
/// body end) or not at all (`drop_from_metrics` fault).
#[derive(Debug, Clone, Copy)]
struct SkipHttpMetrics;

/// vLLM excludes these from `http_*` metrics; `/sim/*` is not vLLM's at all.
fn instrumented_handler(path: &str) -> Option<&'static str> {
    const EXCLUDED: &[&str] = &["/metrics", "/health", "/load", "/ping", "/version", "/server_info", "/sim/"];
    const TEMPLATES: &[&str] = &["/v1/chat/completions", "/v1/completions", "/v1/models"];
    if EXCLUDED.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    // Untemplated paths are grouped as "none", like the instrumentator does.
    Some(TEMPLATES.iter().find(|t| **t == path).copied().unwrap_or("none"))
}

fn version_text(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

async fn http_layer(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let method = req.method().as_str().to_string();
    let target = req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let version = version_text(req.version());
    let ctx = HttpContext {
        start,
        handler: instrumented_handler(req.uri().path()),
        request_bytes: content_length(req.headers()),
    };
    req.extensions_mut().insert(ctx);

    let mut resp = next.run(req).await;
    // vLLM answers through uvicorn; clients and `doctor` may look at this.
    resp.headers_mut().insert(SERVER, HeaderValue::from_static("uvicorn"));

    // uvicorn writes the access line when the response starts: for a stream
    // that is now (before any token), for a JSON reply after generation.
    let status = resp.status().as_u16();
    shared.log.access(client, &method, &target, version, status);
    if let Some(handler) = ctx.handler
        && resp.extensions().get::<SkipHttpMetrics>().is_none()
    {
        let response_bytes = resp.body().size_hint().exact().unwrap_or(0);
        let obs = HttpObservation {
            handler,
            method: &method,
            status,
            duration: start.elapsed().as_secs_f64(),
            request_bytes: ctx.request_bytes,
            response_bytes,
        };
        shared.engine().metrics.on_http(&obs, unix_now());
    }
    resp
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Records a stream's HTTP metrics when its body ends or is dropped (the
/// instrumentator counts aborted streams too, with their start status).
struct StreamHttpGuard {
    shared: Arc<Shared>,
    handler: &'static str,
    start: Instant,
    request_bytes: u64,
}

impl Drop for StreamHttpGuard {
    fn drop(&mut self) {
        let obs = HttpObservation {
            handler: self.handler,
            method: "POST",
            status: 200,
            duration: self.start.elapsed().as_secs_f64(),
            request_bytes: self.request_bytes,
            // Streams carry no Content-Length and the instrumentator only
            // believes the header.
            response_bytes: 0,
        };
        self.shared.engine().metrics.on_http(&obs, unix_now());
    }
}

/// The body of one streamed request.
struct SseStream {
    run: RequestRun,
    template: ChunkTemplate,
    endpoint: Endpoint,
    include_usage: bool,
    cut_after: Option<u32>,
    timing_key: Option<String>,
    done: bool,
    _http: Option<StreamHttpGuard>,
}

impl SseStream {
    async fn next_frame(&mut self) -> Option<Result<Bytes, io::Error>> {
        if self.done {
            return None;
        }
        // Queueing happens here, after the 200 and the access line went out.
        self.run.admit().await;
        if self.cut_after.is_some_and(|k| self.run.produced() >= k) {
            // Pending once so hyper flushes the tokens already handed over;
            // an error right after a frame would discard its write buffer.
            tokio::task::yield_now().await;
            self.done = true;
            return Some(Err(io::Error::other("stream cut by fault injection")));
        }
        let Some(token) = self.run.next_token().await else {
            // Shutting down: close the connection like an aborted server.
            self.done = true;
            return Some(Err(io::Error::other("simulator shutting down")));
        };
        let mut buf = Vec::with_capacity(self.template.frame_capacity());
        if token.index == 0 && self.endpoint == Endpoint::Chat {
            self.template.role(&mut buf);
        }
        if token.last {
            let plan = *self.run.plan();
            self.template.token(&mut buf, token.text, Some(plan.length.finish), !self.include_usage);
            if self.include_usage {
                self.template.usage(&mut buf, plan.prompt_tokens, self.run.produced());
            }
            buf.extend_from_slice(DONE);
            self.done = true;
        } else {
            self.template.token(&mut buf, token.text, None, false);
        }
        if token.index == 0
            && let Some(key) = &self.timing_key
        {
            // Taken as the first content chunk is handed to the HTTP body.
            self.run.shared().record_first_token(key, Instant::now());
        }
        Some(Ok(Bytes::from(buf)))
    }
}

// ---------------------------------------------------------------------------
// Completion handlers

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<HttpContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_completion(shared, ctx, Endpoint::Chat, &headers, &body).await
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<HttpContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_completion(shared, ctx, Endpoint::Completions, &headers, &body).await
}

fn skip_http_metrics(mut resp: Response) -> Response {
    resp.extensions_mut().insert(SkipHttpMetrics);
    resp
}

async fn serve_completion(
    shared: Arc<Shared>,
    ctx: HttpContext,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let arrival = Instant::now();
    let req = match parse_request(endpoint, body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let model = &shared.config.model;
    if let Some(asked) = req.model.as_deref().filter(|m| !m.is_empty() && *m != model.as_str()) {
        let err = ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{asked}` does not exist. Valid aliases: {model}."),
            kind: "NotFoundError".to_string(),
            param: Some("model".to_string()),
        };
        // Only the chat route logs this in 0.32 (serving.py:274).
        if endpoint == Endpoint::Chat {
            shared.log.vllm(
                Level::Error,
                logs::MODEL_NOT_FOUND_SITE,
                &format!("Error with model error={}", err.python_repr()),
            );
        }
        return err.into_response();
    }
    if let Err(e) = check_lengths(&req, shared.config.max_model_len) {
        return e.into_response();
    }

    let mut rng = shared.request_rng();
    let sampled = shared.config.output_tokens.sample(&mut rng);
    let length = plan_length(req.prompt_tokens, shared.config.max_model_len, req.max_tokens, req.ignore_eos, sampled);
    let faults: Faults = shared.faults.borrow().clone();
    let fault = FaultDecision::draw(&faults, &mut rng, length.output_tokens, req.stream);
    let client_request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    // vLLM builds the response id from X-Request-Id when the client sends one.
    let id_part = client_request_id.clone().unwrap_or_else(|| format!("{:016x}", rng.random::<u64>()));
    let id = match endpoint {
        Endpoint::Chat => format!("chatcmpl-{id_part}"),
        Endpoint::Completions => format!("cmpl-{id_part}"),
    };
    let counted = !fault.drop_from_metrics;
    // vLLM names a completion's span and log line after its one choice.
    let engine_id = match endpoint {
        Endpoint::Chat => id.clone(),
        Endpoint::Completions => format!("{id}-0"),
    };
    if shared.config.log_requests {
        let msg = logs::received_request_message(&engine_id, length.max_tokens, req.ignore_eos);
        shared.log.vllm(Level::Info, logs::REQUEST_LOGGER_SITE, &msg);
    }

    if fault.http_error {
        shared.log.vllm(Level::Error, logs::ENGINE_EXCEPTION_SITE, &logs::engine_exception_message(&id));
        let resp = ApiError::injected(faults.http_error_status).into_response();
        return if counted { resp } else { skip_http_metrics(resp) };
    }

    let plan = Plan { prompt_tokens: req.prompt_tokens, length, counted };
    let mut run = RequestRun::new(shared.clone(), plan, rng, arrival);
    if shared.spans.is_some() && !fault.drop_span {
        let arrival_unix = std::time::SystemTime::now() - arrival.elapsed();
        run = run.with_span(SpanPlan {
            request_id: engine_id,
            parent: spans::parent_context(headers),
            arrival: arrival_unix,
        });
    }
    let created = unix_now() as u64;
    if req.stream {
        let template = ChunkTemplate::new(endpoint, &id, created, model, &shared.system_fingerprint);
        let http = ctx.handler.filter(|_| counted).map(|handler| StreamHttpGuard {
            shared: shared.clone(),
            handler,
            start: ctx.start,
            request_bytes: ctx.request_bytes,
        });
        let stream = SseStream {
            run,
            template,
            endpoint,
            include_usage: req.include_usage,
            cut_after: fault.cut_after,
            timing_key: client_request_id.filter(|_| shared.config.record_timings),
            done: false,
            _http: http,
        };
        let body = futures_util::stream::unfold(stream, |mut s| async move {
            let frame = s.next_frame().await?;
            Some((frame, s))
        });
        let mut resp = Response::new(Body::from_stream(body));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
        return skip_http_metrics(resp);
    }

    let resp = complete(run, endpoint, &id, created, &shared, req.prompt_tokens).await;
    if let Some(key) = client_request_id.filter(|_| shared.config.record_timings) {
        shared.record_first_token(&key, Instant::now());
    }
    if counted { resp } else { skip_http_metrics(resp) }
}

#[derive(Serialize)]
struct UsageBody {
    prompt_tokens: u32,
    total_tokens: u32,
    completion_tokens: u32,
    prompt_tokens_details: (),
    completion_tokens_details: (),
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
    refusal: (),
    annotations: (),
    audio: (),
    function_call: (),
    reasoning: (),
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: ChatMessage<'a>,
    logprobs: (),
    finish_reason: &'a str,
    stop_reason: (),
    token_ids: (),
    routed_experts: (),
}

#[derive(Serialize)]
struct ChatBody<'a> {
    id: &'a str,
    object: &'a str,
    created: u64,
    model: &'a str,
    choices: [ChatChoice<'a>; 1],
    service_tier: (),
    system_fingerprint: &'a str,
    usage: UsageBody,
    prompt_logprobs: (),
    prompt_token_ids: (),
    prompt_text: (),
    kv_transfer_params: (),
    ec_transfer_params: (),
    metrics: (),
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: (),
    finish_reason: &'a str,
    stop_reason: (),
    token_ids: (),
    prompt_logprobs: (),
    prompt_token_ids: (),
    routed_experts: (),
}

#[derive(Serialize)]
struct CompletionBody<'a> {
    id: &'a str,
    object: &'a str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    service_tier: (),
    system_fingerprint: &'a str,
    usage: UsageBody,
    kv_transfer_params: (),
    ec_transfer_params: (),
    metrics: (),
}

/// Runs a non-streaming request to the end and builds its JSON body.
async fn complete(
    mut run: RequestRun,
    endpoint: Endpoint,
    id: &str,
    created: u64,
    shared: &Shared,
    prompt_tokens: u32,
) -> Response {
    run.admit().await;
    let plan = *run.plan();
    let mut text = String::with_capacity(plan.length.output_tokens as usize * 8);
    while let Some(token) = run.next_token().await {
        text.push_str(token.text);
        if token.last {
            break;
        }
    }
    if run.produced() < plan.length.output_tokens {
        return ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "The simulator is shutting down.".to_string(),
            kind: "ServiceUnavailableError".to_string(),
            param: None,
        }
        .into_response();
    }
    let completion_tokens = run.produced();
    let usage = UsageBody {
        prompt_tokens,
        total_tokens: prompt_tokens.saturating_add(completion_tokens),
        completion_tokens,
        prompt_tokens_details: (),
        completion_tokens_details: (),
    };
    let finish = plan.length.finish.as_str();
    let model = shared.config.model.as_str();
    let fingerprint = shared.system_fingerprint.as_str();
    let body = match endpoint {
        Endpoint::Chat => serde_json::to_string(&ChatBody {
            id,
            object: "chat.completion",
            created,
            model,
            choices: [ChatChoice {
                index: 0,
                message: ChatMessage {
                    role: "assistant",
                    content: &text,
                    refusal: (),
                    annotations: (),
                    audio: (),
                    function_call: (),
                    reasoning: (),
                },
                logprobs: (),
                finish_reason: finish,
                stop_reason: (),
                token_ids: (),
                routed_experts: (),
            }],
            service_tier: (),
            system_fingerprint: fingerprint,
            usage,
            prompt_logprobs: (),
            prompt_token_ids: (),
            prompt_text: (),
            kv_transfer_params: (),
            ec_transfer_params: (),
            metrics: (),
        }),
        Endpoint::Completions => serde_json::to_string(&CompletionBody {
            id,
            object: "text_completion",
            created,
            model,
            choices: [CompletionChoice {
                index: 0,
                text: &text,
                logprobs: (),
                finish_reason: finish,
                stop_reason: (),
                token_ids: (),
                prompt_logprobs: (),
                prompt_token_ids: (),
                routed_experts: (),
            }],
            service_tier: (),
            system_fingerprint: fingerprint,
            usage,
            kv_transfer_params: (),
            ec_transfer_params: (),
            metrics: (),
        }),
    };
    json_response(StatusCode::OK, body.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Other vLLM routes

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    #[derive(Serialize)]
    struct Permission<'a> {
        id: &'a str,
        object: &'a str,
        created: u64,
        allow_create_engine: bool,
        allow_sampling: bool,
        allow_logprobs: bool,
        allow_search_indices: bool,
        allow_view: bool,
        allow_fine_tuning: bool,
        organization: &'a str,
        group: (),
        is_blocking: bool,
    }
    #[derive(Serialize)]
    struct Model<'a> {
        id: &'a str,
        object: &'a str,
        created: u64,
        owned_by: &'a str,
        root: &'a str,
        parent: (),
        max_model_len: u32,
        permission: [Permission<'a>; 1],
    }
    #[derive(Serialize)]
    struct List<'a> {
        object: &'a str,
        data: [Model<'a>; 1],
    }
    let created = unix_now() as u64;
    let perm_id = format!("modelperm-{:016x}", rand::rng().random::<u64>());
    let body = serde_json::to_string(&List {
        object: "list",
        data: [Model {
            id: &shared.config.model,
            object: "model",
            created,
            owned_by: "vllm",
            root: &shared.config.model,
            parent: (),
            max_model_len: shared.config.max_model_len,
            permission: [Permission {
                id: &perm_id,
                object: "model_permission",
                created,
                allow_create_engine: false,
                allow_sampling: true,
                allow_logprobs: true,
                allow_search_indices: false,
                allow_view: true,
                allow_fine_tuning: false,
                organization: "*",
                group: (),
                is_blocking: false,
            }],
        }],
    });
    json_response(StatusCode::OK, body.unwrap_or_default())
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn version() -> Response {
    json_response(StatusCode::OK, r#"{"version":"0.32.0"}"#.to_string())
}

async fn prometheus(State(shared): State<Arc<Shared>>) -> Response {
    // Render from a copy so the engine lock is held only for the clone.
    let snapshot = shared.engine().metrics.clone();
    let mut resp = Response::new(Body::from(metrics::render(&snapshot)));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, r#"{"detail":"Not Found"}"#.to_string())
}

// ---------------------------------------------------------------------------
// /sim/* control routes

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_string(&*shared.faults.borrow()).unwrap_or_default();
    json_response(StatusCode::OK, body)
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return ApiError::bad_request(format!("Invalid faults: {e}."), "body").into_response(),
    };
    if let Err(e) = faults.validate() {
        return ApiError::bad_request(format!("Invalid faults: {e}."), "body").into_response();
    }
    let body = serde_json::to_string(&faults).unwrap_or_default();
    shared.faults.send_replace(faults);
    json_response(StatusCode::OK, body)
}

async fn reset_counters(State(shared): State<Arc<Shared>>) -> Response {
    let now = unix_now();
    shared.engine().metrics.reset(now);
    json_response(StatusCode::OK, format!(r#"{{"reset":true,"created":{now}}}"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instrumentation_excludes_vllm_and_sim_routes() {
        assert_eq!(instrumented_handler("/v1/chat/completions"), Some("/v1/chat/completions"));
        assert_eq!(instrumented_handler("/v1/models"), Some("/v1/models"));
        assert_eq!(instrumented_handler("/nope"), Some("none"));
        for p in ["/metrics", "/metrics/", "/health", "/version", "/sim/faults"] {
            assert_eq!(instrumented_handler(p), None, "{p}");
        }
    }
}
