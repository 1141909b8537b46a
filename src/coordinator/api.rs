//! The workers' HTTP surface on the daemon: poll for a shard, heartbeat while running it,
//! report its records. Every route needs `Authorization: Bearer <[workers] token>`; without
//! `[workers]` in the configuration they answer 404 saying so.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

use super::{Coordinator, Heartbeat, POLL_HOLD, Poll, Report, check_worker_name};

/// A report holds a shard's every record (about 0.5 KB each as JSON lines).
pub const MAX_REPORT_BYTES: usize = 512 * 1024 * 1024;
/// Longer than a poll's hold; a report of a big shard may take a while to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

type Shared = Option<Arc<Coordinator>>;

pub fn router(coordinator: Shared) -> Router {
    Router::new()
        .route("/api/v1/workers", get(list))
        .route("/api/v1/workers/poll", post(poll))
        .route("/api/v1/workers/heartbeat", post(heartbeat))
        .route("/api/v1/workers/report", post(report))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .with_state(coordinator)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Why a worker's request is refused: its status and message.
type Failure = (StatusCode, String);

fn reply(r: Result<Response, Failure>) -> Response {
    r.unwrap_or_else(|(status, message)| error(status, message))
}

const NO_WORKERS: &str = "this daemon takes no workers: set [workers] token_file";

/// The coordinator, when the caller holds the workers' token.
fn authorized<'a>(c: &'a Shared, headers: &HeaderMap) -> Result<&'a Arc<Coordinator>, Failure> {
    let c = c.as_ref().ok_or((StatusCode::NOT_FOUND, NO_WORKERS.to_owned()))?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    // Constant time in the token's content (the length may leak, as with every such check).
    if bool::from(given.as_bytes().ct_eq(c.token().as_bytes())) {
        Ok(c)
    } else {
        Err((StatusCode::UNAUTHORIZED, "a worker needs Authorization: Bearer <the [workers] token>".to_owned()))
    }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|e| (StatusCode::BAD_REQUEST, format!("not a worker message: {e}")))
}

fn refused(e: super::Refused) -> Failure {
    (StatusCode::CONFLICT, e.to_string())
}

async fn list(State(c): State<Shared>) -> Response {
    match &c {
        None => error(StatusCode::NOT_FOUND, NO_WORKERS),
        Some(c) => axum::Json(serde_json::json!({ "connected": c.connected() })).into_response(),
    }
}

async fn poll(State(c): State<Shared>, headers: HeaderMap, bytes: axum::body::Bytes) -> Response {
    let answer = async {
        let c = authorized(&c, &headers)?;
        let p: Poll = body(&bytes)?;
        check_worker_name(&p.worker).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        Ok(match c.poll(&p.worker, POLL_HOLD).await {
            Some(a) => axum::Json(a).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        })
    };
    reply(answer.await)
}

async fn heartbeat(State(c): State<Shared>, headers: HeaderMap, bytes: axum::body::Bytes) -> Response {
    let answer = || {
        let c = authorized(&c, &headers)?;
        c.heartbeat(&body::<Heartbeat>(&bytes)?).map_err(refused)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    reply(answer())
}

async fn report(State(c): State<Shared>, headers: HeaderMap, bytes: axum::body::Bytes) -> Response {
    let answer = || {
        let c = authorized(&c, &headers)?;
        c.report(body::<Report>(&bytes)?).map_err(refused)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    reply(answer())
}
