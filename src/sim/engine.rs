//! The simulated engine: shared state, per-request decisions (length, finish
//! reason, faults) and one request's life — FIFO admission to a running slot,
//! tokens on absolute deadlines, metric bookkeeping, abort when dropped.
//!
//! Counting follows vLLM 0.32 (v1 engine): the prompt and TTFT are booked at
//! the first token, generation tokens per token, success and every
//! per-request histogram only when the request finishes. A request dropped
//! before it finishes (client disconnect, stream cut) is an abort: its tokens
//! stay counted, nothing else is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::{SmallRng, StdRng};
use rand::{RngExt, SeedableRng};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::config::{Faults, SimConfig};
use super::logs::{LogWriter, StatsInterval};
use super::metrics::{FinishReason, FinishedRequest, MetricsState};
use super::spans::{FinishedSpan, SpanSink};

/// Output "words": one word is one token. Plain lowercase ASCII so the SSE
/// templates never need JSON escaping (checked by a test).
pub const VOCABULARY: &[&str] = &[
    " the", " of", " and", " to", " in", " a", " is", " that", " for", " it", " as", " was", " with", " be", " by",
    " on", " not", " he", " this", " are", " or", " his", " from", " at", " which", " but", " have", " an", " had",
    " they", " you", " were", " their", " one", " all", " we", " can", " her", " has", " there", " been", " if",
    " more", " when", " will", " would", " who", " so", " no", " model", " token", " server", " engine", " cache",
    " request", " stream", " latency", " batch", " prompt", " output", " metric", " queue", " load", " burst",
];

/// Chat-template overhead in the prompt-token approximation (see [`chat_prompt_tokens`]).
pub const CHAT_TEMPLATE_TOKENS: u32 = 8;
pub const CHAT_TOKENS_PER_MESSAGE: u32 = 4;

/// Prompt tokens of a chat request, approximated without a tokenizer:
/// `8 + Σ(4 + words in the message)` (words = whitespace-separated pieces).
/// Against the real 0.32 server's Llama tokenizer this lands within a few
/// tokens for short English prompts (e.g. "Say hello" → 14 both ways).
pub fn chat_prompt_tokens(words_per_message: &[u32]) -> u32 {
    words_per_message
        .iter()
        .fold(CHAT_TEMPLATE_TOKENS, |acc, w| acc.saturating_add(CHAT_TOKENS_PER_MESSAGE).saturating_add(*w))
}

/// Prompt tokens of a completions prompt: words + 1 (the BOS token).
pub fn completion_prompt_tokens(words: u32) -> u32 {
    words.saturating_add(1)
}

pub fn count_words(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// How long a request generates and why it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthPlan {
    /// Effective `max_tokens`: the request's, silently clamped to the context
    /// like vLLM 0.32, or the whole remaining context when absent.
    pub max_tokens: u32,
    pub output_tokens: u32,
    pub finish: FinishReason,
}

/// `sampled` is where the "model" would emit EOS. `prompt < max_model_len`
/// must already hold.
pub fn plan_length(
    prompt: u32,
    max_model_len: u32,
    max_tokens: Option<u32>,
    ignore_eos: bool,
    sampled: u32,
) -> LengthPlan {
    let room = max_model_len.saturating_sub(prompt).max(1);
    let max = max_tokens.map_or(room, |m| m.clamp(1, room));
    if ignore_eos || sampled >= max {
        LengthPlan { max_tokens: max, output_tokens: max, finish: FinishReason::Length }
    } else {
        LengthPlan { max_tokens: max, output_tokens: sampled.max(1), finish: FinishReason::Stop }
    }
}

/// Fault decisions of one request. Every draw is taken whatever the rates,
/// so a seed gives the same sequence of decisions under any fault setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultDecision {
    pub http_error: bool,
    pub drop_from_metrics: bool,
    /// Stream only: number of tokens delivered before the connection is cut.
    pub cut_after: Option<u32>,
    /// The request's `llm_request` span is not exported.
    pub drop_span: bool,
}

impl FaultDecision {
    pub fn draw(faults: &Faults, rng: &mut SmallRng, output_tokens: u32, stream: bool) -> Self {
        let (e, d, c, at): (f64, f64, f64, f64) = (rng.random(), rng.random(), rng.random(), rng.random());
        // Drawn last, so the earlier draws of a seed are what they were before this fault.
        let s: f64 = rng.random();
        // Cut strictly before the last token so the stream never completes.
        let cut_after = (stream && c < faults.stream_cut_rate)
            .then(|| ((at * f64::from(output_tokens.saturating_sub(1))) as u32).max(1))
            .map(|k| k.min(output_tokens.saturating_sub(1)));
        FaultDecision {
            http_error: e < faults.http_error_rate,
            drop_from_metrics: d < faults.drop_from_metrics_rate,
            cut_after,
            drop_span: s < faults.drop_spans_rate,
        }
    }
}

/// Scheduler gauges and counters behind one lock.
#[derive(Debug)]
pub struct EngineState {
    pub metrics: MetricsState,
    pub interval: StatsInterval,
    /// vLLM 0.31+ prints "Prefix cache hit rate" only once the cache was queried.
    pub prefix_cache_queried: bool,
}

/// State shared by handlers and background tasks. Locks are never held
/// across an `.await`.
pub struct Shared {
    pub config: SimConfig,
    pub faults: watch::Sender<Faults>,
    rng: Mutex<StdRng>,
    engine: Mutex<EngineState>,
    slots: Option<Arc<Semaphore>>,
    timings: Mutex<HashMap<String, Instant>>,
    pub log: LogWriter,
    /// Where `llm_request` spans go (`otlp_traces_endpoint`).
    pub spans: Option<SpanSink>,
    pub shutdown: CancellationToken,
    pub system_fingerprint: String,
}

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A poisoned lock only means another thread panicked mid-update of plain
/// counters; serving on is better than cascading panics.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(config: SimConfig, spans: Option<SpanSink>) -> Self {
        let now = Instant::now();
        let now_unix = unix_now();
        let metrics = MetricsState::new(&config.model, config.max_model_len, config.kv_cache_tokens, now_unix);
        let slots = (config.max_running > 0).then(|| Arc::new(Semaphore::new(config.max_running)));
        let (faults, _) = watch::channel(config.faults.clone());
        Shared {
            faults,
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            engine: Mutex::new(EngineState { metrics, interval: StatsInterval::new(now), prefix_cache_queried: false }),
            slots,
            timings: Mutex::new(HashMap::new()),
            log: LogWriter::new(config.log_sink.clone()),
            spans,
            shutdown: CancellationToken::new(),
            system_fingerprint: format!("vllm-0.32.0-{:08x}", fnv1a(config.model.as_bytes()) as u32),
            config,
        }
    }

    pub fn engine(&self) -> MutexGuard<'_, EngineState> {
        lock(&self.engine)
    }

    /// A per-request generator seeded from the global one: requests draw in
    /// arrival order, so a seed reproduces the whole run's decisions.
    pub fn request_rng(&self) -> SmallRng {
        SmallRng::from_rng(&mut *lock(&self.rng))
    }

    pub fn record_first_token(&self, request_id: &str, at: Instant) {
        if self.config.record_timings {
            lock(&self.timings).insert(request_id.to_string(), at);
        }
    }

    pub fn first_token_instants(&self) -> HashMap<String, Instant> {
        lock(&self.timings).clone()
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// What was decided when the request arrived.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub prompt_tokens: u32,
    pub length: LengthPlan,
    /// False when the `drop_from_metrics` fault hides this request.
    pub counted: bool,
}

/// One generated token.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    /// 0 for the first token.
    pub index: u32,
    pub text: &'static str,
    pub last: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Arrived,
    Waiting,
    Running,
    Finished,
}

/// What a request's span needs beyond its timings (set when spans are exported).
pub struct SpanPlan {
    pub request_id: String,
    pub parent: opentelemetry::Context,
    pub arrival: SystemTime,
}

/// One request inside the engine. Dropping it before the last token aborts it.
pub struct RequestRun {
    shared: Arc<Shared>,
    plan: Plan,
    span: Option<SpanPlan>,
    rng: SmallRng,
    arrival: Instant,
    phase: Phase,
    _permit: Option<OwnedSemaphorePermit>,
    scheduled: Instant,
    first_token: Instant,
    last_token: Instant,
    next_deadline: Instant,
    produced: u32,
    kv_held: u64,
}

impl RequestRun {
    pub fn new(shared: Arc<Shared>, plan: Plan, rng: SmallRng, arrival: Instant) -> Self {
        RequestRun {
            shared,
            plan,
            span: None,
            rng,
            arrival,
            phase: Phase::Arrived,
            _permit: None,
            scheduled: arrival,
            first_token: arrival,
            last_token: arrival,
            next_deadline: arrival,
            produced: 0,
            kv_held: 0,
        }
    }

    /// Export an `llm_request` span when the request finishes (never when it is aborted).
    pub fn with_span(mut self, span: SpanPlan) -> Self {
        self.span = Some(span);
        self
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn produced(&self) -> u32 {
        self.produced
    }

    /// Waits (FIFO) for a running slot when `max_running` is reached, then
    /// schedules the request; the first token is due TTFT later.
    pub async fn admit(&mut self) {
        if self.phase != Phase::Arrived {
            return;
        }
        let mut waited = false;
        if let Some(slots) = self.shared.slots.clone() {
            // tokio's semaphore hands released permits to queued waiters
            // first, so `try_acquire` never overtakes a waiting request.
            let permit = match slots.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    self.phase = Phase::Waiting;
                    self.shared.engine().metrics.waiting += 1;
                    waited = true;
                    let p = slots.acquire_owned().await.ok();
                    self.shared.engine().metrics.waiting -= 1;
                    p
                }
            };
            self._permit = permit;
        }
        self.scheduled = if waited { Instant::now() } else { self.arrival };
        let prompt = self.plan.prompt_tokens;
        {
            let mut e = self.shared.engine();
            e.metrics.running += 1;
            e.metrics.kv_tokens += u64::from(prompt);
            e.prefix_cache_queried = true;
            if self.plan.counted {
                e.metrics.on_scheduled(prompt);
            }
        }
        self.phase = Phase::Running;
        self.kv_held = u64::from(prompt);
        let extra = std::time::Duration::from_millis(self.shared.faults.borrow().extra_ttft_ms);
        self.next_deadline = self.scheduled + self.shared.config.ttft.sample(&mut self.rng) + extra;
    }

    /// Waits for the next token's deadline and books it. `None` when the
    /// request already finished or the server is shutting down.
    pub async fn next_token(&mut self) -> Option<Token> {
        if self.phase != Phase::Running {
            return None;
        }
        let mut now = Instant::now();
        if self.next_deadline > now {
            tokio::select! {
                _ = tokio::time::sleep_until(self.next_deadline.into()) => {}
                _ = self.shared.shutdown.cancelled() => return None,
            }
            now = Instant::now();
        }
        let index = self.produced;
        self.produced += 1;
        self.kv_held += 1;
        let last = self.produced >= self.plan.length.output_tokens;
        let prompt = self.plan.prompt_tokens;
        {
            let mut e = self.shared.engine();
            e.metrics.kv_tokens += 1;
            if index == 0 {
                e.interval.add_prompt_tokens(u64::from(prompt));
            }
            e.interval.add_generation_tokens(1);
            if self.plan.counted {
                if index == 0 {
                    let ttft = now.saturating_duration_since(self.arrival).as_secs_f64();
                    e.metrics.on_first_token(prompt, ttft);
                } else {
                    let itl = now.saturating_duration_since(self.last_token).as_secs_f64();
                    e.metrics.on_next_token(itl);
                }
            }
            if index == 0 {
                self.first_token = now;
            }
            self.last_token = now;
            if last {
                self.finish(&mut e, now);
            }
        }
        if last {
            self.phase = Phase::Finished;
            self._permit = None;
            self.emit_span(now);
        } else {
            self.next_deadline += self.shared.config.itl.sample(&mut self.rng);
        }
        let word = VOCABULARY[self.rng.random_range(0..VOCABULARY.len())];
        Some(Token { index, text: word, last })
    }

    fn finish(&self, e: &mut EngineState, now: Instant) {
        e.metrics.running -= 1;
        e.metrics.kv_tokens -= self.kv_held;
        if !self.plan.counted {
            return;
        }
        let secs = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64();
        e.metrics.on_finished(&FinishedRequest {
            reason: self.plan.length.finish,
            prompt_tokens: self.plan.prompt_tokens,
            generation_tokens: self.produced,
            max_tokens: self.plan.length.max_tokens,
            e2e: secs(self.arrival, now),
            queue: secs(self.arrival, self.scheduled),
            prefill: secs(self.scheduled, self.first_token),
            decode: secs(self.first_token, self.last_token),
            inference: secs(self.scheduled, self.last_token),
        });
    }
}

impl RequestRun {
    /// The finished request's `llm_request` span, with vLLM's latency breakdown.
    fn emit_span(&mut self, now: Instant) {
        let (Some(sink), Some(plan)) = (&self.shared.spans, self.span.take()) else { return };
        let secs = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64();
        let e2e = now.saturating_duration_since(self.arrival);
        sink.emit(FinishedSpan {
            request_id: plan.request_id,
            parent: plan.parent,
            arrival: plan.arrival,
            end: plan.arrival + e2e,
            model: self.shared.config.model.clone(),
            prompt_tokens: self.plan.prompt_tokens,
            completion_tokens: self.produced,
            max_tokens: self.plan.length.max_tokens,
            ttft: secs(self.arrival, self.first_token),
            e2e: e2e.as_secs_f64(),
            queue: secs(self.arrival, self.scheduled),
            prefill: secs(self.scheduled, self.first_token),
            decode: secs(self.first_token, self.last_token),
            inference: secs(self.scheduled, self.last_token),
        });
    }
}

impl Drop for RequestRun {
    /// An unfinished request is aborted: it frees its slot and KV cache and
    /// is never counted as a success (vLLM 0.32 does not count aborts).
    fn drop(&mut self) {
        match self.phase {
            Phase::Waiting => self.shared.engine().metrics.waiting -= 1,
            Phase::Running => {
                let mut e = self.shared.engine();
                e.metrics.running -= 1;
                e.metrics.kv_tokens -= self.kv_held;
            }
            Phase::Arrived | Phase::Finished => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_needs_no_json_escaping() {
        for w in VOCABULARY {
            assert!(w.starts_with(' '));
            assert!(w[1..].bytes().all(|b| b.is_ascii_lowercase()), "{w}");
            assert_eq!(serde_json::to_string(w).unwrap(), format!("\"{w}\""));
        }
    }

    #[test]
    fn prompt_token_approximation() {
        assert_eq!(chat_prompt_tokens(&[count_words("Say hello")]), 14);
        assert_eq!(chat_prompt_tokens(&[1, 1]), 18);
        assert_eq!(completion_prompt_tokens(count_words("a b c d e f g h i j")), 11);
        assert_eq!(count_words("  spaced\tout\nwords "), 3);
    }

    #[test]
    fn ignore_eos_generates_exactly_max_tokens() {
        let p = plan_length(10, 1024, Some(64), true, 3);
        assert_eq!(p, LengthPlan { max_tokens: 64, output_tokens: 64, finish: FinishReason::Length });
    }

    #[test]
    fn eos_before_max_tokens_is_a_stop() {
        let p = plan_length(10, 1024, Some(64), false, 20);
        assert_eq!((p.output_tokens, p.finish), (20, FinishReason::Stop));
        let p = plan_length(10, 1024, Some(64), false, 64);
        assert_eq!((p.output_tokens, p.finish), (64, FinishReason::Length));
        let p = plan_length(10, 1024, Some(64), false, 500);
        assert_eq!((p.output_tokens, p.finish), (64, FinishReason::Length));
    }

    #[test]
    fn max_tokens_is_clamped_to_the_remaining_context() {
        // 0.32 clamps prompt + max_tokens > max_model_len silently.
        let p = plan_length(1000, 1024, Some(100), true, 1);
        assert_eq!((p.max_tokens, p.output_tokens, p.finish), (24, 24, FinishReason::Length));
        // No max_tokens: the rest of the context bounds the sampled length.
        let p = plan_length(20, 1024, None, false, 5000);
        assert_eq!((p.max_tokens, p.output_tokens, p.finish), (1004, 1004, FinishReason::Length));
        let p = plan_length(20, 1024, None, false, 7);
        assert_eq!((p.output_tokens, p.finish), (7, FinishReason::Stop));
    }

    #[test]
    fn fault_draws_are_reproducible_and_respect_rates() {
        let always =
            Faults { http_error_rate: 1.0, drop_from_metrics_rate: 1.0, stream_cut_rate: 1.0, ..Faults::default() };
        let mut rng = SmallRng::seed_from_u64(3);
        for n in [1u32, 2, 10, 100] {
            let d = FaultDecision::draw(&always, &mut rng, n, true);
            assert!(d.http_error && d.drop_from_metrics);
            let k = d.cut_after.unwrap();
            assert!(k < n || (n == 1 && k == 0), "cut after {k} of {n}");
            // Not a stream: never cut.
            assert_eq!(FaultDecision::draw(&always, &mut rng, n, false).cut_after, None);
        }
        let never = Faults::default();
        let a: Vec<_> = {
            let mut r = SmallRng::seed_from_u64(9);
            (0..50).map(|_| FaultDecision::draw(&never, &mut r, 8, true)).collect()
        };
        assert!(a.iter().all(|d| !d.http_error && !d.drop_from_metrics && d.cut_after.is_none()));
        let half = Faults { http_error_rate: 0.5, ..Faults::default() };
        let run = || {
            let mut r = SmallRng::seed_from_u64(9);
            (0..200).map(|_| FaultDecision::draw(&half, &mut r, 8, true).http_error).collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let errors = first.iter().filter(|e| **e).count();
        assert!((60..140).contains(&errors), "{errors} of 200");
    }
}
