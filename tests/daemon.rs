//! The daemon in-process against the simulator: schedules, the trigger API's
//! answers, /metrics after runs, the history across a restart, shutdown with a
//! burst in flight, and the faults it must survive (target down, /metrics down,
//! history not writable).

use std::time::Duration;

use llm_loadtest::sim::{LatencyDist, SimConfig};

mod common;

use common::daemon::{Running, config, get_json, http, metrics, post, sample, target_toml, wait_run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_api_answers_as_specified() {
    // A slow simulator keeps the first burst running while the conflicts are tried.
    let sim =
        common::sim_with(SimConfig { ttft: LatencyDist::Fixed(Duration::from_millis(300)), ..SimConfig::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[auth]\ntoken = \"s3cret\"\n[limits]\nmax_requests = 50\n{}{}",
        target_toml("sim", &sim.base_url(), 8, ""),
        target_toml("other", &sim.base_url(), 4, "")
    );
    let d = Running::start(config(&toml, dir.path())).await;
    let runs = d.url("/api/v1/targets/sim/runs");

    // 401 without or with a wrong token, and nothing started.
    let (s, v) = post(&runs, "", None).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("bearer token"));
    assert_eq!(post(&runs, "", Some("wrong")).await.0, 401);
    assert_eq!(get_json(&d.url("/api/v1/runs")).await["runs"].as_array().unwrap().len(), 0);

    // 404 for an unknown target, 400 for bad bodies (each with its reason).
    let (s, v) = post(&d.url("/api/v1/targets/nope/runs"), "", Some("s3cret")).await;
    assert_eq!(s, 404, "{v}");
    for (body, why) in [
        ("{not json", "bad trigger body"),
        (r#"{"url": "http://127.0.0.1:1"}"#, "unknown field `url`"),
        (r#"{"requests": 51}"#, "limits.max_requests"),
        (r#"{"concurrency": 0}"#, "concurrency: must be at least 1"),
        (r#"{"workers": 2}"#, "coordinates no workers"),
    ] {
        let (s, v) = post(&runs, body, Some("s3cret")).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{body}: {v}");
    }
    // 413 for a body over the limit.
    let big = format!(r#"{{"seed": 1{}}}"#, " ".repeat(20_000));
    assert_eq!(post(&runs, &big, Some("s3cret")).await.0, 413);

    // 202 with the run id; then 409 while it runs, on it and (no parallel targets) on another.
    let (s, v) = post(&runs, r#"{"requests": 12}"#, Some("s3cret")).await;
    assert_eq!(s, 202, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_owned();
    assert_eq!(v["status_url"], format!("/api/v1/runs/{run_id}"));
    let (s, v) = post(&runs, "", Some("s3cret")).await;
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("already running"));
    let (s, v) = post(&d.url("/api/v1/targets/other/runs"), "", Some("s3cret")).await;
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("allow_parallel_targets"));

    // The run is listed and served whole, with the body's override applied.
    let summary = wait_run(&d, "sim", &run_id).await;
    assert_eq!(summary["trigger"], "api");
    assert_eq!(summary["completed"], 12);
    let full = get_json(&d.url(&format!("/api/v1/runs/{run_id}"))).await;
    assert_eq!(full["run_id"], run_id.as_str());
    assert_eq!(full["completed"], 12);
    assert!(full["validation"]["prometheus"]["comparisons"].is_array());

    // Reading: limits and unknown things.
    let r = http().get(d.url("/api/v1/runs?limit=0")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http().get(d.url("/api/v1/runs?limti=3")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http().get(d.url("/api/v1/runs?target=nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    for id in ["20990101T000000Z-000000", "..%2F..%2Fetc%2Fpasswd", "a.b"] {
        let r = http().get(d.url(&format!("/api/v1/runs/{id}"))).send().await.unwrap();
        assert_eq!(r.status(), 404, "{id}");
    }
    assert_eq!(http().get(d.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http().get(d.url("/readyz")).send().await.unwrap().status(), 200);
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_hold_the_run_and_the_history_survives_a_restart() {
    let sim = common::sim_with(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = target_toml("sim", &sim.base_url(), 20, "") + &target_toml("idle", "http://127.0.0.1:9", 4, "");
    let d = Running::start(config(&toml, dir.path())).await;
    let (s, v) = post(&d.url("/api/v1/targets/sim/runs"), "", None).await;
    assert_eq!(s, 202, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_owned();
    wait_run(&d, "sim", &run_id).await;
    let full = get_json(&d.url(&format!("/api/v1/runs/{run_id}"))).await;

    // OpenMetrics when asked for it (as Prometheus does), classic text otherwise.
    let r = http()
        .get(d.url("/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(r.text().await.unwrap().ends_with("# EOF\n"));
    let before = metrics(&d).await;
    let t = [("target", "sim")];
    let val = |name: &str, extra: &[(&str, &str)]| {
        let labels: Vec<(&str, &str)> = t.iter().chain(extra).copied().collect();
        sample(&before, name, &labels).unwrap_or_else(|| panic!("{name}{extra:?} missing:\n{before}"))
    };
    assert_eq!(val("llm_loadtest_runs_total", &[("result", "success")]), 1.0);
    assert_eq!(val("llm_loadtest_requests_total", &[("outcome", "ok")]), 20.0);
    assert_eq!(val("llm_loadtest_prompt_tokens_total", &[]), full["total_input_tokens"].as_f64().unwrap());
    assert_eq!(val("llm_loadtest_output_tokens_total", &[]), full["total_output_tokens"].as_f64().unwrap());
    assert_eq!(val("llm_loadtest_ttft_seconds_count", &[]), 20.0);
    assert_eq!(val("llm_loadtest_last_run_success", &[]), 1.0);
    assert_eq!(
        val(
            "llm_loadtest_validation_status",
            &[("section", "prometheus"), ("check", "request_count"), ("status", "PASS")]
        ),
        1.0
    );
    assert_eq!(val("llm_loadtest_last_run_completed_requests", &[("source", "server")]), 20.0);
    let p50 = val("llm_loadtest_last_run_ttft_seconds", &[("percentile", "p50")]);
    assert!((p50 * 1e3 - full["median_ttft_ms"].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(sample(&before, "llm_loadtest_runs_total", &[("target", "idle"), ("result", "success")]), Some(0.0));
    // Runs only when triggered: no schedule interval.
    assert_eq!(sample(&before, "llm_loadtest_schedule_interval_seconds", &[("target", "idle")]), None);
    d.shutdown().await;

    // A new daemon on the same directory: same history and last-run gauges; counters and
    // histograms start again from 0 (a restart is a counter reset, as in any exporter).
    let d = Running::start(config(&toml, dir.path())).await;
    let runs = get_json(&d.url("/api/v1/runs")).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    assert_eq!(runs["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(get_json(&d.url(&format!("/api/v1/runs/{run_id}"))).await, full);
    let after = metrics(&d).await;
    for (name, labels) in [
        ("llm_loadtest_runs_total", vec![("result", "success")]),
        ("llm_loadtest_requests_total", vec![("outcome", "ok")]),
        ("llm_loadtest_prompt_tokens_total", vec![]),
        ("llm_loadtest_output_tokens_total", vec![]),
        ("llm_loadtest_ttft_seconds_count", vec![]),
        ("llm_loadtest_ttft_seconds_sum", vec![]),
        ("llm_loadtest_itl_seconds_count", vec![]),
    ] {
        let labels: Vec<(&str, &str)> = t.iter().copied().chain(labels).collect();
        assert!(sample(&before, name, &labels).unwrap() > 0.0, "{name}{labels:?} before the restart");
        assert_eq!(sample(&after, name, &labels), Some(0.0), "{name}{labels:?} after the restart");
    }
    let started = |m: &str| sample(m, "process_start_time_seconds", &[]).unwrap();
    assert!(started(&after) >= started(&before), "process_start_time_seconds");
    for (name, labels) in [
        ("llm_loadtest_last_run_ttft_seconds", vec![("percentile", "p99")]),
        ("llm_loadtest_last_success_timestamp_seconds", vec![]),
        ("llm_loadtest_consecutive_failed_runs", vec![]),
        ("llm_loadtest_validation_drift_ratio", vec![("section", "prometheus"), ("check", "prompt_tokens")]),
        ("llm_loadtest_last_run_timestamp_seconds", vec![]),
    ] {
        let labels: Vec<(&str, &str)> = t.iter().copied().chain(labels).collect();
        let (b, a) = (sample(&before, name, &labels), sample(&after, name, &labels));
        assert!(b.is_some(), "{name}{labels:?} missing before the restart");
        assert_eq!(a, b, "{name}{labels:?} after the restart");
    }
    // A second run counts from 0: exactly its own contribution.
    let (s, v) = post(&d.url("/api/v1/targets/sim/runs"), r#"{"requests": 5}"#, None).await;
    assert_eq!(s, 202, "{v}");
    wait_run(&d, "sim", v["run_id"].as_str().unwrap()).await;
    let m = metrics(&d).await;
    assert_eq!(sample(&m, "llm_loadtest_requests_total", &[("target", "sim"), ("outcome", "ok")]), Some(5.0));
    assert_eq!(sample(&m, "llm_loadtest_runs_total", &[("target", "sim"), ("result", "success")]), Some(1.0));
    assert_eq!(
        sample(
            &m,
            "llm_loadtest_validation_sections_total",
            &[("target", "sim"), ("section", "prometheus"), ("status", "PASS")]
        ),
        Some(1.0)
    );
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_skip_when_busy_and_retention_prunes() {
    let sim =
        common::sim_with(SimConfig { ttft: LatencyDist::Fixed(Duration::from_millis(100)), ..SimConfig::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    // Two targets every second, bursts of about a second, one burst at a time daemon-wide:
    // some ticks find the other target busy and are skipped.
    let schedule = "[targets.T.schedule]\ninterval = \"1s\"\n";
    let toml = format!(
        "[history]\nmax_runs = 3\n{}{}{}{}",
        target_toml("a", &sim.base_url(), 8, ""),
        schedule.replace('T', "a"),
        target_toml("b", &sim.base_url(), 8, ""),
        schedule.replace('T', "b"),
    );
    let d = Running::start(config(&toml, dir.path())).await;
    let mut m = String::new();
    for _ in 0..200 {
        m = metrics(&d).await;
        let runs = |t| sample(&m, "llm_loadtest_runs_total", &[("target", t), ("result", "success")]).unwrap();
        let skipped = |t| sample(&m, "llm_loadtest_scheduled_runs_skipped_total", &[("target", t)]).unwrap();
        if runs("a") >= 4.0 && runs("b") >= 4.0 && skipped("a") + skipped("b") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = |t| sample(&m, "llm_loadtest_runs_total", &[("target", t), ("result", "success")]).unwrap();
    assert!(runs("a") >= 4.0 && runs("b") >= 4.0, "{m}");
    let skipped = |t| sample(&m, "llm_loadtest_scheduled_runs_skipped_total", &[("target", t)]).unwrap();
    assert!(skipped("a") + skipped("b") >= 1.0, "{m}");
    assert_eq!(sample(&m, "llm_loadtest_schedule_interval_seconds", &[("target", "a")]), Some(1.0));
    // Retention: at most 3 runs per target listed and on disk.
    d.shutdown().await;
    for t in ["a", "b"] {
        let n = std::fs::read_dir(dir.path().join("runs").join(t)).unwrap().count();
        assert_eq!(n, 3, "{t}");
    }
    let d = Running::start(config(&toml.replace("interval = \"1s\"", "interval = \"1h\""), dir.path())).await;
    let runs = get_json(&d.url("/api/v1/runs?target=a&limit=100")).await;
    assert!(runs["runs"].as_array().unwrap().len() <= 4, "{runs}");
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_the_burst_in_flight_and_keeps_its_partial_result() {
    let sim =
        common::sim_with(SimConfig { itl: LatencyDist::Fixed(Duration::from_millis(50)), ..SimConfig::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let toml = target_toml("sim", &sim.base_url(), 4, "");
    let d = Running::start(config(&toml, dir.path())).await;
    let (s, v) = post(&d.url("/api/v1/targets/sim/runs"), r#"{"duration": "60s"}"#, None).await;
    assert_eq!(s, 202, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t0 = std::time::Instant::now();
    d.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(20), "shutdown took {:?}", t0.elapsed());
    let d = Running::start(config(&toml, dir.path())).await;
    let full = get_json(&d.url(&format!("/api/v1/runs/{run_id}"))).await;
    assert_eq!(full["cancelled"], true);
    assert!(full["completed"].as_u64().unwrap() > 0, "the partial result keeps what completed");
    // The cancelled run was counted by the process that ran it; this one restores its gauges.
    let m = metrics(&d).await;
    assert_eq!(sample(&m, "llm_loadtest_runs_total", &[("target", "sim"), ("result", "cancelled")]), Some(0.0));
    assert_eq!(sample(&m, "llm_loadtest_last_run_success", &[("target", "sim")]), Some(0.0));
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_recorded_and_the_daemon_keeps_serving() {
    let sim = common::sim_with(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // Target down (nothing listens on port 9), /metrics down, and a history that cannot be written.
    let toml = target_toml("down", "http://127.0.0.1:9", 4, "")
        + &target_toml("nometrics", &sim.base_url(), 4, "metrics_url = \"http://127.0.0.1:9/metrics\"")
        + &target_toml("nodisk", &sim.base_url(), 4, "");
    std::fs::create_dir_all(dir.path().join("runs")).unwrap();
    std::fs::write(dir.path().join("runs").join("nodisk"), "a file where the directory should be").unwrap();
    let mut c = config(&toml, dir.path());
    c.allow_parallel_targets = true;
    let d = Running::start(c).await;
    let mut ids = Vec::new();
    for t in ["down", "nometrics", "nodisk"] {
        let (s, v) = post(&d.url(&format!("/api/v1/targets/{t}/runs")), "", None).await;
        assert_eq!(s, 202, "{t}: {v}");
        ids.push((t, v["run_id"].as_str().unwrap().to_owned()));
    }
    let mut summaries = Vec::new();
    for (t, id) in &ids {
        summaries.push(wait_run(&d, t, id).await);
    }
    let m = metrics(&d).await;
    // Target down: a failed run with its reason.
    assert_eq!(summaries[0]["result"], "failed");
    assert_eq!(sample(&m, "llm_loadtest_runs_total", &[("target", "down"), ("result", "failed")]), Some(1.0));
    let unreachable = [("target", "down"), ("reason", "target_unreachable")];
    assert_eq!(sample(&m, "llm_loadtest_run_failures_total", &unreachable), Some(1.0));
    assert_eq!(sample(&m, "llm_loadtest_last_run_success", &[("target", "down")]), Some(0.0));
    // /metrics down: the run ran; the Prometheus section skipped with the reason.
    let full = get_json(&d.url(&format!("/api/v1/runs/{}", ids[1].1))).await;
    assert_eq!(full["completed"], 4);
    let prom = &full["validation"]["prometheus"];
    assert_eq!(prom["status"], "SKIP", "{prom}");
    let section = [("target", "nometrics"), ("section", "prometheus"), ("status", "SKIP")];
    assert_eq!(sample(&m, "llm_loadtest_validation_section_status", &section), Some(1.0));
    // History not writable: counted, listed as not persisted, still served from memory.
    assert_eq!(summaries[2]["persisted"], false);
    assert_eq!(sample(&m, "llm_loadtest_history_write_errors_total", &[]), Some(1.0));
    let full = get_json(&d.url(&format!("/api/v1/runs/{}", ids[2].1))).await;
    assert_eq!(full["completed"], 4);
    // (Its verdict may be WARN: the other burst on the same simulator is background traffic.)
    let result = summaries[2]["result"].as_str().unwrap();
    assert!(["success", "warn"].contains(&result), "{}", summaries[2]);
    assert_eq!(sample(&m, "llm_loadtest_runs_total", &[("target", "nodisk"), ("result", result)]), Some(1.0));
    // And the daemon still answers.
    assert_eq!(http().get(d.url("/healthz")).send().await.unwrap().status(), 200);
    assert!(http().get(d.url("/")).send().await.unwrap().text().await.unwrap().contains("nodisk"));
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_that_cannot_be_prepared_is_a_recorded_failure_and_frees_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("prompts.jsonl");
    std::fs::write(&dataset, "{\"prompt\": \"hello\"}\n").unwrap();
    let toml = format!(
        "[targets.sim]\nurl = \"http://127.0.0.1:9\"\nmodel = \"sim-model\"\n[targets.sim.workload]\nrequests = 2\n\
         dataset = \"{}\"\n",
        dataset.display()
    );
    let c = config(&toml, dir.path());
    // The file was there when the config was checked, and is gone when the burst starts.
    std::fs::remove_file(&dataset).unwrap();
    let d = Running::start(c).await;
    for attempt in 0..2 {
        let (s, v) = post(&d.url("/api/v1/targets/sim/runs"), "", None).await;
        // Not 409 the second time: the failed attempt freed the target.
        assert_eq!(s, 422, "attempt {attempt}: {v}");
        assert!(v["error"].as_str().unwrap().contains("prompts.jsonl"), "{v}");
    }
    let m = metrics(&d).await;
    let reason = [("target", "sim"), ("reason", "invalid_workload")];
    assert_eq!(sample(&m, "llm_loadtest_run_failures_total", &reason), Some(2.0));
    assert_eq!(sample(&m, "llm_loadtest_running", &[("target", "sim")]), Some(0.0));
    let runs = get_json(&d.url("/api/v1/runs")).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    assert_eq!(runs["runs"][0]["result"], "failed");
    d.shutdown().await;
    assert_eq!(sample(&m, "llm_loadtest_consecutive_failed_runs", &[("target", "sim")]), Some(2.0));
    // Failures are stored and replayed after a restart: the streak and the last-run gauges come
    // back, the counters start from 0.
    std::fs::write(&dataset, "{\"prompt\": \"hello\"}\n").unwrap();
    let d = Running::start(config(&toml, dir.path())).await;
    let m = metrics(&d).await;
    assert_eq!(sample(&m, "llm_loadtest_consecutive_failed_runs", &[("target", "sim")]), Some(2.0));
    assert_eq!(sample(&m, "llm_loadtest_last_run_success", &[("target", "sim")]), Some(0.0));
    assert_eq!(sample(&m, "llm_loadtest_last_success_timestamp_seconds", &[("target", "sim")]), None);
    assert_eq!(sample(&m, "llm_loadtest_run_failures_total", &reason), Some(0.0));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_dir_reproduces_the_daemon_verdicts_exactly() {
    use llm_loadtest::sim::Faults;
    let sim = common::sim_with(SimConfig::default()).await;
    // A WARN to reproduce (requests missing from the server's counters), next to other
    // clients' traffic (a background estimate), a goodput SLO and tolerances of the target's own.
    // 60% missing: far beyond what an error in the background estimate could hide (with 30%
    // missing, an estimate from a few requests in the window could bring it within 7%).
    sim.set_faults(Faults { drop_from_metrics_rate: 0.6, ..Faults::default() });
    let url = sim.base_url();
    let background = tokio::spawn(async move {
        let a = common::run_args(
            &url,
            &[],
            &["--rate", "10", "--duration", "3s", "--max-tokens", "4", "--skip-validation"],
        );
        common::burst_with(&url, "sim-model", &a).await
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[targets.sim]
url = "{}"
model = "sim-model"
[targets.sim.workload]
requests = 30
concurrency = 4
max_tokens = 8
input_tokens = 16
idle_window = "500ms"
settle_timeout = "2s"
goodput = {{ ttft_ms = 500, e2el_ms = 2000 }}
[targets.sim.tolerances]
request_count = 0.07
ttft_mean = 0.4
"#,
        sim.base_url()
    );
    let (run_id, live) = common::daemon::one_triggered_run(&toml, dir.path(), "sim").await;
    background.await.unwrap();
    // Requests missing from the counters warn on a quiet server; with other clients seen, the
    // estimate's check gives no verdict and says what it was.
    let v = &live["validation"];
    let rate = v["server_info"]["background_request_rate"].as_f64().unwrap();
    let count =
        v["prometheus"]["comparisons"].as_array().unwrap().iter().find(|c| c["check"] == "request_count").unwrap();
    if rate > 0.0 {
        assert_eq!(count["status"], "SKIP", "{v:#}");
        let reason = count["reason"].as_str().unwrap();
        assert!(reason.contains("(was ") && reason.contains("req/s in the idle window"), "{reason}");
    } else {
        assert_eq!(v["overall"], "WARN", "{v:#}");
    }

    let saved = dir.path().join("runs").join("sim").join(&run_id);
    let offline = llm_loadtest::offline::validate_dir(&saved, None).unwrap();
    assert_eq!(serde_json::to_value(&offline).unwrap(), live["validation"]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_receiver_joins_the_servers_spans_to_each_burst() {
    // The daemon's one OTLP receiver for every target; the simulator exports to it as vLLM
    // would (gRPC). Two bursts in turn: each gets exactly its own spans.
    let port = common::docker::free_port();
    let sim = common::sim_with(SimConfig {
        otlp_traces_endpoint: Some(format!("http://127.0.0.1:{port}")),
        otlp_batch_delay: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("[otlp]\nreceiver = \"127.0.0.1:{port}\"\n") + &target_toml("sim", &sim.base_url(), 12, "");
    let d = Running::start(config(&toml, dir.path())).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, v) = post(&d.url("/api/v1/targets/sim/runs"), "", None).await;
        assert_eq!(s, 202, "{v}");
        let id = v["run_id"].as_str().unwrap().to_owned();
        wait_run(&d, "sim", &id).await;
        ids.push(id);
    }
    for id in &ids {
        let full = get_json(&d.url(&format!("/api/v1/runs/{id}"))).await;
        let traces = &full["validation"]["traces"];
        assert_eq!(traces["matched"], 12, "{traces:#}");
        let counts = traces["comparisons"].as_array().unwrap();
        for check in ["request_count", "prompt_tokens", "generation_tokens"] {
            let c = counts.iter().find(|c| c["check"] == check).unwrap();
            assert_eq!(c["status"], "PASS", "{c}");
            assert_eq!(c["client"], c["server"], "{c}");
        }
        assert_eq!(full["validation"]["basis"], "traces", "{:#}", full["validation"]);
    }
    let m = metrics(&d).await;
    let ok = [("target", "sim"), ("section", "traces"), ("check", "request_count")];
    assert_eq!(sample(&m, "llm_loadtest_validation_ok", &ok), Some(1.0), "{m}");
    d.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_where_no_request_completed_is_failed_not_a_success() {
    // The target answers, but every request gets HTTP 500.
    let faults = llm_loadtest::sim::Faults { http_error_rate: 1.0, ..Default::default() };
    let sim = common::sim_with(SimConfig { faults, ..SimConfig::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Running::start(config(&target_toml("sim", &sim.base_url(), 4, ""), dir.path())).await;
    let (s, v) = post(&d.url("/api/v1/targets/sim/runs"), "", None).await;
    assert_eq!(s, 202, "{v}");
    let summary = wait_run(&d, "sim", v["run_id"].as_str().unwrap()).await;
    assert_eq!(summary["result"], "failed", "{summary}");
    assert_eq!(summary["error"], "all 4 requests failed; most: http_error (4)", "{summary}");
    let m = metrics(&d).await;
    let failed = [("target", "sim"), ("reason", "all_requests_failed")];
    assert_eq!(sample(&m, "llm_loadtest_run_failures_total", &failed), Some(1.0), "{m}");
    assert_eq!(sample(&m, "llm_loadtest_runs_total", &[("target", "sim"), ("result", "success")]), Some(0.0));
    assert_eq!(sample(&m, "llm_loadtest_last_run_success", &[("target", "sim")]), Some(0.0));
    // The same after a restart (the history is replayed through the same classification).
    d.shutdown().await;
    let d = Running::start(config(&target_toml("sim", &sim.base_url(), 4, ""), dir.path())).await;
    let m = metrics(&d).await;
    assert_eq!(sample(&m, "llm_loadtest_last_run_success", &[("target", "sim")]), Some(0.0), "{m}");
    assert_eq!(sample(&m, "llm_loadtest_consecutive_failed_runs", &[("target", "sim")]), Some(1.0), "{m}");
    let runs = get_json(&d.url("/api/v1/runs?target=sim")).await;
    assert_eq!(runs["runs"][0]["result"], "failed", "{runs}");
    d.shutdown().await;
    sim.shutdown().await;
}
