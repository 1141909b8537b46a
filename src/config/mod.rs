//! Configuration of the daemon (`llm-loadtest serve --config FILE`).
//!
//! A TOML file (see `config/example.toml`, every key with its default) with
//! environment overrides `LLM_LOADTEST__SECTION__KEY=value`, e.g.
//! `LLM_LOADTEST__TARGETS__SIM__WORKLOAD__CONCURRENCY=3` (see [`env`] for how
//! a variable finds a case-sensitive target name). Strict: an unknown key
//! anywhere is an error (typos do not silently fall back to defaults), and
//! every problem of a file is reported at once, each naming its key, e.g.
//! `targets.llama.workload.concurrency: must be at least 1`.
//!
//! Reading happens in three steps: config-rs parses the file and the
//! environment into value trees ([`load_from_str`]), a strict walker turns the
//! merged tree into a [`Config`] (every bad or unknown key is one problem),
//! and [`Config::check`] applies the rules between values. [`load`] also
//! checks that the files the config names (token file, datasets, ...) are
//! readable.

mod check;
pub mod env;
mod parse;
mod walk;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::workload::{DEFAULT_CONCURRENCY, DEFAULT_REQUESTS, MAX_DURATION, Workload};
pub use env::{ENV_PREFIX, env_segment, env_var};

use crate::docker::ContainerSource;
use crate::server::MetricsSource;
use walk::{Problem, Problems};

/// Default `listen`: loopback only, on the port registered for this exporter.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);
/// Default `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// The shortest schedule interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest target name: names become metric label values and URL path segments.
pub const MAX_TARGET_NAME: usize = 64;

/// The daemon's whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `listen` (default `"127.0.0.1:9464"`): address of /metrics, the API and the status page.
    pub listen: SocketAddr,
    /// `data_dir` (default `"./data"`, relative to the working directory): run history.
    pub data_dir: PathBuf,
    /// `[history]`: how much run history to keep.
    pub history: HistoryConfig,
    /// `[auth]`: the bearer token of the trigger API.
    pub auth: AuthConfig,
    /// `[workers]`: the bearer token workers (`llm-loadtest worker`) authenticate with; without
    /// it the daemon takes no workers.
    pub workers: Option<AuthConfig>,
    /// `[limits]`: the most a trigger body may ask for.
    pub limits: TriggerLimits,
    /// `[otlp] receiver` (default none): one OTLP trace receiver (gRPC and HTTP, e.g.
    /// `"0.0.0.0:4317"`) shared by every target; vLLM's spans are routed to the burst whose
    /// request ids they carry.
    pub otlp_receiver: Option<SocketAddr>,
    /// `[otlp] endpoint` (default none): where the daemon exports its own spans (each run,
    /// its phases and requests) over OTLP; `--otlp-endpoint` and the standard
    /// `OTEL_EXPORTER_OTLP_*` variables also turn it on (see `telemetry`).
    pub otlp_endpoint: Option<url::Url>,
    /// `allow_parallel_targets` (default false): whether bursts on different targets may overlap.
    /// Off, bursts run one at a time daemon-wide, so they never compete for the client's CPU or
    /// for a GPU two targets share. A target never runs two bursts at once either way.
    pub allow_parallel_targets: bool,
    /// `log_format` (default `"text"`): `"text"` or `"json"` log lines on stderr.
    pub log_format: LogFormat,
    /// `[targets.NAME]`, sorted by name.
    pub targets: Vec<TargetConfig>,
}

impl Default for Config {
    /// Every default, and no target (so not a valid config by itself).
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            history: HistoryConfig::default(),
            auth: AuthConfig::default(),
            workers: None,
            limits: TriggerLimits::default(),
            otlp_receiver: None,
            otlp_endpoint: None,
            allow_parallel_targets: false,
            log_format: LogFormat::Text,
            targets: Vec::new(),
        }
    }
}

/// One server to load.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// The key of `[targets.NAME]`: `[A-Za-z0-9_.-]{1,64}`; a metric label value and a URL path segment.
    pub name: String,
    /// `url` (required): base URL of the OpenAI-compatible server, e.g. `http://127.0.0.1:8000`.
    pub url: url::Url,
    /// `model` (required): the model name as the server serves it.
    pub model: String,
    /// `metrics_url`: the server's Prometheus endpoint, or a list of them (every replica of a
    /// fleet, summed); or `metrics_dns`: a URL whose host is resolved to every replica's address
    /// at each burst (a headless Service). Default `URL/metrics`.
    pub metrics: Option<MetricsSource>,
    /// `container`: Docker container name or id of the server, for the log cross-check, or a
    /// list of them (a fleet's replicas, judged together); or `container_label`: every running
    /// container with this Docker label (`key` or `key=value`) when a burst starts. Default:
    /// the container serving the target's port, when one is found.
    pub container: Option<ContainerSource>,
    /// `api_key_file`: file whose first line is the API key sent to the target. Default none.
    pub api_key_file: Option<PathBuf>,
    /// `skip_validation` (default false): measure the client only; no /metrics, no logs.
    pub skip_validation: bool,
    /// `workers`: run each burst on this many connected workers (`llm-loadtest worker`), each
    /// its share of the plan, the server observed once around them all. Default none: the
    /// daemon sends the load itself.
    pub workers: Option<u32>,
    /// `[targets.NAME.workload]` (over `[defaults.workload]`).
    pub workload: Workload,
    /// `[targets.NAME.tolerances]` (over `[defaults.tolerances]`).
    pub tolerances: crate::validate::Tolerances,
    /// `[targets.NAME.schedule]`: none means the target runs only when triggered.
    pub schedule: Option<Schedule>,
}

/// When a target runs by itself.
///
/// Ticks are `interval` apart, each delayed by a random amount in
/// `[0, jitter]`, so several daemons (or targets) do not fire in step. A tick
/// that comes while the target's previous burst is still running (or while
/// another target's burst holds the daemon, without `allow_parallel_targets`)
/// is skipped, not queued: the next burst starts at the next tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// `interval` (required, at least `"1s"`; longer than `workload.duration`).
    pub interval: Duration,
    /// `jitter` (default `"0s"`; less than `interval`).
    pub jitter: Duration,
}

/// Run history retention (per target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// `max_runs` (default 500): runs kept per target; older ones are deleted.
    pub max_runs: u32,
    /// `max_age` (default `"30d"`): runs older than this are deleted.
    pub max_age: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { max_runs: 500, max_age: Duration::from_secs(30 * 24 * 3600) }
    }
}

/// The bearer token of the trigger API (`Authorization: Bearer TOKEN`).
/// Without either key the API accepts triggers from anyone who can reach
/// `listen` (see [`Config::warnings`]). Debug never shows the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// `token`: the token itself (prefer `token_file` or the environment).
    pub token: Option<String>,
    /// `token_file`: a file whose first line is the token; read at load and by [`AuthConfig::read_token`].
    pub token_file: Option<PathBuf>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl AuthConfig {
    /// The token: `token`, else the first line of `token_file` (trimmed), else none.
    pub fn read_token(&self) -> Result<Option<String>, String> {
        if let Some(t) = &self.token {
            return Ok(Some(t.trim().to_owned()));
        }
        let Some(path) = &self.token_file else { return Ok(None) };
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_owned();
        if token.is_empty() {
            return Err(format!("{} is empty; its first line must be the token", path.display()));
        }
        Ok(Some(token))
    }

    pub fn is_enabled(&self) -> bool {
        self.token.is_some() || self.token_file.is_some()
    }
}

/// The most a trigger body (`POST /api/v1/targets/{t}/runs`) may ask for;
/// a body over a limit is refused (400), never clamped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TriggerLimits {
    /// `max_requests` (default 10000).
    pub max_requests: u64,
    /// `max_duration` (default `"10m"`).
    pub max_duration: Duration,
    /// `max_concurrency` (default 256).
    pub max_concurrency: u32,
    /// `max_rate` (default 1000 requests/s).
    pub max_rate: f64,
    /// `max_tokens` (default 4096): the largest `max_tokens` per request.
    pub max_tokens: u32,
}

impl Default for TriggerLimits {
    fn default() -> Self {
        TriggerLimits {
            max_requests: 10_000,
            max_duration: Duration::from_secs(600),
            max_concurrency: 256,
            max_rate: 1000.0,
            max_tokens: 4096,
        }
    }
}

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every problem of a configuration, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct ConfigError(pub Vec<String>);

impl ConfigError {
    pub fn problems(&self) -> &[String] {
        &self.0
    }
}

fn render(problems: &[String]) -> String {
    match problems {
        [] => "invalid configuration".to_owned(),
        [one] => format!("invalid configuration: {one}"),
        many => {
            let mut s = format!("invalid configuration ({} problems):", many.len());
            for p in many {
                s.push_str("\n  - ");
                s.push_str(p);
            }
            s
        }
    }
}

/// Read `path` and the `LLM_LOADTEST__*` environment variables, then check
/// everything (including that the files the config names can be read).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(vec![format!("cannot read the config file {}: {e}", path.display())]))?;
    load_inner(&text, None)
}

/// [`load`] from a string, with `env` in place of the process environment
/// (only its `LLM_LOADTEST__*` entries are read).
pub fn load_from_str(toml: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    load_inner(toml, Some(env))
}

fn load_inner(toml: &str, env: Option<&[(String, String)]>) -> Result<Config, ConfigError> {
    let mut p = Problems::default();
    let file = config::Config::builder()
        .add_source(config::File::from_str(toml, config::FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError(vec![format!("not valid TOML: {}", e.to_string().trim_end())]))?;
    let mut root = walk::into_table(file.cache);
    match env::collect(env) {
        Ok(vars) => env::merge(&mut root, vars, &mut p),
        Err(problem) => p.push(problem),
    }
    let parsed = parse::config(root, &mut p);
    let config = parsed.config;
    let mut rules = check::config(&config);
    if let Some(w) = &parsed.default_workload {
        check::workload("defaults.workload", w, &mut rules);
    }
    if let Some(t) = &parsed.default_tolerances {
        check::tolerances("defaults.tolerances", t, &mut rules);
    }
    rules.extend(check::files(&config));
    let rules: Vec<Problem> = rules.into_iter().filter(|r| !p.suppresses(r)).collect();
    p.list.extend(rules);
    if p.list.is_empty() { Ok(config) } else { Err(ConfigError(finish(p))) }
}

/// "key: message" lines, each once, naming the variable when the value came
/// from the environment.
fn finish(p: Problems) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for problem in &p.list {
        let mut line = if problem.key.is_empty() {
            problem.message.clone()
        } else {
            format!("{}: {}", problem.key, problem.message)
        };
        if let Some(var) = p.from_env.get(&problem.key)
            && !line.contains(var.as_str())
        {
            line.push_str(&format!(" (from {var})"));
        }
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

impl Config {
    /// The rules between values (ranges, exclusive keys, names). Pure: the
    /// files the config names are checked by [`load`].
    pub fn check(&self) -> Result<(), ConfigError> {
        let problems = check::config(self);
        if problems.is_empty() {
            return Ok(());
        }
        let lines = problems.into_iter().map(|p| format!("{}: {}", p.key, p.message)).collect::<Vec<_>>();
        let mut unique = Vec::new();
        for l in lines {
            if !unique.contains(&l) {
                unique.push(l);
            }
        }
        Err(ConfigError(unique))
    }

    /// The target named exactly `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// Valid but risky settings, for the daemon to log at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.listen.ip().is_loopback() && !self.auth.is_enabled() {
            w.push(format!(
                "listen = {} is reachable from other hosts and [auth] has no token: anyone who can reach it \
                 can trigger load bursts",
                self.listen
            ));
        }
        w
    }
}

impl TargetConfig {
    /// The /metrics to cross-check with, as shown: `metrics_url` or `metrics_dns`, else
    /// `url` + `/metrics` (after a trailing `/v1`), none with `skip_validation`.
    pub fn effective_metrics_url(&self) -> Option<String> {
        if self.skip_validation {
            return None;
        }
        match &self.metrics {
            Some(source) => Some(source.describe()),
            None => {
                let s = self.url.as_str().trim_end_matches('/');
                Some(format!("{}/metrics", s.strip_suffix("/v1").unwrap_or(s)))
            }
        }
    }
}

/// The text of `config/demo.toml`, the configuration of `serve --demo`.
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

/// The `serve --demo` configuration with its one target pointed at the
/// simulator at `sim_url` serving `model`.
pub fn demo(sim_url: &url::Url, model: &str) -> Result<Config, ConfigError> {
    let mut config = load_from_str(DEMO_TOML, &[])?;
    for t in &mut config.targets {
        t.url = sim_url.clone();
        t.model = model.to_owned();
    }
    config.check()?;
    Ok(config)
}
