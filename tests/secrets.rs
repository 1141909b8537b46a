//! A planted password (in the target's and the metrics URL) and a planted API
//! key never appear in any output channel: the daemon's logs, status page, API,
//! /metrics and history files, `check-config`, and `run`'s stdout, stderr, result
//! and artifacts; a target that cannot be reached (its errors carry the URL) too.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

const PASSWORD: &str = "s3cretPW-planted";
const API_KEY: &str = "sk-planted-key-0123456789";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
}

/// Every file below `dir`, as text.
fn files(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push((p.display().to_string(), String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()));
        }
    }
}

fn assert_clean(channels: &[(String, String)]) {
    assert!(channels.len() > 5, "too few channels looked at: {}", channels.len());
    for (name, text) in channels {
        assert!(!text.contains(PASSWORD), "{name} shows the password:\n{text}");
        assert!(!text.contains(API_KEY), "{name} shows the API key:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_password_and_api_key_appear_in_no_output() {
    let sim = common::sim_with(llm_loadtest::sim::SimConfig::default()).await;
    let port = sim.addr().port();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    let workload = "requests = 4\nconcurrency = 2\nmax_tokens = 4\nidle_window = \"0s\"\nsettle_timeout = \"1s\"\n";
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
             [targets.sim]\nurl = \"http://alice:{PASSWORD}@127.0.0.1:{port}\"\nmodel = \"sim-model\"\n\
             metrics_url = \"http://bob:{PASSWORD}@127.0.0.1:{port}/metrics\"\napi_key_file = \"{}\"\n\
             [targets.sim.workload]\n{workload}\
             [targets.down]\nurl = \"http://alice:{PASSWORD}@127.0.0.1:9\"\nmodel = \"m\"\napi_key_file = \"{}\"\n\
             [targets.down.workload]\n{workload}",
            data.display(),
            key_file.display(),
            key_file.display()
        ),
    )
    .unwrap();
    let mut channels = Vec::new();

    let o = bin().arg("check-config").arg(&config).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    channels.push(("check-config stdout".into(), String::from_utf8_lossy(&o.stdout).into_owned()));
    channels.push(("check-config stderr".into(), String::from_utf8_lossy(&o.stderr).into_owned()));

    let mut daemon =
        bin().args(["serve", "--log-format", "json", "--config"]).arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let mut base = None;
    let mut log = String::new();
    for line in lines.by_ref().take(20) {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(v) = serde_json::from_str::<serde_json::Value>(&line).ok()
            && let Some(l) = v["fields"]["listen"].as_str()
        {
            base = Some(format!("http://{l}"));
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("no listen address in:\n{log}"));
    let logs = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let base = base.clone();
        async move { http.get(format!("{base}{path}")).send().await.unwrap().text().await.unwrap() }
    };
    for target in ["sim", "down"] {
        let r = http.post(format!("{base}/api/v1/targets/{target}/runs")).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let v: serde_json::Value = r.json().await.unwrap();
        let id = v["run_id"].as_str().unwrap().to_owned();
        let mut full = String::new();
        for _ in 0..100 {
            full = get(format!("/api/v1/runs/{id}")).await;
            if full.contains("\"run_id\"") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(full.contains(&id), "{full}");
        channels.push((format!("GET /api/v1/runs/{id}"), full));
    }
    for path in ["/", "/api/v1/runs", "/api/v1/targets", "/metrics"] {
        channels.push((format!("GET {path}"), get(path.to_owned()).await));
    }
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    assert!(daemon.wait().unwrap().success());
    channels.push(("daemon log".into(), log + &logs.join().unwrap()));
    files(&data, &mut channels);

    // One-shot runs: the same target, and one that cannot be reached.
    for (target, name) in [
        (format!("http://alice:{PASSWORD}@127.0.0.1:{port}"), "run"),
        (format!("http://alice:{PASSWORD}@127.0.0.1:9"), "run down"),
    ] {
        let art = dir.path().join(format!("art-{}", name.replace(' ', "-")));
        let out = dir.path().join(format!("{}.json", name.replace(' ', "-")));
        let o = bin()
            .args(["run", "--target", &target, "--model", "sim-model", "--requests", "3", "--max-tokens", "4"])
            .args(["--idle-window", "0s", "--api-key-file"])
            .arg(&key_file)
            .args(["--metrics-url", &format!("http://bob:{PASSWORD}@127.0.0.1:{port}/metrics"), "--output"])
            .arg(&out)
            .arg("--save-artifacts")
            .arg(&art)
            .output()
            .unwrap();
        channels.push((format!("{name} stdout"), String::from_utf8_lossy(&o.stdout).into_owned()));
        channels.push((format!("{name} stderr"), String::from_utf8_lossy(&o.stderr).into_owned()));
        if out.exists() {
            files(&art, &mut channels);
            channels.push((out.display().to_string(), std::fs::read_to_string(&out).unwrap()));
        }
    }
    // The redacted form is there (so the channels were looked at with the URL in them).
    assert!(channels.iter().any(|(_, t)| t.contains("alice:***@")), "no redacted URL anywhere");
    assert_clean(&channels);
    sim.shutdown().await;
}
