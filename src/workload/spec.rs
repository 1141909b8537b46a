//! The one typed description of a burst's load: [`Workload`] (every value
//! resolved; its `Default` is the only place defaults live, its
//! [`Workload::validate`] the only place its rules live) and [`WorkloadPatch`]
//! (the same keys, each optional), which the `run` flags, the config's
//! `[defaults.workload]` / `[targets.NAME.workload]` tables and a trigger body
//! all produce. [`Workload::overlay`] lays a patch over a workload, the same
//! way for config layering and for triggers.

use std::path::PathBuf;
use std::time::Duration;

use crate::openai::Endpoint;
use crate::stats::Slo;
use crate::workload::prompts::{DatasetFormat, LengthSpec};
use crate::workload::{ArrivalPlan, StopCondition, Timeouts};

/// Measured requests of a burst when neither `requests` nor `duration` is set.
pub const DEFAULT_REQUESTS: u64 = 100;
/// Closed-loop concurrency when neither `concurrency` nor `rate` is set.
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// The first-token limit when none is set (or `timeout`, when that is shorter).
pub const DEFAULT_FIRST_TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `target_lost_after`: well past a blip, far short of a flood of failures.
pub const DEFAULT_TARGET_LOST_AFTER: u64 = 100;
/// The default `memory_budget_mib`: what a burst's client may keep in memory (its statistics,
/// 24 bytes per completed request; records held when no spool file can be written).
pub const DEFAULT_MEMORY_BUDGET_MIB: u64 = 1024;
/// What a burst keeps per completed request whatever its length: its TTFT, E2E and TPOT, exact.
pub const RETAINED_BYTES_PER_REQUEST: u64 = 24;
/// The default `inter_chunk_timeout`: generous, a stalled stream rather than a slow one.
pub const DEFAULT_INTER_CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest duration any key accepts (a year): far beyond any sensible
/// value, and small enough that clock arithmetic cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Keys that go together: a patch that sets any key of a group replaces the
/// whole group (a target with `duration` does not also inherit `requests`; a
/// trigger with `rate` is an open loop, not a closed loop's concurrency plus a rate).
pub const GROUPS: &[&[&str]] =
    &[&["requests", "duration"], &["concurrency", "rate", "poisson"], &["input_tokens", "dataset", "dataset_format"]];

/// One burst's load shape and request shape, every value resolved. Serialized only between a
/// daemon and its workers (the same version on both sides), durations in humantime form.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    /// `endpoint`: `"chat"` (default, `/v1/chat/completions`) or `"completions"` (`/v1/completions`).
    pub endpoint: Endpoint,
    /// `stream` (default true): streamed responses. false is `--no-stream` (TTFT then equals E2E latency).
    pub stream: bool,
    /// `requests`: stop after this many measured requests. Default 100 when `duration` is not set;
    /// None exactly when `duration` is set.
    pub requests: Option<u64>,
    /// `duration` (e.g. `"30s"`): stop starting requests after this long; no default. Not with `requests`.
    #[serde(with = "humantime_serde")]
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
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// `first_token_timeout`: time limit to the first token, at most `timeout`. Default none:
    /// 30 s, or `timeout` when that is shorter.
    #[serde(with = "humantime_serde")]
    pub first_token_timeout: Option<Duration>,
    /// `connect_timeout` (default `"10s"`): time limit to establish a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// `cold_connections` (default false): do not open the connections before the clock starts,
    /// so the first requests of each connection pay its set-up inside their TTFT (on purpose).
    pub cold_connections: bool,
    /// `target_lost_after` (default 100, 0 = never): this many connection failures in a row,
    /// across the burst, end it early as `target_lost` (every record up to then kept).
    pub target_lost_after: u64,
    /// `memory_budget_mib` (default 1024, 0 = none): what the burst's client may keep in memory.
    /// A burst whose planned requests would need more is refused before it starts; one that
    /// reaches it (a long closed loop) ends early, every record up to then kept.
    pub memory_budget_mib: u64,
    /// `inter_chunk_timeout` (default `"30s"`): after the first token, the longest wait for the
    /// next one before the stream counts as stalled (`stall_timeout`); `timeout` still bounds it.
    #[serde(with = "humantime_serde")]
    pub inter_chunk_timeout: Duration,
    /// `goodput`: SLOs in ms, `{ ttft_ms = 500, tpot_ms = 50, e2el_ms = 5000 }`, any subset. Default none.
    pub goodput: Slo,
    /// `idle_window` (default `"1s"`, `"0s"` for none): quiet window before the burst in which other
    /// clients' traffic on the server is measured.
    #[serde(with = "humantime_serde")]
    pub idle_window: Duration,
    /// `settle_timeout` (default `"5s"`): after the burst, poll /metrics up to this long until the
    /// server's counters stop moving.
    #[serde(with = "humantime_serde")]
    pub settle_timeout: Duration,
    /// `spans_timeout` (default `"15s"`): with an OTLP receiver, after the burst wait up to this
    /// long for the `llm_request` span of every completed request (vLLM batches spans for 5 s).
    #[serde(with = "humantime_serde")]
    pub spans_timeout: Duration,
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
            first_token_timeout: None,
            connect_timeout: Duration::from_secs(10),
            inter_chunk_timeout: DEFAULT_INTER_CHUNK_TIMEOUT,
            target_lost_after: DEFAULT_TARGET_LOST_AFTER,
            memory_budget_mib: DEFAULT_MEMORY_BUDGET_MIB,
            cold_connections: false,
            goodput: Slo::default(),
            idle_window: Duration::from_secs(1),
            settle_timeout: Duration::from_secs(5),
            spans_timeout: Duration::from_secs(15),
        }
    }
}

/// The keys of a [`Workload`], each optional: what one layer (flags, a config
/// table, a trigger body) sets. The `run` flags are its clap definition (no
/// defaults here: an absent flag is `None`); a trigger body is its serde form,
/// where only the load-shape keys exist (`#[serde(skip)]` keys are "unknown
/// field" to a trigger, so a trigger cannot name a file or change timeouts).
/// Count flags take a leading `-` as a value (`allow_negative_numbers`), so that
/// `--concurrency -3` is told it must be 0 or more instead of "unexpected argument '-3'".
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadPatch {
    /// Which endpoint to load [default: chat].
    #[arg(long, value_enum)]
    #[serde(skip)]
    pub endpoint: Option<Endpoint>,
    /// Ask for non-streamed responses (TTFT then equals end-to-end latency).
    #[arg(long = "no-stream", num_args = 0, default_missing_value = "false")]
    pub stream: Option<bool>,
    /// Stop after this many measured requests (default 100 when no --duration).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count::<u64>)]
    pub requests: Option<u64>,
    /// Stop starting requests after this long (e.g. 30s); requests in flight finish.
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub duration: Option<Duration>,
    /// Requests in flight. Without --rate: a closed loop at exactly this concurrency (default 8).
    /// With --rate: a cap on requests in flight (default: no cap).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count::<u32>)]
    pub concurrency: Option<u32>,
    /// Open loop: start this many requests per second.
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// With --rate: exponential gaps (a Poisson process) instead of even spacing, seeded by --seed.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub poisson: Option<bool>,
    /// Seed of the synthetic prompts, of lengths drawn from a range and of Poisson gaps [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count::<u64>)]
    pub seed: Option<u64>,
    /// Requests sent first and left out of every statistic [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count::<u64>)]
    pub warmup: Option<u64>,
    /// max_tokens of each request [default: 128].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count::<u32>)]
    pub max_tokens: Option<u32>,
    /// Send ignore_eos (vLLM extension) so every request generates exactly --max-tokens.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub ignore_eos: Option<bool>,
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip)]
    pub temperature: Option<f64>,
    /// Extra JSON fields merged into every request body, e.g. '{"top_p": 0.9}'.
    #[arg(long, value_parser = parse_extra_body)]
    #[serde(skip)]
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    /// Synthetic prompt length in tokens: N, or MIN..MAX (uniform) [default: 128].
    #[arg(long)]
    #[serde(default, deserialize_with = "de_length")]
    pub input_tokens: Option<LengthSpec>,
    /// Dataset file: JSONL with {"prompt": "..."} per line, or a ShareGPT JSON/JSONL file.
    #[arg(long)]
    #[serde(skip)]
    pub dataset: Option<PathBuf>,
    /// Dataset format; auto looks at the content (a "conversations" field means ShareGPT) [default: auto].
    #[arg(long, value_enum)]
    #[serde(skip)]
    pub dataset_format: Option<DatasetFormat>,
    /// tokenizer.json for exact prompt token counts (HF tokenizers format).
    #[arg(long)]
    #[serde(skip)]
    pub tokenizer: Option<PathBuf>,
    /// Time limit of a whole request [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip)]
    pub timeout: Option<Duration>,
    /// Time limit to the first token (default 30s, or --timeout when that is shorter).
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip)]
    pub first_token_timeout: Option<Duration>,
    /// Time limit to establish a connection [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip)]
    pub connect_timeout: Option<Duration>,
    /// After the first token, the longest wait for the next one (a stalled stream) [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip)]
    pub inter_chunk_timeout: Option<Duration>,
    /// Do not open the connections before the measured start: the first request of each
    /// connection pays its set-up in its TTFT (to measure cold connections on purpose).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    #[serde(skip)]
    pub cold_connections: Option<bool>,
    /// End the burst early as target_lost after this many connection failures in a row
    /// (0: never) [default: 100].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count::<u64>)]
    #[serde(skip)]
    pub target_lost_after: Option<u64>,
    /// What the burst's client may keep in memory, MiB (0: no limit) [default: 1024]. A burst
    /// planned past it is refused; one that reaches it ends early.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count::<u64>)]
    #[serde(skip)]
    pub memory_budget_mib: Option<u64>,
    /// Goodput SLOs in ms, e.g. --goodput ttft:500 tpot:50 e2el:5000.
    #[arg(long, num_args = 1.., value_parser = parse_slo_term)]
    #[serde(skip)]
    pub goodput: Option<Vec<Slo>>,
    /// Quiet window before the burst in which other clients' traffic on the server is measured
    /// (0s: none) [default: 1s].
    #[arg(long, value_parser = parse_duration_or_zero)]
    #[serde(skip)]
    pub idle_window: Option<Duration>,
    /// After the burst, poll /metrics up to this long until the server's counters stop moving
    /// [default: 5s].
    #[arg(long, value_parser = parse_duration_or_zero)]
    #[serde(skip)]
    pub settle_timeout: Option<Duration>,
    /// With an OTLP receiver, wait up to this long after the burst for the llm_request span of
    /// every completed request; vLLM exports spans in batches every 5 s [default: 15s].
    #[arg(long, value_parser = parse_duration_or_zero)]
    #[serde(skip)]
    pub spans_timeout: Option<Duration>,
}

impl WorkloadPatch {
    /// The keys this patch sets (`goodput.ttft_ms` for a goodput term).
    pub fn set_keys(&self) -> Vec<&'static str> {
        let p = self;
        let slo = |f: fn(&Slo) -> Option<f64>| p.goodput.as_ref().is_some_and(|g| g.iter().any(|s| f(s).is_some()));
        [
            ("endpoint", p.endpoint.is_some()),
            ("stream", p.stream.is_some()),
            ("requests", p.requests.is_some()),
            ("duration", p.duration.is_some()),
            ("concurrency", p.concurrency.is_some()),
            ("rate", p.rate.is_some()),
            ("poisson", p.poisson.is_some()),
            ("seed", p.seed.is_some()),
            ("warmup", p.warmup.is_some()),
            ("max_tokens", p.max_tokens.is_some()),
            ("ignore_eos", p.ignore_eos.is_some()),
            ("temperature", p.temperature.is_some()),
            ("extra_body", p.extra_body.is_some()),
            ("input_tokens", p.input_tokens.is_some()),
            ("dataset", p.dataset.is_some()),
            ("dataset_format", p.dataset_format.is_some()),
            ("tokenizer", p.tokenizer.is_some()),
            ("timeout", p.timeout.is_some()),
            ("first_token_timeout", p.first_token_timeout.is_some()),
            ("connect_timeout", p.connect_timeout.is_some()),
            ("inter_chunk_timeout", p.inter_chunk_timeout.is_some()),
            ("target_lost_after", p.target_lost_after.is_some()),
            ("memory_budget_mib", p.memory_budget_mib.is_some()),
            ("cold_connections", p.cold_connections.is_some()),
            ("goodput.ttft_ms", slo(|s| s.ttft_ms)),
            ("goodput.tpot_ms", slo(|s| s.tpot_ms)),
            ("goodput.e2el_ms", slo(|s| s.e2el_ms)),
            ("idle_window", p.idle_window.is_some()),
            ("settle_timeout", p.settle_timeout.is_some()),
            ("spans_timeout", p.spans_timeout.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    fn sets_group_of(&self, key: &str) -> bool {
        let keys = self.set_keys();
        let group = GROUPS.iter().find(|g| g.contains(&key));
        group.is_some_and(|g| g.iter().any(|k| keys.contains(k)))
    }

    /// The keys of `self` that `over` leaves in place when laid over it (which values of a
    /// layered workload came from the lower layer). A goodput table is replaced whole.
    pub fn keys_kept_under(&self, over: &WorkloadPatch) -> Vec<&'static str> {
        let over_keys = over.set_keys();
        let goodput_replaced = over.goodput.is_some();
        self.set_keys()
            .into_iter()
            .filter(|k| !over_keys.contains(k) && !over.sets_group_of(k))
            .filter(|k| !(goodput_replaced && k.starts_with("goodput.")))
            .collect()
    }
}

impl Workload {
    /// Lay `patch` over this workload: every key the patch sets replaces this one's; a patch
    /// that sets any key of a [`GROUPS`] group replaces the whole group (keys it leaves unset
    /// take their defaults).
    pub fn overlay(&mut self, patch: &WorkloadPatch) {
        let p = patch;
        if p.sets_group_of("requests") {
            self.requests = p.requests;
            self.duration = p.duration;
            if self.requests.is_none() && self.duration.is_none() {
                self.requests = Some(DEFAULT_REQUESTS);
            }
        }
        if p.sets_group_of("rate") {
            self.rate = p.rate;
            self.poisson = p.poisson.unwrap_or(false);
            self.concurrency = p.concurrency;
            if self.concurrency.is_none() && self.rate.is_none() {
                self.concurrency = Some(DEFAULT_CONCURRENCY);
            }
        }
        if p.sets_group_of("dataset") {
            self.input_tokens = p.input_tokens;
            self.dataset = p.dataset.clone();
            self.dataset_format = p.dataset_format.unwrap_or_default();
        }
        set(&mut self.endpoint, p.endpoint);
        set(&mut self.stream, p.stream);
        set(&mut self.seed, p.seed);
        set(&mut self.warmup, p.warmup);
        set(&mut self.max_tokens, p.max_tokens);
        set(&mut self.ignore_eos, p.ignore_eos);
        set_some(&mut self.temperature, p.temperature);
        set_some(&mut self.extra_body, p.extra_body.clone());
        set_some(&mut self.tokenizer, p.tokenizer.clone());
        set(&mut self.timeout, p.timeout);
        set_some(&mut self.first_token_timeout, p.first_token_timeout);
        set(&mut self.connect_timeout, p.connect_timeout);
        set(&mut self.inter_chunk_timeout, p.inter_chunk_timeout);
        set(&mut self.target_lost_after, p.target_lost_after);
        set(&mut self.memory_budget_mib, p.memory_budget_mib);
        set(&mut self.cold_connections, p.cold_connections);
        if let Some(terms) = &p.goodput {
            self.goodput = terms.iter().fold(Slo::default(), |acc, t| acc.merged(t));
        }
        set(&mut self.idle_window, p.idle_window);
        set(&mut self.settle_timeout, p.settle_timeout);
        set(&mut self.spans_timeout, p.spans_timeout);
    }

    /// This workload with `patch` laid over it.
    pub fn overlaid(mut self, patch: &WorkloadPatch) -> Workload {
        self.overlay(patch);
        self
    }

    /// The first-token limit in force: as set, else 30 s or `timeout` when shorter.
    pub fn effective_first_token_timeout(&self) -> Duration {
        self.first_token_timeout.unwrap_or(DEFAULT_FIRST_TOKEN_TIMEOUT.min(self.timeout))
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            first_token: self.effective_first_token_timeout(),
            request: self.timeout,
            inter_chunk: self.inter_chunk_timeout,
        }
    }

    /// How requests arrive. Call after [`validate`](Self::validate) found nothing.
    pub fn arrival(&self) -> ArrivalPlan {
        match self.rate {
            Some(rate) => {
                ArrivalPlan::Rate { rate, poisson: self.poisson, seed: self.seed, max_concurrency: self.concurrency }
            }
            None => ArrivalPlan::Concurrency { concurrency: self.concurrency.unwrap_or(DEFAULT_CONCURRENCY) },
        }
    }

    /// When the burst stops issuing requests.
    pub fn stop(&self) -> StopCondition {
        match (self.duration, self.requests) {
            (Some(d), _) => StopCondition::Duration(d),
            (None, n) => StopCondition::Requests(n.unwrap_or(DEFAULT_REQUESTS)),
        }
    }

    /// What the planned requests (warm-up included) need of client memory, when their number
    /// is known before the burst (a count, or a rate over a duration; a closed loop over a
    /// duration is checked as it runs).
    pub fn planned_memory_bytes(&self) -> Option<u64> {
        let requests = match (self.duration, self.requests, self.rate) {
            (Some(d), _, Some(rate)) if rate.is_finite() && rate > 0.0 => (rate * d.as_secs_f64()).ceil() as u64,
            (Some(_), _, _) => return None,
            (None, n, _) => n.unwrap_or(DEFAULT_REQUESTS),
        };
        Some(requests.saturating_add(self.warmup).saturating_mul(RETAINED_BYTES_PER_REQUEST))
    }

    /// Every rule between this workload's values. Keys are the workload's own
    /// (`concurrency`, `first_token_timeout`); each surface names them its way
    /// ([`Problem::render`]).
    pub fn validate(&self) -> Vec<Problem> {
        let w = self;
        let mut out = Vec::new();
        if w.concurrency == Some(0) {
            out.push(Problem::new("concurrency", "must be at least 1"));
        }
        if let Some(rate) = w.rate {
            positive("rate", rate, "requests per second", &mut out);
        }
        if w.poisson && w.rate.is_none() {
            out.push(Problem::across(
                "poisson",
                &["rate"],
                "shapes the gaps of an open loop; set {rate} too (or remove {poisson})",
            ));
        }
        if w.requests == Some(0) {
            out.push(Problem::new("requests", "must be at least 1"));
        }
        if let Some(d) = w.duration {
            duration("duration", d, false, &mut out);
        }
        if w.requests.is_some() && w.duration.is_some() {
            out.push(Problem::across(
                "duration",
                &["requests"],
                "set either {requests} or {duration}, not both ({requests} stops after N requests, {duration} after a time)",
            ));
        }
        if w.max_tokens == 0 {
            out.push(Problem::new("max_tokens", "must be at least 1"));
        }
        if let Some(need) = w.planned_memory_bytes()
            && w.memory_budget_mib > 0
            && need > w.memory_budget_mib.saturating_mul(1 << 20)
        {
            out.push(Problem::new(
                "memory_budget_mib",
                format!(
                    "the burst's planned requests need about {} MiB of client memory ({RETAINED_BYTES_PER_REQUEST} bytes per request), over the budget of {} MiB: raise memory_budget_mib, or plan fewer requests",
                    need.div_ceil(1 << 20),
                    w.memory_budget_mib
                ),
            ));
        }
        if let Some(t) = w.temperature
            && !(t.is_finite() && t >= 0.0)
        {
            out.push(Problem::new("temperature", format!("must be a number from 0 up, got {t}")));
        }
        if let Some(len) = &w.input_tokens {
            if let Err(e) = len.to_string().parse::<LengthSpec>() {
                out.push(Problem::new("input_tokens", e.to_string()));
            }
            if w.dataset.is_some() {
                out.push(Problem::across(
                    "input_tokens",
                    &["dataset"],
                    "sets the length of synthetic prompts; it cannot be combined with {dataset}",
                ));
            }
        }
        if w.dataset.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            out.push(Problem::new("dataset", "must not be empty"));
        }
        if w.tokenizer.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            out.push(Problem::new("tokenizer", "must not be empty"));
        }
        duration("timeout", w.timeout, false, &mut out);
        if let Some(ftt) = w.first_token_timeout {
            duration("first_token_timeout", ftt, false, &mut out);
            if ftt > w.timeout {
                out.push(Problem::across(
                    "first_token_timeout",
                    &["timeout"],
                    format!(
                        "{} is longer than {{timeout}} ({}), which bounds the whole request",
                        show(ftt),
                        show(w.timeout)
                    ),
                ));
            }
        }
        duration("connect_timeout", w.connect_timeout, false, &mut out);
        duration("inter_chunk_timeout", w.inter_chunk_timeout, false, &mut out);
        for (name, v) in [
            ("goodput.ttft_ms", w.goodput.ttft_ms),
            ("goodput.tpot_ms", w.goodput.tpot_ms),
            ("goodput.e2el_ms", w.goodput.e2el_ms),
        ] {
            if let Some(v) = v {
                positive(name, v, "milliseconds", &mut out);
            }
        }
        duration("idle_window", w.idle_window, true, &mut out);
        duration("settle_timeout", w.settle_timeout, true, &mut out);
        duration("spans_timeout", w.spans_timeout, true, &mut out);
        out
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn set_some<T>(slot: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *slot = v;
    }
}

/// A broken rule of a workload, about `key` (and, for a rule between keys, `related`).
/// The message names keys as `{key}`, filled in by [`Problem::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: &'static str,
    pub related: Vec<&'static str>,
    message: String,
}

impl Problem {
    fn new(key: &'static str, message: impl Into<String>) -> Problem {
        Problem { key, related: Vec::new(), message: message.into() }
    }

    fn across(key: &'static str, related: &[&'static str], message: impl Into<String>) -> Problem {
        Problem { key, related: related.to_vec(), message: message.into() }
    }

    /// The message with every `{key}` named by `name` (bare keys in the config, `--flags` for `run`).
    pub fn message(&self, name: impl Fn(&str) -> String) -> String {
        let mut m = self.message.clone();
        for k in std::iter::once(&self.key).chain(&self.related) {
            m = m.replace(&format!("{{{k}}}"), &name(k));
        }
        m
    }

    /// `key: message`, both named by `name`.
    pub fn render(&self, name: impl Fn(&str) -> String) -> String {
        format!("{}: {}", name(self.key), self.message(&name))
    }
}

/// A workload key as its `run` flag: `first_token_timeout` -> `--first-token-timeout`.
pub fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

fn positive(key: &'static str, v: f64, unit: &str, out: &mut Vec<Problem>) {
    out.extend(positive_problem(v, unit).map(|m| Problem::new(key, m)));
}

fn duration(key: &'static str, d: Duration, zero_ok: bool, out: &mut Vec<Problem>) {
    out.extend(duration_problem(d, zero_ok).map(|m| Problem::new(key, m)));
}

/// Why a number that must be above 0 is refused, if it is. Shared with the config's own keys.
pub fn positive_problem(v: f64, unit: &str) -> Option<String> {
    (!(v.is_finite() && v > 0.0)).then(|| format!("must be a number above 0 ({unit}), got {v}"))
}

/// Why a duration is refused (zero unless `zero_ok`, or over [`MAX_DURATION`]), if it is.
pub fn duration_problem(d: Duration, zero_ok: bool) -> Option<String> {
    if d.is_zero() && !zero_ok {
        Some("must be more than 0s".into())
    } else if d > MAX_DURATION {
        Some(format!("must be at most 365d, got {}", show(d)))
    } else {
        None
    }
}

/// A duration as the user writes it (`1m 30s`).
pub fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A duration flag: `30s`, `2m`, never zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 30s or 2m: {e}"))?;
    if d.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(d)
}

/// A count flag: a whole number, 0 or more, that fits `T` (clap's own parser says "invalid
/// digit found in string" to `-3` for a u64).
pub fn parse_count<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    if s.trim_start().starts_with('-') {
        return Err("must be 0 or more".into());
    }
    let n: u64 = s.trim().parse().map_err(|_| "must be a whole number, 0 or more".to_owned())?;
    T::try_from(n).map_err(|_| format!("{n} is too large here"))
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 1s or 500ms: {e}"))
}

fn parse_extra_body(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err("--extra-body must be a JSON object, like '{\"top_p\": 0.9}'".into()),
        Err(e) => Err(format!("--extra-body is not valid JSON: {e}")),
    }
}

fn parse_slo_term(s: &str) -> Result<Slo, String> {
    Slo::parse(&[s.to_owned()])
}

/// A trigger's `"30s"`.
fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    humantime::parse_duration(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("duration: {s:?} is not a duration like \"30s\" ({e})")))
}

/// A trigger's `128` or `"32..256"`.
fn de_length<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<LengthSpec>, D::Error> {
    let text = match <serde_json::Value as serde::Deserialize>::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!("input_tokens: expected N or \"MIN..MAX\", got {other}")));
        }
    };
    text.parse::<LengthSpec>().map(Some).map_err(|e| serde::de::Error::custom(format!("input_tokens: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(f: impl FnOnce(&mut WorkloadPatch)) -> WorkloadPatch {
        let mut p = WorkloadPatch::default();
        f(&mut p);
        p
    }

    #[test]
    fn an_empty_patch_changes_nothing() {
        let w = Workload { requests: Some(7), concurrency: Some(3), seed: 4, ..Workload::default() };
        assert_eq!(w.clone().overlaid(&WorkloadPatch::default()), w);
    }

    #[test]
    fn a_group_key_replaces_its_whole_group() {
        let open = Workload::default().overlaid(&patch(|p| {
            p.rate = Some(5.0);
            p.poisson = Some(true);
        }));
        assert_eq!((open.rate, open.poisson, open.concurrency), (Some(5.0), true, None));
        let closed = open.clone().overlaid(&patch(|p| p.concurrency = Some(2)));
        assert_eq!((closed.rate, closed.poisson, closed.concurrency), (None, false, Some(2)));
        let timed = Workload::default().overlaid(&patch(|p| p.duration = Some(Duration::from_secs(5))));
        assert_eq!((timed.requests, timed.duration), (None, Some(Duration::from_secs(5))));
        let counted = timed.overlaid(&patch(|p| p.requests = Some(9)));
        assert_eq!((counted.requests, counted.duration), (Some(9), None));
        let data = Workload { input_tokens: Some(LengthSpec::Fixed(9)), ..Workload::default() }
            .overlaid(&patch(|p| p.dataset = Some("d.jsonl".into())));
        assert_eq!((data.input_tokens, data.dataset.is_some()), (None, true));
    }

    #[test]
    fn keys_kept_under_an_overlay() {
        let defaults = patch(|p| {
            p.rate = Some(5.0);
            p.requests = Some(10);
        });
        assert_eq!(defaults.keys_kept_under(&patch(|p| p.concurrency = Some(2))), vec!["requests"]);
        assert_eq!(defaults.keys_kept_under(&WorkloadPatch::default()), vec!["requests", "rate"]);
        assert!(defaults.keys_kept_under(&patch(|p| p.duration = Some(Duration::from_secs(1)))) == vec!["rate"]);
    }

    #[test]
    fn the_first_token_timeout_follows_a_shorter_timeout() {
        let w = Workload::default().overlaid(&patch(|p| p.timeout = Some(Duration::from_secs(10))));
        assert_eq!(w.effective_first_token_timeout(), Duration::from_secs(10));
        assert_eq!(Workload::default().effective_first_token_timeout(), DEFAULT_FIRST_TOKEN_TIMEOUT);
    }

    #[test]
    fn problems_name_keys_per_surface() {
        let w = Workload {
            timeout: Duration::from_secs(10),
            first_token_timeout: Some(Duration::from_secs(90)),
            concurrency: Some(0),
            ..Workload::default()
        };
        let ps = w.validate();
        assert_eq!(ps.len(), 2, "{ps:?}");
        let cli: Vec<String> = ps.iter().map(|p| p.render(flag_name)).collect();
        assert!(cli.contains(&"--concurrency: must be at least 1".to_owned()), "{cli:?}");
        assert!(cli.iter().any(|m| m.starts_with("--first-token-timeout: 1m 30s is longer than --timeout (10s)")));
        let bare: Vec<String> = ps.iter().map(|p| p.render(str::to_owned)).collect();
        assert!(bare.iter().any(|m| m.contains("longer than timeout (10s)")), "{bare:?}");
    }

    #[test]
    fn bad_arrival_numbers_are_rejected() {
        let bad = |w: Workload| !w.validate().is_empty();
        assert!(bad(Workload { concurrency: Some(0), ..Workload::default() }));
        for rate in [0.0, f64::NAN, -1.0] {
            assert!(bad(Workload { rate: Some(rate), ..Workload::default() }), "{rate}");
        }
        assert!(!bad(Workload { rate: Some(2.5), poisson: true, ..Workload::default() }));
    }

    #[test]
    fn a_burst_planned_past_its_memory_budget_is_refused_before_it_starts() {
        // 1 MiB holds 43,690 requests' statistics (24 bytes each).
        let w = |requests, rate: Option<f64>, duration: Option<u64>| Workload {
            requests,
            rate,
            duration: duration.map(Duration::from_secs),
            memory_budget_mib: 1,
            ..Workload::default()
        };
        let problems = |w: Workload| w.validate().iter().map(|p| p.render(str::to_owned)).collect::<Vec<_>>();
        assert!(problems(w(Some(43_000), None, None)).is_empty());
        let ps = problems(w(Some(50_000), None, None));
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert!(ps[0].starts_with("memory_budget_mib: the burst's planned requests need about 2 MiB"), "{ps:?}");
        // A rate over a duration is a known number of requests too; a closed loop over a
        // duration is not (it is stopped when it reaches the budget instead).
        assert_eq!(problems(w(None, Some(1000.0), Some(60))).len(), 1);
        assert!(problems(w(None, None, Some(3600))).is_empty());
        assert!(problems(Workload { memory_budget_mib: 0, ..w(Some(u64::MAX), None, None) }).is_empty(), "0: no limit");
        assert!(
            problems(Workload { requests: Some(10_000_000), ..Workload::default() }).is_empty(),
            "the default holds 10M"
        );
    }

    #[test]
    fn a_trigger_body_cannot_name_files_or_timeouts() {
        let e = serde_json::from_str::<WorkloadPatch>(r#"{"dataset": "/etc/passwd"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `dataset`"), "{e}");
        let e = serde_json::from_str::<WorkloadPatch>(r#"{"timeout": "1s"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `timeout`"), "{e}");
        let p: WorkloadPatch = serde_json::from_str(r#"{"duration": "5s", "input_tokens": "8..16"}"#).unwrap();
        assert_eq!(p.duration, Some(Duration::from_secs(5)));
        assert_eq!(p.input_tokens, Some(LengthSpec::Uniform { min: 8, max: 16 }));
    }
}
