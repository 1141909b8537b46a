//! The Docker Engine API, through bollard: find the server's container, read
//! its state, and fetch its log lines by their own timestamps. The only code
//! in the crate that talks to the engine.
//!
//! # Endpoints and least privilege
//!
//! Only `GET` requests, to four endpoints:
//! - `GET /version` (once, at `connect`: API version negotiation),
//! - `GET /containers/json?all=1` (`find_container` without a name),
//! - `GET /containers/{id}/json` (`find_container`, `state`),
//! - `GET /containers/{id}/logs?stdout=1&stderr=1&timestamps=1` with `tail=N`, `until=T` or `since=S`.
//!
//! Access to the Docker socket is root-equivalent on the host. Mounting it
//! read-only (`-v /var/run/docker.sock:/var/run/docker.sock:ro`) does NOT
//! limit that: `:ro` only stops the file itself from being replaced, every
//! API call, `POST /containers/create` included, still goes through. What
//! limits it is a socket proxy that forwards only `GET` on these endpoints,
//! e.g. tecnativa/docker-socket-proxy with `CONTAINERS=1` and `POST=0`
//! (or `VERSION=1`, the default), and `DOCKER_HOST=tcp://socket-proxy:2375`.
//! A 401/403 from such a proxy becomes `DockerError::Permission`.
//!
//! # Connection
//!
//! `DOCKER_HOST` as the docker CLI reads it (`unix://` default
//! `/var/run/docker.sock`, `tcp://`/`http://`); TLS (`DOCKER_TLS_VERIFY`,
//! `https://`), `ssh://` and docker contexts are not supported. The API
//! version is negotiated down to the engine's (bollard 0.21 speaks 1.53; the
//! engine tested here, Docker 20.10, speaks 1.41). Note: bollard 0.21 sends
//! its paths without a `/v1.xx` prefix (seen through a logging proxy), so the
//! engine answers in its own newest version whatever was negotiated; every
//! field read here is an old one, present in 1.41 (Docker 20.10).
//!
//! # Log windows
//!
//! The API's `since`/`until` take whole seconds (bollard: `i32`), so a window
//! is widened by a second each side and every line is filtered on the
//! RFC3339Nano timestamp the engine prefixes it with (`timestamps=1`). Lines are
//! reassembled per stream (`lines`: multiplexed frames, TTY output, Docker's
//! 16 KiB partial messages) and put back in timestamp order by a bounded
//! reorder buffer (`order`: the engine returns them in storage order, which
//! interleaves stdout and stderr slightly out of order). Since the engine has
//! no time index (`since` decodes the whole log), recent windows are first
//! fetched as a `tail`, which the engine reads from the end (see `window`).

mod error;
mod lines;
mod order;
mod select;

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, LogsOptions, LogsOptionsBuilder,
};
use futures_util::StreamExt;
use jiff::Timestamp;
use serde::Serialize;

pub use error::DockerError;
pub use select::TARGET_PORT_LABEL;

use error::classify;
use lines::Assembler;
use order::{REORDER_BYTES, REORDER_LINES, Reorder};
use select::Candidate;

/// Where the engine is when `DOCKER_HOST` is unset.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// Longest wait for the engine to start answering a request (bollard's default is 120 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence in the middle of a log response (the engine may decode a
/// long log for a while before the first line of a window).
const LOG_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Recent tails tried before reading a container's whole log (entries).
const FAST_TAILS: [usize; 3] = [2_000, 20_000, 200_000];
/// How much older than the window a tail's first entry must be, so that
/// lines stored slightly out of timestamp order cannot be cut off.
const TAIL_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);

/// Which output a line came from. A TTY container (`docker run -t`) has one
/// stream where stdout and stderr cannot be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    Console,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Console => "console",
        }
    }
}

/// One log line with the engine's timestamp for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimedLine {
    /// When the engine received the line (its first part, for a long line);
    /// `None` only if the engine sent no timestamp prefix.
    pub ts: Option<Timestamp>,
    pub stream: Stream,
    /// The line without the timestamp prefix and without the trailing `\n` / `\r\n`.
    pub text: String,
}

/// What the engine says about a container's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerState {
    pub running: bool,
    /// When the current (or last) run started; `None` if never started.
    pub started_at: Option<Timestamp>,
    /// Restarts by the restart policy (`docker restart` does not count: compare `started_at`).
    pub restart_count: i64,
    /// `created`, `running`, `restarting`, `exited`, `dead`, ...
    pub status: String,
    /// Exit code of the last run (meaningful when not running).
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
}

impl ContainerState {
    /// The container restarted or stopped since `before` was taken (a crash during a burst).
    pub fn restarted_since(&self, before: &ContainerState) -> bool {
        !self.running || self.started_at != before.started_at || self.restart_count != before.restart_count
    }
}

/// The container found to serve the target, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundContainer {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    /// e.g. "published port 8000", "--port 8011 in the command", "--container flag".
    pub rule: String,
    pub state: ContainerState,
}

/// What a log window fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WindowStats {
    /// Lines handed to the sink.
    pub delivered: u64,
    /// Lines read but outside `[from, to]` (the API can only narrow to whole seconds).
    pub outside: u64,
    /// Bytes of log payload read, timestamp prefixes included.
    pub bytes: u64,
    /// Lines the engine returned after a later-stamped line; put back in order.
    pub reordered: u64,
    /// Of those, lines that came too late for the reorder buffer and were
    /// delivered out of order (0 unless the engine's order is far off).
    pub late: u64,
    /// Lines longer than 1 MiB, cut there.
    pub truncated: u64,
    /// Lines without a timestamp prefix (placed at the time of the line before them).
    pub untimed: u64,
    /// No recent tail covered the window: the engine read the container's
    /// whole log (slow for long-lived containers; see `window`).
    pub full_scan: bool,
}

impl WindowStats {
    /// Another container's fetch of the same window (a fleet's), added.
    pub fn add(&mut self, other: &WindowStats) {
        self.delivered += other.delivered;
        self.outside += other.outside;
        self.bytes += other.bytes;
        self.reordered += other.reordered;
        self.late += other.late;
        self.truncated += other.truncated;
        self.untimed += other.untimed;
        self.full_scan |= other.full_scan;
    }
}

/// Which containers serve a target, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerSource {
    /// By name or id; more than one for a fleet (each a replica of the server).
    Named(Vec<String>),
    /// Every running container with this label (`key` or `key=value`, Docker's `label`
    /// filter), listed when a burst starts: a fleet that grows or shrinks is followed.
    Label(String),
}

impl ContainerSource {
    /// As shown (`check-config`, results).
    pub fn describe(&self) -> String {
        match self {
            ContainerSource::Named(names) => names.join(", "),
            ContainerSource::Label(label) => format!("label {label}"),
        }
    }
}

/// Containers a label selector may name in one burst (a fleet's replicas); more is refused.
pub const MAX_FLEET_CONTAINERS: usize = 64;

/// A connection to the Docker Engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerClient {
    docker: Docker,
    endpoint: String,
    engine_version: String,
    api_version: String,
}

impl DockerClient {
    /// Connects as the docker CLI would (`DOCKER_HOST`, default the unix
    /// socket) and negotiates the API version.
    pub async fn connect() -> Result<DockerClient, DockerError> {
        let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.trim().is_empty());
        let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        DockerClient::connect_to(host.as_deref().unwrap_or(DEFAULT_DOCKER_HOST), tls).await
    }

    /// Connects to `host` (`unix:///path`, `tcp://host:port`, `http://host:port`);
    /// `tls` is whether `DOCKER_TLS_VERIFY` asks for TLS.
    pub async fn connect_to(host: &str, tls: bool) -> Result<DockerClient, DockerError> {
        let endpoint = host.trim().to_string();
        let tcp = endpoint.starts_with("tcp://") || endpoint.starts_with("http://");
        if endpoint.starts_with("https://") || (tls && tcp) {
            return Err(DockerError::NoEngine(format!(
                "{endpoint} asks for TLS (DOCKER_TLS_VERIFY or https://), which this build does not speak; use the unix socket or a local socket proxy"
            )));
        }
        if !endpoint.starts_with("unix://") && !tcp {
            return Err(DockerError::NoEngine(format!(
                "DOCKER_HOST={endpoint} is not supported: use unix:///path/to/docker.sock or tcp://host:port"
            )));
        }
        let docker = Docker::connect_with_host(&endpoint)
            .map_err(|e| classify(&e, &endpoint, "connect"))?
            .with_timeout(REQUEST_TIMEOUT);
        let docker = docker.negotiate_version().await.map_err(|e| classify(&e, &endpoint, "GET /version"))?;
        let version = docker.version().await.map_err(|e| classify(&e, &endpoint, "GET /version"))?;
        Ok(DockerClient {
            docker,
            endpoint,
            engine_version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
        })
    }

    /// The address connected to (`unix:///var/run/docker.sock`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The engine's version (`20.10.24`), for reports.
    pub fn engine_version(&self) -> &str {
        &self.engine_version
    }

    /// The engine's API version (`1.41`).
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Finds the server's container: by `explicit` name or id if given, else
    /// by the rules in `select` (label, published port, `--port` in a
    /// host-network container's command, vLLM's default port, a vllm image).
    pub async fn find_container(
        &self,
        explicit: Option<&str>,
        target_port: u16,
    ) -> Result<FoundContainer, DockerError> {
        if let Some(name) = explicit {
            let info = self.inspect(name).await.map_err(|e| match e {
                DockerError::NotFound(_) => {
                    DockerError::NotFound(format!("no container named or with id {name:?} (--container)"))
                }
                other => other,
            })?;
            let found = found_from(&info, "--container flag".to_string());
            if !found.state.running {
                return Err(DockerError::NotRunning(format!(
                    "{} is {}{}",
                    found.name,
                    found.state.status,
                    exit(&found.state)
                )));
            }
            return Ok(found);
        }
        let options = ListContainersOptionsBuilder::new().all(true).build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| classify(&e, &self.endpoint, "GET /containers/json"))?;
        let candidates: Vec<Candidate> = list.iter().map(candidate).collect();
        let (index, rule) = select::select(&candidates, target_port)?;
        let info = self.inspect(&candidates[index].id).await?;
        Ok(found_from(&info, rule))
    }

    /// Every running container with `label` (`key` or `key=value`), by name: a fleet's
    /// replicas. None, or more than [`MAX_FLEET_CONTAINERS`], is an error that says so.
    pub async fn find_by_label(&self, label: &str) -> Result<Vec<FoundContainer>, DockerError> {
        let filters = HashMap::from([("label", vec![label]), ("status", vec!["running"])]);
        let options = ListContainersOptionsBuilder::new().filters(&filters).build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| classify(&e, &self.endpoint, "GET /containers/json"))?;
        let mut candidates: Vec<Candidate> = list.iter().map(candidate).collect();
        if candidates.is_empty() {
            return Err(DockerError::NotFound(format!(
                "no running container has the label {label:?} (container_label)"
            )));
        }
        if candidates.len() > MAX_FLEET_CONTAINERS {
            return Err(DockerError::NotFound(format!(
                "{} running containers have the label {label:?}: more than {MAX_FLEET_CONTAINERS}; narrow the label",
                candidates.len()
            )));
        }
        candidates.sort_by(|a, b| a.name.cmp(&b.name));
        let mut found = Vec::with_capacity(candidates.len());
        for c in candidates {
            let info = self.inspect(&c.id).await?;
            found.push(found_from(&info, format!("label {label}")));
        }
        Ok(found)
    }

    /// The container's current state.
    pub async fn state(&self, id: &str) -> Result<ContainerState, DockerError> {
        Ok(state_from(&self.inspect(id).await?))
    }

    /// The last `n` log entries of both streams, in timestamp order (as
    /// `docker logs --tail n --timestamps`). Docker counts each 16 KiB part of
    /// a long line as an entry, so the first line may be the end of one.
    pub async fn tail(&self, id: &str, n: usize) -> Result<Vec<TimedLine>, DockerError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let options = base_options().tail(&n.to_string()).build();
        let mut out = Vec::with_capacity(n.min(10_000));
        let mut reorder = Reorder::new(n.saturating_add(1), usize::MAX);
        let mut last: Option<Timestamp> = None;
        self.read_logs(id, options, None, |line| {
            let key = line.ts.or(last).unwrap_or(Timestamp::MIN);
            last = Some(key);
            reorder.push(key, line, &mut |l| out.push(l));
        })
        .await?;
        reorder.finish(&mut |l| out.push(l));
        Ok(out)
    }

    /// Every line with `from <= ts <= to`, in timestamp order, handed to
    /// `sink` one at a time (memory stays bounded for any window). Lines
    /// already delivered stay delivered if an error ends the fetch.
    ///
    /// The engine (json-file, local) has no time index: `since` makes it
    /// decode the container's whole log from the start, about 0.5 s per
    /// 100,000 lines here, so a server that has logged for days makes every
    /// window slow. `tail`, though, seeks from the end. So the recent tails
    /// (`FAST_TAILS` entries) are tried first: if the oldest entry of a tail
    /// is older than `from` by a margin, the tail holds the whole window (the
    /// decision is taken on the first entry, before anything is delivered, and
    /// a refused tail costs a few milliseconds). Otherwise the whole log is
    /// read with `since`/`until` (`WindowStats::full_scan`).
    pub async fn window(
        &self,
        id: &str,
        from: Timestamp,
        to: Timestamp,
        sink: &mut (dyn FnMut(TimedLine) + Send),
    ) -> Result<WindowStats, DockerError> {
        if from > to {
            return Ok(WindowStats::default());
        }
        let (since, until) = whole_seconds(from, to);
        if let Ok(gate) = from.checked_sub(TAIL_MARGIN) {
            for entries in FAST_TAILS {
                let options = base_options().tail(&entries.to_string()).until(until).build();
                if let Some(stats) = self.window_pass(id, options, from, to, Some(gate), sink).await? {
                    return Ok(stats);
                }
            }
        }
        let options = base_options().since(since).until(until).build();
        let stats = self.window_pass(id, options, from, to, None, sink).await?;
        Ok(WindowStats { full_scan: true, ..stats.unwrap_or_default() })
    }

    /// One logs request for a window; `None` when `gate` refused its first entry.
    async fn window_pass(
        &self,
        id: &str,
        options: LogsOptions,
        from: Timestamp,
        to: Timestamp,
        gate: Option<Timestamp>,
        sink: &mut (dyn FnMut(TimedLine) + Send),
    ) -> Result<Option<WindowStats>, DockerError> {
        let mut reorder = Reorder::new(REORDER_LINES, REORDER_BYTES);
        let mut last: Option<Timestamp> = None;
        let mut delivered = 0u64;
        let mut outside = 0u64;
        let read = self
            .read_logs(id, options, gate, |line| {
                let Some(key) = line.ts.or(last) else {
                    outside += 1;
                    return;
                };
                last = Some(key);
                if key < from || key > to {
                    outside += 1;
                    return;
                }
                reorder.push(key, line, &mut |l| {
                    delivered += 1;
                    sink(l);
                });
            })
            .await;
        reorder.finish(&mut |l| {
            delivered += 1;
            sink(l);
        });
        let Some(read) = read? else { return Ok(None) };
        Ok(Some(WindowStats {
            delivered,
            outside,
            bytes: read.bytes,
            reordered: reorder.reordered,
            late: reorder.late,
            truncated: read.truncated,
            untimed: read.untimed,
            full_scan: false,
        }))
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, DockerError> {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| classify(&e, &self.endpoint, &format!("GET /containers/{id}/json")))
    }

    /// Streams one logs response through the line assembler into `on_line`.
    /// With a `gate`, the response is abandoned (`None`) unless its first
    /// entry is stamped before the gate.
    async fn read_logs(
        &self,
        id: &str,
        options: LogsOptions,
        mut gate: Option<Timestamp>,
        mut on_line: impl FnMut(TimedLine),
    ) -> Result<Option<ReadCounts>, DockerError> {
        let what = format!("GET /containers/{id}/logs");
        let mut stream = self.docker.logs(id, Some(options));
        let mut asm = Assembler::default();
        let mut bytes = 0u64;
        loop {
            let next = tokio::time::timeout(LOG_IDLE_TIMEOUT, stream.next()).await.map_err(|_| {
                DockerError::Api(format!("{what}: the engine sent nothing for {} s", LOG_IDLE_TIMEOUT.as_secs()))
            })?;
            let Some(item) = next else { break };
            let output = item.map_err(|e| match classify(&e, &self.endpoint, &what) {
                DockerError::NotFound(_) => DockerError::NotFound(format!("container {id:?} no longer exists")),
                other => other,
            })?;
            if let Some(before) = gate.take() {
                let first = lines::parse_prefix(output.as_ref()).map(|(ts, _)| ts);
                if first.is_none_or(|ts| ts >= before) {
                    return Ok(None);
                }
            }
            match output {
                LogOutput::StdOut { message } => {
                    bytes += message.len() as u64;
                    asm.frame(Stream::Stdout, &message, &mut on_line);
                }
                LogOutput::StdErr { message } => {
                    bytes += message.len() as u64;
                    asm.frame(Stream::Stderr, &message, &mut on_line);
                }
                LogOutput::Console { message } => {
                    bytes += message.len() as u64;
                    asm.console(&message, &mut on_line);
                }
                LogOutput::StdIn { message } => bytes += message.len() as u64,
            }
        }
        asm.finish(&mut on_line);
        Ok(Some(ReadCounts { bytes, truncated: asm.truncated, untimed: asm.untimed }))
    }
}

struct ReadCounts {
    bytes: u64,
    truncated: u64,
    untimed: u64,
}

/// Both streams, timestamps on, no follow.
fn base_options() -> LogsOptionsBuilder {
    LogsOptionsBuilder::new().stdout(true).stderr(true).timestamps(true).follow(false)
}

/// The API's whole-second `since`/`until` covering `[from, to]` with a second
/// to spare each side; 0 (no limit) where `i32` cannot hold the value.
fn whole_seconds(from: Timestamp, to: Timestamp) -> (i32, i32) {
    let since = i32::try_from(from.as_second().saturating_sub(1)).map_or(0, |s| s.max(0));
    let until = i32::try_from(to.as_second().saturating_add(2)).unwrap_or(0).max(0);
    (since, until)
}

fn candidate(c: &bollard::models::ContainerSummary) -> Candidate {
    let mut published: Vec<u16> = c.ports.iter().flatten().filter_map(|p| p.public_port).collect();
    published.sort_unstable();
    published.dedup();
    let state = c.state.map(|s| s.to_string()).unwrap_or_default();
    Candidate {
        id: c.id.clone().unwrap_or_default(),
        name: c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| short_id(c.id.as_deref().unwrap_or_default())),
        image: c.image.clone().unwrap_or_default(),
        running: state == "running",
        state,
        host_network: c.host_config.as_ref().and_then(|h| h.network_mode.as_deref()) == Some("host"),
        published,
        port_label: label(c.labels.as_ref()),
        command: c.command.clone().unwrap_or_default(),
    }
}

fn label(labels: Option<&HashMap<String, String>>) -> Option<String> {
    labels.and_then(|l| l.get(TARGET_PORT_LABEL)).cloned()
}

fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

fn found_from(info: &ContainerInspectResponse, rule: String) -> FoundContainer {
    let id = info.id.clone().unwrap_or_default();
    FoundContainer {
        name: info.name.as_deref().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_else(|| short_id(&id)),
        image: info.config.as_ref().and_then(|c| c.image.clone()).or_else(|| info.image.clone()).unwrap_or_default(),
        id,
        rule,
        state: state_from(info),
    }
}

fn state_from(info: &ContainerInspectResponse) -> ContainerState {
    let s = info.state.as_ref();
    ContainerState {
        running: s.and_then(|s| s.running).unwrap_or(false),
        started_at: s.and_then(|s| s.started_at.as_deref()).and_then(parse_engine_time),
        restart_count: info.restart_count.unwrap_or(0),
        status: s.and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_default(),
        exit_code: s.and_then(|s| s.exit_code),
        oom_killed: s.and_then(|s| s.oom_killed).unwrap_or(false),
    }
}

/// The engine's RFC 3339 times; its zero time (`0001-01-01T00:00:00Z`) means "never".
fn parse_engine_time(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>().ok().filter(|t| *t > Timestamp::UNIX_EPOCH)
}

fn exit(state: &ContainerState) -> String {
    let mut s = String::new();
    if let Some(code) = state.exit_code.filter(|_| !state.running) {
        s.push_str(&format!(" (exit code {code}"));
        if state.oom_killed {
            s.push_str(", OOM-killed");
        }
        s.push(')');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn whole_seconds_widen_by_a_second_each_side() {
        let (since, until) = whole_seconds(ts("2026-01-01T00:00:10.7Z"), ts("2026-01-01T00:00:12.2Z"));
        let base = ts("2026-01-01T00:00:00Z").as_second();
        assert_eq!(i64::from(since), base + 9);
        assert_eq!(i64::from(until), base + 14);
        // After 2038 i32 cannot hold it: no limit rather than a wrong one.
        assert_eq!(whole_seconds(ts("2040-01-01T00:00:00Z"), ts("2040-01-01T00:00:01Z")), (0, 0));
    }

    #[test]
    fn engine_zero_time_is_none() {
        assert_eq!(parse_engine_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_engine_time("2026-11-23T07:25:43.956677287Z"), Some(ts("2026-11-23T07:25:43.956677287Z")));
    }

    #[test]
    fn restart_detection() {
        let before = ContainerState {
            running: true,
            started_at: Some(ts("2026-01-01T00:00:00Z")),
            restart_count: 0,
            status: "running".into(),
            exit_code: Some(0),
            oom_killed: false,
        };
        assert!(!before.restarted_since(&before));
        let restarted = ContainerState { started_at: Some(ts("2026-01-01T00:05:00Z")), ..before.clone() };
        assert!(restarted.restarted_since(&before));
        let by_policy = ContainerState { restart_count: 1, ..before.clone() };
        assert!(by_policy.restarted_since(&before));
        let dead = ContainerState { running: false, status: "exited".into(), exit_code: Some(137), ..before.clone() };
        assert!(dead.restarted_since(&before));
        assert_eq!(exit(&dead), " (exit code 137)");
    }

    #[tokio::test]
    async fn connect_explains_why_there_is_no_engine() {
        let label = |r: Result<DockerClient, DockerError>| r.map(|_| ()).map_err(|e| (e.as_label(), e.to_string()));
        let (kind, msg) =
            label(DockerClient::connect_to("unix:///nonexistent/docker.sock", false).await).err().unwrap_or_default();
        assert_eq!(kind, "no_engine");
        assert!(msg.contains("no socket at /nonexistent/docker.sock"), "{msg}");

        let refused = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        if let Ok(addr) = refused {
            // The listener is dropped: nothing listens on that port any more.
            let (kind, msg) =
                label(DockerClient::connect_to(&format!("tcp://{addr}"), false).await).err().unwrap_or_default();
            assert_eq!(kind, "no_engine", "{msg}");
        }
        for (host, tls) in [("ssh://user@host", false), ("tcp://127.0.0.1:2376", true), ("https://h:2376", false)] {
            let (kind, _) = label(DockerClient::connect_to(host, tls).await).err().unwrap_or_default();
            assert_eq!(kind, "no_engine", "{host}");
        }
    }

    #[test]
    fn futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        let client = DockerClient {
            docker: match Docker::connect_with_host(DEFAULT_DOCKER_HOST) {
                Ok(d) => d,
                Err(_) => return,
            },
            endpoint: String::new(),
            engine_version: String::new(),
            api_version: String::new(),
        };
        let mut sink = |_l: TimedLine| {};
        let fut = client.window("x", Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH, &mut sink);
        is_send(&fut);
        is_send(&client.tail("x", 1));
        is_send(&client.find_container(None, 1));
        is_send(&DockerClient::connect());
    }
}
