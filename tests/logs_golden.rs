//! Golden vLLM server logs -> findings. The real 0.32 capture (`tests/golden/vllm-0.32-server.log`)
//! and hand-built logs of older formats (`tests/golden/logs/`, see its README). Every expected count
//! here was checked against the file by hand (and `grep -c` where a pattern suffices).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use llm_loadtest::logs::{LogFindings, analyze_text, generation_throughput_over};

fn golden(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(path);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn statuses(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

/// The counts every golden file is checked for.
#[derive(Debug, PartialEq)]
struct Counts {
    lines: u64,
    unparsed: u64,
    access: u64,
    by_status: BTreeMap<String, u64>,
    stats_lines: u64,
    engines: Option<u32>,
    error_lines: u64,
    error_events: u64,
    warning_lines: u64,
    warning_events: u64,
}

fn counts(f: &LogFindings) -> Counts {
    Counts {
        lines: f.lines,
        unparsed: f.unparsed_lines,
        access: f.access.total,
        by_status: f.access.by_status.clone(),
        stats_lines: f.engine_stats_summary.lines,
        engines: f.engine_stats_summary.engines,
        error_lines: f.error_lines,
        error_events: f.error_events,
        warning_lines: f.warning_lines,
        warning_events: f.warning_events,
    }
}

/// Every line is counted exactly once.
fn assert_lines_add_up(f: &LogFindings) {
    let sum = f.access.total
        + f.engine_stats_summary.lines
        + f.prefix_cache_lines
        + f.error_lines
        + f.warning_lines
        + f.unparsed_lines;
    assert_eq!(sum, f.lines, "{f:#?}");
    assert_eq!(f.engine_stats.len() as u64 + f.engine_stats_dropped, f.engine_stats_summary.lines);
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn vllm_0_32_real_log() {
    let f = analyze_text(&golden("vllm-0.32-server.log"));
    assert_lines_add_up(&f);
    // grep -c: 47 access lines (41 x 200, 4 x 400, 2 x 404), 8 `Engine 000:` lines, 9 ` ERROR `
    // lines, 16 ` WARNING ` lines (all single-line records).
    assert_eq!(
        counts(&f),
        Counts {
            lines: 194,
            unparsed: 114,
            access: 47,
            by_status: statuses(&[("200", 41), ("400", 4), ("404", 2)]),
            stats_lines: 8,
            engines: Some(1),
            error_lines: 9,
            error_events: 2,
            warning_lines: 16,
            warning_events: 16,
        }
    );
    let endpoints = &f.access.by_endpoint;
    assert_eq!(endpoints["POST /v1/chat/completions"], statuses(&[("200", 17), ("400", 4), ("404", 1)]));
    assert_eq!(endpoints["POST /v1/completions"], statuses(&[("200", 15), ("404", 1)]));
    assert_eq!(endpoints["GET /health"], statuses(&[("200", 3)]));
    assert_eq!(endpoints["GET /metrics"], statuses(&[("200", 4)]));
    assert_eq!(endpoints.len(), 6);
    // The 404 line is an event of its own; the 8-line shutdown traceback is one event.
    assert_eq!(
        f.first_errors,
        [
            "Error with model error=ErrorInfo(message='The model `nope` does not exist. Valid aliases: tiny.', type='NotFoundError', param='model', code=404)",
            "AsyncLLM output_handler failed. | vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
        ]
    );
    assert_eq!(f.first_warnings.len(), 5);
    assert!(f.first_warnings[0].starts_with("Found ulimit of 20000"), "{:?}", f.first_warnings);
    let s = &f.engine_stats_summary;
    // Generation: 1.5 + 30.5 + 208.0 + 0.0 + 158.3 + 33.8 + 0.0 + 0.2 = 432.3 over 8 lines.
    assert!(close(s.mean_generation_throughput, 432.3 / 8.0), "{s:?}");
    assert!(close(s.mean_prompt_throughput, 47.2 / 8.0), "{s:?}");
    assert_eq!((s.peak_running, s.peak_waiting, s.peak_kv_cache_usage_pct), (Some(1), Some(0), Some(0.1)));
    assert_eq!(s.last_prefix_cache_hit_rate_pct, Some(0.0));
    let third = &f.engine_stats[2].stats;
    assert_eq!((third.engine, third.generation_throughput, third.kv_device.as_deref()), (Some(0), 208.0, Some("CPU")));
    assert_eq!(f.engine_stats[0].ts, None);
}

#[test]
fn vllm_0_32_summary_json() {
    let f = analyze_text(&golden("vllm-0.32-server.log"));
    let json = f.summary_json();
    assert_eq!(json["access"]["total"], 47);
    assert_eq!(json["access"]["by_status"]["404"], 2);
    assert_eq!(json["access"]["by_endpoint"]["POST /v1/chat/completions"]["400"], 4);
    assert_eq!(json["engine_stats"]["lines"], 8);
    assert_eq!(json["engine_stats"]["engines"], 1);
    assert_eq!(json["engine_stats"]["peak_running"], 1);
    assert_eq!(json["engine_stats"]["last_prefix_cache_hit_rate_pct"], 0.0);
    assert_eq!((json["error_lines"].as_u64(), json["error_events"].as_u64()), (Some(9), Some(2)));
    assert_eq!(json["warning_lines"], 16);
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["access", "engine_stats", "error_events", "error_lines", "warning_lines"]);
    let stats_keys: Vec<&str> = json["engine_stats"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        stats_keys,
        [
            "engines",
            "last_prefix_cache_hit_rate_pct",
            "lines",
            "mean_generation_throughput",
            "mean_prompt_throughput",
            "peak_kv_cache_usage_pct",
            "peak_running",
            "peak_waiting"
        ]
    );
}

#[test]
fn v0_0_4_3() {
    let f = analyze_text(&golden("logs/vllm-0.4.3-v0.log"));
    assert_lines_add_up(&f);
    assert_eq!(
        counts(&f),
        Counts {
            lines: 42,
            unparsed: 14,
            access: 5,
            by_status: statuses(&[("200", 3), ("400", 1), ("404", 1)]),
            stats_lines: 4,
            engines: Some(1),
            // uvicorn's ERROR line and its 15-line chained traceback (blank lines included).
            error_lines: 16,
            error_events: 1,
            // Two preemption warnings with the same header in the same second are two records.
            warning_lines: 3,
            warning_events: 3,
        }
    );
    assert_eq!(f.access.by_endpoint["GET /errors/ERROR"], statuses(&[("404", 1)]));
    assert_eq!(
        f.first_errors,
        [
            "Exception in ASGI application | vllm.engine.async_llm_engine.AsyncEngineDeadError: Task finished unexpectedly. This should never happen!"
        ]
    );
    let busy = &f.engine_stats[2].stats;
    assert_eq!((busy.running, busy.swapped, busy.waiting, busy.kv_cache_usage_pct), (24, Some(2), 5, Some(97.3)));
    let s = &f.engine_stats_summary;
    assert!(close(s.mean_generation_throughput, (35.1 + 410.3) / 4.0), "{s:?}");
    assert_eq!((s.peak_waiting, s.last_prefix_cache_hit_rate_pct), (Some(5), None));
}

#[test]
fn v0_0_6_3_with_prefix_cache_lines_and_carriage_return_tracebacks() {
    let f = analyze_text(&golden("logs/vllm-0.6.3-v0-prefix-cache.log"));
    assert_lines_add_up(&f);
    assert_eq!(
        counts(&f),
        Counts {
            lines: 35,
            unparsed: 14,
            access: 3,
            by_status: statuses(&[("200", 2), ("500", 1)]),
            stats_lines: 2,
            engines: Some(1),
            // Two tracebacks (8 and 5 lines) from the same site in the same second, and a CRITICAL line.
            error_lines: 14,
            error_events: 3,
            warning_lines: 0,
            warning_events: 0,
        }
    );
    assert_eq!(f.prefix_cache_lines, 2);
    let rates: Vec<_> = f.engine_stats.iter().map(|s| s.stats.prefix_cache_hit_rate_pct).collect();
    assert_eq!(rates, [Some(45.5), Some(50.25)]);
    assert_eq!(f.engine_stats_summary.last_prefix_cache_hit_rate_pct, Some(50.25));
    assert_eq!(
        f.first_errors,
        [
            "Engine background task failed | torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB of which 1.12 GiB is free.",
            "Engine background task failed | vllm.engine.async_llm_engine.AsyncEngineDeadError: Background loop is stopped.",
            "AsyncLLMEngine has failed, terminating server process",
        ]
    );
}

#[test]
fn v1_0_8_3() {
    let f = analyze_text(&golden("logs/vllm-0.8.3-v1.log"));
    assert_lines_add_up(&f);
    assert_eq!(
        counts(&f),
        Counts {
            lines: 27,
            unparsed: 17,
            access: 4,
            by_status: statuses(&[("200", 3), ("400", 1)]),
            stats_lines: 3,
            engines: Some(1),
            error_lines: 0,
            error_events: 0,
            warning_lines: 3,
            warning_events: 3,
        }
    );
    assert!(f.first_warnings[2].starts_with("Custom allreduce is disabled"), "{:?}", f.first_warnings);
    let s = &f.engine_stats_summary;
    assert!(close(s.mean_generation_throughput, (48.6 + 61.3 + 12.0) / 3.0), "{s:?}");
    assert_eq!(s.last_prefix_cache_hit_rate_pct, Some(33.3));
}

#[test]
fn v1_0_10_1_ansi_prefixes_and_tracebacks() {
    let f = analyze_text(&golden("logs/vllm-0.10.1-ansi.log"));
    assert_lines_add_up(&f);
    assert_eq!(
        counts(&f),
        Counts {
            lines: 46,
            unparsed: 10,
            access: 4,
            by_status: statuses(&[("200", 3), ("400", 1)]),
            stats_lines: 2,
            engines: Some(1),
            // uvicorn exception-group traceback (17 lines), engine core traceback (7 lines, a stats
            // line of another process in between), output handler traceback (5 lines).
            error_lines: 29,
            error_events: 3,
            warning_lines: 1,
            warning_events: 1,
        }
    );
    assert_eq!(
        f.first_errors,
        [
            "Exception in ASGI application | ValueError: This model's maximum context length is 4096 tokens.",
            "EngineCore encountered a fatal error. | torch.AcceleratorError: CUDA error: an illegal memory access was encountered",
            "AsyncLLM output_handler failed. | vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
        ]
    );
}

#[test]
fn v1_0_11_data_parallel_with_docker_timestamps() {
    let f = analyze_text(&golden("logs/vllm-0.11.0-dp2-timestamps.log"));
    assert_lines_add_up(&f);
    assert_eq!(
        counts(&f),
        Counts {
            lines: 20,
            unparsed: 6,
            access: 3,
            by_status: statuses(&[("200", 3)]),
            stats_lines: 10,
            engines: Some(2),
            error_lines: 0,
            error_events: 0,
            warning_lines: 1,
            warning_events: 1,
        }
    );
    let s = &f.engine_stats_summary;
    // Engine 0 averages 182, engine 1 averages 138 tokens/s.
    assert!(close(s.mean_generation_throughput, 320.0), "{s:?}");
    assert!(close(s.mean_prompt_throughput, 42.0), "{s:?}");
    assert_eq!((s.peak_running, s.peak_waiting, s.peak_kv_cache_usage_pct), (Some(5), Some(2), Some(7.5)));
    let t0: Timestamp = "2026-11-23T07:00:00Z".parse().unwrap();
    let secs = |s: i64| t0.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
    assert_eq!(f.first_ts, Some("2026-11-23T07:00:00.000000001Z".parse().unwrap()));
    assert_eq!(f.last_ts, Some(secs(53)));
    assert_eq!(f.engine_stats[1].ts, Some(secs(12)));
    assert_eq!(f.engine_stats[1].stats.engine, Some(1));

    // Window [10 s, 50 s]: engine 0's intervals tile it, (300 + 310 + 100 + 0) * 10 / 40 = 177.5;
    // engine 1 (2 s x 150 + 10 s x (250 + 240 + 50) + 8 s x 0) / 40 = 142.5, 10 s sticking out.
    let w = generation_throughput_over(&f.engine_stats, secs(10), secs(50), Duration::from_secs(10), 0.8).unwrap();
    assert!((w.tokens_per_s - 320.0).abs() < 1e-9, "{w:?}");
    assert_eq!((w.coverage, w.lines_used, w.engines), (0.8, 9, 2));
    // Window [15 s, 45 s]: engine 0 (5 s x 300 + 10 s x 310 + 10 s x 100 + 5 s x 0) / 30,
    // engine 1 (7 s x 250 + 10 s x 240 + 10 s x 50 + 3 s x 0) / 30; 10 s sticking out for each.
    let w = generation_throughput_over(&f.engine_stats, secs(15), secs(45), Duration::from_secs(10), 0.7).unwrap();
    assert!((w.tokens_per_s - (5600.0 + 4650.0) / 30.0).abs() < 1e-9, "{w:?}");
    assert_eq!((w.coverage, w.lines_used, w.engines), (0.75, 8, 2));
    let err =
        generation_throughput_over(&f.engine_stats, secs(15), secs(45), Duration::from_secs(10), 0.8).unwrap_err();
    assert!(err.contains("cover 75%"), "{err}");
    // A 3 s burst inside one interval, and a window before the first line.
    let short = generation_throughput_over(&f.engine_stats, secs(24), secs(27), Duration::from_secs(10), 0.8);
    assert!(short.unwrap_err().contains("cover 30%"));
    let early = generation_throughput_over(&f.engine_stats, secs(-20), secs(5), Duration::from_secs(10), 0.8);
    assert!(early.unwrap_err().contains("cover"));
}

#[test]
fn v0_20_pasted_without_esc_through_compose_with_aggregated_engines() {
    let f = analyze_text(&golden("logs/vllm-0.20-pasted-aggregated.log"));
    assert_lines_add_up(&f);
    assert_eq!(
        counts(&f),
        Counts {
            lines: 14,
            unparsed: 4,
            access: 5,
            by_status: statuses(&[("200", 3), ("404", 2)]),
            stats_lines: 2,
            engines: Some(2),
            // Two 404 lines with the same header in the same second: two events.
            error_lines: 2,
            error_events: 2,
            warning_lines: 1,
            warning_events: 1,
        }
    );
    assert_eq!(f.access.by_endpoint["POST /v1/chat/completions"], statuses(&[("200", 3), ("404", 1)]));
    assert_eq!(f.access.by_endpoint["POST /v1/completions"], statuses(&[("404", 1)]));
    let first = &f.engine_stats[0].stats;
    assert_eq!(
        (first.engines_aggregated, first.waiting, first.preemptions, first.prefix_cache_hit_rate_pct),
        (Some(2), 7, Some(2), Some(90.1))
    );
    let s = &f.engine_stats_summary;
    assert!(close(s.mean_generation_throughput, (565.9 + 402.2) / 2.0), "{s:?}");
    assert_eq!((s.peak_kv_cache_usage_pct, s.last_prefix_cache_hit_rate_pct), (Some(88.3), Some(90.3)));
}

/// The collector may strip the `\r` that vLLM's `\r\n` joins leave at the end of a record's
/// lines; events are then grouped by the shape of the traceback lines, with the same result.
#[test]
fn carriage_returns_stripped_by_the_collector_change_nothing() {
    let mut files = vec!["vllm-0.32-server.log".to_string()];
    files.extend(CHECKED.iter().map(|name| format!("logs/{name}")));
    for file in files {
        let text = golden(&file);
        assert!(text.contains("\r\n") || !file.contains("0.32"), "{file}");
        let with = analyze_text(&text);
        let without = analyze_text(&text.replace("\r\n", "\n"));
        assert_eq!(counts(&with), counts(&without), "{file}");
        assert_eq!(with.first_errors, without.first_errors, "{file}");
    }
}

const CHECKED: [&str; 6] = [
    "vllm-0.10.1-ansi.log",
    "vllm-0.11.0-dp2-timestamps.log",
    "vllm-0.20-pasted-aggregated.log",
    "vllm-0.4.3-v0.log",
    "vllm-0.6.3-v0-prefix-cache.log",
    "vllm-0.8.3-v1.log",
];

/// A new golden log must come with its expectations above.
#[test]
fn every_golden_log_is_checked() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/logs");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let names: Vec<String> = logs.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, CHECKED);
    for path in &logs {
        let f = analyze_text(&String::from_utf8_lossy(&std::fs::read(path).unwrap()));
        assert_lines_add_up(&f);
        assert!(f.access.total > 0 && f.engine_stats_summary.lines > 0, "{}", path.display());
    }
}
