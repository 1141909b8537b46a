//! The per-target workload profile: the `llm-loadtest run` flags as config keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::openai::Endpoint;
use crate::stats::Slo;
use crate::workload::prompts::{DatasetFormat, LengthSpec};

/// Measured requests of a burst when neither `requests` nor `duration` is set (as `run`).
pub const DEFAULT_REQUESTS: u64 = 100;
/// Closed-loop concurrency when neither `concurrency` nor `rate` is set (as `run`).
pub const DEFAULT_CONCURRENCY: u32 = 8;

/// One burst's load shape and request shape. Keys and defaults are those of
/// the `llm-loadtest run` flags of the same name (`max_tokens` is
/// `--max-tokens`), so a burst from the daemon is the burst `run` would make.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// `endpoint`: `"chat"` (default, `/v1/chat/completions`) or `"completions"` (`/v1/completions`).
    pub endpoint: Endpoint,
    /// `stream` (default true): streamed responses. false is `--no-stream` (TTFT then equals E2E latency).
    pub stream: bool,
    /// `requests`: stop after this many measured requests. Default 100 when `duration` is not set;
    /// None exactly when `duration` is set.
    pub requests: Option<u64>,
    /// `duration` (e.g. `"30s"`): stop starting requests after this long; no default. Not with `requests`.
    pub duration: Option<Duration>,
    /// `concurrency`: without `rate`, a closed loop at exactly this many requests in flight (default 8);
    /// with `rate`, a cap on requests in flight (default none).
    pub concurrency: Option<u32>,
    /// `rate`: open loop, start this many requests per second. Default none (closed loop).
    pub rate: Option<f64>,
    /// `poisson` (default false): with `rate`, exponential gaps (a Poisson process) instead of even spacing.
    pub poisson: bool,
    /// `seed` (default 0): seed of the synthetic prompts, of lengths drawn from a range and of Poisson gaps.
    pub seed: u64,
    /// `warmup` (default 0): requests sent first and left out of every statistic.
    pub warmup: u64,
    /// `max_tokens` (default 128): max_tokens of each request.
    pub max_tokens: u32,
    /// `ignore_eos` (default false): send vLLM's ignore_eos so every request generates exactly `max_tokens`.
    pub ignore_eos: bool,
    /// `temperature`: sampling temperature; default none (the server's default).
    pub temperature: Option<f64>,
    /// `extra_body`: a table merged into every request body, e.g. `{ top_p = 0.9 }`. Default none.
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    /// `input_tokens`: synthetic prompt length, `128` or `"32..256"` (uniform). Default 128 when no `dataset`.
    pub input_tokens: Option<LengthSpec>,
    /// `dataset`: prompts from a file (JSONL `{"prompt": ...}` or ShareGPT) instead of synthetic ones.
    pub dataset: Option<PathBuf>,
    /// `dataset_format`: `"auto"` (default), `"jsonl"` or `"sharegpt"`.
    pub dataset_format: DatasetFormat,
    /// `tokenizer`: a HF `tokenizer.json` for exact prompt token counts. Default none (approximate counts).
    pub tokenizer: Option<PathBuf>,
    /// `timeout` (default `"60s"`): time limit of a whole request.
    pub timeout: Duration,
    /// `first_token_timeout` (default `"30s"`): time limit to the first token; at most `timeout`.
    pub first_token_timeout: Duration,
    /// `connect_timeout` (default `"10s"`): time limit to establish a connection.
    pub connect_timeout: Duration,
    /// `goodput`: SLOs in ms, `{ ttft_ms = 500, tpot_ms = 50, e2el_ms = 5000 }`, any subset. Default none.
    pub goodput: Slo,
    /// `idle_window` (default `"1s"`, `"0s"` for none): quiet window before the burst in which other
    /// clients' traffic on the server is measured.
    pub idle_window: Duration,
    /// `settle_timeout` (default `"5s"`): after the burst, poll /metrics up to this long until the
    /// server's counters stop moving.
    pub settle_timeout: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            endpoint: Endpoint::Chat,
            stream: true,
            requests: Some(DEFAULT_REQUESTS),
            duration: None,
            concurrency: Some(DEFAULT_CONCURRENCY),
            rate: None,
            poisson: false,
            seed: 0,
            warmup: 0,
            max_tokens: 128,
            ignore_eos: false,
            temperature: None,
            extra_body: None,
            input_tokens: None,
            dataset: None,
            dataset_format: DatasetFormat::Auto,
            tokenizer: None,
            timeout: Duration::from_secs(60),
            first_token_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            goodput: Slo::default(),
            idle_window: Duration::from_secs(1),
            settle_timeout: Duration::from_secs(5),
        }
    }
}

impl Workload {
    /// The same argument list `llm-loadtest run` would get, so the daemon
    /// reuses the CLI's parsing and checks (e.g. `["--requests", "50",
    /// "--concurrency", "8", ...]`); target/model not included. Every value is
    /// spelled out, defaults included, so a change of a CLI default does not
    /// silently change a configured burst.
    pub fn to_run_flags(&self) -> Vec<String> {
        let mut f = Flags::default();
        f.value("--endpoint", choice_name(self.endpoint));
        if !self.stream {
            f.switch("--no-stream");
        }
        match (self.requests, self.duration) {
            (_, Some(d)) => f.value("--duration", duration(d)),
            (Some(n), None) => f.value("--requests", n.to_string()),
            (None, None) => {}
        }
        if let Some(c) = self.concurrency {
            f.value("--concurrency", c.to_string());
        }
        if let Some(r) = self.rate {
            f.value("--rate", r.to_string());
            if self.poisson {
                f.switch("--poisson");
            }
        }
        f.value("--seed", self.seed.to_string());
        f.value("--warmup", self.warmup.to_string());
        f.value("--max-tokens", self.max_tokens.to_string());
        if self.ignore_eos {
            f.switch("--ignore-eos");
        }
        if let Some(t) = self.temperature {
            f.value("--temperature", t.to_string());
        }
        if let Some(body) = &self.extra_body {
            f.value("--extra-body", serde_json::Value::Object(body.clone()).to_string());
        }
        if let Some(len) = &self.input_tokens {
            f.value("--input-tokens", len.to_string());
        }
        if let Some(path) = &self.dataset {
            f.value("--dataset", path_arg(path));
            f.value("--dataset-format", choice_name(self.dataset_format));
        }
        if let Some(path) = &self.tokenizer {
            f.value("--tokenizer", path_arg(path));
        }
        f.value("--timeout", duration(self.timeout));
        f.value("--first-token-timeout", duration(self.first_token_timeout));
        f.value("--connect-timeout", duration(self.connect_timeout));
        let slo: Vec<String> =
            [("ttft", self.goodput.ttft_ms), ("tpot", self.goodput.tpot_ms), ("e2el", self.goodput.e2el_ms)]
                .into_iter()
                .filter_map(|(name, ms)| ms.map(|ms| format!("{name}:{ms}")))
                .collect();
        if !slo.is_empty() {
            f.0.push("--goodput".into());
            f.0.extend(slo);
        }
        f.value("--idle-window", duration(self.idle_window));
        f.value("--settle-timeout", duration(self.settle_timeout));
        f.0
    }
}

#[derive(Default)]
struct Flags(Vec<String>);

impl Flags {
    fn switch(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }

    /// `--name value`, or `--name=value` when the value starts with `-` (clap
    /// would take it for a flag).
    fn value(&mut self, name: &str, value: String) {
        if value.starts_with('-') {
            self.0.push(format!("{name}={value}"));
        } else {
            self.0.push(name.to_owned());
            self.0.push(value);
        }
    }
}

/// `1m 30s`: humantime's exact form, which `run` parses back to the same value.
fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The command-line name of a value of a clap `ValueEnum`.
pub(super) fn choice_name<T: clap::ValueEnum>(value: T) -> String {
    value.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
}
