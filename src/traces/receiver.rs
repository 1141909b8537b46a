//! The OTLP trace receiver: one address that takes both OTLP/gRPC (vLLM's
//! default; HTTP/2 without TLS) and OTLP/HTTP (`POST /v1/traces`, protobuf or
//! JSON), decodes with the OpenTelemetry project's own wire types and hands
//! each export to the [`Hub`]. Safe to expose: bodies over
//! [`MAX_EXPORT_BYTES`] are refused before they are buffered, at most
//! [`MAX_CONCURRENT_EXPORTS`] are decoded at once, each within
//! [`EXPORT_TIMEOUT`]; a malformed export is a counted, logged refusal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use tokio_util::sync::CancellationToken;

use super::hub::{Hub, ReceiverCounters};
use super::span::llm_spans;

/// The OpenTelemetry Collector's default gRPC receive limit.
pub const MAX_EXPORT_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_CONCURRENT_EXPORTS: usize = 16;
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The gRPC method vLLM's exporter calls.
pub const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    stop: CancellationToken,
}

impl Receiver {
    /// Listen on `addr` (`host:port`; port 0 picks one).
    pub async fn start(addr: &str, hub: Arc<Hub>) -> Result<Receiver, String> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen for OTLP traces on {addr}: {e}"))?;
        Self::start_on(listener, hub)
    }

    /// Serve on a listener already bound (the demo binds first, then tells the simulator where).
    pub fn start_on(listener: tokio::net::TcpListener, hub: Arc<Hub>) -> Result<Receiver, String> {
        let local = listener.local_addr().map_err(|e| format!("OTLP receiver: {e}"))?;
        let stop = CancellationToken::new();
        let app = router(Arc::clone(&hub));
        let until = stop.clone();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move { until.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the OTLP receiver stopped");
            }
        });
        tracing::info!(addr = %local, "OTLP trace receiver listening (gRPC and HTTP /v1/traces)");
        Ok(Receiver { addr: local, hub, stop })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The receiver's routes, with its limits.
pub fn router(hub: Arc<Hub>) -> Router {
    let grpc =
        TraceServiceServer::new(GrpcExport { hub: Arc::clone(&hub) }).max_decoding_message_size(MAX_EXPORT_BYTES);
    let counted = Arc::clone(&hub);
    let grpc = tower::ServiceBuilder::new()
        .map_response(move |resp: Response<_>| {
            count_grpc_refusal(&counted, resp.headers());
            resp
        })
        .service(grpc);
    Router::new()
        .route("/v1/traces", post(http_export))
        .route_service(GRPC_EXPORT_PATH, grpc)
        .layer(DefaultBodyLimit::max(MAX_EXPORT_BYTES))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT_EXPORTS))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, EXPORT_TIMEOUT))
        .with_state(hub)
}

struct GrpcExport {
    hub: Arc<Hub>,
}

#[tonic::async_trait]
impl TraceService for GrpcExport {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.hub.accept(llm_spans(request.get_ref()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// tonic answers a body it cannot decode (or one over the limit) itself,
/// with a `grpc-status` in the headers: count and log it here.
fn count_grpc_refusal(hub: &Hub, headers: &HeaderMap) {
    let Some(code) = headers.get("grpc-status").and_then(|v| v.to_str().ok()) else { return };
    if code == "0" {
        return;
    }
    let message = headers.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or("");
    let too_large = code == (tonic::Code::OutOfRange as i32).to_string();
    refused(hub, too_large, &format!("OTLP/gRPC export refused (grpc-status {code}): {message}"));
}

fn refused(hub: &Hub, too_large: bool, why: &str) {
    let c = &hub.counters;
    let counter = if too_large { &c.exports_too_large } else { &c.exports_malformed };
    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    // The first refusal and then every 100th: a hostile peer cannot flood the log.
    if n == 1 || n.is_multiple_of(100) {
        tracing::warn!(refused_so_far = n, "{why}");
    }
}

async fn http_export(State(hub): State<Arc<Hub>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let too_large = rejection.status() == StatusCode::PAYLOAD_TOO_LARGE;
            refused(&hub, too_large, &format!("OTLP/HTTP export refused: {}", rejection.body_text()));
            return rejection.into_response();
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let json = content_type.starts_with("application/json");
    let decoded = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| format!("not OTLP JSON: {e}"))
    } else if content_type.starts_with("application/x-protobuf") {
        ExportTraceServiceRequest::decode(body).map_err(|e| format!("not OTLP protobuf: {e}"))
    } else {
        let why = format!("content type {content_type:?}: OTLP/HTTP is application/x-protobuf or application/json");
        refused(&hub, false, &format!("OTLP/HTTP export refused: {why}"));
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, why).into_response();
    };
    match decoded {
        Ok(export) => {
            hub.accept(llm_spans(&export));
            if json {
                ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
            } else {
                let body = ExportTraceServiceResponse::default().encode_to_vec();
                ([(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
            }
        }
        Err(why) => {
            refused(&hub, false, &format!("OTLP/HTTP export refused: {why}"));
            (StatusCode::BAD_REQUEST, why).into_response()
        }
    }
}

/// The receiver's counters as one line (logged when a run ends).
pub fn summary(c: &ReceiverCounters) -> String {
    let g = ReceiverCounters::get;
    format!(
        "exports ok {}, malformed {}, too large {}; llm_request spans kept {}, not ours {}, without id {}, over capacity {}; other spans {}",
        g(&c.exports_ok),
        g(&c.exports_malformed),
        g(&c.exports_too_large),
        g(&c.spans_kept),
        g(&c.spans_not_ours),
        g(&c.spans_without_id),
        g(&c.spans_over_capacity),
        g(&c.spans_other_name),
    )
}
