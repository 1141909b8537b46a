//! Helpers shared by the integration tests: a quiet in-process simulator and
//! one burst run through the same code path as `llm-loadtest run`.
#![allow(dead_code)] // each test binary uses its own subset

pub mod daemon;
pub mod docker;

use clap::Parser;
use llm_loadtest::artifacts::RunResult;
use llm_loadtest::cli::{Cli, Command, RunArgs};
use llm_loadtest::sim::{self, LogSink, SimConfig, SimHandle};
use llm_loadtest::{burst, run};
use tokio_util::sync::CancellationToken;

/// `llm-loadtest run --target URL --model sim-model --quiet <base> <extra>`, parsed.
pub fn run_args(url: &str, base: &[&str], extra: &[&str]) -> RunArgs {
    let mut argv = vec!["llm-loadtest", "run", "--target", url, "--model", "sim-model", "--quiet"];
    // A flag given in `extra` replaces the same flag of `base`.
    let mut i = 0;
    while i < base.len() {
        let takes_value = base.get(i + 1).is_some_and(|v| !v.starts_with("--"));
        if !extra.contains(&base[i]) {
            argv.push(base[i]);
            if takes_value {
                argv.push(base[i + 1]);
            }
        }
        i += if takes_value { 2 } else { 1 };
    }
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Run(a) => *a,
        _ => unreachable!(),
    }
}

pub async fn sim_with(config: SimConfig) -> SimHandle {
    sim::start(SimConfig { log_sink: LogSink::Discard, ..config }, ([127, 0, 0, 1], 0).into()).await.unwrap()
}

/// One burst against `url` with model `model`.
pub async fn burst_with(url: &str, model: &str, a: &RunArgs) -> RunResult {
    let p = run::prepare(a, &url::Url::parse(url).unwrap(), model, "t", None).unwrap();
    burst::run(p, "t".into(), CancellationToken::new(), None).await
}

/// `promtool ARGS` with `stdin`: (success, stdout + stderr). Fails, never skips, without promtool.
pub fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool must be installed (Debian: apt-get install prometheus); this test never skips");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `llm-loadtest run ARGS --output FILE` as a process: the result JSON and stdout; fails the
/// test when the run fails.
pub fn run_json(args: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_llm-loadtest"))
        .arg("run")
        .args(args)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "run failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (v, stdout)
}

/// A TCP balancer on loopback: each new connection goes to the next backend in turn (what a
/// Kubernetes Service does per connection). Returns its base URL.
pub async fn balancer(backends: Vec<std::net::SocketAddr>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let backend = backends[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % backends.len()];
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    format!("http://{addr}")
}
