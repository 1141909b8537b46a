//! vLLM server log lines (as `docker logs` shows them) -> findings. Pure: no I/O, no clock.
//!
//! Formats (`vllm-facts.md` section c) differ by version and environment, so every pattern is
//! matched *anywhere* in a line after cleaning, never at a fixed column:
//! - ANSI colour (`\x1b[1;36m`), its ESC-less remnant (`[1;36m`, `^[[1;36m`) and `\r` are removed;
//! - `(APIServer pid=N) ` process prefixes (0.10.1+, before uvicorn lines up to 0.30), docker
//!   compose `name  | ` prefixes and docker `--timestamps` stamps are skipped;
//! - a vLLM record is `LEVEL MM-DD HH:MM:SS [file:line] message` (`file:line] ` up to 0.7);
//!   the `[file:line]` numbers change with every release and are never interpreted.
//!
//! [`parse_line`] classifies one line on its own. [`LogAnalyzer`] streams lines into
//! [`LogFindings`] with bounded memory and knows what one line cannot: which lines form one
//! error *event* (a traceback) and which un-prefixed `Traceback` lines belong to an error.
//! [`generation_throughput_over`] turns the periodic stats lines into a burst-window figure.

mod analyzer;
mod clean;
mod parse;
#[cfg(test)]
mod tests;
mod throughput;

use serde::{Deserialize, Serialize};

pub use analyzer::{
    AccessCounts, EngineStatsSummary, LogAnalyzer, LogFindings, LogLimits, OTHER_ENDPOINTS, ReceivedRequests,
    TimedEngineStats, analyze_fleet_text_with, analyze_text, analyze_text_with,
};
pub use clean::split_docker_timestamp;
pub use parse::parse_line;
pub use throughput::{WindowThroughput, generation_throughput_over};

/// One physical log line as collected: its Docker timestamp if known (RFC3339Nano prefix
/// already split off by the collector, or parsed by [`split_docker_timestamp`]), and the text.
///
/// Keep the trailing `\r` in `text` if the source has it: it marks a line of a multi-line vLLM
/// record that is followed by more lines of the same record (vLLM joins them with `\r\n`), which
/// is the most reliable way to tell one traceback from two errors logged in the same second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub ts: Option<jiff::Timestamp>,
    pub text: String,
}

impl LogLine {
    /// A line as `docker logs --timestamps` prints it; the stamp is optional.
    pub fn from_raw(raw: &str) -> LogLine {
        let (ts, text) = split_docker_timestamp(raw);
        LogLine { ts, text: text.to_string() }
    }
}

/// What one line is, judged on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A uvicorn access line (`INFO:     1.2.3.4:5 - "POST /v1/x HTTP/1.1" 200 OK`).
    Access(AccessLine),
    /// The periodic engine-stats line (`Avg prompt throughput: ...`).
    EngineStats(EngineStats),
    /// v0's second stats line `Prefix cache hit rate: GPU: x%, CPU: y%` (0.6+, prefix caching on).
    PrefixCacheHitRate { gpu_pct: f64, cpu_pct: f64 },
    /// A vLLM record at WARNING/ERROR/CRITICAL, or uvicorn's `ERROR:`/`WARNING:`/`CRITICAL:` line.
    /// `message` is the text after the record header.
    Log { level: Level, message: String },
    /// Anything else: INFO/DEBUG records, startup output, un-prefixed traceback lines (only
    /// [`LogAnalyzer`] can tell that those belong to an error), garbage.
    Other,
}

/// A uvicorn access line. Written when the response *starts*: for a streamed request at arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLine {
    /// `ip:port` as uvicorn prints it.
    pub client: String,
    pub method: String,
    /// The request path without the query string.
    pub path: String,
    pub status: u16,
}

/// The numbers of one periodic engine-stats line, any version.
///
/// Throughputs are averages over the log interval that ends with this line; running, waiting
/// and KV usage are snapshots; the v1 prefix cache hit rate is over the last 1000 requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    /// `Engine 001:` (v1 0.8.3+); `None` when the line has no engine prefix.
    pub engine: Option<u32>,
    /// `N Engines Aggregated:` (`--aggregate-engine-logging`, 0.11.1+).
    pub engines_aggregated: Option<u32>,
    /// Tokens/s.
    pub prompt_throughput: f64,
    /// Tokens/s.
    pub generation_throughput: f64,
    pub running: u64,
    /// v1 `Waiting`, v0 `Pending`.
    pub waiting: u64,
    /// v0 only.
    pub swapped: Option<u64>,
    /// Percent (0-100) of the first `<DEV> KV cache usage` part (v0: the GPU one).
    pub kv_cache_usage_pct: Option<f64>,
    /// `GPU`, `CPU`, `XPU`, `TPU`, ... (the device name vLLM prints since 0.30; `GPU` before).
    pub kv_device: Option<String>,
    /// Percent; v1 on the stats line, v0 from the separate `Prefix cache hit rate: GPU:` line.
    pub prefix_cache_hit_rate_pct: Option<f64>,
    /// `Preemptions: N` (0.11.1+, printed only when > 0 in the interval).
    pub preemptions: Option<u64>,
    /// Which replica of a fleet logged the line (its place in the target's container list);
    /// `None` for a single server. Set by the analyzer, never parsed from the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
}

/// One chain of consecutive stats intervals: an engine, or the aggregated line of all engines,
/// of one replica (the engine numbers of two replicas are two engines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Series {
    Engine { replica: Option<u32>, engine: Option<u32> },
    Aggregated { replica: Option<u32> },
}

impl EngineStats {
    /// Which chain of intervals this line closes.
    fn series(&self) -> Series {
        match self.engines_aggregated {
            Some(_) => Series::Aggregated { replica: self.replica },
            None => Series::Engine { replica: self.replica, engine: self.engine },
        }
    }
}

/// The line that opens one container's part of a fleet's saved log window
/// (`container_logs.txt`), like `tail`'s header between files.
pub fn replica_header(container: &str) -> String {
    format!("==> container {container} <==")
}

/// The container a [`replica_header`] line names.
pub fn parse_replica_header(line: &str) -> Option<&str> {
    line.strip_prefix("==> container ")?.strip_suffix(" <==")
}

/// Levels worth reporting. INFO and DEBUG records are [`Parsed::Other`] unless they are
/// access or stats lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Critical,
}

impl Level {
    fn from_token(token: &str) -> Option<Level> {
        match token {
            "ERROR" => Some(Level::Error),
            "WARNING" => Some(Level::Warning),
            "CRITICAL" => Some(Level::Critical),
            _ => None,
        }
    }

    /// Errors and criticals are counted together as errors.
    pub fn is_error(self) -> bool {
        matches!(self, Level::Error | Level::Critical)
    }
}
