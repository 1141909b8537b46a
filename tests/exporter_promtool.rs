//! The daemon's exposition after a real run passes Prometheus' own tools:
//! - `promtool check metrics` (the lint Prometheus ships; it reads the classic text format
//!   0.0.4 only, so it is given `Exporter::encode_text`, what a scraper that does not ask for
//!   OpenMetrics receives);
//! - `promtool tsdb create-blocks-from openmetrics` (Prometheus' OpenMetrics parser, which
//!   rejects a malformed OpenMetrics document), given `Exporter::encode` with a timestamp
//!   added to each sample, which backfilling requires.
//!
//! Needs `promtool` on PATH (Debian: `apt-get install prometheus`); fails, never skips, without it.

use llm_loadtest::artifacts::RunResult;
use llm_loadtest::exporter::Exporter;
use llm_loadtest::sim::SimConfig;

mod common;

async fn exporter_after_a_run() -> (Exporter, RunResult) {
    let sim = common::sim_with(SimConfig::default()).await;
    let url = sim.base_url();
    let args = common::run_args(
        &url,
        &["--requests", "16", "--concurrency", "4", "--max-tokens", "8"],
        &["--idle-window", "300ms"],
    );
    let result = common::burst_with(&url, "sim-model", &args).await;
    sim.shutdown().await;
    let e = Exporter::new(&[("sim".into(), "sim-model".into()), ("idle".into(), "other".into())], "0.1.0");
    e.record_run("sim", &result);
    e.set_running("idle", true);
    (e, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool: run scripts/test.sh"]
async fn promtool_check_metrics_finds_no_problem() {
    let (e, result) = exporter_after_a_run().await;
    assert!(result.validation.is_some(), "the run must include validation so every verdict series is checked");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.prom");
    let text = e.encode_text();
    std::fs::write(&path, &text).unwrap();
    let (ok, problems) = common::promtool(&["check", "metrics"], &std::fs::read_to_string(&path).unwrap());
    assert!(ok && problems.trim().is_empty(), "promtool check metrics:\n{problems}\n--- input ---\n{text}");
    assert!(text.contains("llm_loadtest_validation_status{"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool: run scripts/test.sh"]
async fn prometheus_parses_the_openmetrics_exposition() {
    let (e, _) = exporter_after_a_run().await;
    let om = e.encode();
    // Backfilling needs a timestamp on every sample: append one (seconds, OpenMetrics style).
    let ts = jiff::Timestamp::now().as_second() - 3600;
    let mut stamped = String::new();
    for line in om.lines() {
        stamped.push_str(line);
        if !line.starts_with('#') {
            stamped.push_str(&format!(" {ts}"));
        }
        stamped.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("metrics.om");
    std::fs::write(&input, &stamped).unwrap();
    let out = dir.path().join("blocks");
    let args = ["tsdb", "create-blocks-from", "openmetrics", input.to_str().unwrap(), out.to_str().unwrap()];
    let (ok, report) = common::promtool(&args, "");
    assert!(ok, "promtool rejected the OpenMetrics exposition:\n{report}\n--- input ---\n{stamped}");
    assert!(report.contains("BLOCK ULID"), "no block written:\n{report}");
}
