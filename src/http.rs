//! The one place an HTTP client is built: no proxy from the environment (a
//! benchmark measures the server, not a proxy it happened to inherit), the
//! given timeouts, TCP_NODELAY. The load, the /metrics scrapes of a burst, the
//! doctor and the healthcheck all take their client from here.

use std::time::Duration;

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
        .tcp_nodelay(true);
    if let Some(t) = o.timeout {
        b = b.timeout(t);
    }
    b.build().map_err(|e| format!("cannot build the HTTP client: {}", crate::error::error_chain(&e)))
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
