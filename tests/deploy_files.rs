//! The deployment files hold together: every file deploy/compose.yaml mounts or builds from
//! exists, the daemon config it mounts is valid, and (with promtool) its Prometheus config is.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn compose_mounts_existing_files_and_a_valid_daemon_config() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    for name in ["vllm", "llm-loadtest", "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    let deploy = repo().join("deploy");
    let mut mounted = 0;
    for (name, s) in services {
        for v in s["volumes"].as_sequence().into_iter().flatten() {
            let host = v.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with('.') {
                assert!(deploy.join(host).exists(), "{name:?}: {host} does not exist");
                mounted += 1;
            }
        }
    }
    assert!(mounted >= 8, "{mounted} bind mounts");
    let build = &services["llm-loadtest"]["build"];
    let context = deploy.join(build["context"].as_str().unwrap());
    assert!(context.join(build["dockerfile"].as_str().unwrap()).is_file());
    llm_loadtest::config::load(&deploy.join("llm-loadtest.toml")).unwrap();
}

#[test]
#[ignore = "needs promtool: run scripts/test.sh"]
fn prometheus_config_is_valid() {
    let out = std::process::Command::new("promtool")
        .args(["check", "config", "--syntax-only"])
        .arg(repo().join("deploy/prometheus.yml"))
        .output()
        .expect("promtool must be installed (Debian: apt-get install prometheus); this test never skips");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
