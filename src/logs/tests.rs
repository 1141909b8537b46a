use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::*;

fn stats(text: &str) -> EngineStats {
    match parse_line(text) {
        Parsed::EngineStats(stats) => stats,
        other => panic!("not a stats line: {other:?} <- {text}"),
    }
}

fn access(text: &str) -> AccessLine {
    match parse_line(text) {
        Parsed::Access(line) => line,
        other => panic!("not an access line: {other:?} <- {text}"),
    }
}

fn log(level: Level, message: &str) -> Parsed {
    Parsed::Log { level, message: message.to_string() }
}

fn analyze(lines: &[&str]) -> LogFindings {
    let mut analyzer = LogAnalyzer::new();
    for line in lines {
        analyzer.feed(&LogLine::from_raw(line));
    }
    analyzer.finish()
}

// ---- stats lines, one per format --------------------------------------------------------------

#[test]
fn v0_0_4_stats_line_has_swapped_and_pending() {
    let s = stats(
        "INFO 06-05 09:13:05 metrics.py:341] Avg prompt throughput: 1200.5 tokens/s, Avg generation throughput: 410.3 tokens/s, Running: 24 reqs, Swapped: 2 reqs, Pending: 5 reqs, GPU KV cache usage: 97.3%, CPU KV cache usage: 12.5%.",
    );
    assert_eq!(
        s,
        EngineStats {
            engine: None,
            engines_aggregated: None,
            prompt_throughput: 1200.5,
            generation_throughput: 410.3,
            running: 24,
            waiting: 5,
            swapped: Some(2),
            kv_cache_usage_pct: Some(97.3),
            kv_device: Some("GPU".to_string()),
            prefix_cache_hit_rate_pct: None,
            preemptions: None,
            replica: None,
        }
    );
}

#[test]
fn v0_0_3_stats_line_without_trailing_period() {
    let s = stats(
        "INFO 02-28 21:48:18 metrics.py:161] Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 58.3 tokens/s, Running: 3 reqs, Swapped: 0 reqs, Pending: 1 reqs, GPU KV cache usage: 4.1%, CPU KV cache usage: 0.0%",
    );
    assert_eq!((s.generation_throughput, s.running, s.waiting, s.swapped), (58.3, 3, 1, Some(0)));
    assert_eq!(s.kv_cache_usage_pct, Some(4.1));
}

#[test]
fn v0_second_stats_line_is_the_prefix_cache_hit_rate() {
    assert_eq!(
        parse_line("INFO 10-20 14:01:10 metrics.py:365] Prefix cache hit rate: GPU: 45.50%, CPU: 0.00%"),
        Parsed::PrefixCacheHitRate { gpu_pct: 45.5, cpu_pct: 0.0 }
    );
}

#[test]
fn v1_0_8_0_stats_line_has_no_engine_prefix() {
    let s = stats(
        "INFO 03-20 10:00:00 [loggers.py:80] Avg prompt throughput: 12.0 tokens/s, Avg generation throughput: 34.5 tokens/s, Running: 2 reqs, Waiting: 1 reqs, GPU KV cache usage: 0.5%, Prefix cache hit rate: 50.0%",
    );
    assert_eq!((s.engine, s.waiting, s.swapped), (None, 1, None));
    assert_eq!(s.prefix_cache_hit_rate_pct, Some(50.0));
}

#[test]
fn v1_0_8_3_stats_line_has_engine_000() {
    let s = stats(
        "INFO 06-16 10:03:14 [loggers.py:87] Engine 000: Avg prompt throughput: 5.2 tokens/s, Avg generation throughput: 48.6 tokens/s, Running: 2 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.1%, Prefix cache hit rate: 0.0%",
    );
    assert_eq!((s.engine, s.prompt_throughput, s.generation_throughput), (Some(0), 5.2, 48.6));
}

#[test]
fn v0_32_stats_line_names_the_cpu_device() {
    let s = stats(
        "(APIServer pid=11539) INFO 11-23 06:32:25 [loggers.py:335] Engine 000: Avg prompt throughput: 5.4 tokens/s, Avg generation throughput: 208.0 tokens/s, Running: 0 reqs, Waiting: 0 reqs, CPU KV cache usage: 0.0%, Prefix cache hit rate: 0.0%",
    );
    assert_eq!(s.kv_device.as_deref(), Some("CPU"));
    assert_eq!(s.generation_throughput, 208.0);
}

#[test]
fn optional_parts_of_0_11_1_and_later() {
    let s = stats(
        "(APIServer pid=1) INFO 05-12 08:01:39 [loggers.py:271] Engine 001: Avg prompt throughput: 10.0 tokens/s, Avg generation throughput: 20.0 tokens/s, Running: 5 reqs, Waiting: 9 reqs, Deferred: 4 reqs, KV fetch: 1 waiting to start, 2 in progress, 3 completed waiting, Preemptions: 7, XPU KV cache usage: 33.3%, Corrupted: 1 reqs, External prefix cache hit rate: 12.0%, MM cache hit rate: 5.0%",
    );
    assert_eq!((s.engine, s.waiting, s.preemptions), (Some(1), 9, Some(7)));
    assert_eq!((s.kv_device.as_deref(), s.kv_cache_usage_pct), (Some("XPU"), Some(33.3)));
    // Only the external rate is printed: the local one stays unknown.
    assert_eq!(s.prefix_cache_hit_rate_pct, None);
}

#[test]
fn prefix_cache_part_omitted_since_0_31() {
    let s = stats(
        "(APIServer pid=9) INFO 11-22 22:51:57 [loggers.py:335] Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 1.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.2%",
    );
    assert_eq!((s.prefix_cache_hit_rate_pct, s.kv_cache_usage_pct), (None, Some(0.2)));
}

#[test]
fn aggregated_engines_line() {
    let s = stats(
        "(APIServer pid=1) INFO 05-12 08:01:39 [loggers.py:271] 2 Engines Aggregated: Avg prompt throughput: 1159.8 tokens/s, Avg generation throughput: 565.9 tokens/s, Running: 25 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.3%, Prefix cache hit rate: 90.1%",
    );
    assert_eq!((s.engine, s.engines_aggregated), (None, Some(2)));
    assert_eq!(s.prefix_cache_hit_rate_pct, Some(90.1));
}

#[test]
fn stats_line_with_ansi_process_prefix_of_0_10() {
    let s = stats(
        "\x1b[1;36m(APIServer pid=1)\x1b[0;0m INFO 08-20 11:01:10 [loggers.py:123] Engine 000: Avg prompt throughput: 30.2 tokens/s, Avg generation throughput: 120.4 tokens/s, Running: 2 reqs, Waiting: 0 reqs, GPU KV cache usage: 2.5%, Prefix cache hit rate: 10.0%",
    );
    assert_eq!((s.engine, s.generation_throughput), (Some(0), 120.4));
}

#[test]
fn stats_line_with_colored_formatter_and_lost_esc() {
    let s = stats(
        "[1;36m(APIServer pid=1)[0;0m [32mINFO[0m [90m05-12 08:01:39[0m [90m[loggers.py:271][0m Engine 000: Avg prompt throughput: 1.0 tokens/s, Avg generation throughput: 2.0 tokens/s, Running: 3 reqs, Waiting: 4 reqs, GPU KV cache usage: 5.0%",
    );
    assert_eq!((s.running, s.waiting), (3, 4));
}

#[test]
fn stats_line_without_vllm_header_matches_mid_line() {
    // A record glued after progress-bar output, and a custom logging format.
    let s = stats(
        "Processed prompts: 100%|#####| 8/8 [00:01<00:00]Avg prompt throughput: 1.5 tokens/s, Avg generation throughput: 2.5 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.1%",
    );
    assert_eq!(s.generation_throughput, 2.5);
}

#[test]
fn stats_text_quoted_inside_an_info_message_is_not_a_stats_line() {
    let line = "INFO 04-10 08:01:00 [logger.py:39] Received request x: prompt: 'Avg prompt throughput: 1.0 tokens/s, Avg generation throughput: 2.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs', params: SamplingParams(n=1)";
    assert_eq!(parse_line(line), Parsed::Other);
}

#[test]
fn malformed_numbers_are_not_a_stats_line() {
    let line = "INFO 04-10 08:01:08 [loggers.py:87] Engine 000: Avg prompt throughput: 1.2.3 tokens/s, Avg generation throughput: 1.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs";
    assert_eq!(parse_line(line), Parsed::Other);
    let huge = "Avg prompt throughput: 1.0 tokens/s, Avg generation throughput: 1.0 tokens/s, Running: 99999999999999999999999 reqs, Waiting: 0 reqs";
    assert_eq!(parse_line(huge), Parsed::Other);
}

// ---- access lines --------------------------------------------------------------------------------

#[test]
fn access_line_of_0_32() {
    assert_eq!(
        access("INFO:     127.0.0.1:59042 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"),
        AccessLine {
            client: "127.0.0.1:59042".to_string(),
            method: "POST".to_string(),
            path: "/v1/chat/completions".to_string(),
            status: 200,
        }
    );
}

#[test]
fn access_line_drops_the_query_string() {
    let a = access("INFO:     10.1.2.3:1 - \"GET /v1/models?limit=5&x=ERROR HTTP/1.1\" 404 Not Found");
    assert_eq!((a.method.as_str(), a.path.as_str(), a.status), ("GET", "/v1/models", 404));
}

#[test]
fn access_line_with_process_prefix_of_0_10_and_lost_esc() {
    let a = access(
        "[1;36m(APIServer pid=3829093)[0;0m INFO:     172.17.0.1:40000 - \"POST /v1/completions HTTP/1.1\" 400 Bad Request",
    );
    assert_eq!((a.path.as_str(), a.status), ("/v1/completions", 400));
    let a = access(
        "^[[1;36m(APIServer pid=1)^[[0;0m INFO:     172.17.0.1:40002 - \"GET /health HTTP/1.1\" 503 Service Unavailable",
    );
    assert_eq!((a.path.as_str(), a.status), ("/health", 503));
}

#[test]
fn access_line_coloured_by_uvicorn_on_a_tty() {
    let a = access(
        "\x1b[32mINFO\x1b[0m:     127.0.0.1:5000 - \"\x1b[1mPOST /v1/chat/completions HTTP/1.1\x1b[0m\" \x1b[32m200 OK\x1b[0m",
    );
    assert_eq!((a.client.as_str(), a.status), ("127.0.0.1:5000", 200));
}

#[test]
fn access_line_after_docker_timestamp_and_compose_prefix() {
    let a = access(
        "vllm-1  | 2026-11-23T07:01:02.123456789Z INFO:     1.2.3.4:5 - \"POST /v1/chat/completions HTTP/1.1\" 500 Internal Server Error",
    );
    assert_eq!(a.status, 500);
}

#[test]
fn uvicorn_startup_and_shutdown_lines_are_not_access_lines() {
    for line in [
        "INFO:     Started server process [11539]",
        "INFO:     Waiting for application startup.",
        "INFO:     Application startup complete.",
        "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)",
        "INFO:     Shutting down",
    ] {
        assert_eq!(parse_line(line), Parsed::Other, "{line}");
    }
}

#[test]
fn access_text_quoted_in_a_vllm_record_is_not_an_access_line() {
    let line = "INFO 06-05 09:12:31 async_llm_engine.py:561] Received request c: prompt: 'INFO:     1.2.3.4:5 - \"GET /x HTTP/1.1\" 500 and ERROR:    boom'";
    assert_eq!(parse_line(line), Parsed::Other);
}

// ---- levels --------------------------------------------------------------------------------------

#[test]
fn vllm_levels_in_every_header_format() {
    assert_eq!(
        parse_line("ERROR 10-20 14:02:00 async_llm_engine.py:65] Engine background task failed"),
        log(Level::Error, "Engine background task failed")
    );
    assert_eq!(
        parse_line("WARNING 04-10 08:00:10 [arg_utils.py:1708] Detected VLLM_USE_V1=1."),
        log(Level::Warning, "Detected VLLM_USE_V1=1.")
    );
    assert_eq!(
        parse_line("CRITICAL 10-20 14:02:01 launcher.py:99] AsyncLLMEngine has failed, terminating server process"),
        log(Level::Critical, "AsyncLLMEngine has failed, terminating server process")
    );
    assert_eq!(
        parse_line(
            "(APIServer pid=11539) ERROR 11-23 06:32:08 [serving.py:274] Error with model error=ErrorInfo(code=404)"
        ),
        log(Level::Error, "Error with model error=ErrorInfo(code=404)")
    );
    assert_eq!(
        parse_line("(APIServer pid=1) (EngineCore_DP0 pid=276) ERROR 09-01 10:00:00 [core.py:700] EngineCore failed"),
        log(Level::Error, "EngineCore failed")
    );
    assert_eq!(
        parse_line(
            "\x1b[1;36m(VllmWorker rank=0 pid=320)\x1b[0;0m WARNING 04-10 08:01:30 [custom_all_reduce.py:136] off"
        ),
        log(Level::Warning, "off")
    );
    // VLLM_LOGGING_PREFIX and a relative fileinfo (VLLM_LOGGING_LEVEL=DEBUG, 0.11.1+).
    assert_eq!(parse_line("[node-a] ERROR 05-12 08:01:41 [v1/engine/core.py:700] x"), log(Level::Error, "x"));
}

#[test]
fn multi_line_record_lines_lose_the_carriage_return() {
    assert_eq!(
        parse_line(
            "(APIServer pid=11539) ERROR 11-23 06:34:40 [async_llm.py:906] Traceback (most recent call last):\r"
        ),
        log(Level::Error, "Traceback (most recent call last):")
    );
    // An empty line of a record (trailing space kept or trimmed).
    assert_eq!(parse_line("ERROR 11-23 06:34:40 [async_llm.py:906] \r"), log(Level::Error, ""));
    assert_eq!(parse_line("ERROR 11-23 06:34:40 [async_llm.py:906]"), log(Level::Error, ""));
}

#[test]
fn uvicorn_and_python_level_prefixes() {
    assert_eq!(
        parse_line("ERROR:    Exception in ASGI application"),
        log(Level::Error, "Exception in ASGI application")
    );
    assert_eq!(
        parse_line("WARNING:  Invalid HTTP request received."),
        log(Level::Warning, "Invalid HTTP request received.")
    );
    assert_eq!(parse_line("CRITICAL: out of file descriptors"), log(Level::Critical, "out of file descriptors"));
    assert_eq!(
        parse_line("\x1b[1;36m(APIServer pid=1)\x1b[0;0m ERROR:    Exception in ASGI application"),
        log(Level::Error, "Exception in ASGI application")
    );
    assert_eq!(
        parse_line("ERROR:asyncio:Task exception was never retrieved"),
        log(Level::Error, "Task exception was never retrieved")
    );
    // Glued after a progress bar: uvicorn's exact padding is required there.
    assert_eq!(
        parse_line("Loading: 100%|#####| 1/1 [00:00<00:00]ERROR:    Exception in ASGI application"),
        log(Level::Error, "Exception in ASGI application")
    );
}

#[test]
fn a_vllm_level_glued_after_a_progress_bar() {
    assert_eq!(
        parse_line(
            "\rLoading safetensors checkpoint shards: 100% Completed | 1/1 [00:00<00:00, 3.1it/s]WARNING 11-23 06:31:50 [x.py:1] late"
        ),
        log(Level::Warning, "late")
    );
}

#[test]
fn the_word_error_elsewhere_is_not_an_error() {
    for line in [
        "(APIServer pid=1) INFO 11-23 06:31:14 [system_utils.py:1] Retrying after error: connection reset",
        "INFO 11-23 06:31:14 [x.py:1] Set ERROR:    handling to strict",
        "INFO:     127.0.0.1:1 - \"GET /error/ERROR HTTP/1.1\" 404 Not Found",
        "RuntimeError: CUDA error: an illegal memory access was encountered",
        "/usr/lib/python3.12/site-packages/x.py:24: DeprecationWarning: ERROR handling is deprecated",
        "[W1123 06:31:50.786880315 utils.cpp:68] Warning: NUMA binding",
        "DEBUG 11-23 06:31:14 [x.py:1] ERROR 11-23 06:31:14 [y.py:2] quoted",
        "MYERROR:    not a level",
    ] {
        assert!(!matches!(parse_line(line), Parsed::Log { .. }), "{line}");
    }
}

#[test]
fn info_and_debug_records_are_other() {
    assert_eq!(
        parse_line("(APIServer pid=11539) INFO 11-23 06:31:28 [model.py:2152] Using max model len 1024"),
        Parsed::Other
    );
    assert_eq!(parse_line("DEBUG 11-23 06:31:28 [model.py:1] x"), Parsed::Other);
    assert_eq!(parse_line(""), Parsed::Other);
}

// ---- cleaning and docker timestamps --------------------------------------------------------------

#[test]
fn ansi_codes_and_their_remnants_are_stripped() {
    use super::clean::strip_ansi;
    assert_eq!(strip_ansi("\x1b[1;36m(APIServer pid=1)\x1b[0;0m x"), "(APIServer pid=1) x");
    assert_eq!(strip_ansi("[1;36m(APIServer pid=1)[0;0m x"), "(APIServer pid=1) x");
    assert_eq!(strip_ansi("^[[1;36m(A pid=1)^[[0;0m x"), "(A pid=1) x");
    assert_eq!(strip_ansi("\x1b[K\x1b[2Kdone"), "done");
    // Not SGR remnants: kept.
    assert_eq!(strip_ansi("[loggers.py:335] [m] [;m] list[0]"), "[loggers.py:335] [m] [;m] list[0]");
    // Truncated sequences at the end do not panic.
    assert_eq!(strip_ansi("x\x1b"), "x");
    assert_eq!(strip_ansi("x\x1b["), "x[");
    assert_eq!(strip_ansi("é[1;3"), "é[1;3");
}

#[test]
fn docker_timestamps() {
    let (ts, rest) = split_docker_timestamp("2026-11-23T07:01:02.123456789Z INFO:     x");
    assert_eq!(ts, Some("2026-11-23T07:01:02.123456789Z".parse::<Timestamp>().unwrap()));
    assert_eq!(rest, "INFO:     x");
    // RFC3339Nano trims trailing zeros, down to whole seconds.
    let (ts, rest) = split_docker_timestamp("2026-11-23T07:01:02Z ");
    assert_eq!((ts.map(|t| t.as_second()), rest), (Some(1_795_417_262), ""));
    assert_eq!(split_docker_timestamp("2026-11-23T07:01:02.5Z").1, "");
    for line in ["INFO 11-23 07:01:02 [x.py:1] y", "2026-13-45T07:01:02Z x", "2026-11-23 07:01:02 x", "", "2026-11-2"] {
        assert_eq!(split_docker_timestamp(line), (None, line));
    }
}

#[test]
fn log_line_from_raw_keeps_the_carriage_return() {
    let line = LogLine::from_raw("2026-11-23T07:01:02Z ERROR 11-23 07:01:02 [a.py:1] x\r");
    assert!(line.ts.is_some());
    assert_eq!(line.text, "ERROR 11-23 07:01:02 [a.py:1] x\r");
}

// ---- events --------------------------------------------------------------------------------------

#[test]
fn traceback_record_with_carriage_returns_is_one_event() {
    let h = "(APIServer pid=1) ERROR 11-23 06:34:40 [async_llm.py:906] ";
    let f = analyze(&[
        &format!("{h}AsyncLLM output_handler failed.\r"),
        &format!("{h}Traceback (most recent call last):\r"),
        &format!("{h}  File \"x.py\", line 1, in f\r"),
        &format!("{h}    raise X\r"),
        &format!("{h}vllm.v1.engine.exceptions.EngineDeadError: dead"),
        // Same header, previous record finished: a new event.
        &format!("{h}AsyncLLM output_handler failed."),
    ]);
    assert_eq!((f.error_lines, f.error_events), (6, 2));
    assert_eq!(
        f.first_errors,
        [
            "AsyncLLM output_handler failed. | vllm.v1.engine.exceptions.EngineDeadError: dead",
            "AsyncLLM output_handler failed."
        ]
    );
}

#[test]
fn carriage_returns_separate_same_second_records_that_start_with_a_traceback() {
    // `logger.error(traceback.format_exc())` twice in one second from one call site.
    let h = "ERROR 11-23 06:34:40 [engine.py:1] ";
    let record = [
        format!("{h}Traceback (most recent call last):\r"),
        format!("{h}  File \"x.py\", line 1, in f\r"),
        format!("{h}ValueError: a"),
    ];
    let twice: Vec<&str> = record.iter().chain(&record).map(String::as_str).collect();
    let f = analyze(&twice);
    assert_eq!((f.error_lines, f.error_events), (6, 2));
    assert_eq!(f.first_errors, ["Traceback: ValueError: a", "Traceback: ValueError: a"]);
    // Without the `\r` (stripped by a collector) only the shape is left: a traceback right after
    // a traceback of the same record header reads as a chained one.
    let stripped: Vec<&str> = twice.iter().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(analyze(&stripped).error_events, 1);
}

#[test]
fn traceback_record_without_carriage_returns_is_one_event_by_shape() {
    let h = "ERROR 10-20 14:02:00 async_llm_engine.py:65] ";
    let f = analyze(&[
        &format!("{h}Engine background task failed"),
        &format!("{h}Traceback (most recent call last):"),
        &format!("{h}  File \"x.py\", line 1, in f"),
        &format!("{h}    return_value = task.result()"),
        h,
        &format!("{h}torch.OutOfMemoryError: CUDA out of memory."),
        &format!("{h}Engine background task failed"),
    ]);
    assert_eq!((f.error_lines, f.error_events), (7, 2));
}

#[test]
fn two_404_errors_in_the_same_second_are_two_events() {
    let line = "(APIServer pid=11539) ERROR 11-23 06:32:08 [serving.py:274] Error with model error=ErrorInfo(message='The model `nope` does not exist.', type='NotFoundError', param='model', code=404)";
    let f = analyze(&[line, line]);
    assert_eq!((f.error_lines, f.error_events), (2, 2));
}

#[test]
fn different_processes_or_seconds_are_different_events() {
    let f = analyze(&[
        "(EngineCore_DP0 pid=2) ERROR 11-23 06:34:40 [core.py:1] Traceback (most recent call last):",
        "(EngineCore_DP1 pid=3) ERROR 11-23 06:34:40 [core.py:1]   File \"x.py\", line 1, in f",
        "(EngineCore_DP1 pid=3) ERROR 11-23 06:34:41 [core.py:1]   File \"x.py\", line 1, in f",
    ]);
    assert_eq!((f.error_lines, f.error_events), (3, 3));
}

#[test]
fn uvicorn_error_and_its_unprefixed_traceback_are_one_event() {
    let f = analyze(&[
        "ERROR:    Exception in ASGI application",
        "Traceback (most recent call last):",
        "  File \"/x/httptools_impl.py\", line 399, in run_asgi",
        "INFO:     127.0.0.1:1 - \"GET /health HTTP/1.1\" 200 OK",
        "    result = await app(",
        "ValueError: boom",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        "  File \"/x/y.py\", line 2, in g",
        "RuntimeError: worse",
        "INFO:     Shutting down",
    ]);
    assert_eq!((f.error_lines, f.error_events), (11, 1));
    assert_eq!((f.access.total, f.unparsed_lines), (1, 1));
    assert_eq!(f.first_errors, ["Exception in ASGI application | RuntimeError: worse"]);
}

#[test]
fn a_bare_traceback_is_an_error_event_of_its_own() {
    let f = analyze(&[
        "Process EngineCore_DP0:",
        "Traceback (most recent call last):",
        "  File \"/usr/lib/python3.12/multiprocessing/process.py\", line 314, in _bootstrap",
        "    self.run()",
        "KeyboardInterrupt",
        "Some unrelated output",
        "  indented but unrelated",
    ]);
    assert_eq!((f.error_lines, f.error_events, f.unparsed_lines), (4, 1, 3));
    assert_eq!(f.first_errors, ["Traceback: KeyboardInterrupt"]);
}

#[test]
fn interleaved_lines_do_not_split_a_record_that_goes_on() {
    let h = "(EngineCore_0 pid=276) ERROR 08-20 11:02:00 [core.py:700] ";
    let f = analyze(&[
        &format!("{h}EngineCore encountered a fatal error.\r"),
        "(APIServer pid=1) INFO 08-20 11:02:00 [loggers.py:123] Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 15.1 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: 2.6%",
        "(APIServer pid=1) INFO 08-20 11:02:00 [x.py:1] something else",
        &format!("{h}Traceback (most recent call last):\r"),
        &format!("{h}RuntimeError: x"),
    ]);
    assert_eq!((f.error_lines, f.error_events), (3, 1));
    assert_eq!((f.engine_stats_summary.lines, f.unparsed_lines), (1, 1));
}

#[test]
fn multi_line_warnings_are_one_event() {
    let h = "WARNING 11-23 06:31:14 [x.py:1] ";
    let f = analyze(&[
        &format!("{h}first\r"),
        &format!("{h}  detail\r"),
        &format!("{h}end"),
        "WARNING:  Invalid HTTP request received.",
    ]);
    assert_eq!((f.warning_lines, f.warning_events), (4, 2));
    assert_eq!(f.first_warnings, ["first", "Invalid HTTP request received."]);
    assert_eq!(f.error_lines, 0);
}

#[test]
fn critical_counts_as_error() {
    let f = analyze(&["CRITICAL 10-20 14:02:01 launcher.py:99] AsyncLLMEngine has failed"]);
    assert_eq!((f.error_lines, f.error_events, f.warning_lines), (1, 1, 0));
}

#[test]
fn messages_are_bounded_in_number_and_length() {
    let long = format!("ERROR:    {}", "é".repeat(1000));
    let lines: Vec<String> =
        (0..20).map(|i| if i == 0 { long.clone() } else { format!("ERROR:    error {i}") }).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let f = analyze(&refs);
    assert_eq!((f.error_events, f.first_errors.len()), (20, 5));
    assert_eq!(f.first_errors[0].chars().count(), 300);
    assert_eq!(f.first_errors[4], "error 4");
}

// ---- accumulation --------------------------------------------------------------------------------

#[test]
fn access_counts_by_status_and_endpoint() {
    let f = analyze(&[
        "INFO:     1.1.1.1:1 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
        "INFO:     1.1.1.1:2 - \"POST /v1/chat/completions?x=1 HTTP/1.1\" 400 Bad Request",
        "INFO:     1.1.1.1:3 - \"GET /metrics HTTP/1.1\" 200 OK",
    ]);
    assert_eq!(f.access.total, 3);
    assert_eq!(f.access.by_status, BTreeMap::from([("200".to_string(), 2), ("400".to_string(), 1)]));
    assert_eq!(
        f.access.by_endpoint["POST /v1/chat/completions"],
        BTreeMap::from([("200".to_string(), 1), ("400".to_string(), 1)])
    );
    assert_eq!(f.access.by_endpoint["GET /metrics"], BTreeMap::from([("200".to_string(), 1)]));
}

#[test]
fn endpoints_beyond_the_limit_are_folded() {
    let mut analyzer = LogAnalyzer::with_limits(LogLimits { max_endpoints: 3, ..LogLimits::default() });
    for i in 0..10 {
        analyzer.feed_str(None, &format!("INFO:     1.1.1.1:1 - \"GET /probe/{i} HTTP/1.1\" 404 Not Found"));
    }
    analyzer.feed_str(None, "INFO:     1.1.1.1:1 - \"GET /probe/0 HTTP/1.1\" 404 Not Found");
    let f = analyzer.finish();
    assert_eq!(f.access.by_endpoint.len(), 4);
    assert_eq!(f.access.by_endpoint["GET /probe/0"]["404"], 2);
    assert_eq!(f.access.by_endpoint[OTHER_ENDPOINTS]["404"], 7);
}

#[test]
fn v0_prefix_cache_line_completes_the_stats_line_before_it() {
    let f = analyze(&[
        "INFO 10-20 14:01:10 metrics.py:349] Avg prompt throughput: 812.3 tokens/s, Avg generation throughput: 95.0 tokens/s, Running: 2 reqs, Swapped: 0 reqs, Pending: 0 reqs, GPU KV cache usage: 1.2%, CPU KV cache usage: 0.0%.",
        "INFO 10-20 14:01:10 metrics.py:365] Prefix cache hit rate: GPU: 45.50%, CPU: 0.00%",
    ]);
    assert_eq!(f.engine_stats[0].stats.prefix_cache_hit_rate_pct, Some(45.5));
    assert_eq!((f.prefix_cache_lines, f.unparsed_lines), (1, 0));
    assert_eq!(f.engine_stats_summary.last_prefix_cache_hit_rate_pct, Some(45.5));
}

#[test]
fn stats_beyond_the_limit_are_counted_and_summarised() {
    let mut analyzer = LogAnalyzer::with_limits(LogLimits { max_engine_stats: 2, ..LogLimits::default() });
    for (engine, gen_tps) in [(0, 10.0), (1, 20.0), (0, 30.0), (1, 40.0)] {
        analyzer.feed_str(None, &format!("INFO 01-01 00:00:00 [loggers.py:1] Engine {engine:03}: Avg prompt throughput: 1.0 tokens/s, Avg generation throughput: {gen_tps:.1} tokens/s, Running: {engine} reqs, Waiting: 0 reqs, GPU KV cache usage: {gen_tps:.1}%"));
    }
    let f = analyzer.finish();
    assert_eq!((f.engine_stats.len(), f.engine_stats_dropped), (2, 2));
    let s = &f.engine_stats_summary;
    assert_eq!((s.lines, s.engines, s.peak_running, s.peak_kv_cache_usage_pct), (4, Some(2), Some(1), Some(40.0)));
    // Engine 0 averages 20, engine 1 averages 30: the server did 50 tokens/s.
    assert_eq!(s.mean_generation_throughput, Some(50.0));
    assert_eq!(s.mean_prompt_throughput, Some(2.0));
}

#[test]
fn docker_timestamps_in_the_text_are_used() {
    let f = analyze(&[
        "2026-11-23T07:00:10Z INFO 11-23 07:00:10 [loggers.py:1] Engine 000: Avg prompt throughput: 1.0 tokens/s, Avg generation throughput: 1.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs",
        "2026-11-23T07:00:05Z INFO:     Started server process [1]",
    ]);
    assert_eq!(f.engine_stats[0].ts, Some("2026-11-23T07:00:10Z".parse().unwrap()));
    assert_eq!(f.first_ts, Some("2026-11-23T07:00:05Z".parse().unwrap()));
    assert_eq!(f.last_ts, Some("2026-11-23T07:00:10Z".parse().unwrap()));
}

#[test]
fn summary_json_without_data_has_nulls() {
    let f = analyze(&["hello"]);
    assert_eq!(
        f.summary_json(),
        serde_json::json!({
            "access": {"total": 0, "by_status": {}, "by_endpoint": {}},
            "engine_stats": {
                "lines": 0, "engines": null, "mean_generation_throughput": null, "mean_prompt_throughput": null,
                "peak_running": null, "peak_waiting": null, "peak_kv_cache_usage_pct": null,
                "last_prefix_cache_hit_rate_pct": null
            },
            "error_lines": 0, "error_events": 0, "warning_lines": 0
        })
    );
}

#[test]
fn findings_survive_a_json_round_trip() {
    let f = analyze(&[
        "2026-11-23T07:00:10Z INFO 11-23 07:00:10 [loggers.py:1] Engine 000: Avg prompt throughput: 1.0 tokens/s, Avg generation throughput: 1.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: 1.0%",
        "INFO:     1.1.1.1:1 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
        "ERROR:    boom",
    ]);
    let json = serde_json::to_string(&f).unwrap();
    assert_eq!(serde_json::from_str::<LogFindings>(&json).unwrap(), f);
}

// ---- throughput over a window --------------------------------------------------------------------

fn at(secs: f64) -> Timestamp {
    Timestamp::from_nanosecond(1_800_000_000_000_000_000 + (secs * 1e9) as i128).unwrap()
}

fn line(secs: f64, engine: Option<u32>, generation: f64) -> TimedEngineStats {
    let prompt = if generation > 0.0 { 1.0 } else { 0.0 };
    TimedEngineStats {
        ts: Some(at(secs)),
        stats: EngineStats {
            engine,
            generation_throughput: generation,
            prompt_throughput: prompt,
            ..EngineStats::default()
        },
    }
}

const TEN_S: Duration = Duration::from_secs(10);

#[test]
fn throughput_weights_partial_overlaps() {
    // Intervals (0,10] at 100, (10,20] at 300, (20,30] at 50; window [5, 25].
    let lines = [line(10.0, Some(0), 100.0), line(20.0, Some(0), 300.0), line(30.0, Some(0), 50.0)];
    let w = generation_throughput_over(&lines, at(5.0), at(25.0), TEN_S, 0.5).unwrap();
    // (5 * 100 + 10 * 300 + 5 * 50) / 20
    assert!((w.tokens_per_s - 187.5).abs() < 1e-9, "{w:?}");
    // 20 s covered, 10 s of the used intervals outside the window.
    assert!((w.coverage - 20.0 / 30.0).abs() < 1e-12, "{w:?}");
    assert_eq!((w.lines_used, w.engines), (3, 1));
    // The same lines tile [0, 30] exactly.
    let w = generation_throughput_over(&lines, at(0.0), at(30.0), TEN_S, 0.99).unwrap();
    assert_eq!((w.tokens_per_s, w.coverage), (150.0, 1.0));
}

#[test]
fn throughput_sums_engines() {
    let lines = [
        line(10.0, Some(0), 100.0),
        line(12.0, Some(1), 40.0),
        line(20.0, Some(0), 200.0),
        line(22.0, Some(1), 60.0),
        line(32.0, Some(1), 80.0),
    ];
    let w = generation_throughput_over(&lines, at(10.0), at(20.0), TEN_S, 0.4).unwrap();
    // Engine 0: (10,20] at 200. Engine 1: (10,12] at 40 and (12,20] at 60 -> (80 + 480) / 10 = 56.
    assert!((w.tokens_per_s - 256.0).abs() < 1e-9, "{w:?}");
    // Engine 1's intervals stick out by 8 s and 2 s.
    assert_eq!((w.engines, w.lines_used, w.coverage), (2, 3, 0.5));
}

#[test]
fn throughput_of_a_short_burst_is_refused_with_a_reason() {
    let lines = [line(10.0, Some(0), 100.0), line(20.0, Some(0), 300.0)];
    // Window [15, 40]: covered (15,20] only, 5 of 25 s, and (10,15] sticks out.
    let err = generation_throughput_over(&lines, at(15.0), at(40.0), TEN_S, 0.8).unwrap_err();
    assert!(err.contains("cover 17%") && err.contains("80%"), "{err}");
    // The same with a lax minimum is accepted.
    let w = generation_throughput_over(&lines, at(15.0), at(40.0), TEN_S, 0.1).unwrap();
    assert_eq!((w.tokens_per_s, w.coverage), (300.0, 5.0 / 30.0));
    // A 3 s burst inside one 10 s interval: the line's average is diluted by the other 7 s.
    let err = generation_throughput_over(&lines, at(12.0), at(15.0), TEN_S, 0.8).unwrap_err();
    assert!(err.contains("cover 30%"), "{err}");
}

#[test]
fn throughput_without_usable_lines_is_refused() {
    let err = generation_throughput_over(&[], at(0.0), at(10.0), TEN_S, 0.5).unwrap_err();
    assert!(err.contains("no engine stats lines"), "{err}");
    let untimed = [TimedEngineStats { ts: None, ..line(5.0, None, 1.0) }];
    assert!(generation_throughput_over(&untimed, at(0.0), at(10.0), TEN_S, 0.5).is_err());
    let outside = [line(100.0, None, 1.0)];
    let err = generation_throughput_over(&outside, at(0.0), at(10.0), TEN_S, 0.5).unwrap_err();
    assert!(err.contains("outside"), "{err}");
    assert!(generation_throughput_over(&outside, at(10.0), at(10.0), TEN_S, 0.5).unwrap_err().contains("empty"));
}

#[test]
fn throughput_after_a_silent_idle_gap() {
    // An all-zero line at 10, silence (vLLM logs idle intervals at DEBUG), then activity logged at 60:
    // the line at 60 covers only (50,60]; (10,50] is known idle.
    let lines = [line(0.0, None, 20.0), line(10.0, None, 0.0), line(60.0, None, 100.0)];
    let w = generation_throughput_over(&lines, at(30.0), at(60.0), TEN_S, 0.99).unwrap();
    // 20 s idle + 10 s at 100 over 30 s.
    assert!((w.tokens_per_s - 100.0 / 3.0).abs() < 1e-9, "{w:?}");
    assert_eq!(w.coverage, 1.0);
}

#[test]
fn throughput_after_a_gap_without_idle_line_is_not_covered() {
    let lines = [line(0.0, None, 20.0), line(60.0, None, 100.0)];
    let err = generation_throughput_over(&lines, at(30.0), at(60.0), TEN_S, 0.5).unwrap_err();
    assert!(err.contains("cover 33%"), "{err}");
}

#[test]
fn received_request_lines_are_counted_by_id_in_every_format() {
    let text = concat!(
        // 0.11.1+, and <= 0.10.1 with the prompt on the same line; colour codes as a TTY shows them.
        "(APIServer pid=7) INFO 12-05 00:24:17 [request_logger.py:65] Received request chatcmpl-r-3: params: SamplingParams(n=1)\n",
        "INFO 08-01 10:00:00 [logger.py:39] Received request cmpl-r-4-0: prompt: 'Received request chatcmpl-r-9', params: x\n",
        "\u{1b}[1;36m(APIServer pid=7)\u{1b}[0;0m INFO 12-05 00:24:18 [request_logger.py:65] Received request chatcmpl-other: params: x\n",
        // A prompt quoting the phrase is not a line of its own, nor is an access line.
        "INFO:     127.0.0.1:1 - \"POST /Received%20request HTTP/1.1\" 404 Not Found\n",
    );
    let ours = analyze_text_with(text, LogAnalyzer::new().with_request_id_prefix("r-"));
    assert_eq!(ours.received.lines, 3);
    assert_eq!(ours.received.ours, [3, 4].into_iter().collect());
    assert_eq!(ours.received.others(), 1);
    assert_eq!(ours.unparsed_lines, 3, "still INFO records");
    let anyone = analyze_text(text);
    assert_eq!((anyone.received.lines, anyone.received.others()), (3, 3));
}
