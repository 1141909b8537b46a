//! The live daemon judged by outside tools: `promtool check metrics` on its /metrics after a
//! run, and its status page rendered by headless Chromium. Ignored in a plain `cargo test`;
//! `scripts/test.sh` installs both (Debian `prometheus`, `chromium`) and runs them, and then
//! they fail, never skip, when a tool is missing.

use std::process::Command;

use llm_loadtest::sim::SimConfig;

mod common;

use common::daemon::{Running, config, get_json, http, post, target_toml, wait_run};

/// A daemon with two targets, one of which has run (PASS) and one that never ran.
async fn daemon_after_a_run(dir: &std::path::Path) -> (Running, llm_loadtest::sim::SimHandle, String) {
    let sim = common::sim_with(SimConfig::default()).await;
    let toml =
        target_toml("llama-sim", &sim.base_url(), 16, "") + &target_toml("never-ran", "http://127.0.0.1:9", 4, "");
    let d = Running::start(config(&toml, dir)).await;
    let (s, v) = post(&d.url("/api/v1/targets/llama-sim/runs"), "", None).await;
    assert_eq!(s, 202, "{v}");
    let id = v["run_id"].as_str().unwrap().to_owned();
    let summary = wait_run(&d, "llama-sim", &id).await;
    assert_eq!(summary["verdict"], "PASS", "{summary}");
    (d, sim, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool: run scripts/test.sh"]
async fn promtool_finds_nothing_wrong_with_the_live_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (d, sim, _) = daemon_after_a_run(dir.path()).await;
    // What a scraper that does not ask for OpenMetrics gets (promtool reads only that format).
    let text = http().get(d.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("llm_loadtest_validation_status{"), "{text}");
    let (ok, report) = common::promtool(&["check", "metrics"], &text);
    assert!(ok && report.trim().is_empty(), "promtool check metrics:\n{report}\n---\n{text}");
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: run scripts/test.sh"]
async fn status_page_shows_the_verdicts_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (d, sim, id) = daemon_after_a_run(dir.path()).await;
    let profile = tempfile::tempdir().unwrap();
    let url = d.url("/");
    // Chromium blocks; run it off the runtime so the daemon keeps serving the page.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=3000", "--dump-dom", &url])
            .output()
            .expect("chromium must be installed (Debian: apt-get install chromium); this test never skips")
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    // The DOM as the browser built it: one row per target, verdict badges, links to the JSON.
    let row = |name: &str| {
        let start = dom.find(&format!("data-target=\"{name}\"")).unwrap_or_else(|| panic!("no row {name}:\n{dom}"));
        let end = dom[start..].find("</tr>").unwrap() + start;
        dom[start..end].to_owned()
    };
    let ran = row("llama-sim");
    assert!(ran.contains(r#"<td class="verdict"><span class="badge pass">PASS</span>"#), "{ran}");
    for check in ["request_count", "prompt_tokens", "generation_tokens", "ttft_mean"] {
        assert!(ran.contains(&format!(r#"{check} <span class="badge pass">PASS</span>"#)), "{check}: {ran}");
    }
    assert!(ran.contains(&format!(r#"href="/api/v1/runs/{id}""#)), "{ran}");
    let never = row("never-ran");
    assert!(never.contains("never") && never.contains(r#"<span class="badge none">none</span>"#), "{never}");
    assert!(dom.contains(r#"<table id="runs">"#) && dom.contains(&format!("<code>{id}</code>")), "{dom}");
    // The link the page gives is the run's full JSON.
    let full = get_json(&d.url(&format!("/api/v1/runs/{id}"))).await;
    assert_eq!(full["run_id"], id.as_str());
    d.shutdown().await;
    sim.shutdown().await;
}
