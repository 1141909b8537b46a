//! Simulator configuration: latency and length distributions, faults, log sink.
//!
//! Everything here is plain data plus parsing; nothing does I/O.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// A latency: fixed, or drawn uniformly from `[min, max]` for each use
/// (each request's TTFT, each token's ITL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyDist {
    Fixed(Duration),
    Uniform { min: Duration, max: Duration },
}

impl LatencyDist {
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match *self {
            LatencyDist::Fixed(d) => d,
            LatencyDist::Uniform { min, max } if max > min => {
                let nanos = rng.random_range(min.as_nanos() as u64..=max.as_nanos() as u64);
                Duration::from_nanos(nanos)
            }
            LatencyDist::Uniform { min, .. } => min,
        }
    }

    /// True when every draw is zero: the simulator then never sleeps.
    pub fn is_zero(&self) -> bool {
        match *self {
            LatencyDist::Fixed(d) => d.is_zero(),
            LatencyDist::Uniform { max, .. } => max.is_zero(),
        }
    }

    /// Parses milliseconds: `50`, `0.5`, or a uniform range `40..60`.
    pub fn parse_ms(s: &str) -> Result<Self, String> {
        let ms = |part: &str| -> Result<Duration, String> {
            let v: f64 = part.trim().parse().map_err(|_| format!("`{part}` is not a number of milliseconds"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(format!("`{part}` must be a finite, non-negative number of milliseconds"));
            }
            Ok(Duration::from_secs_f64(v / 1000.0))
        };
        match s.split_once("..") {
            Some((lo, hi)) => {
                let (min, max) = (ms(lo)?, ms(hi)?);
                if min > max {
                    return Err(format!("range `{s}` has its minimum above its maximum"));
                }
                Ok(LatencyDist::Uniform { min, max })
            }
            None => Ok(LatencyDist::Fixed(ms(s)?)),
        }
    }
}

impl FromStr for LatencyDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse_ms(s)
    }
}

impl fmt::Display for LatencyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        match *self {
            LatencyDist::Fixed(d) => write!(f, "{}", ms(d)),
            LatencyDist::Uniform { min, max } => write!(f, "{}..{}", ms(min), ms(max)),
        }
    }
}

/// A number of output tokens the "model" wants to produce before EOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthDist {
    Fixed(u32),
    Uniform { min: u32, max: u32 },
}

impl LengthDist {
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        match *self {
            LengthDist::Fixed(n) => n,
            LengthDist::Uniform { min, max } if max > min => rng.random_range(min..=max),
            LengthDist::Uniform { min, .. } => min,
        }
    }

    /// Parses `64` or `32..128` (inclusive); lengths must be at least 1.
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = |part: &str| -> Result<u32, String> {
            match part.trim().parse::<u32>() {
                Ok(0) => Err("output length must be at least 1 token".to_string()),
                Ok(v) => Ok(v),
                Err(_) => Err(format!("`{part}` is not a token count")),
            }
        };
        match s.split_once("..") {
            Some((lo, hi)) => {
                let (min, max) = (n(lo)?, n(hi)?);
                if min > max {
                    return Err(format!("range `{s}` has its minimum above its maximum"));
                }
                Ok(LengthDist::Uniform { min, max })
            }
            None => Ok(LengthDist::Fixed(n(s)?)),
        }
    }
}

impl FromStr for LengthDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// Where the simulator's log lines go. `Buffer` collects one entry per
/// physical line (what `docker logs` would show), for tests.
#[derive(Debug, Clone, Default)]
pub enum LogSink {
    #[default]
    Stdout,
    Discard,
    Buffer(Arc<Mutex<Vec<String>>>),
}

/// Injected misbehaviour; replaceable at runtime (`SimHandle::set_faults`,
/// `POST /sim/faults`). Rates are fractions of requests in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fraction of completion requests answered with `http_error_status`.
    pub http_error_rate: f64,
    /// Status used by `http_error_rate` (default 500).
    pub http_error_status: u16,
    /// Fraction of requests served normally but left out of every `/metrics`
    /// counter and histogram (metric drift). Gauges and logs still see them.
    pub drop_from_metrics_rate: f64,
    /// Fraction of streams whose connection is closed mid-generation,
    /// without `data: [DONE]`.
    pub stream_cut_rate: f64,
    /// Write a vLLM-shaped ERROR traceback burst this often (`"30s"` in JSON).
    #[serde(with = "opt_humantime")]
    pub error_log_burst_every: Option<Duration>,
    /// Fraction of finished requests whose `llm_request` span is never exported
    /// (a collector that loses spans; the `traces` section then finds them unmatched).
    pub drop_spans_rate: f64,
    /// Added to every request's time to first token, in milliseconds: a server that got slower
    /// (for the performance-regression alert).
    pub extra_ttft_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            http_error_rate: 0.0,
            http_error_status: 500,
            drop_from_metrics_rate: 0.0,
            stream_cut_rate: 0.0,
            error_log_burst_every: None,
            drop_spans_rate: 0.0,
            extra_ttft_ms: 0,
        }
    }
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("http_error_rate", self.http_error_rate),
            ("drop_from_metrics_rate", self.drop_from_metrics_rate),
            ("stream_cut_rate", self.stream_cut_rate),
            ("drop_spans_rate", self.drop_spans_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if !(400..=599).contains(&self.http_error_status) {
            return Err(format!("http_error_status must be a 4xx or 5xx status, got {}", self.http_error_status));
        }
        if self.extra_ttft_ms > 600_000 {
            return Err(format!("extra_ttft_ms must be at most 600000 (10 min), got {}", self.extra_ttft_ms));
        }
        if self.error_log_burst_every == Some(Duration::ZERO) {
            return Err("error_log_burst_every must be longer than zero".to_string());
        }
        Ok(())
    }
}

/// `Option<Duration>` as a humantime string (`"30s"`) or null.
mod opt_humantime {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Everything the simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Served model name (`--served-model-name`); requests for another name get a 404.
    pub model: String,
    /// Time to first token, from arrival (plus any queue wait).
    pub ttft: LatencyDist,
    /// Time between consecutive tokens of one request.
    pub itl: LatencyDist,
    /// Tokens produced before EOS when the client does not force a length.
    pub output_tokens: LengthDist,
    /// Requests generating at once; later ones wait FIFO. 0 = unlimited.
    pub max_running: usize,
    pub max_model_len: u32,
    /// Period of the `Engine 000:` stats line (`VLLM_LOG_STATS_INTERVAL`).
    pub log_stats_interval: Duration,
    pub log_sink: LogSink,
    /// Seeds every random choice (token text, lengths, fault decisions).
    pub seed: u64,
    pub faults: Faults,
    /// Keep the instant each request's first content chunk was handed to
    /// the HTTP body (see `SimHandle::first_token_instants`).
    pub record_timings: bool,
    /// KV-cache size in tokens; `kv_cache_usage_perc` = tokens held by
    /// running requests / this.
    pub kv_cache_tokens: u64,
    /// Log `Received request <id>: params: ...` for each request (vLLM's `--enable-log-requests`).
    pub log_requests: bool,
    /// Export an `llm_request` span per finished request here (vLLM's `--otlp-traces-endpoint`).
    pub otlp_traces_endpoint: Option<String>,
    /// How often the span batch is sent (the OpenTelemetry SDK's default, which vLLM keeps: 5 s).
    pub otlp_batch_delay: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            model: "sim-model".to_string(),
            ttft: LatencyDist::Fixed(Duration::from_millis(50)),
            itl: LatencyDist::Fixed(Duration::from_millis(10)),
            output_tokens: LengthDist::Fixed(64),
            max_running: 0,
            max_model_len: 4096,
            log_stats_interval: Duration::from_secs(10),
            log_sink: LogSink::Stdout,
            seed: 0,
            faults: Faults::default(),
            record_timings: false,
            kv_cache_tokens: 65_536,
            log_requests: false,
            otlp_traces_endpoint: None,
            otlp_batch_delay: Duration::from_secs(5),
        }
    }
}

impl SimConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.model.is_empty() {
            return Err("model name must not be empty".to_string());
        }
        if self.max_model_len < 2 {
            return Err("max_model_len must be at least 2".to_string());
        }
        if self.log_stats_interval.is_zero() {
            return Err("log_stats_interval must be longer than zero".to_string());
        }
        if self.kv_cache_tokens == 0 {
            return Err("kv_cache_tokens must be at least 1".to_string());
        }
        if self.otlp_batch_delay.is_zero() {
            return Err("otlp_batch_delay must be longer than zero".to_string());
        }
        self.faults.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn latency_parses_fixed_and_ranges() {
        assert_eq!(LatencyDist::parse_ms("50"), Ok(LatencyDist::Fixed(Duration::from_millis(50))));
        assert_eq!(LatencyDist::parse_ms("0.5"), Ok(LatencyDist::Fixed(Duration::from_micros(500))));
        assert_eq!(
            LatencyDist::parse_ms("40..60"),
            Ok(LatencyDist::Uniform { min: Duration::from_millis(40), max: Duration::from_millis(60) })
        );
        assert!(LatencyDist::parse_ms("60..40").is_err());
        assert!(LatencyDist::parse_ms("-1").is_err());
        assert!(LatencyDist::parse_ms("abc").is_err());
        assert!(LatencyDist::parse_ms("0").is_ok_and(|d| d.is_zero()));
    }

    #[test]
    fn uniform_latency_stays_in_range() {
        let d = LatencyDist::parse_ms("40..60").unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let s = d.sample(&mut rng);
            assert!(s >= Duration::from_millis(40) && s <= Duration::from_millis(60));
        }
    }

    #[test]
    fn length_parses_and_rejects_zero() {
        assert_eq!(LengthDist::parse("64"), Ok(LengthDist::Fixed(64)));
        assert_eq!(LengthDist::parse("8..16"), Ok(LengthDist::Uniform { min: 8, max: 16 }));
        assert!(LengthDist::parse("0").is_err());
        assert!(LengthDist::parse("9..3").is_err());
        let mut rng = StdRng::seed_from_u64(2);
        let d = LengthDist::Uniform { min: 8, max: 16 };
        assert!((0..200).map(|_| d.sample(&mut rng)).all(|n| (8..=16).contains(&n)));
    }

    #[test]
    fn faults_round_trip_through_json_with_humantime() {
        let f =
            Faults { stream_cut_rate: 0.25, error_log_burst_every: Some(Duration::from_secs(30)), ..Faults::default() };
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains(r#""error_log_burst_every":"30s""#), "{text}");
        let back: Faults = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
        // Missing fields take their defaults.
        let partial: Faults = serde_json::from_str(r#"{"http_error_rate":1.0}"#).unwrap();
        assert_eq!(partial.http_error_status, 500);
        assert!(serde_json::from_str::<Faults>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn faults_validation_rejects_bad_rates_and_statuses() {
        let bad_rate = Faults { http_error_rate: 1.5, ..Faults::default() };
        assert!(bad_rate.validate().is_err());
        let bad_status = Faults { http_error_status: 200, ..Faults::default() };
        assert!(Faults { extra_ttft_ms: 600_001, ..Faults::default() }.validate().is_err());
        assert!(bad_status.validate().is_err());
        assert!(Faults::default().validate().is_ok());
    }
}
