//! Properties of the log parser: no panic on any input, counts that always add up, bounded
//! memory on a million lines.

use std::time::Duration;

use jiff::Timestamp;
use llm_loadtest::logs::{
    EngineStats, LogAnalyzer, LogFindings, LogLine, Parsed, TimedEngineStats, generation_throughput_over, parse_line,
    split_docker_timestamp,
};
use proptest::prelude::*;

/// Pieces of real lines, so that generated strings reach deep into the parser.
const FRAGMENTS: &[&str] = &[
    "2026-11-23T07:01:02.123456789Z ",
    "2026-11-23T07:01:0",
    "vllm-1  | ",
    "(APIServer pid=1) ",
    "(EngineCore_DP0 pid=276) ",
    "\x1b[1;36m",
    "\x1b[0;0m",
    "\x1b[",
    "[1;36m",
    "^[[",
    "\x1b",
    "\r",
    "\n",
    "\t",
    "ERROR ",
    "WARNING ",
    "CRITICAL ",
    "INFO ",
    "11-23 06:34:40 ",
    "[async_llm.py:906] ",
    "metrics.py:341] ",
    "]",
    "[",
    "ERROR:    ",
    "WARNING:  ",
    "ERROR:asyncio:",
    "INFO:     ",
    "127.0.0.1:59042 - \"",
    "POST /v1/chat/completions",
    "?q=1",
    " HTTP/1.1\" ",
    "200 OK",
    "999",
    "Engine 000: ",
    "2 Engines Aggregated: ",
    "Avg prompt throughput: ",
    " tokens/s, ",
    "Avg generation throughput: ",
    "Running: ",
    " reqs, ",
    "Waiting: ",
    "Swapped: ",
    "Pending: ",
    "GPU KV cache usage: ",
    "Prefix cache hit rate: ",
    "GPU: ",
    "%, ",
    "%",
    "Preemptions: ",
    "1.5",
    "0",
    "18446744073709551616",
    "1e400",
    ".",
    "Traceback (most recent call last):",
    "  File \"x.py\", line 1, in f",
    "  + Exception Group Traceback (most recent call last):",
    "During handling of the above exception, another exception occurred:",
    "ValueError: boom",
    "é",
    "█",
    "\u{0}",
    " ",
];

fn fragment_line() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|parts| parts.concat())
}

fn any_line() -> impl Strategy<Value = String> {
    prop_oneof![
        fragment_line(),
        ".{0,300}",
        prop::collection::vec(any::<u8>(), 0..400).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn check_invariants(f: &LogFindings) {
    let sum = f.access.total
        + f.engine_stats_summary.lines
        + f.prefix_cache_lines
        + f.error_lines
        + f.warning_lines
        + f.unparsed_lines;
    assert_eq!(sum, f.lines);
    assert!(f.error_events <= f.error_lines && f.warning_events <= f.warning_lines);
    assert!(f.first_errors.len() <= 5 && f.first_warnings.len() <= 5);
    assert!(f.first_errors.iter().chain(&f.first_warnings).all(|m| m.chars().count() <= 300));
    assert_eq!(f.access.by_status.values().sum::<u64>(), f.access.total);
    let by_endpoint: u64 = f.access.by_endpoint.values().flat_map(|s| s.values()).sum();
    assert_eq!(by_endpoint, f.access.total);
    // The findings serialize to JSON and back (no NaN or infinity slipped through).
    let json = serde_json::to_string(f).unwrap();
    assert_eq!(&serde_json::from_str::<LogFindings>(&json).unwrap(), f);
    let _ = f.summary_json();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_line_never_panics(line in any_line()) {
        match parse_line(&line) {
            Parsed::EngineStats(s) => {
                prop_assert!(s.prompt_throughput.is_finite() && s.generation_throughput.is_finite());
                prop_assert!(s.kv_cache_usage_pct.is_none_or(f64::is_finite));
            }
            Parsed::Access(a) => prop_assert!((100..=999).contains(&a.status) && !a.path.contains('?')),
            Parsed::Log { message, .. } => prop_assert!(!message.contains('\r')),
            Parsed::PrefixCacheHitRate { .. } | Parsed::Other => {}
        }
        let (_, rest) = split_docker_timestamp(&line);
        prop_assert!(line.ends_with(rest));
    }

    #[test]
    fn analyzer_never_panics_and_counts_add_up(lines in prop::collection::vec(any_line(), 0..60)) {
        let mut analyzer = LogAnalyzer::new();
        for line in &lines {
            analyzer.feed(&LogLine::from_raw(line));
        }
        let f = analyzer.finish();
        prop_assert_eq!(f.lines, lines.len() as u64);
        check_invariants(&f);
    }

    #[test]
    fn throughput_never_panics(
        points in prop::collection::vec((-100i64..100, prop::option::of(0u32..3), 0.0f64..1e6, any::<bool>()), 0..40),
        start in -120i64..120,
        length in -5i64..120,
        interval_ms in 0u64..30_000,
        min_coverage in -1.0f64..2.0,
    ) {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| t0.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
        let stats: Vec<TimedEngineStats> = points
            .iter()
            .map(|&(s, engine, generation, timed)| TimedEngineStats {
                ts: timed.then(|| at(s)),
                stats: EngineStats { engine, generation_throughput: generation, ..EngineStats::default() },
            })
            .collect();
        let result = generation_throughput_over(
            &stats, at(start), at(start + length), Duration::from_millis(interval_ms), min_coverage,
        );
        if let Ok(w) = result {
            prop_assert!(w.tokens_per_s.is_finite() && w.tokens_per_s >= 0.0);
            prop_assert!((0.0..=1.0).contains(&w.coverage) && w.coverage >= min_coverage);
            prop_assert!(w.engines >= 1 && w.lines_used >= 1);
        }
    }
}

#[test]
fn huge_lines_are_handled() {
    let huge_stats = format!(
        "INFO 01-01 00:00:00 [loggers.py:1] Engine 000: Avg prompt throughput: 1.0 tokens/s, Avg generation throughput: 2.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs, {}",
        "GPU KV cache usage: 1.0%, ".repeat(200_000)
    );
    assert!(matches!(parse_line(&huge_stats), Parsed::EngineStats(s) if s.kv_cache_usage_pct == Some(1.0)));
    let garbage: String = "Avg prompt throughput: [1;3 \x1b[ ERROR 11-23 (x pid=1) ".repeat(100_000);
    let mut analyzer = LogAnalyzer::new();
    analyzer.feed_str(None, &garbage);
    analyzer.feed_str(None, &format!("ERROR:    {garbage}"));
    let f = analyzer.finish();
    assert_eq!((f.lines, f.error_events), (2, 1));
    assert!(f.first_errors[0].chars().count() <= 300);
}

/// A million mixed lines: everything is counted, only bounded parts are kept.
#[test]
fn a_million_lines_use_bounded_memory() {
    let mut analyzer = LogAnalyzer::new();
    let t0 = Timestamp::from_second(1_800_000_000).unwrap();
    let mut expected_stats = 0u64;
    let mut expected_errors = 0u64;
    for i in 0..1_000_000u64 {
        let ts = t0.checked_add(jiff::SignedDuration::from_millis(i as i64)).unwrap();
        let text = match i % 10 {
            0 => {
                expected_stats += 1;
                format!(
                    "(APIServer pid=1) INFO 11-23 06:32:25 [loggers.py:335] Engine {:03}: Avg prompt throughput: 5.4 tokens/s, Avg generation throughput: {}.0 tokens/s, Running: {} reqs, Waiting: 0 reqs, GPU KV cache usage: 0.5%, Prefix cache hit rate: 12.5%",
                    (i / 10) % 4,
                    i % 500,
                    (i / 10) % 64
                )
            }
            1 => {
                expected_errors += 1;
                format!("(APIServer pid=1) ERROR 11-23 06:32:08 [serving.py:274] Error with model nope-{i} code=404")
            }
            2 => format!("INFO:     10.0.0.1:{} - \"GET /probe/{i} HTTP/1.1\" 404 Not Found", i % 65536),
            3 => "WARNING:  Invalid HTTP request received.".to_string(),
            4 => format!("binary \u{fffd}\u{fffd} garbage {i} \x1b[1;3"),
            _ => format!("INFO:     10.0.0.1:{} - \"POST /v1/chat/completions HTTP/1.1\" 200 OK", i % 65536),
        };
        analyzer.feed(&LogLine { ts: Some(ts), text });
    }
    let f = analyzer.finish();
    check_invariants(&f);
    assert_eq!(f.lines, 1_000_000);
    assert_eq!((f.first_errors.len(), f.first_warnings.len()), (5, 5));
    assert_eq!((f.error_events, f.error_lines), (expected_errors, expected_errors));
    assert_eq!(f.engine_stats.len(), 10_000);
    assert_eq!(f.engine_stats_dropped, expected_stats - 10_000);
    assert_eq!(f.engine_stats_summary.lines, expected_stats);
    assert_eq!(f.engine_stats_summary.engines, Some(4));
    assert_eq!(f.engine_stats_summary.peak_running, Some(63));
    // 100 000 distinct probe paths fold into one bucket after the endpoint limit.
    assert!(f.access.by_endpoint.len() <= 201, "{}", f.access.by_endpoint.len());
    assert_eq!(f.access.total, 600_000);
    assert_eq!(f.unparsed_lines, 100_000);
}
