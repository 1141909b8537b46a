//! The one place an HTTP client is built: no proxy from the environment (a
//! benchmark measures the server, not a proxy it happened to inherit), the
//! given timeouts, TCP_NODELAY. The load, the /metrics scrapes of a burst, the
//! doctor and the healthcheck all take their client from here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What differs between the clients of the tool.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// A limit on each whole request; None leaves it to the caller (the load enforces its own).
    pub timeout: Option<Duration>,
    /// Idle connections kept per host (the load keeps one per request in flight).
    pub idle_per_host: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { connect_timeout: Duration::from_secs(10), timeout: None, idle_per_host: 8 }
    }
}

/// Build a client, or say why not with the whole cause chain (reqwest's own message is only
/// "builder error"; rustls refuses to build without a CA bundle, even for plain HTTP).
pub fn client(o: ClientOptions) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(o.connect_timeout)
        .pool_max_idle_per_host(o.idle_per_host)
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connector_layer(tower::layer::layer_fn(|inner| ConnectTimer { inner }));
    if let Some(t) = o.timeout {
        b = b.timeout(t);
    }
    b.build().map_err(|e| format!("cannot build the HTTP client: {}", crate::error::error_chain(&e)))
}

tokio::task_local! {
    /// Where the connector writes how long a connection it made for the current request took.
    static CONNECT_SLOT: Arc<ConnectSlot>;
}

/// The connection set-up time of one request, when sending it made a new connection (TCP and,
/// for https, TLS). Written by the connector layer, read by the request that set it.
#[derive(Debug, Default)]
pub struct ConnectSlot {
    /// Nanoseconds + 1 (0: no connection was made).
    nanos_plus_one: AtomicU64,
}

impl ConnectSlot {
    /// The set-up time, when the request made a connection.
    pub fn get(&self) -> Option<Duration> {
        match self.nanos_plus_one.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n - 1)),
        }
    }

    fn set(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1);
        self.nanos_plus_one.store(nanos + 1, Ordering::Relaxed);
    }
}

/// Run `request` with `slot` receiving the set-up time of any connection made for it. The pool
/// asks the connector from inside the request's own future (hyper's checkout races a new
/// connection against an idle one), so the task-local is visible there.
pub async fn with_connect_slot<F: Future>(slot: Arc<ConnectSlot>, request: F) -> F::Output {
    CONNECT_SLOT.scope(slot, request).await
}

/// The connector layer that times each new connection. Hand-written: reqwest has no per-request
/// connection timing (curl's `time_connect`, Go's httptrace), and a tower layer is its hook.
#[derive(Clone)]
struct ConnectTimer<S> {
    inner: S,
}

impl<S, R> tower::Service<R> for ConnectTimer<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let slot = CONNECT_SLOT.try_with(Arc::clone).ok();
        let start = Instant::now();
        let connecting = self.inner.call(req);
        Box::pin(async move {
            let conn = connecting.await;
            if let (Ok(_), Some(slot)) = (&conn, slot) {
                slot.set(start.elapsed());
            }
            conn
        })
    }
}

/// A URL as it may be shown or stored: a password in it becomes `***`
/// (`http://user:***@host/`). The real URL is only ever used to connect.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        // Not a URL: redact a `//user:secret@` part anyway.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
                Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
                None => url.to_owned(),
            },
            _ => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted_and_nothing_else_changes() {
        assert_eq!(redact_url("http://alice:s3cret@127.0.0.1:8000/v1"), "http://alice:***@127.0.0.1:8000/v1");
        assert_eq!(redact_url("http://127.0.0.1:8000/metrics"), "http://127.0.0.1:8000/metrics");
        assert_eq!(redact_url("http://alice@host:1/"), "http://alice@host:1/");
        assert_eq!(redact_url("tcp://u:pw@docker host:2376"), "tcp://u:***@docker host:2376");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
