//! vLLM 0.32 log lines: record formatting (pure), the sink, the periodic
//! `Engine 000:` stats line with vLLM's idle rule, and fault tracebacks.
//!
//! Shapes copied from a real 0.32 log (`tests/golden/vllm-0.32-server.log`):
//! * vLLM records: `(APIServer pid=N) LEVEL MM-DD HH:MM:SS [file.py:line] msg`;
//!   a multi-line message repeats that header on every line and ends all but
//!   the last line with `\r` (vLLM's `NewLineFormatter` joins with `\r\n`).
//! * uvicorn lines have no process prefix in 0.31+:
//!   `INFO:     127.0.0.1:50514 - "GET /health HTTP/1.1" 200 OK`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use super::config::LogSink;

/// `[file:line]` of the real 0.32 call sites the simulator imitates.
pub const STATS_SITE: &str = "loggers.py:335";
pub const MODEL_NOT_FOUND_SITE: &str = "serving.py:274";
pub const STREAM_ERROR_SITE: &str = "serving.py:929";
pub const ENGINE_EXCEPTION_SITE: &str = "vllm_error.py:54";
/// vLLM's request logger (`--enable-log-requests`).
pub const REQUEST_LOGGER_SITE: &str = "logger.py:49";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Error => "ERROR",
        }
    }
}

/// `MM-DD HH:MM:SS` in UTC (vLLM prints the container's local time, which is
/// usually UTC; no year, no sub-second part).
pub fn log_time(now: jiff::Timestamp) -> String {
    now.strftime("%m-%d %H:%M:%S").to_string()
}

/// One vLLM log record as physical lines.
pub fn vllm_record(pid: u32, level: Level, time: &str, site: &str, msg: &str) -> Vec<String> {
    let header = format!("(APIServer pid={pid}) {} {time} [{site}] ", level.as_str());
    let lines: Vec<&str> = msg.split('\n').collect();
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let cr = if i < last { "\r" } else { "" };
            format!("{header}{l}{cr}")
        })
        .collect()
}

/// uvicorn's access line, written when the response starts.
pub fn access_line(client: SocketAddr, method: &str, target: &str, version: &str, status: u16) -> String {
    let reason = axum::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    // `INFO:` padded to 9 characters, then a space: uvicorn's levelprefix.
    format!("INFO:     {client} - \"{method} {target} {version}\" {status} {reason}")
}

/// vLLM 0.11.1+'s `Received request` INFO message (the prompt moved to a DEBUG line).
pub fn received_request_message(request_id: &str, max_tokens: u32, ignore_eos: bool) -> String {
    let eos = if ignore_eos { "True" } else { "False" };
    format!(
        "Received request {request_id}: params: SamplingParams(n=1, presence_penalty=0.0, frequency_penalty=0.0, \
         repetition_penalty=1.0, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, seed=None, stop=[], \
         stop_token_ids=[], bad_words=[], include_stop_str_in_output=False, ignore_eos={eos}, \
         max_tokens={max_tokens}, min_tokens=0, logprobs=None, prompt_logprobs=None, skip_special_tokens=True, \
         spaces_between_special_tokens=True, truncate_prompt_tokens=None, structured_outputs=None, \
         extra_args=None), lora_request: None."
    )
}

/// A uvicorn line that is not an access line (`Started server process [N]`).
pub fn uvicorn_line(msg: &str) -> String {
    format!("INFO:     {msg}")
}

/// The numbers of one stats line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineStats {
    pub prompt_throughput: f64,
    pub generation_throughput: f64,
    pub running: u64,
    pub waiting: u64,
    /// Fraction 0..1, printed as a percentage.
    pub kv_cache_usage: f64,
    /// `None` until a request queried the prefix cache (0.31+ omits the part).
    pub prefix_cache_hit_rate: Option<f64>,
}

/// The message of vLLM 0.32's stats line (`loggers.py:335`).
pub fn engine_stats_message(s: &EngineStats) -> String {
    let mut msg = format!(
        "Engine 000: Avg prompt throughput: {:.1} tokens/s, Avg generation throughput: {:.1} tokens/s, Running: {} reqs, Waiting: {} reqs, GPU KV cache usage: {:.1}%",
        s.prompt_throughput,
        s.generation_throughput,
        s.running,
        s.waiting,
        s.kv_cache_usage * 100.0
    );
    if let Some(rate) = s.prefix_cache_hit_rate {
        msg.push_str(&format!(", Prefix cache hit rate: {:.1}%", rate * 100.0));
    }
    msg
}

/// Token accounting between two stats lines and vLLM's idle rule
/// (`LoggingStatLogger._update_stats`): a line is printed at INFO unless this
/// interval and the previous one both had zero prompt and generation
/// throughput — so after activity exactly one all-zero line, then silence.
#[derive(Debug, Clone)]
pub struct StatsInterval {
    last_log: Instant,
    prompt_tokens: u64,
    generation_tokens: u64,
    last_prompt_throughput: f64,
    last_generation_throughput: f64,
}

/// Result of closing one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalReport {
    pub prompt_throughput: f64,
    pub generation_throughput: f64,
    /// vLLM logs at DEBUG (invisible by default) when idle.
    pub idle: bool,
}

impl StatsInterval {
    pub fn new(now: Instant) -> Self {
        StatsInterval {
            last_log: now,
            prompt_tokens: 0,
            generation_tokens: 0,
            last_prompt_throughput: 0.0,
            last_generation_throughput: 0.0,
        }
    }

    /// Prompt tokens are booked when the request's first token arrives.
    pub fn add_prompt_tokens(&mut self, n: u64) {
        self.prompt_tokens += n;
    }

    pub fn add_generation_tokens(&mut self, n: u64) {
        self.generation_tokens += n;
    }

    /// Closes the interval at `now`: throughput = tokens since the last line /
    /// seconds since the last line.
    pub fn close(&mut self, now: Instant) -> IntervalReport {
        let secs = now.saturating_duration_since(self.last_log).as_secs_f64();
        let rate = |tokens: u64| if secs > 0.0 { tokens as f64 / secs } else { 0.0 };
        let prompt = rate(self.prompt_tokens);
        let generation = rate(self.generation_tokens);
        let idle = prompt == 0.0
            && generation == 0.0
            && self.last_prompt_throughput == 0.0
            && self.last_generation_throughput == 0.0;
        self.last_log = now;
        self.prompt_tokens = 0;
        self.generation_tokens = 0;
        self.last_prompt_throughput = prompt;
        self.last_generation_throughput = generation;
        IntervalReport { prompt_throughput: prompt, generation_throughput: generation, idle }
    }
}

/// The traceback vLLM's chat stream generator logs with `logger.exception`
/// when the engine fails a request (0.32 line numbers).
pub fn stream_error_traceback() -> String {
    [
        "Error in chat completion stream generator.",
        "Traceback (most recent call last):",
        "  File \"/usr/local/lib/python3.12/dist-packages/vllm/entrypoints/openai/chat_completion/serving.py\", line 527, in chat_completion_stream_generator",
        "    async for res in result_generator:",
        "  File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/async_llm.py\", line 820, in generate",
        "    raise EngineGenerateError() from e",
        "vllm.v1.engine.exceptions.EngineGenerateError",
    ]
    .join("\n")
}

/// What vLLM logs (with `--log-error-stack`) before answering a request
/// with an engine error.
pub fn engine_exception_message(request_id: &str) -> String {
    [
        format!("Engine Exception caught. Request id: {request_id}"),
        "Traceback (most recent call last):".to_string(),
        "  File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/async_llm.py\", line 820, in generate"
            .to_string(),
        "    raise EngineGenerateError() from e".to_string(),
        "vllm.v1.engine.exceptions.EngineGenerateError".to_string(),
    ]
    .join("\n")
}

/// Writes lines to the configured sink. vLLM and access lines go to stdout,
/// uvicorn's other lines to stderr, as in the real server.
#[derive(Debug, Clone)]
pub struct LogWriter {
    sink: LogSink,
    pid: u32,
}

impl LogWriter {
    pub fn new(sink: LogSink) -> Self {
        LogWriter { sink, pid: std::process::id() }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn vllm(&self, level: Level, site: &str, msg: &str) {
        if matches!(self.sink, LogSink::Discard) {
            return;
        }
        let time = log_time(jiff::Timestamp::now());
        self.write(false, vllm_record(self.pid, level, &time, site, msg));
    }

    pub fn access(&self, client: SocketAddr, method: &str, target: &str, version: &str, status: u16) {
        if matches!(self.sink, LogSink::Discard) {
            return;
        }
        self.write(false, vec![access_line(client, method, target, version, status)]);
    }

    pub fn uvicorn(&self, msg: &str) {
        self.write(true, vec![uvicorn_line(msg)]);
    }

    fn write(&self, stderr: bool, lines: Vec<String>) {
        match &self.sink {
            LogSink::Discard => {}
            LogSink::Buffer(buf) => {
                // A poisoned buffer only means a test thread panicked; keep logging.
                let mut buf = buf.lock().unwrap_or_else(|e| e.into_inner());
                buf.extend(lines);
            }
            LogSink::Stdout => {
                let mut text = lines.join("\n");
                text.push('\n');
                // Logging must never take the server down (closed pipe etc.).
                let _ = if stderr {
                    std::io::stderr().lock().write_all(text.as_bytes())
                } else {
                    std::io::stdout().lock().write_all(text.as_bytes())
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOLDEN_LOG: &str = include_str!("../../tests/golden/vllm-0.32-server.log");

    fn golden(pred: impl Fn(&str) -> bool) -> Vec<&'static str> {
        GOLDEN_LOG.lines().filter(|l| pred(l)).collect()
    }

    /// Replaces digits with `9` so lines compare by shape.
    fn shape(line: &str) -> String {
        line.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect()
    }

    #[test]
    fn log_time_has_no_year_and_no_fraction() {
        let t: jiff::Timestamp = "2026-11-23T06:32:05.987Z".parse().unwrap();
        assert_eq!(log_time(t), "11-23 06:32:05");
    }

    #[test]
    fn stats_line_has_the_real_shape() {
        let ours = vllm_record(
            11539,
            Level::Info,
            "11-23 06:32:15",
            STATS_SITE,
            &engine_stats_message(&EngineStats {
                prompt_throughput: 29.8,
                generation_throughput: 30.5,
                running: 0,
                waiting: 0,
                kv_cache_usage: 0.0,
                prefix_cache_hit_rate: Some(0.0),
            }),
        );
        assert_eq!(ours.len(), 1);
        // The golden server ran on a CPU, hence "CPU KV cache usage"; the
        // simulator pretends to be a GPU server.
        let real = golden(|l| l.contains("Engine 000: Avg prompt throughput: 29.8"));
        assert_eq!(real.len(), 1);
        assert_eq!(ours[0], real[0].replace("CPU KV cache", "GPU KV cache"));
        let real_shapes: Vec<String> =
            golden(|l| l.contains("Engine 000:")).iter().map(|l| shape(&l.replace("CPU KV", "GPU KV"))).collect();
        assert!(real_shapes.contains(&shape(&ours[0])));
    }

    #[test]
    fn stats_message_formats_numbers_like_python() {
        let msg = engine_stats_message(&EngineStats {
            prompt_throughput: 12068.84,
            generation_throughput: 0.05,
            running: 3,
            waiting: 12,
            kv_cache_usage: 0.4567,
            prefix_cache_hit_rate: None,
        });
        assert_eq!(
            msg,
            "Engine 000: Avg prompt throughput: 12068.8 tokens/s, Avg generation throughput: 0.1 tokens/s, Running: 3 reqs, Waiting: 12 reqs, GPU KV cache usage: 45.7%"
        );
    }

    #[test]
    fn access_lines_match_the_real_ones() {
        let addr: SocketAddr = "127.0.0.1:50574".parse().unwrap();
        let ours = access_line(addr, "POST", "/v1/chat/completions", "HTTP/1.1", 200);
        assert!(golden(|l| l == ours).len() == 1, "{ours}");
        let addr: SocketAddr = "127.0.0.1:38258".parse().unwrap();
        let not_found = access_line(addr, "POST", "/v1/chat/completions", "HTTP/1.1", 404);
        assert_eq!(golden(|l| l == not_found).len(), 1, "{not_found}");
        let addr: SocketAddr = "127.0.0.1:38268".parse().unwrap();
        let bad = access_line(addr, "POST", "/v1/chat/completions", "HTTP/1.1", 400);
        assert_eq!(golden(|l| l == bad).len(), 1, "{bad}");
        assert_eq!(
            uvicorn_line("Application startup complete."),
            golden(|l| l.ends_with("Application startup complete."))[0]
        );
    }

    #[test]
    fn model_not_found_error_line_matches_the_real_one() {
        let msg = "Error with model error=ErrorInfo(message='The model `nope` does not exist. Valid aliases: tiny.', type='NotFoundError', param='model', code=404)";
        let ours = vllm_record(11539, Level::Error, "11-23 06:32:08", MODEL_NOT_FOUND_SITE, msg);
        assert_eq!(golden(|l| l == ours[0]).len(), 1, "{}", ours[0]);
    }

    #[test]
    fn multi_line_records_repeat_the_header_and_end_with_cr() {
        let lines = vllm_record(7, Level::Error, "01-02 03:04:05", STREAM_ERROR_SITE, &stream_error_traceback());
        assert_eq!(lines.len(), 7);
        for l in &lines {
            assert!(l.starts_with("(APIServer pid=7) ERROR 01-02 03:04:05 [serving.py:929] "));
        }
        assert!(lines[..6].iter().all(|l| l.ends_with('\r')));
        assert!(!lines[6].ends_with('\r'));
        // Same shape as the real traceback in the golden log (raw lines keep `\r`).
        let real: Vec<&str> =
            GOLDEN_LOG.split('\n').filter(|l| l.contains(" ERROR ") && l.contains("[async_llm.py:906]")).collect();
        assert!(real.len() >= 3);
        assert!(real[..real.len() - 1].iter().all(|l| l.ends_with('\r')));
        assert!(real[1].ends_with("Traceback (most recent call last):\r"));
        assert!(lines[1].ends_with("Traceback (most recent call last):\r"));
    }

    #[test]
    fn idle_rule_prints_one_zero_line_after_activity_then_stays_silent() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut iv = StatsInterval::new(t0);
        // Idle since start: no line.
        assert!(iv.close(at(10)).idle);
        iv.add_prompt_tokens(100);
        iv.add_generation_tokens(300);
        let busy = iv.close(at(20));
        assert!(!busy.idle);
        assert_eq!(busy.prompt_throughput, 10.0);
        assert_eq!(busy.generation_throughput, 30.0);
        // The first empty interval is still printed (all zeros)...
        let zero = iv.close(at(30));
        assert!(!zero.idle);
        assert_eq!(zero.prompt_throughput, 0.0);
        assert_eq!(zero.generation_throughput, 0.0);
        // ...then silence until tokens flow again.
        assert!(iv.close(at(40)).idle);
        assert!(iv.close(at(50)).idle);
        iv.add_generation_tokens(5);
        let again = iv.close(at(55));
        assert!(!again.idle);
        assert_eq!(again.generation_throughput, 1.0);
    }

    #[test]
    fn throughput_divides_by_the_real_elapsed_time() {
        let t0 = Instant::now();
        let mut iv = StatsInterval::new(t0);
        iv.add_generation_tokens(25);
        let r = iv.close(t0 + Duration::from_millis(12_500));
        assert_eq!(r.generation_throughput, 2.0);
    }

    #[test]
    fn buffer_sink_collects_physical_lines() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = LogWriter::new(LogSink::Buffer(buf.clone()));
        w.vllm(Level::Error, STREAM_ERROR_SITE, &stream_error_traceback());
        w.uvicorn("Started server process [1]");
        let lines = buf.lock().unwrap();
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[7], "INFO:     Started server process [1]");
    }
}
