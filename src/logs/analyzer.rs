//! Streaming accumulation of a whole log window into [`LogFindings`] with bounded memory.
//!
//! What counts as what (`lines` is always the sum of the counts below it):
//! - `access.total`: uvicorn access lines; `engine_stats_lines`: stats lines; `prefix_cache_lines`:
//!   v0's second stats line (`Prefix cache hit rate: GPU: x%, CPU: y%`);
//! - `error_lines` / `warning_lines`: every line of an error / warning *event*. An event is one
//!   vLLM record (a multi-line record such as a traceback repeats the same
//!   `(proc pid=N) LEVEL MM-DD HH:MM:SS [file:line]` header on every line), or one uvicorn / Python
//!   `ERROR:` line, plus the un-prefixed `Traceback (most recent call last):` block that directly
//!   follows it. Those un-prefixed traceback lines are counted as error lines too: they are the
//!   same record, vLLM's own tracebacks show every line as an ERROR line, and counting them keeps
//!   `error_lines` comparable across both kinds. An un-prefixed traceback that follows no error
//!   (a crashed process printing to stderr) is an error event of its own. CRITICAL counts as error;
//!   Python `warnings.warn` output (`file.py:1: DeprecationWarning: ...`) is not a warning line;
//! - `unparsed_lines`: the rest (INFO/DEBUG records, startup output, blank lines, garbage).
//!   vLLM's `Received request <id>: ...` INFO lines (`--enable-log-requests`) are among them and
//!   also counted in `received`, by id when the analyzer knows the burst's request-id prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::clean::clean;
use super::parse::{Kind, RecordHeader, classify};
use super::{EngineStats, Level, LogLine, Series};

/// Memory bounds of a [`LogAnalyzer`]. A window can hold millions of lines; everything beyond a
/// bound is still counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLimits {
    /// Stats lines kept with their numbers (the first ones; at vLLM's 10 s cadence, 10 000 lines
    /// of one engine are 28 hours). Later ones count in `engine_stats_dropped`.
    pub max_engine_stats: usize,
    /// Messages kept in `first_errors` and in `first_warnings`, each.
    pub max_messages: usize,
    /// Characters kept of each message.
    pub max_message_chars: usize,
    /// Distinct `METHOD path` keys in `access.by_endpoint`; later ones go to [`OTHER_ENDPOINTS`].
    pub max_endpoints: usize,
    /// Request indices of ours kept in `received.ours`; later ones count in `ours_over_limit`.
    pub max_request_ids: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_engine_stats: 10_000,
            max_messages: 5,
            max_message_chars: 300,
            max_endpoints: 200,
            // As many as the OTLP receiver keeps spans of one burst.
            max_request_ids: 200_000,
        }
    }
}

/// vLLM's `Received request <id>: ...` lines of the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedRequests {
    /// Every such line, of any client.
    pub lines: u64,
    /// The burst's request indices these lines name, each once (only with a request-id prefix).
    pub ours: BTreeSet<u64>,
    /// Lines naming an index of ours already seen.
    pub ours_repeated: u64,
    /// Indices of ours beyond [`LogLimits::max_request_ids`] (counted, not kept).
    pub ours_over_limit: u64,
}

impl ReceivedRequests {
    /// Lines of other clients' requests (all of them without a prefix).
    pub fn others(&self) -> u64 {
        self.lines - self.ours.len() as u64 - self.ours_repeated - self.ours_over_limit
    }
}

/// The `by_endpoint` key that collects endpoints beyond [`LogLimits::max_endpoints`] (scanners
/// probing random paths must not grow memory).
pub const OTHER_ENDPOINTS: &str = "(other endpoints)";
/// Series accumulators kept for the summary (engine numbers come from the text, so garbage could
/// invent many).
const MAX_SERIES: usize = 1024;

/// Access lines by status and by `METHOD path` (query string removed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCounts {
    pub total: u64,
    /// `"200" -> n`.
    pub by_status: BTreeMap<String, u64>,
    /// `"POST /v1/chat/completions" -> {"200" -> n}`.
    pub by_endpoint: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A stats line and the Docker timestamp of its line (the vLLM timestamp has no year and no
/// sub-second part, so it is not used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedEngineStats {
    pub ts: Option<Timestamp>,
    pub stats: EngineStats,
}

/// Figures over *all* stats lines, including those beyond [`LogLimits::max_engine_stats`].
/// `None` where there is no data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStatsSummary {
    pub lines: u64,
    /// Distinct engines (`Engine 000`, `Engine 001`, ...; a line without prefix is one engine),
    /// or the largest `N Engines Aggregated`.
    pub engines: Option<u32>,
    /// Server-wide tokens/s: each engine's mean over its lines, summed over engines.
    pub mean_generation_throughput: Option<f64>,
    /// Same for prompt tokens/s.
    pub mean_prompt_throughput: Option<f64>,
    /// Largest value on any one line (per engine, not summed across engines).
    pub peak_running: Option<u64>,
    pub peak_waiting: Option<u64>,
    pub peak_kv_cache_usage_pct: Option<f64>,
    /// The last value logged (v1: over the last 1000 requests; v0: GPU).
    pub last_prefix_cache_hit_rate_pct: Option<f64>,
}

/// Everything one log window says. See the module documentation for what counts as what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFindings {
    pub lines: u64,
    /// Lines that are not access, stats, error or warning lines (counted only).
    pub unparsed_lines: u64,
    pub access: AccessCounts,
    /// The first [`LogLimits::max_engine_stats`] stats lines, in log order.
    pub engine_stats: Vec<TimedEngineStats>,
    /// Stats lines beyond the bound (counted in the summary, not kept).
    pub engine_stats_dropped: u64,
    pub engine_stats_summary: EngineStatsSummary,
    pub prefix_cache_lines: u64,
    pub error_lines: u64,
    pub error_events: u64,
    pub warning_lines: u64,
    pub warning_events: u64,
    /// First line of the first error events (with the final exception line of a traceback
    /// appended after ` | `), truncated.
    pub first_errors: Vec<String>,
    pub first_warnings: Vec<String>,
    /// Earliest and latest Docker timestamp seen (stdout and stderr lines can be out of order).
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    #[serde(default)]
    pub received: ReceivedRequests,
}

impl LogFindings {
    /// The shape `llm-loadtest inspect logs --json` prints:
    /// `{"access": {"total", "by_status", "by_endpoint"}, "engine_stats": {"lines", "engines",
    /// "mean_generation_throughput", "mean_prompt_throughput", "peak_running", "peak_waiting",
    /// "peak_kv_cache_usage_pct", "last_prefix_cache_hit_rate_pct"}, "error_lines",
    /// "error_events", "warning_lines"}`, `null` for figures with no data.
    pub fn summary_json(&self) -> serde_json::Value {
        let s = &self.engine_stats_summary;
        json!({
            "access": {
                "total": self.access.total,
                "by_status": self.access.by_status,
                "by_endpoint": self.access.by_endpoint,
            },
            "engine_stats": {
                "lines": s.lines,
                "engines": s.engines,
                "mean_generation_throughput": s.mean_generation_throughput,
                "mean_prompt_throughput": s.mean_prompt_throughput,
                "peak_running": s.peak_running,
                "peak_waiting": s.peak_waiting,
                "peak_kv_cache_usage_pct": s.peak_kv_cache_usage_pct,
                "last_prefix_cache_hit_rate_pct": s.last_prefix_cache_hit_rate_pct,
            },
            "error_lines": self.error_lines,
            "error_events": self.error_events,
            "warning_lines": self.warning_lines,
        })
    }
}

/// `Received request <id>: params: ...` (0.11.1+) or `Received request <id>: prompt: ...`: the id.
fn received_request_id(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Received request ")?;
    let id = &rest[..rest.find([':', ' ', ',']).unwrap_or(rest.len())];
    (!id.is_empty()).then_some(id)
}

/// Analyzes a whole log text (lines split on `\n`, `\r` kept, docker timestamps honoured).
pub fn analyze_text(text: &str) -> LogFindings {
    analyze_text_with(text, LogAnalyzer::new())
}

/// [`analyze_text`] with a prepared analyzer (say, [`LogAnalyzer::with_request_id_prefix`]).
pub fn analyze_text_with(text: &str, mut analyzer: LogAnalyzer) -> LogFindings {
    let text = text.strip_suffix('\n').unwrap_or(text);
    for line in text.split('\n') {
        analyzer.feed_str(None, line);
    }
    analyzer.finish()
}

/// A fleet's saved window ([`super::replica_header`] before each container's lines): each part
/// is analysed as its own replica, into one set of findings.
pub fn analyze_fleet_text_with(text: &str, mut analyzer: LogAnalyzer) -> LogFindings {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut replica = 0;
    for line in text.split('\n') {
        if super::parse_replica_header(line).is_some() {
            analyzer.start_replica(replica);
            replica += 1;
        } else {
            analyzer.feed_str(None, line);
        }
    }
    analyzer.finish()
}

/// Streaming accumulator: counts everything, keeps only what [`LogLimits`] allows.
#[derive(Debug, Clone)]
pub struct LogAnalyzer {
    limits: LogLimits,
    findings: LogFindings,
    by_status: BTreeMap<u16, u64>,
    by_endpoint: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Reused buffer for the `METHOD path` key.
    endpoint_key: String,
    series: BTreeMap<Series, SeriesTotals>,
    stats_peaks: EngineStatsSummary,
    largest_aggregation: Option<u32>,
    /// Whether the previous stats line is the last one in `findings.engine_stats`.
    last_stats_kept: bool,
    event: Option<OpenEvent>,
    /// A record line ending in `\r` was seen: this log keeps vLLM's `\r\n` joins, so a record
    /// line without `\r` is the last line of its record.
    log_keeps_cr: bool,
    /// The burst's X-Request-Id prefix ([`crate::traces::request_id_prefix`]), when known.
    request_id_prefix: Option<String>,
    /// The fleet replica whose lines are being fed ([`LogAnalyzer::start_replica`]).
    replica: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default)]
struct SeriesTotals {
    lines: u64,
    generation: f64,
    prompt: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventClass {
    Error,
    Warning,
}

impl From<Level> for EventClass {
    fn from(level: Level) -> Self {
        if level.is_error() { EventClass::Error } else { EventClass::Warning }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventSource {
    /// A vLLM record, identified by a hash of its header.
    Record(u64),
    /// uvicorn's / Python's `ERROR:` line or a bare traceback.
    Unheaded,
}

/// Where we are inside a Python traceback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trace {
    None,
    /// After `Traceback (most recent call last):`, before the exception line.
    Frames,
    /// After the exception line: only blank lines, indented message lines and a chained
    /// traceback (`During handling of the above exception ...`) continue.
    AfterException,
}

#[derive(Debug, Clone)]
struct OpenEvent {
    class: EventClass,
    source: EventSource,
    /// The last record line ended with `\r`: more lines of this record follow.
    awaiting_record_line: bool,
    trace: Trace,
    /// Index of this event's message in `first_errors` / `first_warnings`, and its first line.
    slot: Option<(usize, String)>,
}

/// The shape of one line of a traceback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceLine {
    Start,
    Chain,
    Indented,
    Blank,
    /// `pkg.module.SomeError: message` or a bare `KeyboardInterrupt`.
    Exception,
    Text,
}

impl TraceLine {
    fn of(text: &str) -> TraceLine {
        if text.trim().is_empty() {
            TraceLine::Blank
        } else if is_traceback_start(text) {
            TraceLine::Start
        } else if text.starts_with(' ') || text.starts_with('\t') {
            TraceLine::Indented
        } else if text.starts_with("During handling of the above exception")
            || text.starts_with("The above exception was the direct cause")
        {
            TraceLine::Chain
        } else if looks_like_exception(text) {
            TraceLine::Exception
        } else {
            TraceLine::Text
        }
    }
}

/// `Traceback (most recent call last):`, also indented or as Python 3.11's
/// `  + Exception Group Traceback (most recent call last):`.
fn is_traceback_start(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("Traceback (most recent call last):")
        || text.starts_with("+ Exception Group Traceback (most recent call last):")
}

/// A dotted identifier followed by `:` or by nothing.
fn looks_like_exception(text: &str) -> bool {
    let name_len = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(text.len());
    let starts_like_name = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    starts_like_name && (name_len == text.len() || text[name_len..].starts_with(':'))
}

impl Trace {
    /// The state after `line`, or `None` when `line` cannot continue a traceback in this state.
    fn step(self, line: TraceLine) -> Option<Trace> {
        match (line, self) {
            (TraceLine::Start, _) => Some(Trace::Frames),
            (TraceLine::Indented | TraceLine::Blank, Trace::Frames | Trace::AfterException) => Some(self),
            (TraceLine::Chain, Trace::Frames | Trace::AfterException) => Some(Trace::AfterException),
            (TraceLine::Exception, Trace::Frames) => Some(Trace::AfterException),
            _ => None,
        }
    }
}

impl Default for LogAnalyzer {
    fn default() -> Self {
        LogAnalyzer::new()
    }
}

impl LogAnalyzer {
    pub fn new() -> Self {
        LogAnalyzer::with_limits(LogLimits::default())
    }

    pub fn with_limits(limits: LogLimits) -> Self {
        LogAnalyzer {
            limits,
            findings: LogFindings::default(),
            by_status: BTreeMap::new(),
            by_endpoint: BTreeMap::new(),
            endpoint_key: String::new(),
            series: BTreeMap::new(),
            stats_peaks: EngineStatsSummary::default(),
            largest_aggregation: None,
            last_stats_kept: false,
            event: None,
            log_keeps_cr: false,
            request_id_prefix: None,
            replica: None,
        }
    }

    /// Counts the `Received request` lines of the burst whose request ids start with `prefix`
    /// by request index; the other ones are other clients'.
    pub fn with_request_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.request_id_prefix = Some(prefix.into());
        self
    }

    /// Feeds one collected line. Without `ts`, a docker timestamp at the start of the text is used.
    pub fn feed(&mut self, line: &LogLine) {
        self.feed_str(line.ts, &line.text);
    }

    /// [`LogAnalyzer::feed`] without building a [`LogLine`].
    pub fn feed_str(&mut self, ts: Option<Timestamp>, text: &str) {
        let (ts, text) = match ts {
            Some(ts) => (Some(ts), text),
            None => super::split_docker_timestamp(text),
        };
        self.findings.lines += 1;
        if let Some(ts) = ts {
            let f = &mut self.findings;
            f.first_ts = Some(f.first_ts.map_or(ts, |first| first.min(ts)));
            f.last_ts = Some(f.last_ts.map_or(ts, |last| last.max(ts)));
        }
        let line = clean(text);
        match classify(&line.text) {
            Kind::Access { method, path, status, .. } => {
                self.pass_through();
                self.count_access(method, path, status);
            }
            Kind::Stats(stats) => {
                self.pass_through();
                self.count_stats(ts, stats);
            }
            Kind::V0PrefixCache { gpu_pct, .. } => {
                self.pass_through();
                self.count_v0_prefix_cache(gpu_pct);
            }
            Kind::Record { level: None, message, .. } => {
                self.log_keeps_cr |= line.ends_with_cr;
                self.pass_through();
                self.findings.unparsed_lines += 1;
                if let Some(id) = received_request_id(message) {
                    self.count_received(id);
                }
            }
            Kind::Record { level: Some(level), header, message } => {
                self.record_line(level, header, message, line.ends_with_cr);
                self.log_keeps_cr |= line.ends_with_cr;
            }
            Kind::Unheaded { level, message } => {
                self.start_event(level.into(), EventSource::Unheaded, message, TraceLine::of(message), false);
            }
            Kind::Other { body } => self.unheaded_line(body),
        }
    }

    /// The lines fed from now on are another replica's (the next container of a fleet): its
    /// stats lines are its own engines' intervals, and an event open in the previous
    /// container's log ends there.
    pub fn start_replica(&mut self, replica: u32) {
        self.replica = Some(replica);
        self.event = None;
        self.log_keeps_cr = false;
        self.last_stats_kept = false;
    }

    pub fn finish(self) -> LogFindings {
        let mut findings = self.findings;
        findings.access.by_status = self.by_status.iter().map(|(status, n)| (status.to_string(), *n)).collect();
        findings.access.by_endpoint = self
            .by_endpoint
            .into_iter()
            .map(|(endpoint, statuses)| (endpoint, statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect()))
            .collect();
        let summary = &mut findings.engine_stats_summary;
        if summary.lines > 0 {
            let engines =
                u32::try_from(self.series.keys().filter(|s| !matches!(s, Series::Aggregated { .. })).count()).ok();
            summary.engines = engines.max(self.largest_aggregation);
            let mean = |value: fn(&SeriesTotals) -> f64| {
                self.series.values().filter(|t| t.lines > 0).map(|t| value(t) / t.lines as f64).sum::<f64>()
            };
            summary.mean_generation_throughput = Some(mean(|t| t.generation));
            summary.mean_prompt_throughput = Some(mean(|t| t.prompt));
            summary.peak_running = self.stats_peaks.peak_running;
            summary.peak_waiting = self.stats_peaks.peak_waiting;
            summary.peak_kv_cache_usage_pct = self.stats_peaks.peak_kv_cache_usage_pct;
        }
        summary.last_prefix_cache_hit_rate_pct = self.stats_peaks.last_prefix_cache_hit_rate_pct;
        findings
    }

    fn count_received(&mut self, id: &str) {
        let received = &mut self.findings.received;
        received.lines += 1;
        let Some(index) = self.request_id_prefix.as_deref().and_then(|p| crate::traces::request_index(id, p)) else {
            return;
        };
        if received.ours.contains(&index) {
            received.ours_repeated += 1;
        } else if received.ours.len() < self.limits.max_request_ids {
            received.ours.insert(index);
        } else {
            received.ours_over_limit += 1;
        }
    }

    fn count_access(&mut self, method: &str, path: &str, status: u16) {
        let access = &mut self.findings.access;
        access.total += 1;
        *self.by_status.entry(status).or_default() += 1;
        let key = &mut self.endpoint_key;
        key.clear();
        key.push_str(method);
        key.push(' ');
        key.push_str(truncate(path, self.limits.max_message_chars));
        if let Some(statuses) = self.by_endpoint.get_mut(key.as_str()) {
            *statuses.entry(status).or_default() += 1;
            return;
        }
        let key =
            if self.by_endpoint.len() < self.limits.max_endpoints { key.clone() } else { OTHER_ENDPOINTS.to_string() };
        *self.by_endpoint.entry(key).or_default().entry(status).or_default() += 1;
    }

    fn count_stats(&mut self, ts: Option<Timestamp>, mut stats: EngineStats) {
        stats.replica = self.replica;
        let summary = &mut self.findings.engine_stats_summary;
        summary.lines += 1;
        let series = stats.series();
        if self.series.contains_key(&series) || self.series.len() < MAX_SERIES {
            let totals = self.series.entry(series).or_default();
            totals.lines += 1;
            totals.generation += stats.generation_throughput;
            totals.prompt += stats.prompt_throughput;
        }
        self.largest_aggregation = self.largest_aggregation.max(stats.engines_aggregated);
        let peaks = &mut self.stats_peaks;
        peaks.peak_running = peaks.peak_running.max(Some(stats.running));
        peaks.peak_waiting = peaks.peak_waiting.max(Some(stats.waiting));
        if let Some(kv) = stats.kv_cache_usage_pct {
            peaks.peak_kv_cache_usage_pct = Some(peaks.peak_kv_cache_usage_pct.map_or(kv, |peak| peak.max(kv)));
        }
        if let Some(rate) = stats.prefix_cache_hit_rate_pct {
            peaks.last_prefix_cache_hit_rate_pct = Some(rate);
        }
        self.last_stats_kept = self.findings.engine_stats.len() < self.limits.max_engine_stats;
        if self.last_stats_kept {
            self.findings.engine_stats.push(TimedEngineStats { ts, stats });
        } else {
            self.findings.engine_stats_dropped += 1;
        }
    }

    /// v0 logs the prefix cache hit rate as a separate record right after its stats line.
    fn count_v0_prefix_cache(&mut self, gpu_pct: f64) {
        self.findings.prefix_cache_lines += 1;
        self.stats_peaks.last_prefix_cache_hit_rate_pct = Some(gpu_pct);
        if let Some(last) = self.findings.engine_stats.last_mut().filter(|_| self.last_stats_kept)
            && last.stats.swapped.is_some()
            && last.stats.prefix_cache_hit_rate_pct.is_none()
        {
            last.stats.prefix_cache_hit_rate_pct = Some(gpu_pct);
        }
    }

    /// A vLLM WARNING/ERROR/CRITICAL record line: a new event, or the next line of the open one.
    fn record_line(&mut self, level: Level, header: RecordHeader<'_>, message: &str, ends_with_cr: bool) {
        let source = EventSource::Record(hash_header(header));
        let line = TraceLine::of(message);
        let log_keeps_cr = self.log_keeps_cr;
        if let Some(event) = self.event.as_mut().filter(|e| e.source == source) {
            // With `\r` kept, the header says it all; without, only a traceback-shaped line continues.
            let next = if event.awaiting_record_line {
                Some(event.trace.step(line).unwrap_or(event.trace))
            } else if log_keeps_cr {
                None
            } else {
                event.trace.step(line)
            };
            if let Some(next) = next {
                self.continue_event(message, line, next);
                if let Some(event) = self.event.as_mut() {
                    event.awaiting_record_line = ends_with_cr;
                }
                return;
            }
        }
        self.start_event(level.into(), source, message, line, ends_with_cr);
    }

    /// A line without vLLM header and without level.
    fn unheaded_line(&mut self, body: &str) {
        let line = TraceLine::of(body);
        if let Some(event) = self.event.as_ref().filter(|e| !e.awaiting_record_line)
            && let Some(next) = event.trace.step(line)
        {
            self.continue_event(body, line, next);
            return;
        }
        if line == TraceLine::Start {
            self.start_event(EventClass::Error, EventSource::Unheaded, body, line, false);
            return;
        }
        self.findings.unparsed_lines += 1;
        if !self.event.as_ref().is_some_and(|e| e.awaiting_record_line) {
            self.event = None;
        }
    }

    /// Access, stats and INFO lines come from other streams or processes: they do not end a
    /// record that is known to go on, nor a traceback in the middle of its frames.
    fn pass_through(&mut self) {
        if !self.event.as_ref().is_some_and(|e| e.awaiting_record_line || e.trace == Trace::Frames) {
            self.event = None;
        }
    }

    fn start_event(
        &mut self,
        class: EventClass,
        source: EventSource,
        message: &str,
        line: TraceLine,
        awaiting_record_line: bool,
    ) {
        let max_messages = self.limits.max_messages;
        let first_line = truncate(message.trim_end(), self.limits.max_message_chars).to_string();
        let f = &mut self.findings;
        let (lines, events, messages) = match class {
            EventClass::Error => (&mut f.error_lines, &mut f.error_events, &mut f.first_errors),
            EventClass::Warning => (&mut f.warning_lines, &mut f.warning_events, &mut f.first_warnings),
        };
        *lines += 1;
        *events += 1;
        let slot = (messages.len() < max_messages).then(|| {
            messages.push(first_line.clone());
            (messages.len() - 1, first_line)
        });
        let trace = if line == TraceLine::Start { Trace::Frames } else { Trace::None };
        self.event = Some(OpenEvent { class, source, awaiting_record_line, trace, slot });
    }

    fn continue_event(&mut self, text: &str, line: TraceLine, next: Trace) {
        let Some(event) = self.event.as_mut() else { return };
        let f = &mut self.findings;
        let (lines, messages) = match event.class {
            EventClass::Error => (&mut f.error_lines, &mut f.first_errors),
            EventClass::Warning => (&mut f.warning_lines, &mut f.first_warnings),
        };
        *lines += 1;
        // The exception line says what went wrong; keep it next to the first line.
        if line == TraceLine::Exception
            && event.trace == Trace::Frames
            && let Some((index, first_line)) = &event.slot
        {
            let exception = text.trim_end();
            let summary = if first_line.starts_with("Traceback") {
                format!("Traceback: {exception}")
            } else {
                format!("{first_line} | {exception}")
            };
            if let Some(message) = messages.get_mut(*index) {
                *message = truncate(&summary, self.limits.max_message_chars).to_string();
            }
        }
        event.trace = next;
    }
}

/// The same header on two lines means the same record (same process, level, second and site).
fn hash_header(header: RecordHeader<'_>) -> u64 {
    let mut hasher = DefaultHasher::new();
    header.0.hash(&mut hasher);
    hasher.finish()
}

/// At most `max_chars` characters, cut on a character boundary.
fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}
