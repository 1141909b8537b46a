//! The simulator's metric state and its rendering as vLLM 0.32 `/metrics` text.
//!
//! The exposition text is written by hand on purpose: it must reproduce what
//! Python's `prometheus_client` prints for vLLM byte for byte in shape —
//! `vllm:` names with a colon, `floatToGoString` numbers (`41.0`,
//! `1.7954155149710898e+09`, `+Inf`), alphabetically sorted labels, and a
//! separate `<name>_created` *gauge* family after each counter/histogram/summary
//! (single-process registry). Rust metric crates emit OpenMetrics-style text
//! or other number formats, which is exactly what the project's parser must be
//! tested against. Rendering is a pure function of [`MetricsState`].
//!
//! Real 0.32 families deliberately not simulated (see `tests/golden/vllm-0.32-metrics.txt`):
//! * `python_gc_*`, `python_info`, `process_*`: Python runtime facts, not vLLM's;
//! * `vllm:estimated_flops_per_gpu_total`, `vllm:estimated_read_bytes_per_gpu_total`,
//!   `vllm:estimated_write_bytes_per_gpu_total`: MFU estimates need a model of
//!   the network and hardware; zeros would look like a measurement.

use std::fmt::Write as _;

/// The data-parallel rank label; the simulator is one engine.
const ENGINE: &str = "0";

/// `finished_reason` label values, pre-created at 0 like vLLM 0.20+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    Abort,
    Error,
    Repetition,
}

impl FinishReason {
    pub const ALL: [FinishReason; 5] =
        [FinishReason::Stop, FinishReason::Length, FinishReason::Abort, FinishReason::Error, FinishReason::Repetition];

    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
            FinishReason::Error => "error",
            FinishReason::Repetition => "repetition",
        }
    }
}

/// vLLM 0.32 default buckets (`vllm/v1/metrics/loggers.py`).
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
];
pub const ITL_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
pub const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
    1920.0, 7680.0,
];
pub const ITERATION_TOKEN_BUCKETS: &[f64] =
    &[1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];
pub const PARAMS_N_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];
pub const PREEMPTION_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0];
/// prometheus-fastapi-instrumentator defaults.
pub const HTTP_HIGHR_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0, 30.0, 60.0,
];
pub const HTTP_DURATION_BUCKETS: &[f64] = &[0.1, 0.5, 1.0];

/// vLLM's `build_1_2_5_buckets(max_model_len)`: 1, 2, 5, 10, 20, 50, … ≤ max.
pub fn one_two_five_buckets(max: u32) -> Vec<f64> {
    let mut out = Vec::new();
    let mut exponent = 1u64;
    loop {
        for mantissa in [1u64, 2, 5] {
            let v = mantissa * exponent;
            if v > u64::from(max) {
                return out;
            }
            out.push(v as f64);
        }
        exponent *= 10;
    }
}

/// A classic Prometheus histogram: per-bucket (non-cumulative) counts, the
/// last slot being `+Inf`.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Histogram { bounds: bounds.to_vec(), counts: vec![0; bounds.len() + 1], sum: 0.0 }
    }

    pub fn observe(&mut self, v: f64) {
        // `le` semantics: a value equal to a bound belongs to that bucket.
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
    }

    #[cfg(test)]
    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    #[cfg(test)]
    fn sum(&self) -> f64 {
        self.sum
    }

    fn reset(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.sum = 0.0;
    }
}

/// What one finished request contributes to the per-request families.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinishedRequest {
    pub reason: FinishReason,
    pub prompt_tokens: u32,
    pub generation_tokens: u32,
    /// Effective `max_tokens` (after vLLM 0.32's clamp to the context).
    pub max_tokens: u32,
    pub e2e: f64,
    pub queue: f64,
    pub prefill: f64,
    pub decode: f64,
    pub inference: f64,
}

/// One finished HTTP request as prometheus-fastapi-instrumentator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpObservation<'a> {
    pub handler: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub duration: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

#[derive(Debug, Clone)]
struct HttpCounterChild {
    handler: String,
    method: String,
    status: &'static str,
    value: u64,
    created: f64,
}

#[derive(Debug, Clone)]
struct SizeChild {
    handler: String,
    count: u64,
    sum: u64,
    created: f64,
}

#[derive(Debug, Clone)]
struct DurationChild {
    handler: String,
    method: String,
    hist: Histogram,
    created: f64,
}

/// Everything `/metrics` shows. Counters are plain integers; gauges are the
/// live scheduler state.
#[derive(Debug, Clone)]
pub struct MetricsState {
    model: String,
    /// Unix time the vLLM families were (re)created: their `_created` value.
    created: f64,
    pub running: u64,
    pub waiting: u64,
    /// Tokens held in the KV cache by running requests.
    pub kv_tokens: u64,
    kv_capacity: u64,
    prefix_queries: u64,
    prefix_hits: u64,
    prompt_tokens: u64,
    generation_tokens: u64,
    success: [u64; 5],
    request_prompt_tokens: Histogram,
    request_generation_tokens: Histogram,
    iteration_tokens: Histogram,
    request_max_num_generation_tokens: Histogram,
    request_params_n: Histogram,
    request_params_max_tokens: Histogram,
    ttft: Histogram,
    itl: Histogram,
    request_tpot: Histogram,
    e2e: Histogram,
    queue: Histogram,
    inference: Histogram,
    prefill: Histogram,
    decode: Histogram,
    request_num_preemptions: Histogram,
    request_prefill_kv_computed_tokens: Histogram,
    http_requests: Vec<HttpCounterChild>,
    http_request_size: Vec<SizeChild>,
    http_response_size: Vec<SizeChild>,
    http_duration_highr: Histogram,
    http_duration_highr_created: f64,
    http_duration: Vec<DurationChild>,
}

impl MetricsState {
    pub fn new(model: &str, max_model_len: u32, kv_capacity: u64, now_unix: f64) -> Self {
        let tokens = one_two_five_buckets(max_model_len);
        MetricsState {
            model: model.to_string(),
            created: now_unix,
            running: 0,
            waiting: 0,
            kv_tokens: 0,
            kv_capacity: kv_capacity.max(1),
            prefix_queries: 0,
            prefix_hits: 0,
            prompt_tokens: 0,
            generation_tokens: 0,
            success: [0; 5],
            request_prompt_tokens: Histogram::new(&tokens),
            request_generation_tokens: Histogram::new(&tokens),
            iteration_tokens: Histogram::new(ITERATION_TOKEN_BUCKETS),
            request_max_num_generation_tokens: Histogram::new(&tokens),
            request_params_n: Histogram::new(PARAMS_N_BUCKETS),
            request_params_max_tokens: Histogram::new(&tokens),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            request_tpot: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(REQUEST_LATENCY_BUCKETS),
            queue: Histogram::new(REQUEST_LATENCY_BUCKETS),
            inference: Histogram::new(REQUEST_LATENCY_BUCKETS),
            prefill: Histogram::new(REQUEST_LATENCY_BUCKETS),
            decode: Histogram::new(REQUEST_LATENCY_BUCKETS),
            request_num_preemptions: Histogram::new(PREEMPTION_BUCKETS),
            request_prefill_kv_computed_tokens: Histogram::new(&tokens),
            http_requests: Vec::new(),
            http_request_size: Vec::new(),
            http_response_size: Vec::new(),
            http_duration_highr: Histogram::new(HTTP_HIGHR_BUCKETS),
            http_duration_highr_created: now_unix,
            http_duration: Vec::new(),
        }
    }

    /// A new request was scheduled: the prefix cache is queried with its
    /// whole prompt (and never hits: the simulator has no cache).
    pub fn on_scheduled(&mut self, prompt_tokens: u32) {
        self.prefix_queries += u64::from(prompt_tokens);
    }

    /// The first output token reached the frontend: vLLM books the prompt
    /// and observes TTFT (from arrival) here, once per request.
    pub fn on_first_token(&mut self, prompt_tokens: u32, ttft: f64) {
        self.prompt_tokens += u64::from(prompt_tokens);
        self.generation_tokens += 1;
        self.ttft.observe(ttft);
        // The simulator has no batches: each request's step is its own
        // iteration (prefill + first token).
        self.iteration_tokens.observe(f64::from(prompt_tokens) + 1.0);
    }

    /// A later output token, `itl` seconds after the previous one.
    pub fn on_next_token(&mut self, itl: f64) {
        self.generation_tokens += 1;
        self.itl.observe(itl);
        self.iteration_tokens.observe(1.0);
    }

    /// A request finished inside the engine (never called for aborts).
    pub fn on_finished(&mut self, r: &FinishedRequest) {
        self.success[r.reason as usize] += 1;
        let prompt = f64::from(r.prompt_tokens);
        let generated = f64::from(r.generation_tokens);
        self.request_prompt_tokens.observe(prompt);
        self.request_generation_tokens.observe(generated);
        self.request_max_num_generation_tokens.observe(f64::from(r.max_tokens));
        self.request_params_n.observe(1.0);
        self.request_params_max_tokens.observe(f64::from(r.max_tokens));
        let tpot = if r.generation_tokens > 1 { r.decode / (generated - 1.0) } else { 0.0 };
        self.request_tpot.observe(tpot);
        self.e2e.observe(r.e2e);
        self.queue.observe(r.queue);
        self.inference.observe(r.inference);
        self.prefill.observe(r.prefill);
        self.decode.observe(r.decode);
        self.request_num_preemptions.observe(0.0);
        self.request_prefill_kv_computed_tokens.observe(prompt);
    }

    /// One HTTP request ended (instrumentator semantics; `now_unix` creates
    /// new label children).
    pub fn on_http(&mut self, o: &HttpObservation<'_>, now_unix: f64) {
        let status = match o.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        match self
            .http_requests
            .iter_mut()
            .find(|c| c.handler == o.handler && c.method == o.method && c.status == status)
        {
            Some(c) => c.value += 1,
            None => self.http_requests.push(HttpCounterChild {
                handler: o.handler.to_string(),
                method: o.method.to_string(),
                status,
                value: 1,
                created: now_unix,
            }),
        }
        for (children, bytes) in
            [(&mut self.http_request_size, o.request_bytes), (&mut self.http_response_size, o.response_bytes)]
        {
            match children.iter_mut().find(|c| c.handler == o.handler) {
                Some(c) => {
                    c.count += 1;
                    c.sum += bytes;
                }
                None => {
                    children.push(SizeChild { handler: o.handler.to_string(), count: 1, sum: bytes, created: now_unix })
                }
            }
        }
        self.http_duration_highr.observe(o.duration);
        match self.http_duration.iter_mut().find(|c| c.handler == o.handler && c.method == o.method) {
            Some(c) => c.hist.observe(o.duration),
            None => {
                let mut hist = Histogram::new(HTTP_DURATION_BUCKETS);
                hist.observe(o.duration);
                self.http_duration.push(DurationChild {
                    handler: o.handler.to_string(),
                    method: o.method.to_string(),
                    hist,
                    created: now_unix,
                });
            }
        }
    }

    /// A server restart: every counter and histogram back to zero with a new
    /// `_created`; labelled HTTP children disappear. Gauges keep the live state.
    pub fn reset(&mut self, now_unix: f64) {
        self.created = now_unix;
        self.prefix_queries = 0;
        self.prefix_hits = 0;
        self.prompt_tokens = 0;
        self.generation_tokens = 0;
        self.success = [0; 5];
        for h in self.histograms_mut() {
            h.reset();
        }
        self.http_requests.clear();
        self.http_request_size.clear();
        self.http_response_size.clear();
        self.http_duration_highr.reset();
        self.http_duration_highr_created = now_unix;
        self.http_duration.clear();
    }

    fn histograms_mut(&mut self) -> [&mut Histogram; 16] {
        [
            &mut self.request_prompt_tokens,
            &mut self.request_generation_tokens,
            &mut self.iteration_tokens,
            &mut self.request_max_num_generation_tokens,
            &mut self.request_params_n,
            &mut self.request_params_max_tokens,
            &mut self.ttft,
            &mut self.itl,
            &mut self.request_tpot,
            &mut self.e2e,
            &mut self.queue,
            &mut self.inference,
            &mut self.prefill,
            &mut self.decode,
            &mut self.request_num_preemptions,
            &mut self.request_prefill_kv_computed_tokens,
        ]
    }

    pub fn kv_cache_usage(&self) -> f64 {
        (self.kv_tokens as f64 / self.kv_capacity as f64).min(1.0)
    }
}

/// Renders the state as vLLM 0.32's classic text exposition, families in
/// the real server's order.
pub fn render(s: &MetricsState) -> String {
    let mut w = Writer::with_capacity(48 * 1024);
    let m = s.model.as_str();
    let base: Labels = vec![("engine", ENGINE.to_string()), ("model_name", m.to_string())];
    let with = |k: &'static str, v: &str| -> Labels {
        let mut l = base.clone();
        l.push((k, v.to_string()));
        l
    };

    w.gauge(
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        &[(base.clone(), s.running as f64)],
    );
    w.gauge(
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        &[(base.clone(), s.waiting as f64)],
    );
    w.gauge(
        "vllm:num_requests_waiting_by_reason",
        "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.",
        &[
            (with("reason", "capacity"), s.waiting as f64),
            (with("reason", "deferred"), 0.0),
        ],
    );
    w.gauge(
        "vllm:engine_sleep_state",
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
        &[
            (with("sleep_state", "awake"), 1.0),
            (with("sleep_state", "weights_offloaded"), 0.0),
            (with("sleep_state", "discard_all"), 0.0),
        ],
    );
    w.gauge(
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        &[(base.clone(), s.kv_cache_usage())],
    );

    let c = s.created;
    let simple_counters: [(&str, &str, u64); 7] = [
        ("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", s.prefix_queries),
        ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", s.prefix_hits),
        (
            "vllm:external_prefix_cache_queries",
            "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.",
            0,
        ),
        (
            "vllm:external_prefix_cache_hits",
            "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.",
            0,
        ),
        ("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items.", 0),
        ("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items.", 0),
        ("vllm:num_preemptions", "Cumulative number of preemption from the engine.", 0),
    ];
    for (name, help, v) in simple_counters {
        w.counter(name, help, &[(base.clone(), v as f64, c)]);
    }
    w.counter(
        "vllm:prompt_tokens",
        "Number of prefill tokens processed.",
        &[(base.clone(), s.prompt_tokens as f64, c)],
    );
    w.counter(
        "vllm:prompt_tokens_by_source",
        "Number of prompt tokens by source.",
        &[
            (with("source", "local_compute"), s.prompt_tokens as f64, c),
            (with("source", "local_cache_hit"), 0.0, c),
            (with("source", "external_kv_transfer"), 0.0, c),
        ],
    );
    w.counter(
        "vllm:prompt_tokens_cached",
        "Number of cached prompt tokens (local + external).",
        &[(base.clone(), 0.0, c)],
    );
    let cached_sources = ["device", "host", "p2p", "disk", "external_unspecified"];
    w.counter(
        "vllm:prompt_tokens_cached_by_source",
        "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.",
        &cached_sources
            .iter()
            .map(|src| (with("source", src), 0.0, c))
            .collect::<Vec<_>>(),
    );
    w.counter(
        "vllm:generation_tokens",
        "Number of generation tokens processed.",
        &[(base.clone(), s.generation_tokens as f64, c)],
    );
    w.counter(
        "vllm:request_success",
        "Count of successfully processed requests.",
        &FinishReason::ALL
            .iter()
            .map(|r| (with("finished_reason", r.as_str()), s.success[*r as usize] as f64, c))
            .collect::<Vec<_>>(),
    );
    // No `engine` label here: admission happens in the frontend.
    let admission = |reason: &str| -> Labels { vec![("model_name", m.to_string()), ("reason", reason.to_string())] };
    w.counter(
        "vllm:admission_rejections",
        "Number of admission attempts rejected by a queue limit, by reason.",
        &[(admission("max_num_queued_reqs"), 0.0, c), (admission("max_num_queued_tokens"), 0.0, c)],
    );

    let hists: [(&str, &str, &Histogram); 16] = [
        ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", &s.request_prompt_tokens),
        ("vllm:request_generation_tokens", "Number of generation tokens processed.", &s.request_generation_tokens),
        ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", &s.iteration_tokens),
        (
            "vllm:request_max_num_generation_tokens",
            "Histogram of maximum number of requested generation tokens.",
            &s.request_max_num_generation_tokens,
        ),
        ("vllm:request_params_n", "Histogram of the n request parameter.", &s.request_params_n),
        (
            "vllm:request_params_max_tokens",
            "Histogram of the max_tokens request parameter.",
            &s.request_params_max_tokens,
        ),
        ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", &s.ttft),
        ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", &s.itl),
        (
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            &s.request_tpot,
        ),
        ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", &s.e2e),
        ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", &s.queue),
        ("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", &s.inference),
        ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", &s.prefill),
        ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", &s.decode),
        (
            "vllm:request_num_preemptions",
            "Histogram of the number of times a request was preempted.",
            &s.request_num_preemptions,
        ),
        (
            "vllm:request_prefill_kv_computed_tokens",
            "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
            &s.request_prefill_kv_computed_tokens,
        ),
    ];
    for (name, help, h) in hists {
        w.histogram(name, help, &[(base.clone(), h, c)]);
    }

    w.gauge(
        "vllm:cache_config_info",
        "Information of the LLMEngine CacheConfig",
        &[(cache_config_labels(s.kv_capacity), 1.0)],
    );

    w.counter(
        "http_requests",
        "Total number of requests by method, status and handler.",
        &s.http_requests
            .iter()
            .map(|ch| {
                (
                    vec![
                        ("handler", ch.handler.clone()),
                        ("method", ch.method.clone()),
                        ("status", ch.status.to_string()),
                    ],
                    ch.value as f64,
                    ch.created,
                )
            })
            .collect::<Vec<_>>(),
    );
    let size_children = |children: &[SizeChild]| -> Vec<(Labels, u64, f64, f64)> {
        children.iter().map(|ch| (vec![("handler", ch.handler.clone())], ch.count, ch.sum as f64, ch.created)).collect()
    };
    // The trailing spaces are in the instrumentator's own help texts.
    w.summary(
        "http_request_size_bytes",
        "Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ",
        &size_children(&s.http_request_size),
    );
    w.summary(
        "http_response_size_bytes",
        "Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ",
        &size_children(&s.http_response_size),
    );
    w.histogram(
        "http_request_duration_highr_seconds",
        "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
        &[(Vec::new(), &s.http_duration_highr, s.http_duration_highr_created)],
    );
    w.histogram(
        "http_request_duration_seconds",
        "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
        &s.http_duration
            .iter()
            .map(|ch| (vec![("handler", ch.handler.clone()), ("method", ch.method.clone())], &ch.hist, ch.created))
            .collect::<Vec<_>>(),
    );
    w.out
}

/// The label set of a plausible GPU engine's `CacheConfig` (same label names
/// as the real 0.32 output).
fn cache_config_labels(kv_capacity: u64) -> Labels {
    const BLOCK: u64 = 16;
    vec![
        ("_block_size_resolved", "True".to_string()),
        ("block_size", BLOCK.to_string()),
        ("cache_dtype", "auto".to_string()),
        ("cache_hit_alignment_tokens", "None".to_string()),
        ("effective_attention_block_size", BLOCK.to_string()),
        ("enable_mamba_shared_prefix_checkpoint", "False".to_string()),
        ("enable_prefix_caching", "True".to_string()),
        ("engine", ENGINE.to_string()),
        ("gpu_memory_utilization", "0.9".to_string()),
        ("hash_block_size", "None".to_string()),
        ("is_attention_free", "False".to_string()),
        ("kv_cache_dtype_skip_layers", "[]".to_string()),
        ("kv_cache_layout", "None".to_string()),
        ("kv_cache_size_tokens", kv_capacity.to_string()),
        ("kv_offloading_backend", "native".to_string()),
        ("kv_offloading_size", "None".to_string()),
        ("kv_sharing_fast_prefill", "False".to_string()),
        ("num_cpu_blocks", "None".to_string()),
        ("num_gpu_blocks", kv_capacity.div_ceil(BLOCK).to_string()),
        ("num_gpu_blocks_override", "None".to_string()),
        ("prefix_caching_hash_algo", "sha256".to_string()),
        ("sliding_window", "None".to_string()),
        ("user_specified_block_size", "False".to_string()),
    ]
}

type Labels = Vec<(&'static str, String)>;

struct Writer {
    out: String,
}

impl Writer {
    fn with_capacity(n: usize) -> Self {
        Writer { out: String::with_capacity(n) }
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], le: Option<&str>, value: f64) {
        self.out.push_str(name);
        let mut all: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(le) = le {
            all.push(("le", le));
        }
        // prometheus_client sorts labels by name when rendering.
        all.sort_by(|a, b| a.0.cmp(b.0));
        if !all.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in all.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_value(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&go_float(value));
        self.out.push('\n');
    }

    fn created(&mut self, base: &str, help: &str, children: &[(&Labels, f64)]) {
        if children.is_empty() {
            return;
        }
        let name = format!("{base}_created");
        self.header(&name, "gauge", help);
        for (labels, created) in children {
            self.sample(&name, labels, None, *created);
        }
    }

    fn gauge(&mut self, name: &str, help: &str, children: &[(Labels, f64)]) {
        self.header(name, "gauge", help);
        for (labels, v) in children {
            self.sample(name, labels, None, *v);
        }
    }

    /// `base` without `_total`: prometheus_client appends it to the samples
    /// and names the creation gauge `<base>_created`.
    fn counter(&mut self, base: &str, help: &str, children: &[(Labels, f64, f64)]) {
        let total = format!("{base}_total");
        self.header(&total, "counter", help);
        for (labels, v, _) in children {
            self.sample(&total, labels, None, *v);
        }
        let created: Vec<_> = children.iter().map(|(l, _, c)| (l, *c)).collect();
        self.created(base, help, &created);
    }

    fn histogram(&mut self, name: &str, help: &str, children: &[(Labels, &Histogram, f64)]) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let count = format!("{name}_count");
        let sum = format!("{name}_sum");
        for (labels, h, _) in children {
            let mut cumulative = 0u64;
            for (bound, n) in h.bounds.iter().zip(&h.counts) {
                cumulative += n;
                self.sample(&bucket, labels, Some(&go_float(*bound)), cumulative as f64);
            }
            cumulative += h.counts.last().copied().unwrap_or(0);
            self.sample(&bucket, labels, Some("+Inf"), cumulative as f64);
            self.sample(&count, labels, None, cumulative as f64);
            self.sample(&sum, labels, None, h.sum);
        }
        let created: Vec<_> = children.iter().map(|(l, _, c)| (l, *c)).collect();
        self.created(name, help, &created);
    }

    fn summary(&mut self, name: &str, help: &str, children: &[(Labels, u64, f64, f64)]) {
        self.header(name, "summary", help);
        let count = format!("{name}_count");
        let sum = format!("{name}_sum");
        for (labels, n, s, _) in children {
            self.sample(&count, labels, None, *n as f64);
            self.sample(&sum, labels, None, *s);
        }
        let created: Vec<_> = children.iter().map(|(l, _, _, c)| (l, *c)).collect();
        self.created(name, help, &created);
    }
}

fn escape_label_value(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            _ => out.push(ch),
        }
    }
}

/// Python `prometheus_client.utils.floatToGoString`: Python's `repr(float)`
/// (shortest round-trip digits, exponent outside 1e-4..1e16), except that
/// positive numbers with more than six integer digits switch to Go-style
/// exponents (`1.7954155149710898e+09`).
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let (first, rest) = digits.split_at(1);
    let scientific = |exp: i32| {
        let sign = if exp < 0 { '-' } else { '+' };
        let dot = if rest.is_empty() { "" } else { "." };
        format!("{first}{dot}{rest}e{sign}{:02}", exp.abs())
    };
    let body = if !(-4..16).contains(&exp) || (v > 0.0 && exp >= 6) {
        scientific(exp)
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() > int_len {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        } else {
            format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
        }
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    if v < 0.0 { format!("-{body}") } else { body }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = include_str!("../../tests/golden/vllm-0.32-metrics.txt");

    #[test]
    fn floats_are_formatted_like_prometheus_client() {
        let cases: &[(f64, &str)] = &[
            (41.0, "41.0"),
            (0.0, "0.0"),
            (1.0, "1.0"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (9.75010481363281e-06, "9.75010481363281e-06"),
            (2560.0, "2560.0"),
            (16384.0, "16384.0"),
            (123456.0, "123456.0"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (1795415514.9710898, "1.7954155149710898e+09"),
            (4840382464.0, "4.840382464e+09"),
            (9.77727488e+08, "9.77727488e+08"),
            (0.847163200378418, "0.847163200378418"),
            (1e16, "1e+16"),
            (1.5e17, "1.5e+17"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(go_float(*v), *want, "formatting {v:e}");
        }
    }

    #[test]
    fn one_two_five_buckets_stop_at_max_model_len() {
        assert_eq!(one_two_five_buckets(1024), vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]);
        assert_eq!(one_two_five_buckets(5), vec![1.0, 2.0, 5.0]);
    }

    #[test]
    fn histogram_buckets_use_le_semantics() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.counts, vec![2, 2, 1]);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 8.0);
    }

    fn sample_state() -> MetricsState {
        let mut s = MetricsState::new("m", 1024, 1000, 1_795_415_514.5);
        s.on_scheduled(20);
        s.on_first_token(20, 0.05);
        s.on_next_token(0.01);
        s.on_next_token(0.03);
        s.on_finished(&FinishedRequest {
            reason: FinishReason::Length,
            prompt_tokens: 20,
            generation_tokens: 3,
            max_tokens: 3,
            e2e: 0.09,
            queue: 0.0,
            prefill: 0.05,
            decode: 0.04,
            inference: 0.09,
        });
        s.running = 2;
        s.kv_tokens = 250;
        s.on_http(
            &HttpObservation {
                handler: "/v1/chat/completions",
                method: "POST",
                status: 200,
                duration: 0.2,
                request_bytes: 100,
                response_bytes: 0,
            },
            1_795_415_600.25,
        );
        s
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line starting with {prefix}"))
    }

    #[test]
    fn render_shows_counters_gauges_and_created() {
        let text = render(&sample_state());
        assert_eq!(
            line(&text, "vllm:prompt_tokens_total{"),
            r#"vllm:prompt_tokens_total{engine="0",model_name="m"} 20.0"#
        );
        assert_eq!(
            line(&text, "vllm:generation_tokens_total{"),
            r#"vllm:generation_tokens_total{engine="0",model_name="m"} 3.0"#
        );
        assert_eq!(
            line(&text, "vllm:prompt_tokens_created{"),
            r#"vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7954155145e+09"#
        );
        assert!(text.contains("# TYPE vllm:prompt_tokens_created gauge\n"));
        assert!(
            text.contains("vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"m\"} 1.0\n")
        );
        for reason in ["stop", "abort", "error", "repetition"] {
            assert!(text.contains(&format!(
                "vllm:request_success_total{{engine=\"0\",finished_reason=\"{reason}\",model_name=\"m\"}} 0.0\n"
            )));
        }
        assert!(text.contains("vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 2.0\n"));
        assert!(text.contains("vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25\n"));
        assert!(
            text.contains("vllm:admission_rejections_total{model_name=\"m\",reason=\"max_num_queued_reqs\"} 0.0\n")
        );
        assert!(
            text.contains("http_requests_total{handler=\"/v1/chat/completions\",method=\"POST\",status=\"2xx\"} 1.0\n")
        );
        assert!(text.contains(
            "http_requests_created{handler=\"/v1/chat/completions\",method=\"POST\",status=\"2xx\"} 1.79541560025e+09\n"
        ));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn histogram_rendering_is_cumulative_with_le_sorted_between_labels() {
        let text = render(&sample_state());
        let ttft: Vec<&str> = text.lines().filter(|l| l.starts_with("vllm:time_to_first_token_seconds_")).collect();
        assert_eq!(ttft.len(), 22 + 1 + 2 + 1, "{ttft:#?}");
        assert_eq!(ttft[0], r#"vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0"#);
        assert_eq!(ttft[5], r#"vllm:time_to_first_token_seconds_bucket{engine="0",le="0.06",model_name="m"} 1.0"#);
        assert_eq!(ttft[22], r#"vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 1.0"#);
        assert_eq!(ttft[23], r#"vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 1.0"#);
        assert_eq!(ttft[24], r#"vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 0.05"#);
        assert!(ttft[25].starts_with("vllm:time_to_first_token_seconds_created{"));
        // ITL: 0.01 and 0.03 -> buckets le=0.01:1, le=0.025:1, le=0.05:2.
        assert!(
            text.contains("vllm:inter_token_latency_seconds_bucket{engine=\"0\",le=\"0.01\",model_name=\"m\"} 1.0\n")
        );
        assert!(
            text.contains("vllm:inter_token_latency_seconds_bucket{engine=\"0\",le=\"0.025\",model_name=\"m\"} 1.0\n")
        );
        assert!(
            text.contains("vllm:inter_token_latency_seconds_bucket{engine=\"0\",le=\"0.05\",model_name=\"m\"} 2.0\n")
        );
        // Per-request TPOT = decode / (n - 1) = 0.04 / 2.
        assert!(text.contains("vllm:request_time_per_output_token_seconds_sum{engine=\"0\",model_name=\"m\"} 0.02\n"));
        // The iteration histogram saw the prefill step (21 tokens) and two decode steps.
        assert!(text.contains("vllm:iteration_tokens_total_sum{engine=\"0\",model_name=\"m\"} 23.0\n"));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{handler=\"/v1/chat/completions\",le=\"0.5\",method=\"POST\"} 1.0\n"
        ));
    }

    #[test]
    fn untouched_labelled_families_have_no_samples_and_no_created() {
        let s = MetricsState::new("m", 1024, 1000, 1.0);
        let text = render(&s);
        assert!(text.contains("# TYPE http_requests_total counter\n# HELP http_request_size_bytes "));
        assert!(!text.contains("http_requests_created"));
        // The unlabelled instrumentator histogram always exists.
        assert!(text.contains("http_request_duration_highr_seconds_count 0.0\n"));
        assert!(text.contains("http_request_duration_highr_seconds_created 1.0\n"));
    }

    #[test]
    fn reset_zeroes_counters_and_renews_created() {
        let mut s = sample_state();
        s.reset(1_800_000_000.0);
        let text = render(&s);
        assert!(text.contains("vllm:prompt_tokens_total{engine=\"0\",model_name=\"m\"} 0.0\n"));
        assert!(text.contains("vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"m\"} 0.0\n"));
        assert!(text.contains("vllm:prompt_tokens_created{engine=\"0\",model_name=\"m\"} 1.8e+09\n"));
        assert!(!text.contains("http_requests_total{"));
        // Gauges describe live requests and survive the "restart".
        assert!(text.contains("vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 2.0\n"));
    }

    /// Family name -> TYPE, in order of appearance.
    fn families(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn every_family_exists_in_the_real_scrape_with_the_same_type_and_order() {
        let ours = families(&render(&sample_state()));
        let real = families(GOLDEN);
        let position = |name: &str| real.iter().position(|(n, _)| n == name);
        let mut last = 0;
        for (name, kind) in &ours {
            let i = position(name).unwrap_or_else(|| panic!("{name} is not in the real scrape"));
            assert_eq!(&real[i].1, kind, "TYPE of {name}");
            assert!(i >= last, "{name} is out of the real order");
            last = i;
        }
        // Real families we leave out on purpose (documented at the top).
        let skipped: Vec<&str> =
            real.iter().map(|(n, _)| n.as_str()).filter(|n| !ours.iter().any(|(o, _)| o == n)).collect();
        for name in &skipped {
            assert!(
                name.starts_with("python_") || name.starts_with("process_") || name.starts_with("vllm:estimated_"),
                "unexpectedly missing family {name}"
            );
        }
    }

    #[test]
    fn help_texts_and_bucket_bounds_match_the_real_scrape() {
        let ours = render(&sample_state());
        let real_help: Vec<&str> = GOLDEN.lines().filter(|l| l.starts_with("# HELP")).collect();
        for help in ours.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(real_help.contains(&help), "HELP differs: {help}");
        }
        // Same `le` sequence per histogram (the golden server had max_model_len 1024).
        let les = |text: &str, family: &str| -> Vec<String> {
            let prefix = format!("{family}_bucket{{");
            let mut seen = Vec::new();
            for l in text.lines().filter(|l| l.starts_with(&prefix)) {
                let le = l.split("le=\"").nth(1).and_then(|r| r.split('"').next());
                if let Some(le) = le
                    && !seen.iter().any(|s: &String| s == le)
                {
                    seen.push(le.to_string());
                }
            }
            seen
        };
        for (name, kind) in families(&ours) {
            if kind == "histogram" {
                assert_eq!(les(&ours, &name), les(GOLDEN, &name), "buckets of {name}");
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let s = MetricsState::new("a\"b\\c", 16, 10, 1.0);
        let text = render(&s);
        assert!(text.contains(r#"model_name="a\"b\\c""#));
    }
}
