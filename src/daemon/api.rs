//! The daemon's HTTP surface (axum): the trigger and history API, health,
//! `/metrics` and the status page.
//!
//! Every error is JSON `{"error": "..."}` with its status. Triggers take a
//! configured target's name, never a URL, so the daemon cannot be made to send
//! requests anywhere else. With `[auth]` set, triggering needs
//! `Authorization: Bearer TOKEN` (compared in constant time); reading does not.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

use super::{Daemon, StartError, Trigger, page, trigger};

/// A request that takes longer than this gets a 408 (the handlers do no long work).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `GET /api/v1/runs` without `limit`, and its maximum.
pub const DEFAULT_LIST_LIMIT: usize = 50;
pub const MAX_LIST_LIMIT: usize = 1000;

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/{target}/runs", post(trigger_run))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .layer(DefaultBodyLimit::max(trigger::MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .with_state(daemon.clone())
        .merge(crate::coordinator::api::router(daemon.coordinator.clone()))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn metrics(State(d): State<Arc<Daemon>>, headers: HeaderMap) -> Response {
    if let Some(c) = &d.coordinator {
        d.exporter.set_workers_connected(c.connected().len());
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = d.exporter.encode_for_accept(accept);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn readyz(State(d): State<Arc<Daemon>>) -> Response {
    if d.shutdown.is_cancelled() {
        error(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

fn authorized(d: &Daemon, headers: &HeaderMap) -> bool {
    let Some(token) = &d.token else { return true };
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(given) = given.strip_prefix("Bearer ") else { return false };
    // Constant time in the token's content (the length may leak, as with every such check).
    given.trim().as_bytes().ct_eq(token.as_bytes()).into()
}

async fn trigger_run(
    State(d): State<Arc<Daemon>>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&d, &headers) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (Authorization: Bearer TOKEN)");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    match d.start_run(&target, Some(&body), Trigger::Api) {
        Ok(run_id) => {
            let location = format!("/api/v1/runs/{run_id}");
            let body = serde_json::json!({ "run_id": run_id, "target": target, "status_url": location });
            let mut r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(e @ StartError::UnknownTarget(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ (StartError::Busy(_) | StartError::OtherTargetBusy(_))) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ StartError::BadBody(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ StartError::Prepare(_)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e @ StartError::ShuttingDown) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn list_runs(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    for key in q.keys() {
        if key != "target" && key != "limit" {
            return error(StatusCode::BAD_REQUEST, format!("unknown query parameter {key:?} (use target, limit)"));
        }
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIST_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(StatusCode::BAD_REQUEST, format!("limit must be a whole number from 1 to {MAX_LIST_LIMIT}"));
        }
    };
    let target = q.get("target").map(String::as_str);
    if let Some(t) = target
        && d.config.target(t).is_none()
        && d.history.list(Some(t), 1).is_empty()
    {
        return error(StatusCode::NOT_FOUND, format!("unknown target {t:?}"));
    }
    axum::Json(serde_json::json!({ "runs": d.history.list(target, limit) })).into_response()
}

async fn get_run(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Response {
    match d.history.json(&id) {
        None => error(StatusCode::NOT_FOUND, format!("no run {id:?} in the history")),
        Some(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Some(Ok(bytes)) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
    }
}

async fn targets(State(d): State<Arc<Daemon>>) -> Response {
    let rows: Vec<serde_json::Value> = d
        .config
        .targets
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "model": t.model,
                "running": d.is_running(&t.name),
                "schedule": t.schedule.map(|s| serde_json::json!({
                    "interval_s": s.interval.as_secs_f64(),
                    "jitter_s": s.jitter.as_secs_f64(),
                })),
                "last_run": d.history.last(&t.name),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "targets": rows })).into_response()
}

async fn status_page(State(d): State<Arc<Daemon>>) -> Html<String> {
    let targets = d
        .config
        .targets
        .iter()
        .map(|t| page::TargetRow {
            name: t.name.clone(),
            model: t.model.clone(),
            url: crate::http::redact_url(t.url.as_str()),
            schedule: match t.schedule {
                None => "on trigger only".into(),
                Some(s) if s.jitter.is_zero() => format!("every {}", humantime::format_duration(s.interval)),
                Some(s) => format!(
                    "every {} (+ up to {} jitter)",
                    humantime::format_duration(s.interval),
                    humantime::format_duration(s.jitter)
                ),
            },
            running: d.is_running(&t.name),
            last: d.history.last(&t.name),
        })
        .collect();
    Html(page::render(&page::Page {
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: d.started.elapsed().as_secs(),
        targets,
        recent: d.history.list(None, 20),
        now: jiff::Timestamp::now(),
    }))
}
