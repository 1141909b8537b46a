//! Which replicas make up a target's server side: a list of /metrics URLs, or
//! a DNS name expanded to every address at each burst (a headless Kubernetes
//! Service, as Prometheus' `dns_sd_configs` does), and the name each replica
//! is reported by. Pure, except [`resolve`].

use std::net::SocketAddr;
use std::time::Duration;

/// Where a target's server-side counters come from.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsSource {
    /// One /metrics per replica; a single server is a fleet of one.
    Urls(Vec<url::Url>),
    /// Every address of this URL's host is a replica, resolved when a burst starts; each
    /// replica's URL is this one with the host replaced by the address.
    Dns(url::Url),
}

impl MetricsSource {
    /// As stored and shown (passwords redacted): the URLs joined, or `dns+URL`.
    pub fn describe(&self) -> String {
        match self {
            MetricsSource::Urls(urls) => {
                urls.iter().map(|u| crate::http::redact_url(u.as_str())).collect::<Vec<_>>().join(", ")
            }
            MetricsSource::Dns(u) => format!("dns+{}", crate::http::redact_url(u.as_str())),
        }
    }
}

/// `host:port` of a URL (the port the scheme implies when none is written).
fn host_port(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("");
    match u.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// How each replica is named in results and in the combined snapshot's `replica` label:
/// `host:port` like Prometheus' `instance`, or the whole (redacted) URL when two replicas
/// share a host and port.
pub fn replica_names(urls: &[url::Url]) -> Vec<String> {
    let short: Vec<String> = urls.iter().map(host_port).collect();
    let unique = short.iter().collect::<std::collections::BTreeSet<_>>().len() == short.len();
    if unique { short } else { urls.iter().map(|u| crate::http::redact_url(u.as_str())).collect() }
}

/// The template with its host replaced by each address (sorted, without duplicates). The
/// template's own port stays: DNS A/AAAA records carry none.
pub fn expand(template: &url::Url, addresses: &[std::net::IpAddr]) -> Vec<url::Url> {
    let mut addrs = addresses.to_vec();
    addrs.sort();
    addrs.dedup();
    addrs
        .into_iter()
        .filter_map(|ip| {
            let mut u = template.clone();
            u.set_ip_host(ip).ok()?;
            Some(u)
        })
        .collect()
}

/// Why a DNS name gave no replicas.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the replicas of {shown} could not be found: {detail}")]
pub struct ResolveError {
    pub shown: String,
    pub detail: String,
}

/// The replicas of `template` now: its host resolved to every address, within `timeout`.
pub async fn resolve(template: &url::Url, timeout: Duration) -> Result<Vec<url::Url>, ResolveError> {
    let shown = format!("dns+{}", crate::http::redact_url(template.as_str()));
    let fail = |detail: String| ResolveError { shown: shown.clone(), detail };
    let host = template.host_str().ok_or_else(|| fail("the URL has no host".into()))?;
    // `[::1]` is written with brackets in a URL but resolved without them.
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = template.port_or_known_default().ok_or_else(|| fail("the URL has no port".into()))?;
    let found = tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
        .await
        .map_err(|_| fail(format!("no DNS answer within {:.1} s", timeout.as_secs_f64())))?
        .map_err(|e| fail(e.to_string()))?;
    let addresses: Vec<std::net::IpAddr> = found.map(|a: SocketAddr| a.ip()).collect();
    let urls = expand(template, &addresses);
    if urls.is_empty() {
        return Err(fail(format!("{host} has no address")));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn replicas_are_named_by_host_and_port_unless_that_is_ambiguous() {
        let urls = [u("http://10.0.0.1:8000/metrics"), u("https://vllm-b/metrics")];
        assert_eq!(replica_names(&urls), ["10.0.0.1:8000", "vllm-b:443"]);
        let same = [u("http://h:8000/a/metrics"), u("http://user:pw@h:8000/b/metrics")];
        let names = replica_names(&same);
        assert_eq!(names[0], "http://h:8000/a/metrics");
        assert!(names[1].ends_with("@h:8000/b/metrics") && !names[1].contains("pw"), "{}", names[1]);
    }

    #[test]
    fn a_name_expands_to_each_address_with_the_templates_port_and_path() {
        let t = u("http://vllm-headless.ns.svc:8000/metrics");
        let addrs = ["10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let urls: Vec<String> = expand(&t, &addrs).iter().map(|u| u.to_string()).collect();
        assert_eq!(urls, ["http://10.0.0.1:8000/metrics", "http://10.0.0.2:8000/metrics"]);
        let v6 = expand(&t, &["::1".parse().unwrap()]);
        assert_eq!(v6[0].as_str(), "http://[::1]:8000/metrics");
        assert_eq!(replica_names(&v6), ["[::1]:8000"]);
    }

    #[test]
    fn the_description_names_the_source_without_passwords() {
        let urls = MetricsSource::Urls(vec![u("http://a:1/metrics"), u("http://x:secret@b:2/metrics")]);
        let d = urls.describe();
        assert!(d.starts_with("http://a:1/metrics, http://") && !d.contains("secret"), "{d}");
        assert_eq!(MetricsSource::Dns(u("http://svc:8000/metrics")).describe(), "dns+http://svc:8000/metrics");
    }

    #[tokio::test]
    async fn localhost_resolves_and_a_name_without_a_host_says_why() {
        let urls = resolve(&u("http://localhost:8000/metrics"), Duration::from_secs(5)).await.unwrap();
        assert!(urls.iter().all(|x| x.port() == Some(8000) && x.path() == "/metrics"), "{urls:?}");
        assert!(urls.iter().any(|x| x.host_str() == Some("127.0.0.1") || x.host_str() == Some("[::1]")), "{urls:?}");
        // No lookup leaves this machine in a test: a URL without a host fails before one.
        let e = resolve(&u("file:///metrics"), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.to_string(), "the replicas of dns+file:///metrics could not be found: the URL has no host");
    }
}
