//! The process's own telemetry: log lines on stderr (text or JSON), filtered by
//! `LLM_LOADTEST_LOG` (an env-filter such as `debug`) or a default level; and,
//! when an OTLP endpoint is configured, its own spans (a run, its phases, its
//! requests) exported over OTLP through `tracing-opentelemetry`.
//!
//! Export is on when `--otlp-endpoint` / `[otlp] endpoint` is given, or when the
//! standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set, and `OTEL_SDK_DISABLED` is not `true`. The transport follows
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc`
//! (the default here, as in vLLM) or `http/protobuf` (the endpoint is then the
//! full URL, ending in `/v1/traces`, as vLLM takes it). The SDK itself honours
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`
//! and `OTEL_BSP_*`. Without an endpoint no OpenTelemetry layer is installed,
//! and the burst creates no request span and sends no `traceparent`.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` gives one.
pub const SERVICE_NAME: &str = "llm-loadtest";

/// Set once the OpenTelemetry layer is installed: only then are request spans worth making.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// True when this process exports its spans (request spans and `traceparent` are made only then).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The OTLP transport of an exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl OtlpProtocol {
    /// From `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else gRPC.
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL")) {
            None => Ok(OtlpProtocol::Grpc),
            Some(v) => Self::parse(&v),
        }
    }

    pub fn parse(v: &str) -> Result<Self, String> {
        match v.trim() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            other => Err(format!("OTLP protocol {other:?} is not supported (use grpc or http/protobuf)")),
        }
    }
}

/// An OTLP span exporter for `endpoint` (None: the standard `OTEL_EXPORTER_OTLP_*` variables).
/// gRPC needs a Tokio runtime to build its channel: call this inside one.
pub fn otlp_exporter(
    endpoint: Option<&str>,
    protocol: OtlpProtocol,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let built = match protocol {
        OtlpProtocol::Grpc => {
            let b = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            match endpoint {
                Some(e) => b.with_endpoint(e).build(),
                None => b.build(),
            }
        }
        OtlpProtocol::HttpProtobuf => {
            let b = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
            match endpoint {
                Some(e) => b.with_endpoint(e).build(),
                None => b.build(),
            }
        }
    };
    built.map_err(|e| format!("cannot build the OTLP span exporter: {e}"))
}

/// A resource whose `service.name` is `default_name` unless the environment names one.
pub fn resource(default_name: &str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::new("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    if named { detected } else { Resource::builder().with_service_name(default_name.to_owned()).build() }
}

/// Whether this process should export its spans: an endpoint given, or the standard variables set.
fn export_wanted(endpoint: Option<&str>) -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && (endpoint.is_some() || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes the spans still queued.
#[must_use = "call shutdown() before exiting, or queued spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Export what is queued and stop the exporter (bounded by the SDK's export timeout).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        EXPORTING.store(false, Ordering::Relaxed);
        // The SDK blocks until its exporter thread is done; keep that off the async workers,
        // which drive the gRPC connection meanwhile.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            eprintln!("warning: exporting the last spans failed: {e}");
        }
    }
}

/// Install the global subscriber once, at start-up, inside the Tokio runtime. `otlp_endpoint`
/// turns on span export (see the module docs); an exporter that cannot be built is an error.
pub fn init(format: LogFormat, default_level: &str, otlp_endpoint: Option<&str>) -> Result<Telemetry, String> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("LLM_LOADTEST_LOG").unwrap_or_else(|_| default_level.into());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    }
    .with_filter(filter);

    let provider = if export_wanted(otlp_endpoint) {
        let exporter = otlp_exporter(otlp_endpoint, OtlpProtocol::from_env()?)?;
        Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource(SERVICE_NAME)).build())
    } else {
        None
    };
    // Only this crate's spans go out: the exporter's own gRPC/HTTP stack must not trace itself.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(SERVICE_NAME))
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("llm_loadtest", tracing::Level::INFO))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry { provider })
}

/// The W3C `traceparent` of `span`, when it is exported and sampled (an unsampled parent
/// would tell vLLM not to record its own `llm_request` span, which the validation needs).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    (sc.is_valid() && sc.is_sampled()).then(|| format!("00-{}-{}-01", sc.trace_id(), sc.span_id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_and_unknown_ones_are_named() {
        assert_eq!(OtlpProtocol::parse("grpc"), Ok(OtlpProtocol::Grpc));
        assert_eq!(OtlpProtocol::parse(" http/protobuf "), Ok(OtlpProtocol::HttpProtobuf));
        let e = OtlpProtocol::parse("http/json").unwrap_err();
        assert!(e.contains("http/json") && e.contains("grpc"), "{e}");
    }

    #[test]
    fn a_span_without_the_layer_has_no_traceparent() {
        // No subscriber in this test thread: the span is disabled, so nothing is propagated.
        assert_eq!(traceparent(&tracing::info_span!("request")), None);
    }
}
