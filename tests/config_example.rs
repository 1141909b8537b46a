//! `config/example.toml` and `config/demo.toml` parse, say what they claim,
//! and take environment overrides.

use std::path::{Path, PathBuf};
use std::time::Duration;

use llm_loadtest::config::{self, Schedule};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn the_example_parses_with_two_targets() {
    let c = match config::load(&example_path()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(c.data_dir, PathBuf::from("./data"));
    assert!(!c.allow_parallel_targets);
    assert!(c.warnings().is_empty());
    let names: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["llama", "sim"]);

    let llama = c.target("llama").unwrap();
    assert_eq!(llama.url.as_str(), "http://127.0.0.1:8000/");
    assert_eq!(llama.container, Some(llm_loadtest::docker::ContainerSource::Named(vec!["vllm".into()])));
    assert_eq!(llama.schedule, Some(Schedule { interval: Duration::from_secs(900), jitter: Duration::from_secs(30) }));
    assert_eq!(llama.workload.requests, Some(200));
    assert_eq!(llama.workload.concurrency, Some(16));
    // From [defaults.workload] / [defaults.tolerances], under the target's own keys.
    assert_eq!(llama.workload.settle_timeout, Duration::from_secs(5));
    assert_eq!(llama.tolerances.ttft_mean, 0.15);
    assert_eq!(llama.tolerances.request_count, 0.05);

    let sim = c.target("sim").unwrap();
    assert_eq!(sim.model, "sim-model");
    assert_eq!(sim.schedule, None, "no schedule: triggered only");
    assert_eq!((sim.workload.rate, sim.workload.poisson), (Some(20.0), true));
    assert_eq!((sim.workload.requests, sim.workload.duration), (None, Some(Duration::from_secs(10))));
}

#[test]
fn env_overrides_the_example_and_kubernetes_variables_are_ignored() {
    let env = vars(&[
        ("LLM_LOADTEST__TARGETS__SIM__WORKLOAD__CONCURRENCY", "3"),
        // What Kubernetes injects for a Service named llm-loadtest: one `_` after the prefix.
        ("LLM_LOADTEST_PORT", "tcp://10.96.0.12:1234"),
        ("LLM_LOADTEST_PORT_1234_TCP", "tcp://10.96.0.12:1234"),
        ("LLM_LOADTEST_SERVICE_HOST", "10.96.0.12"),
        ("LLM_LOADTEST_SERVICE_PORT", "1234"),
    ]);
    let c = match config::load_from_str(&example_text(), &env) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.target("sim").unwrap().workload.concurrency, Some(3));
    assert_eq!(c.target("llama").unwrap().workload.concurrency, Some(16), "other targets unchanged");
    assert_eq!(c.listen.to_string(), "127.0.0.1:9464", "LLM_LOADTEST_PORT is not `listen`");
    assert_eq!(
        c.target("sim").unwrap().workload.arrival().max_in_flight(),
        Some(3),
        "the burst gets the overridden concurrency"
    );
}

#[test]
fn env_problems_in_the_example_name_key_and_variable() {
    let env = vars(&[("LLM_LOADTEST__TARGETS__SIM__WORKLOAD__CONCURRENCY", "0")]);
    let e = config::load_from_str(&example_text(), &env).unwrap_err();
    assert_eq!(
        e.0,
        [
            "targets.sim.workload.concurrency: must be at least 1 (from LLM_LOADTEST__TARGETS__SIM__WORKLOAD__CONCURRENCY)"
        ]
    );
}

#[test]
fn the_example_shows_every_key() {
    let text = example_text();
    let keys = [
        "listen",
        "data_dir",
        "log_format",
        "allow_parallel_targets",
        "max_runs",
        "max_age",
        "token",
        "token_file",
        "receiver",
        "max_requests",
        "max_duration",
        "max_concurrency",
        "max_rate",
        "max_tokens",
        "url",
        "model",
        "metrics_url",
        "container",
        "api_key_file",
        "skip_validation",
        "endpoint",
        "stream",
        "requests",
        "duration",
        "concurrency",
        "rate",
        "poisson",
        "seed",
        "warmup",
        "ignore_eos",
        "temperature",
        "extra_body",
        "input_tokens",
        "dataset",
        "dataset_format",
        "tokenizer",
        "timeout",
        "first_token_timeout",
        "connect_timeout",
        "inter_chunk_timeout",
        "target_lost_after",
        "ttft_ms",
        "tpot_ms",
        "e2el_ms",
        "idle_window",
        "settle_timeout",
        "spans_timeout",
        "request_count",
        "prompt_tokens",
        "generation_tokens",
        "ttft_mean",
        "e2e_latency_mean",
        "latency_floor_ms",
        "interval",
        "jitter",
    ];
    for key in keys {
        let shown = text.lines().any(|l| l.trim_start_matches(['#', ' ']).starts_with(&format!("{key} = ")));
        assert!(shown, "config/example.toml does not show `{key}`");
    }
    for section in ["[history]", "[auth]", "[limits]", "[defaults.workload]", "[defaults.tolerances]"] {
        assert!(text.contains(section), "{section}");
    }
}

#[test]
fn the_demo_config_parses() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml")).unwrap();
    assert_eq!(text, config::DEMO_TOML);
    let c = config::load_from_str(&text, &[]).unwrap();
    assert_eq!(c.targets.len(), 1);
    let url = url::Url::parse("http://127.0.0.1:40123").unwrap();
    let demo = config::demo(&url, "sim-model").unwrap();
    assert_eq!(demo.targets[0].url, url);
    assert_eq!(demo.targets[0].effective_metrics_url().as_deref(), Some("http://127.0.0.1:40123/metrics"));
}

#[test]
fn a_missing_file_is_named() {
    let e = config::load(Path::new("/nonexistent/llm-loadtest.toml")).unwrap_err();
    assert!(e.to_string().contains("cannot read the config file /nonexistent/llm-loadtest.toml"), "{e}");
}
