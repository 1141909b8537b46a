//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0 parsing, snapshot deltas and
//! histogram math. The only module that understands the exposition format.
//!
//! Hand-written because no crate is correct, lenient and usable on vLLM's output at once
//! (`research/ecosystem.md` section 2). The parser is line-oriented and lenient:
//! - one bad line becomes a [`LineError`] and never fails the document;
//! - `vllm:` colon names, the Prometheus 3 quoted form `{"name", l="v"}`, `\r\n`,
//!   `#comments` without a space, trailing commas, exemplars and `# EOF` are understood.
//!
//! Families are grouped by `# TYPE` with exact names, never by prefix or `_total` suffix. A
//! sample goes, in this order of preference, to:
//! 1. the declared family (`# TYPE`/`# HELP`/`# UNIT`) with exactly the sample's name;
//! 2. the declared family `base` whose type owns the sample's suffix: a histogram owns
//!    `base_bucket`, `_sum`, `_count`, `_created`; a summary `_sum`, `_count`, `_created`
//!    (its quantile series are named `base`); a counter `_total` and `_created`;
//!    a gaugehistogram `_bucket`, `_gcount`, `_gsum`; an info `_info`;
//! 3. otherwise the untyped family with exactly the sample's name (created on first use).
//!
//! So both counter spellings work: classic text from Python's prometheus_client declares
//! `# TYPE vllm:prompt_tokens_total counter` (rule 1) plus a *separate*
//! `# TYPE vllm:prompt_tokens_created gauge`, and OpenMetrics declares `# TYPE x counter` with
//! `x_total` and `x_created` samples inside (rule 2). `vllm:iteration_tokens_total` declared as a
//! histogram stays a histogram. The query functions ([`Exposition::counter_sum`],
//! [`Exposition::created`], ...) hide the difference.

mod delta;
pub mod fleet;
mod histogram;
mod labels;
mod parse;
mod render;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use delta::{DeltaError, ResetReason, Which, counter_delta, histogram_delta};
pub use histogram::HistogramData;
pub use labels::{LabelFilter, Labels};
pub use parse::parse;

/// Which flavour of the text format a document was in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Prometheus text format 0.0.4 (timestamps in integer milliseconds).
    #[default]
    Classic,
    /// OpenMetrics 1.0, recognised by `# EOF`, `# UNIT`, an exemplar or an OpenMetrics-only
    /// type (`unknown`, `gaugehistogram`, `info`, `stateset`). Timestamps in seconds.
    OpenMetrics,
}

/// The `# TYPE` of a family. OpenMetrics `unknown` is read as [`MetricType::Untyped`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    #[default]
    Untyped,
    GaugeHistogram,
    Info,
    StateSet,
}

impl MetricType {
    /// The `# TYPE` keyword (OpenMetrics spelling for the OpenMetrics-only types).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }

    /// Parse a `# TYPE` keyword, case-insensitively. The bool is true for OpenMetrics-only keywords.
    fn from_keyword(word: &str) -> Option<(MetricType, bool)> {
        const KEYWORDS: [(&str, MetricType, bool); 9] = [
            ("counter", MetricType::Counter, false),
            ("gauge", MetricType::Gauge, false),
            ("histogram", MetricType::Histogram, false),
            ("summary", MetricType::Summary, false),
            ("untyped", MetricType::Untyped, false),
            ("unknown", MetricType::Untyped, true),
            ("gaugehistogram", MetricType::GaugeHistogram, true),
            ("info", MetricType::Info, true),
            ("stateset", MetricType::StateSet, true),
        ];
        KEYWORDS.iter().find(|(k, _, _)| k.eq_ignore_ascii_case(word)).map(|&(_, t, om)| (t, om))
    }

    /// Whether a family of this type owns the sample `<family>{suffix}`.
    fn owns_suffix(self, suffix: &str) -> bool {
        match self {
            MetricType::Counter => matches!(suffix, "_total" | "_created"),
            MetricType::Histogram => matches!(suffix, "_bucket" | "_sum" | "_count" | "_created"),
            MetricType::Summary => matches!(suffix, "_sum" | "_count" | "_created"),
            MetricType::GaugeHistogram => matches!(suffix, "_bucket" | "_gcount" | "_gsum"),
            MetricType::Info => suffix == "_info",
            MetricType::Gauge | MetricType::Untyped | MetricType::StateSet => false,
        }
    }

    fn is_histogram(self) -> bool {
        matches!(self, MetricType::Histogram | MetricType::GaugeHistogram)
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit a sample timestamp was written in; fixed by the document's [`Format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampUnit {
    /// Classic text: integer milliseconds since the epoch.
    Milliseconds,
    /// OpenMetrics: (float) seconds since the epoch.
    Seconds,
}

/// A sample timestamp exactly as written, with the unit the document's format implies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    pub value: f64,
    pub unit: TimestampUnit,
}

impl Timestamp {
    pub fn as_seconds(&self) -> f64 {
        match self.unit {
            TimestampUnit::Milliseconds => self.value / 1000.0,
            TimestampUnit::Seconds => self.value,
        }
    }
}

/// An OpenMetrics exemplar (` # {trace_id="abc"} 1.0 1520879607.789`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    /// Seconds since the epoch, as OpenMetrics writes it.
    pub timestamp: Option<f64>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The full sample name, e.g. `vllm:e2e_request_latency_seconds_bucket` (shared between the
    /// samples of a family: one allocation per name, not per line).
    #[serde(serialize_with = "serialize_arc_str", deserialize_with = "deserialize_arc_str")]
    pub name: Arc<str>,
    /// Sorted by name; together with `name` the identity of the series.
    pub labels: Labels,
    pub value: f64,
    pub timestamp: Option<Timestamp>,
    pub exemplar: Option<Exemplar>,
}

fn serialize_arc_str<S: Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value)
}

fn deserialize_arc_str<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
    String::deserialize(deserializer).map(Arc::from)
}

/// Every sample belonging to one `# TYPE` declaration (or one untyped sample name).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// `# HELP` text, unescaped.
    pub help: Option<String>,
    /// OpenMetrics `# UNIT`.
    pub unit: Option<String>,
    /// In document order.
    pub samples: Vec<Sample>,
    /// Why this family's figures are not to be judged, when the parser saw it break the format
    /// (a duplicate series, cumulative bucket counts that go down). The first flaw found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaw: Option<String>,
}

impl Family {
    /// The part of a sample name after the family name (`"_bucket"`, `""`, ...), if it starts with it.
    fn suffix_of<'s>(&self, sample: &'s Sample) -> Option<&'s str> {
        sample.name.strip_prefix(self.name.as_str())
    }
}

/// A line that was not understood (dropped), or a part of a line that was ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    /// 1-based.
    pub line_no: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line_no, self.message)
    }
}

/// A parsed `/metrics` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exposition {
    /// In order of first appearance.
    pub families: Vec<Family>,
    pub line_errors: Vec<LineError>,
    pub format: Format,
    /// The text ended inside a sample line (no final newline): most likely cut in transit.
    #[serde(default)]
    pub truncated: bool,
}

impl Exposition {
    /// True when the text ended inside a sample line (no final newline, which every line of the
    /// format has): its figures are not to be judged.
    pub fn looks_cut(&self) -> bool {
        self.truncated
    }

    /// Why the counter or histogram `name` is not to be judged in this snapshot, if the parser
    /// found its family broken (see [`Family::flaw`]).
    pub fn flaw_of(&self, name: &str) -> Option<&str> {
        self.counter_family(name).or_else(|| self.family(name)).and_then(|f| f.flaw.as_deref())
    }

    /// The family with exactly this name (as declared by `# TYPE`, or the sample name when untyped).
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// Number of samples in all families.
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }

    /// The counter family meant by `name`: `name` itself, else `name` without `_total`, else
    /// `name` + `_total`. A declared counter is preferred; an untyped family with that exact name
    /// is the fallback. Never a histogram or gauge that merely ends in `_total`.
    fn counter_family(&self, name: &str) -> Option<&Family> {
        let alternative = match name.strip_suffix("_total") {
            Some(base) => base.to_string(),
            None => format!("{name}_total"),
        };
        let candidates = [name, alternative.as_str()];
        for kind in [MetricType::Counter, MetricType::Untyped] {
            for candidate in candidates {
                if let Some(f) = self.family(candidate).filter(|f| f.kind == kind) {
                    return Some(f);
                }
            }
        }
        None
    }

    /// Value of every counter series matching `filter`, keyed by labels. `name` may be given with
    /// or without `_total`, in either format. Empty when absent or nothing matches.
    pub fn counter_series(&self, name: &str, filter: &LabelFilter) -> Vec<(Labels, f64)> {
        let Some(family) = self.counter_family(name) else {
            return Vec::new();
        };
        family
            .samples
            .iter()
            .filter(|s| {
                let suffix = family.suffix_of(s);
                let is_value = suffix == Some("") || (family.kind == MetricType::Counter && suffix == Some("_total"));
                is_value && filter.matches(&s.labels)
            })
            .map(|s| (s.labels.clone(), s.value))
            .collect()
    }

    /// Sum of a counter over every series whose labels match `filter`; accepts the counter's name
    /// with or without `_total` in both formats; `None` when absent or no series matches.
    /// `_created` samples are never counted.
    pub fn counter_sum(&self, name: &str, filter: &LabelFilter) -> Option<f64> {
        let series = self.counter_series(name, filter);
        (!series.is_empty()).then(|| series.iter().map(|(_, v)| v).sum())
    }

    /// Values of the gauge (or untyped metric) `name` whose labels match `filter`, in document order.
    pub fn gauge_values(&self, name: &str, filter: &LabelFilter) -> Vec<f64> {
        self.family(name)
            .filter(|f| matches!(f.kind, MetricType::Gauge | MetricType::Untyped))
            .map(|f| {
                f.samples.iter().filter(|s| *s.name == f.name && filter.matches(&s.labels)).map(|s| s.value).collect()
            })
            .unwrap_or_default()
    }

    /// Each histogram series matching `filter` (labels without `le`), with its buckets sorted by `le`.
    /// `count` falls back to the `+Inf` bucket without `_count`; `sum` is NaN without `_sum`.
    pub fn histogram_series(&self, name: &str, filter: &LabelFilter) -> Vec<(Labels, HistogramData)> {
        let Some(family) = self.family(name).filter(|f| f.kind.is_histogram()) else {
            return Vec::new();
        };
        histogram::collect_series(family, filter)
    }

    /// Histogram summed over every matching series (buckets merged by `le`), `None` when absent.
    pub fn histogram(&self, name: &str, filter: &LabelFilter) -> Option<HistogramData> {
        let series = self.histogram_series(name, filter);
        (!series.is_empty()).then(|| HistogramData::merge(series.iter().map(|(_, h)| h)))
    }

    /// `_created` value(s) of a counter, histogram or summary, keyed by the series labels (used to
    /// detect a restart). Reads both the OpenMetrics `x_created` samples inside the family and
    /// prometheus_client's classic separate gauge family (`x_created` for counter `x_total`,
    /// `h_created` for histogram `h`). Empty when there are none (e.g. multiprocess mode).
    pub fn created(&self, name: &str, filter: &LabelFilter) -> Vec<(Labels, f64)> {
        let owner = self
            .counter_family(name)
            .or_else(|| self.family(name).filter(|f| f.kind.is_histogram() || f.kind == MetricType::Summary));
        let base = match owner {
            Some(f) => {
                let inside: Vec<(Labels, f64)> = f
                    .samples
                    .iter()
                    .filter(|s| f.suffix_of(s) == Some("_created") && filter.matches(&s.labels))
                    .map(|s| (s.labels.clone(), s.value))
                    .collect();
                if !inside.is_empty() {
                    return inside;
                }
                match f.kind {
                    MetricType::Counter | MetricType::Untyped => f.name.strip_suffix("_total").unwrap_or(&f.name),
                    _ => f.name.as_str(),
                }
            }
            None => name.strip_suffix("_total").unwrap_or(name),
        };
        let created_name = format!("{base}_created");
        match self.family(&created_name) {
            Some(f) if matches!(f.kind, MetricType::Gauge | MetricType::Untyped) => f
                .samples
                .iter()
                .filter(|s| *s.name == created_name && filter.matches(&s.labels))
                .map(|s| (s.labels.clone(), s.value))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Every `process_start_time_seconds` series (one per replica in a fleet snapshot).
    pub fn process_start_times(&self) -> Vec<(Labels, f64)> {
        self.family("process_start_time_seconds")
            .filter(|f| matches!(f.kind, MetricType::Gauge | MetricType::Untyped))
            .map(|f| f.samples.iter().filter(|s| *s.name == f.name).map(|s| (s.labels.clone(), s.value)).collect())
            .unwrap_or_default()
    }

    /// `process_start_time_seconds` when exactly one such sample exists.
    pub fn process_start_time(&self) -> Option<f64> {
        match self.gauge_values("process_start_time_seconds", &LabelFilter::new())[..] {
            [v] => Some(v),
            _ => None,
        }
    }

    /// Classic text (0.0.4): `# HELP`, `# TYPE`, samples with sorted labels, one family after the
    /// other. `parse(render(x)) == x` for classic documents without OpenMetrics-only types (label
    /// order is already normalised, NaN compares by being NaN). Exemplars and `# UNIT` are not
    /// written; OpenMetrics timestamps are converted to milliseconds; OpenMetrics-only types keep
    /// their OpenMetrics keyword. Names that are not legacy-valid use the Prometheus 3 quoted form.
    pub fn render(&self) -> String {
        render::render(self)
    }
}
