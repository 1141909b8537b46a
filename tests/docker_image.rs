//! The runtime image: `llm-loadtest:local` (docker/Dockerfile.local, built by
//! scripts/build-sim-image.sh on the local busybox base, since no image can be pulled
//! here) runs the daemon as a non-root user, turns healthy through its own HEALTHCHECK,
//! serves /metrics, and stops gracefully. Its runtime instructions are docker/Dockerfile's.
//! Ignored in a plain `cargo test`; scripts/test.sh builds the image and runs it.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::docker::{Container, docker, free_port};

const IMAGE: &str = "llm-loadtest:local";

/// The instructions that shape the running container, in order.
fn runtime_instructions(dockerfile: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{}/docker/{dockerfile}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    // Only the last stage counts.
    let last = text.rsplit("\nFROM ").next().unwrap();
    last.lines()
        .filter(|l| {
            ["USER", "WORKDIR", "ENV", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"].iter().any(|k| l.starts_with(k))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn both_dockerfiles_share_the_runtime_layout() {
    let published = runtime_instructions("Dockerfile");
    assert_eq!(published, runtime_instructions("Dockerfile.local"));
    assert!(published.iter().any(|l| l == "USER 65532:65532"), "{published:?}");
    assert!(published.iter().any(|l| l.starts_with("HEALTHCHECK") && l.contains("healthcheck")));
}

#[tokio::test]
#[ignore = "needs the Docker Engine and the llm-loadtest:local image: run scripts/test.sh"]
async fn image_runs_the_daemon_healthy_as_non_root() {
    // rustls, not OpenSSL: nothing TLS-related is linked dynamically.
    let ldd = Command::new("ldd").arg(env!("CARGO_BIN_EXE_llm-loadtest")).output().unwrap();
    let libs = String::from_utf8_lossy(&ldd.stdout);
    assert!(!libs.contains("libssl") && !libs.contains("libcrypto"), "{libs}");

    let user = docker(&["image", "inspect", "-f", "{{.Config.User}}", IMAGE]);
    assert_eq!(user, "65532:65532");
    let port = free_port();
    let name = format!("llm-loadtest-image-test-{port}");
    let listen = format!("127.0.0.1:{port}");
    let health_url = format!("LLM_LOADTEST_HEALTHCHECK_URL=http://{listen}/readyz");
    docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "--name",
        &name,
        "--health-interval",
        "1s",
        "--health-start-period",
        "1s",
        "-e",
        &health_url,
        IMAGE,
        "serve",
        "--demo",
        "--listen",
        &listen,
    ]);
    let _container = Container(name.clone());
    let t0 = Instant::now();
    let mut health = String::new();
    while t0.elapsed() < Duration::from_secs(60) {
        health = docker(&["inspect", "-f", "{{.State.Health.Status}}", &name]);
        if health == "healthy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(health, "healthy", "logs:\n{}", docker(&["logs", &name]));
    // The daemon process itself (pid 1) runs as 65532 (real, effective, saved, fs uids).
    let status = docker(&["exec", &name, "cat", "/proc/1/status"]);
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or_default();
    assert_eq!(uid.split_whitespace().skip(1).collect::<Vec<_>>(), ["65532"; 4], "{status}");

    // The demo's first scheduled run shows in /metrics within its jitter.
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
    let ran = |text: &str| {
        common::daemon::sample(text, "llm_loadtest_runs_total", &[("target", "sim"), ("result", "success")])
            >= Some(1.0)
    };
    let mut text = String::new();
    while t0.elapsed() < Duration::from_secs(90) {
        text = client.get(format!("http://{listen}/metrics")).send().await.unwrap().text().await.unwrap();
        if ran(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ran(&text), "{text}");

    // docker stop sends SIGTERM: a clean exit.
    docker(&["stop", "-t", "30", &name]);
    assert_eq!(docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]), "0", "{}", docker(&["logs", &name]));
}
