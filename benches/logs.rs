//! Time to analyze 100 000 realistic log lines: `cargo bench --bench logs`.

use std::time::Instant;

use llm_loadtest::logs::{LogAnalyzer, LogLine};

/// A busy vLLM 0.32 server under a load test, as `docker logs --timestamps` shows it: mostly
/// access lines, request logging, a stats line every 10 s, some warnings and a traceback.
fn realistic_lines(n: usize) -> Vec<String> {
    let h = "(APIServer pid=1) ERROR 11-23 06:34:40 [async_llm.py:906] ";
    (0..n)
        .map(|i| {
            let ts = format!("2026-11-23T07:{:02}:{:02}.{:09}Z", (i / 60_000) % 60, (i / 1000) % 60, i * 7919 % 1_000_000_000);
            let text = match i % 100 {
                0 => format!(
                    "(APIServer pid=1) INFO 11-23 07:00:10 [loggers.py:335] Engine 000: Avg prompt throughput: {}.4 tokens/s, Avg generation throughput: {}.0 tokens/s, Running: {} reqs, Waiting: {} reqs, GPU KV cache usage: {}.5%, Prefix cache hit rate: 42.1%",
                    i % 3000,
                    i % 5000,
                    i % 256,
                    i % 17,
                    i % 100
                ),
                1..=20 => format!(
                    "(APIServer pid=1) INFO 11-23 07:00:10 [logger.py:39] Received request chatcmpl-{i:x}: params: SamplingParams(n=1, presence_penalty=0.0, temperature=0.7, top_p=1.0, max_tokens=256, ignore_eos=True), lora_request: None."
                ),
                21 => "(APIServer pid=1) WARNING 11-23 07:00:10 [protocol.py:93] The following fields were present in the request but ignored: {'foo'}".to_string(),
                22 if i % 1000 == 22 => format!("{h}AsyncLLM output_handler failed.\r"),
                23 if i % 1000 == 23 => format!("{h}Traceback (most recent call last):\r"),
                24 if i % 1000 == 24 => format!("{h}  File \"/usr/lib/python3.12/site-packages/vllm/v1/engine/async_llm.py\", line 849, in output_handler\r"),
                25 if i % 1000 == 25 => format!("{h}vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue."),
                26..=30 => format!("\x1b[1;36m(EngineCore pid=12)\x1b[0;0m INFO 11-23 07:00:10 [core.py:1] step {i}"),
                _ => format!(
                    "INFO:     172.17.0.{}:{} - \"POST /v1/chat/completions HTTP/1.1\" {}",
                    i % 255,
                    30_000 + i % 30_000,
                    if i % 97 == 0 { "400 Bad Request" } else { "200 OK" }
                ),
            };
            format!("{ts} {text}")
        })
        .collect()
}

fn analyze_100k_lines() {
    let lines = realistic_lines(100_000);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let mut analyzer = LogAnalyzer::new();
        for line in &lines {
            // As the collector delivers them: timestamp split off, text owned.
            analyzer.feed(&LogLine::from_raw(line));
        }
        let findings = analyzer.finish();
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(findings.lines, 100_000);
        assert_eq!(findings.engine_stats_summary.lines, 1000);
        assert_eq!(findings.error_events, 100);
    }
    println!(
        "logs: analyzed 100000 lines ({:.1} MB) in {:.1} ms (best of 5): {:.2} M lines/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        best * 1e3,
        1e5 / best / 1e6,
        bytes as f64 / best / 1e6
    );
}

fn main() {
    analyze_100k_lines();
}
