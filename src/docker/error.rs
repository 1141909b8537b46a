//! `DockerError` and the mapping of bollard's errors onto it.

use std::error::Error as _;
use std::io;

use bollard::errors::Error as BollardError;

/// Why the Docker side of a run could not be done. Every variant carries a
/// sentence a user understands; the caller turns it into a SKIP reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// No engine answers at the configured address (socket missing, connection
    /// refused, unsupported `DOCKER_HOST`, timeout).
    #[error("no Docker Engine: {0}")]
    NoEngine(String),
    /// The engine is there but we may not talk to it (socket permissions, a
    /// socket proxy that forbids the endpoint).
    #[error("no permission to use the Docker Engine: {0}")]
    Permission(String),
    /// No container matched, or the named container does not exist.
    #[error("container not found: {0}")]
    NotFound(String),
    /// More than one container matched equally well.
    #[error("several containers match: {0}")]
    Ambiguous(String),
    /// The container exists but is not running.
    #[error("container not running: {0}")]
    NotRunning(String),
    /// The container's logging driver cannot be read back (`none`, `syslog`,
    /// `fluentd`, ... without dual logging).
    #[error("container logs unavailable: {0}")]
    LogsUnavailable(String),
    /// Anything else the engine or the transport reported.
    #[error("Docker Engine API error: {0}")]
    Api(String),
}

impl DockerError {
    /// A bounded label for metrics and JSON.
    pub fn as_label(&self) -> &'static str {
        match self {
            DockerError::NoEngine(_) => "no_engine",
            DockerError::Permission(_) => "permission",
            DockerError::NotFound(_) => "not_found",
            DockerError::Ambiguous(_) => "ambiguous",
            DockerError::NotRunning(_) => "not_running",
            DockerError::LogsUnavailable(_) => "logs_unavailable",
            DockerError::Api(_) => "api",
        }
    }
}

/// Maps a bollard error from a request to `what` (e.g. "GET /containers/x/json")
/// against the engine at `endpoint`.
pub(crate) fn classify(err: &BollardError, endpoint: &str, what: &str) -> DockerError {
    match err {
        BollardError::DockerResponseServerError { status_code, message } => {
            let message = message.trim();
            match status_code {
                404 => DockerError::NotFound(format!("{what}: {message}")),
                401 | 403 => DockerError::Permission(format!(
                    "{what} was refused by {endpoint} (HTTP {status_code}: {message}); a socket proxy must allow it"
                )),
                501 if message.contains("logging driver") || message.contains("does not support reading") => {
                    DockerError::LogsUnavailable(format!("{message} (docker logs cannot read this container)"))
                }
                _ if message.contains("logging driver") && message.contains("not support") => {
                    DockerError::LogsUnavailable(format!("{message} (docker logs cannot read this container)"))
                }
                _ => DockerError::Api(format!("{what}: HTTP {status_code}: {message}")),
            }
        }
        BollardError::RequestTimeoutError => DockerError::NoEngine(format!("{endpoint} did not answer {what} in time")),
        BollardError::SocketNotFoundError(path) => {
            DockerError::NoEngine(format!("no socket at {path} (is dockerd running? set DOCKER_HOST to its address)"))
        }
        BollardError::UnsupportedURISchemeError { uri } => DockerError::NoEngine(format!(
            "DOCKER_HOST={uri} is not supported: use unix:///path/to/docker.sock or tcp://host:port"
        )),
        other => match io_kind(other) {
            Some(io::ErrorKind::NotFound) => DockerError::NoEngine(format!(
                "no socket at {endpoint} (is dockerd running? set DOCKER_HOST to its address)"
            )),
            Some(io::ErrorKind::PermissionDenied) => DockerError::Permission(format!(
                "permission denied on {endpoint}: run as a member of the `docker` group, or point DOCKER_HOST at a GET-only socket proxy"
            )),
            Some(io::ErrorKind::ConnectionRefused) => {
                DockerError::NoEngine(format!("connection refused at {endpoint} (is dockerd running?)"))
            }
            Some(kind) => DockerError::NoEngine(format!("{endpoint}: {kind}: {}", chain(other))),
            None => DockerError::Api(format!("{what}: {}", chain(other))),
        },
    }
}

/// The `io::ErrorKind` at the bottom of an error chain, if any.
fn io_kind(err: &BollardError) -> Option<io::ErrorKind> {
    if let BollardError::IOError { err } = err {
        return Some(err.kind());
    }
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// The error and its sources on one line.
fn chain(err: &BollardError) -> String {
    crate::error::error_chain(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> BollardError {
        BollardError::DockerResponseServerError { status_code, message: message.to_string() }
    }

    #[test]
    fn http_statuses_map_to_variants() {
        let e = classify(&server(404, "No such container: x"), "unix:///s", "GET /containers/x/json");
        assert_eq!(e.as_label(), "not_found");
        assert!(e.to_string().contains("No such container: x"), "{e}");
        assert_eq!(classify(&server(403, "forbidden"), "unix:///s", "GET /x").as_label(), "permission");
        let e = classify(
            &server(501, "configured logging driver does not support reading"),
            "unix:///s",
            "GET /containers/x/logs",
        );
        assert_eq!(e.as_label(), "logs_unavailable");
        assert_eq!(classify(&server(500, "boom"), "unix:///s", "GET /x").as_label(), "api");
    }

    #[test]
    fn io_errors_map_to_engine_and_permission() {
        let io = |kind| BollardError::IOError { err: io::Error::from(kind) };
        assert_eq!(classify(&io(io::ErrorKind::NotFound), "unix:///s", "GET /version").as_label(), "no_engine");
        assert_eq!(
            classify(&io(io::ErrorKind::PermissionDenied), "unix:///s", "GET /version").as_label(),
            "permission"
        );
        assert_eq!(
            classify(&io(io::ErrorKind::ConnectionRefused), "unix:///s", "GET /version").as_label(),
            "no_engine"
        );
        assert_eq!(classify(&BollardError::RequestTimeoutError, "unix:///s", "GET /version").as_label(), "no_engine");
        let e = classify(&BollardError::SocketNotFoundError("/x.sock".into()), "unix:///x.sock", "connect");
        assert_eq!(e.as_label(), "no_engine");
    }
}
