//! Fetching the server's `/metrics`: one scrape, the settle poll after a
//! burst, and the gauge sampler during it. Every failure is a value with a
//! reason, never an error that stops a run.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::catalogue;
use super::fleet::MetricsSource;
use crate::error::describe_reqwest;
use crate::promtext::{self, Exposition, LabelFilter};

/// Ask for the classic text format (what Prometheus itself prefers from
/// Python exporters); OpenMetrics is parsed too if a proxy answers with it.
pub const ACCEPT: &str = "text/plain;version=0.0.4;q=1.0,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1";

/// Why there is no usable snapshot.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("{url} did not answer within {secs:.1} s")]
    Timeout { url: String, secs: f64 },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} is not a Prometheus exposition ({detail})")]
    NotMetrics { url: String, detail: String },
    #[error("reading {url} failed: {detail}")]
    Body { url: String, detail: String },
    /// A fleet's DNS name gave no replicas.
    #[error("{0}")]
    Resolve(String),
}

/// One parsed `/metrics` snapshot with its raw text (saved as an artifact).
#[derive(Debug, Clone)]
pub struct Scrape {
    /// When the response arrived (the counters' time, for rates).
    pub taken_at: Instant,
    pub text: String,
    pub exposition: Exposition,
    pub content_type: String,
    pub elapsed_s: f64,
}

/// Parse a body already fetched (also used for saved artifacts).
pub fn parse_body(url: &str, text: String, content_type: String, elapsed_s: f64) -> Result<Scrape, ScrapeError> {
    let trimmed = text.trim_start();
    if content_type.starts_with("text/html") || trimmed.starts_with('<') {
        let excerpt: String = trimmed.chars().take(60).collect();
        return Err(ScrapeError::NotMetrics { url: url.into(), detail: format!("an HTML page: {excerpt:?}") });
    }
    let exposition = promtext::parse(&text);
    if exposition.sample_count() == 0 {
        let detail = match exposition.line_errors.first() {
            Some(e) => format!(
                "no metric family parsed; {} bad line(s), first: line {}: {}",
                exposition.line_errors.len(),
                e.line_no,
                e.message
            ),
            None => "the body is empty".into(),
        };
        return Err(ScrapeError::NotMetrics { url: url.into(), detail });
    }
    Ok(Scrape { taken_at: Instant::now(), text, exposition, content_type, elapsed_s })
}

/// One replica's /metrics.
#[derive(Clone)]
struct Endpoint {
    /// In the combined snapshot's replica label and in results.
    name: String,
    /// Used to connect only (it may hold a password).
    connect_url: String,
    /// In errors, results and logs.
    shown: String,
}

impl Endpoint {
    fn all(urls: &[url::Url]) -> Vec<Endpoint> {
        let names = super::fleet::replica_names(urls);
        urls.iter()
            .zip(names)
            .map(|(u, name)| Endpoint { name, connect_url: u.to_string(), shown: crate::http::redact_url(u.as_str()) })
            .collect()
    }
}

#[derive(Clone)]
enum Replicas {
    Fixed(Vec<Endpoint>),
    /// Resolved for each scrape until [`MetricsClient::pinned`] fixes the set for a burst.
    Dns(url::Url),
    /// The name gave no replicas: every scrape says why.
    Unresolved(ScrapeError),
}

/// Scrapes a target's /metrics: one server's, or every replica's of a fleet combined into one
/// snapshot (each sample labelled with its replica, see [`crate::promtext::fleet`]).
#[derive(Clone)]
pub struct MetricsClient {
    client: reqwest::Client,
    replicas: Replicas,
    /// The source as shown and stored.
    shown: String,
    timeout: Duration,
}

impl MetricsClient {
    pub fn new(url: String, timeout: Duration) -> Result<MetricsClient, String> {
        let options = crate::http::ClientOptions { connect_timeout: timeout, ..Default::default() };
        Ok(MetricsClient::with_client(crate::http::client(options)?, url, timeout))
    }

    /// Scrape with an existing client (a burst shares its one client); `timeout` bounds each scrape.
    pub fn with_client(client: reqwest::Client, url: String, timeout: Duration) -> MetricsClient {
        let shown = crate::http::redact_url(&url);
        let replica = Endpoint { name: shown.clone(), connect_url: url, shown: shown.clone() };
        MetricsClient { client, replicas: Replicas::Fixed(vec![replica]), shown, timeout }
    }

    /// Every replica of `source` (a list of one is a single server).
    pub fn for_source(client: reqwest::Client, source: &MetricsSource, timeout: Duration) -> MetricsClient {
        match source {
            MetricsSource::Urls(urls) if urls.len() == 1 => {
                MetricsClient::with_client(client, urls[0].to_string(), timeout)
            }
            MetricsSource::Urls(urls) => MetricsClient {
                client,
                replicas: Replicas::Fixed(Endpoint::all(urls)),
                shown: source.describe(),
                timeout,
            },
            MetricsSource::Dns(template) => {
                MetricsClient { client, replicas: Replicas::Dns(template.clone()), shown: source.describe(), timeout }
            }
        }
    }

    /// The source as shown and stored (a password in it redacted).
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The replicas a fleet's snapshots hold, by name; empty for a single server.
    pub fn replica_names(&self) -> Vec<String> {
        match &self.replicas {
            Replicas::Fixed(r) if r.len() > 1 || self.is_dns() => r.iter().map(|e| e.name.clone()).collect(),
            _ => Vec::new(),
        }
    }

    fn is_dns(&self) -> bool {
        self.shown.starts_with("dns+")
    }

    /// This client with its replicas fixed for one burst: a DNS name is resolved now, so every
    /// snapshot of the burst reads the same replicas.
    pub async fn pinned(&self) -> MetricsClient {
        let Replicas::Dns(template) = &self.replicas else { return self.clone() };
        let replicas = match super::fleet::resolve(template, self.timeout).await {
            Ok(urls) => Replicas::Fixed(Endpoint::all(&urls)),
            Err(e) => Replicas::Unresolved(ScrapeError::Resolve(e.to_string())),
        };
        MetricsClient { replicas, ..self.clone() }
    }

    /// One snapshot of the target: a fleet's replicas scraped together and combined. A replica
    /// that cannot be scraped fails the whole snapshot with its name: a fleet is never
    /// silently undercounted.
    pub async fn scrape(&self) -> Result<Scrape, ScrapeError> {
        let endpoints = match &self.replicas {
            Replicas::Fixed(e) => e.clone(),
            Replicas::Unresolved(e) => return Err(e.clone()),
            Replicas::Dns(_) => match &self.pinned().await.replicas {
                Replicas::Fixed(e) => e.clone(),
                Replicas::Unresolved(e) => return Err(e.clone()),
                Replicas::Dns(_) => unreachable!("pinned() resolves the name"),
            },
        };
        if let [one] = &endpoints[..]
            && !self.is_dns()
        {
            return self.scrape_one(one).await;
        }
        let t0 = Instant::now();
        let scrapes = futures_util::future::join_all(endpoints.iter().map(|e| self.scrape_one(e))).await;
        let scrapes: Vec<Scrape> = scrapes.into_iter().collect::<Result<_, _>>()?;
        let parts: Vec<(&str, &Exposition)> =
            endpoints.iter().zip(&scrapes).map(|(e, s)| (e.name.as_str(), &s.exposition)).collect();
        let exposition = crate::promtext::fleet::combine(&parts);
        Ok(Scrape {
            taken_at: Instant::now(),
            text: exposition.render(),
            exposition,
            content_type: "text/plain; version=0.0.4".into(),
            elapsed_s: t0.elapsed().as_secs_f64(),
        })
    }

    async fn scrape_one(&self, replica: &Endpoint) -> Result<Scrape, ScrapeError> {
        let t0 = Instant::now();
        let url = replica.shown.clone();
        let resp = self
            .client
            .get(&replica.connect_url)
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ScrapeError::Timeout { url: url.clone(), secs: self.timeout.as_secs_f64() }
                } else {
                    ScrapeError::Connect { url: url.clone(), detail: describe_reqwest(&e) }
                }
            })?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(ScrapeError::Status { url, status });
        }
        let content_type =
            resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = resp.text().await.map_err(|e| {
            if e.is_timeout() {
                ScrapeError::Timeout { url: url.clone(), secs: self.timeout.as_secs_f64() }
            } else {
                ScrapeError::Body { url: url.clone(), detail: describe_reqwest(&e) }
            }
        })?;
        parse_body(&url, text, content_type, t0.elapsed().as_secs_f64())
    }

    /// After a burst: poll until vLLM's finished-request and token counters
    /// stop moving (two scrapes in a row agree), at most `max_wait`. vLLM
    /// records stats asynchronously, so the first scrape can be short.
    /// Other clients' traffic (`background_per_s` finished requests) keeps the
    /// counters moving: a change no larger than theirs counts as settled.
    pub async fn settle(
        &self,
        max_wait: Duration,
        poll: Duration,
        background_per_s: f64,
    ) -> (Result<Scrape, ScrapeError>, u32) {
        let allowance = if background_per_s > 0.0 { (background_per_s * poll.as_secs_f64() * 2.0).ceil() } else { 0.0 };
        let deadline = Instant::now() + max_wait;
        let mut last = self.scrape().await;
        let mut polls = 1;
        loop {
            let Ok(prev) = &last else { return (last, polls) };
            if !catalogue::has_vllm_metrics(&prev.exposition) || Instant::now() + poll > deadline {
                return (last, polls);
            }
            tokio::time::sleep(poll).await;
            let next = self.scrape().await;
            polls += 1;
            let settled = match &next {
                Ok(n) if allowance > 0.0 => {
                    let finished = |e: &Exposition| e.counter_sum(catalogue::REQUEST_SUCCESS, &LabelFilter::new());
                    match (finished(&prev.exposition), finished(&n.exposition)) {
                        (Some(a), Some(b)) => b - a <= allowance,
                        _ => true,
                    }
                }
                Ok(n) => progress_key(&n.exposition) == progress_key(&prev.exposition),
                Err(_) => true,
            };
            if settled {
                // Keep the newer snapshot when it is good, else the last good one.
                return (if next.is_ok() { next } else { last }, polls);
            }
            last = next;
        }
    }
}

fn progress_key(e: &Exposition) -> (Option<f64>, Option<f64>, Option<f64>) {
    let all = LabelFilter::new();
    (
        e.counter_sum(catalogue::REQUEST_SUCCESS, &all),
        e.counter_sum(catalogue::GENERATION_TOKENS, &all),
        e.counter_sum(catalogue::PROMPT_TOKENS, &all),
    )
}

/// Peaks of the gauges sampled during a burst.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaugePeaks {
    pub samples: u32,
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    /// A 0..1 fraction, as vLLM exports it.
    pub kv_cache_usage: Option<f64>,
}

impl GaugePeaks {
    pub fn observe(&mut self, snapshot: &Exposition, filter: &LabelFilter) {
        let (running, waiting, kv) = catalogue::gauges(snapshot, filter);
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        self.running = max(self.running, running);
        self.waiting = max(self.waiting, waiting);
        self.kv_cache_usage = max(self.kv_cache_usage, kv);
        self.samples += 1;
    }
}

/// Sample the gauges every `every` until `stop`; scrape failures are skipped.
pub async fn sample_gauges(
    client: MetricsClient,
    filter: LabelFilter,
    every: Duration,
    stop: CancellationToken,
) -> GaugePeaks {
    let mut peaks = GaugePeaks::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return peaks,
        }
        if let Ok(s) = client.scrape().await {
            peaks.observe(&s.exposition, &filter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_garbage_are_not_metrics() {
        let e = parse_body("u", "<!doctype html><html>".into(), "text/html".into(), 0.0).unwrap_err();
        assert!(e.to_string().contains("HTML"), "{e}");
        let e = parse_body("u", "%%% garbage {{{\n".into(), "text/plain".into(), 0.0).unwrap_err();
        assert!(e.to_string().contains("no metric family parsed"), "{e}");
        let e = parse_body("u", String::new(), "text/plain".into(), 0.0).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        assert!(parse_body("u", "up 1\n".into(), "text/plain".into(), 0.0).is_ok());
    }

    #[test]
    fn peaks_keep_the_maximum() {
        let mut p = GaugePeaks::default();
        let f = LabelFilter::new();
        p.observe(&promtext::parse("vllm:num_requests_running 3\nvllm:kv_cache_usage_perc 0.2\n"), &f);
        p.observe(
            &promtext::parse(
                "vllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.5\nvllm:num_requests_waiting 4\n",
            ),
            &f,
        );
        assert_eq!((p.running, p.waiting, p.kv_cache_usage, p.samples), (Some(3.0), Some(4.0), Some(0.5), 2));
    }
}
