//! The binary as a user runs it: the demo, exit codes, and messages for bad input.

use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llm-loadtest")).args(args).env("CI", "1").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_runs_and_writes_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let art = dir.path().join("art");
    let o = bin(&[
        "run",
        "--demo",
        "--requests",
        "12",
        "--max-tokens",
        "8",
        "--output",
        out.to_str().unwrap(),
        "--save-artifacts",
        art.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout.contains("Successful requests") && stdout.contains("TTFT"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["completed"], 12);
    assert_eq!(v["schema_version"], 1);
    let lines = std::fs::read_to_string(art.join("requests.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 12);
    assert!(art.join("result.json").is_file());
}

#[test]
fn bad_flags_exit_1_with_a_message() {
    let o = bin(&["run", "--target", "http://127.0.0.1:1", "--model", "m", "--bogus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--bogus"));

    let o = bin(&["run", "--target", "localhost:8000", "--model", "m"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("http"), "{}", stderr(&o));

    let o = bin(&["run", "--target", "http://127.0.0.1:1", "--model", "m", "--dataset", "/nope.jsonl"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nope.jsonl"), "{}", stderr(&o));

    let o = bin(&["run", "--model", "m"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--target"));
}

#[test]
fn unreachable_target_exits_1_but_keeps_the_result() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let url = format!("http://127.0.0.1:{port}");
    let o = bin(&["run", "--target", &url, "--model", "m", "--requests", "2", "--output", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("could not be reached"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["errors"]["connect_error"], 2);
}

#[test]
fn api_key_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
        .args(["run", "--demo", "--requests", "2", "--max-tokens", "2", "--output", out.to_str().unwrap()])
        .env("LLM_LOADTEST_API_KEY", "sk-very-secret-123")
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(o.status.success());
    let all = format!("{}{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o), std::fs::read_to_string(&out).unwrap());
    assert!(!all.contains("sk-very-secret-123"));
}

#[test]
fn doctor_diagnoses_an_unreachable_target() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = bin(&["doctor", "--target", &format!("http://127.0.0.1:{port}"), "--model", "m"]);
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("### 1. [ERROR] Symptom") && stdout.contains("No response from the server"), "{stdout}");
}

#[test]
fn validate_dir_recomputes_the_saved_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("art");
    let o = bin(&[
        "run",
        "--demo",
        "--requests",
        "16",
        "--max-tokens",
        "8",
        "--idle-window",
        "200ms",
        "--save-artifacts",
        art.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Validation Results"));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(art.join("result.json")).unwrap()).unwrap();
    assert_eq!(saved["validation"]["overall"], "PASS", "{:#}", saved["validation"]);
    let o = bin(&["validate", art.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prometheus"]["comparisons"], saved["validation"]["prometheus"]["comparisons"]);
    // The demo's simulator exports its spans to the run's receiver: the traces section too.
    assert_eq!(saved["validation"]["traces"]["status"], "PASS", "{:#}", saved["validation"]);
    assert_eq!(v["traces"], saved["validation"]["traces"]);

    // A missing snapshot: that section SKIPs with the reason, not a crash; the verdict rests
    // on the per-request section, which is still there.
    std::fs::remove_file(art.join("metrics_after.txt")).unwrap();
    let o = bin(&["validate", art.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prometheus"]["status"], "SKIP");
    assert!(v["prometheus"]["reason"].as_str().unwrap().contains("metrics_after.txt"));
    assert_eq!(v["overall"], "PASS");
    assert_eq!(v["basis"], "traces");

    // Not an artifact directory at all: exit 1 with a message.
    let o = bin(&["validate", dir.path().join("nope").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("result.json"));
}

#[test]
fn inspect_metrics_reads_any_saved_exposition() {
    let o = bin(&[
        "inspect",
        "metrics",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/vllm-0.32-metrics.txt"),
        "--json",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["vllm"]["generation_tokens_total"], 4322.0);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0xffu8, 0xfe, 0, 1, 2, b'\n', b'x']).unwrap();
    let o = bin(&["inspect", "metrics", junk.to_str().unwrap(), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["vllm"]["request_success_total"].is_null());
}

#[test]
fn check_config_accepts_the_example_and_names_every_bad_key() {
    let root = env!("CARGO_MANIFEST_DIR");
    let o = bin(&["check-config", &format!("{root}/config/example.toml")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("OK"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"nowhere\"\n[targets.a]\nurl = \"http://127.0.0.1:8000\"\nmodl = \"x\"\n").unwrap();
    let o = bin(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    for key in ["listen", "targets.a.modl", "targets.a.model"] {
        assert!(e.contains(key), "{key} not named in:\n{e}");
    }
    // serve refuses the same file before listening.
    let o = bin(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("targets.a.modl"), "{}", stderr(&o));
    let o = bin(&["serve"]);
    assert_eq!(o.status.code(), Some(1), "serve needs --config or --demo");
}

/// SIGTERM with a burst in flight: the daemon exits 0 and the cancelled burst is in the history.
#[cfg(unix)]
#[test]
fn serve_stops_on_sigterm_and_keeps_the_cancelled_run() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
        .args(["--log-format", "json"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first scheduled burst starts within the demo's jitter; wait for it to start.
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("scheduled run started") {
            let v: serde_json::Value = serde_json::from_str(&line).expect("--log-format json writes JSON lines");
            assert_eq!(v["level"], "INFO");
            break;
        }
        assert!(seen.len() < 50, "no run started:\n{}", seen.join("\n"));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}:\n{}", rest.join("\n"));
    assert!(rest.iter().any(|l| l.contains("run finished") && l.contains("cancelled")), "{}", rest.join("\n"));
    let runs: Vec<_> = std::fs::read_dir(data.join("runs").join("sim")).unwrap().collect();
    assert_eq!(runs.len(), 1);
    let result = runs[0].as_ref().unwrap().path().join("result.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(result).unwrap()).unwrap();
    assert_eq!(v["cancelled"], true);
}

/// `serve --demo`: the daemon's receiver takes the demo simulator's spans, so its first
/// scheduled run is judged request by request (the `traces` section), as the README says.
#[cfg(unix)]
#[test]
fn serve_demo_validates_each_request_against_the_simulators_spans() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    // Killed however the test ends.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
        }
    }
    let _kill = Kill(child.id());
    let (mut base, mut seen) = (None, Vec::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("serving on ").nth(1) {
            base = rest.split_whitespace().next().map(|u| u.trim_end_matches('/').to_owned());
        }
        let done = line.contains("run finished");
        seen.push(line);
        if done {
            break;
        }
        assert!(seen.len() < 50, "no run finished:\n{}", seen.join("\n"));
    }
    let base = base.unwrap_or_else(|| panic!("no listen address:\n{}", seen.join("\n")));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let get = |url: String| {
        rt.block_on(async { reqwest::get(url).await.unwrap().json::<serde_json::Value>().await.unwrap() })
    };
    // The run is listed once recorded, just after its log line.
    let mut runs = serde_json::Value::Null;
    for _ in 0..100 {
        runs = get(format!("{base}/api/v1/runs?target=sim"));
        if runs["runs"][0]["run_id"].is_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let id = runs["runs"][0]["run_id"].as_str().unwrap_or_else(|| panic!("{runs}")).to_owned();
    let full = get(format!("{base}/api/v1/runs/{id}"));
    let v = &full["validation"];
    assert_eq!(v["traces"]["matched"], full["completed"], "{v:#}");
    assert_eq!(v["traces"]["status"], "PASS", "{v:#}");
    assert_eq!(v["basis"], "traces", "{v:#}");
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    assert!(child.wait().unwrap().success());
}

/// SIGKILL in the middle of a burst: the next start finds the run's start marker and records
/// it as failed (reason `interrupted`), listed and counted like any other failed run.
#[cfg(unix)]
#[test]
fn a_run_killed_with_the_daemon_is_recorded_as_interrupted_at_the_next_start() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // A slow simulator: the burst is surely in flight when the daemon is killed.
    let sim = rt.block_on(llm_loadtest::sim::start(
        llm_loadtest::sim::SimConfig {
            ttft: llm_loadtest::sim::LatencyDist::Fixed(std::time::Duration::from_secs(3)),
            log_sink: llm_loadtest::sim::LogSink::Discard,
            ..Default::default()
        },
        ([127, 0, 0, 1], 0).into(),
    ));
    let sim = sim.unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[targets.slow]\nurl = \"{}\"\nmodel = \"sim-model\"\n\
             [targets.slow.workload]\nrequests = 4\nconcurrency = 2\nmax_tokens = 4\nidle_window = \"0s\"\n\
             [targets.slow.schedule]\ninterval = \"1h\"\n",
            data.display(),
            sim.base_url()
        ),
    )
    .unwrap();
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
            .args(["serve", "--log-format", "json", "--config", config.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        (child, lines)
    };
    let (mut child, lines) = start();
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let started = line.contains("scheduled run started");
        seen.push(line);
        if started {
            break;
        }
        assert!(seen.len() < 50, "no run started:\n{}", seen.join("\n"));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let (child, mut lines) = start();
    // Killed however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let mut base = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v["fields"]["listen"].as_str() {
            base = Some(format!("http://{a}"));
            break;
        }
    }
    // Keep reading its stderr, as a supervisor would.
    std::thread::spawn(move || lines.for_each(drop));
    let base = base.expect("the daemon logs its address");
    let get = |path: &str| {
        let url = format!("{base}{path}");
        rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
    };
    let runs: serde_json::Value = serde_json::from_str(&get("/api/v1/runs?target=slow")).unwrap();
    let interrupted = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["error"].as_str().is_some_and(|e| e.starts_with("interrupted")))
        .unwrap_or_else(|| panic!("no interrupted run: {runs:#}"));
    assert_eq!(interrupted["result"], "failed");
    let metrics = get("/metrics");
    let value = metrics
        .lines()
        .find(|l| l.starts_with("llm_loadtest_run_failures_total{") && l.contains("reason=\"interrupted\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(value, Some(1.0), "{metrics}");
    rt.block_on(sim.shutdown());
}
