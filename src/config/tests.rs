//! One test per rule, each showing that the message names the key, as
//! blackbox_exporter tests its config; then layering, the environment and
//! the `run` flags.

use std::time::Duration;

use super::*;
use crate::openai::Endpoint;
use crate::server::MetricsSource;
use crate::workload::prompts::{DatasetFormat, LengthSpec};

const SIM: &str = "[targets.sim]\nurl = \"http://127.0.0.1:8001\"\nmodel = \"sim-model\"\n";

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn problems_env(toml: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match load_from_str(toml, &env(vars)) {
        Ok(c) => panic!("expected problems, got {c:#?}"),
        Err(e) => e.0,
    }
}

fn problems(toml: &str) -> Vec<String> {
    problems_env(toml, &[])
}

/// Exactly one problem, about `key`, saying `fragment`.
#[track_caller]
fn one(toml: &str, key: &str, fragment: &str) {
    let ps = problems(toml);
    assert_eq!(ps.len(), 1, "expected one problem about {key}, got {ps:#?}");
    assert!(ps[0].starts_with(&format!("{key}: ")), "{:?} does not name {key}", ps[0]);
    assert!(ps[0].contains(fragment), "{:?} does not say {fragment:?}", ps[0]);
}

fn ok(toml: &str) -> Config {
    match load_from_str(toml, &[]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// The sim target with a `[targets.sim.workload]` table holding `lines`.
fn workload(lines: &str) -> String {
    format!("{SIM}[targets.sim.workload]\n{lines}\n")
}

const W: &str = "targets.sim.workload";

// ---- defaults ----

#[test]
fn a_minimal_config_gets_every_default() {
    let c = ok(SIM);
    assert_eq!(c.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(c.data_dir, PathBuf::from("./data"));
    assert_eq!(c.history, HistoryConfig { max_runs: 500, max_age: Duration::from_secs(30 * 86400) });
    assert_eq!(c.auth, AuthConfig::default());
    assert_eq!(c.limits, TriggerLimits::default());
    assert!(!c.allow_parallel_targets);
    assert_eq!(c.log_format, LogFormat::Text);
    let t = c.target("sim").unwrap();
    assert_eq!(t.url.as_str(), "http://127.0.0.1:8001/");
    assert_eq!(t.model, "sim-model");
    assert_eq!((t.metrics.as_ref(), t.container.as_ref(), t.schedule), (None, None, None));
    assert!(!t.skip_validation);
    assert_eq!(t.workload, Workload::default());
    assert_eq!(t.tolerances, crate::validate::Tolerances::default());
    assert_eq!(t.effective_metrics_url().as_deref(), Some("http://127.0.0.1:8001/metrics"));
}

#[test]
fn every_key_is_read() {
    let c = ok(r#"
listen = "[::1]:9000"
data_dir = "/var/lib/llm-loadtest"
log_format = "json"
allow_parallel_targets = true
[history]
max_runs = 7
max_age = "2h"
[auth]
token = "s3cret"
[limits]
max_requests = 5
max_duration = "1m"
max_concurrency = 3
max_rate = 2.5
max_tokens = 64
[targets.b]
url = "https://h.example/v1"
model = "m"
metrics_url = "http://h.example:9100/metrics"
container = "vllm"
skip_validation = true
[targets.b.workload]
endpoint = "completions"
stream = false
duration = "1m 30s"
rate = 2.5
poisson = true
concurrency = 4
seed = 9
warmup = 3
max_tokens = 16
ignore_eos = true
temperature = 0.7
extra_body = { top_p = 0.9, stop = ["\n"] }
input_tokens = "32..64"
timeout = "20s"
first_token_timeout = "5s"
connect_timeout = "2s"
goodput = { ttft_ms = 500, tpot_ms = 50.5 }
idle_window = "0s"
settle_timeout = "1s"
[targets.b.tolerances]
ttft_mean = 0.2
[targets.b.schedule]
interval = "5m"
jitter = "10s"
[targets.a]
url = "http://127.0.0.1:1"
model = "n"
"#);
    assert_eq!(c.listen.to_string(), "[::1]:9000");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/llm-loadtest"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert!(c.allow_parallel_targets);
    assert_eq!(c.history, HistoryConfig { max_runs: 7, max_age: Duration::from_secs(7200) });
    assert_eq!(c.auth.read_token().unwrap().as_deref(), Some("s3cret"));
    assert_eq!(
        c.limits,
        TriggerLimits {
            max_requests: 5,
            max_duration: Duration::from_secs(60),
            max_concurrency: 3,
            max_rate: 2.5,
            max_tokens: 64
        }
    );
    let names: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "sorted by name");
    let t = c.target("b").unwrap();
    let metrics_url = url::Url::parse("http://h.example:9100/metrics").unwrap();
    assert_eq!(t.metrics, Some(MetricsSource::Urls(vec![metrics_url])));
    assert_eq!(t.container, Some(ContainerSource::Named(vec!["vllm".into()])));
    assert!(t.skip_validation);
    assert_eq!(t.effective_metrics_url(), None);
    let w = &t.workload;
    assert_eq!(w.endpoint, Endpoint::Completions);
    assert!(!w.stream);
    assert_eq!((w.requests, w.duration), (None, Some(Duration::from_secs(90))));
    assert_eq!((w.rate, w.poisson, w.concurrency), (Some(2.5), true, Some(4)));
    assert_eq!((w.seed, w.warmup, w.max_tokens, w.ignore_eos), (9, 3, 16, true));
    assert_eq!(w.temperature, Some(0.7));
    assert_eq!(
        serde_json::Value::Object(w.extra_body.clone().unwrap()),
        serde_json::json!({"top_p": 0.9, "stop": ["\n"]})
    );
    assert_eq!(w.input_tokens, Some(LengthSpec::Uniform { min: 32, max: 64 }));
    assert_eq!(
        (w.timeout, w.first_token_timeout, w.connect_timeout),
        (Duration::from_secs(20), Some(Duration::from_secs(5)), Duration::from_secs(2))
    );
    assert_eq!((w.goodput.ttft_ms, w.goodput.tpot_ms, w.goodput.e2el_ms), (Some(500.0), Some(50.5), None));
    assert_eq!((w.idle_window, w.settle_timeout), (Duration::ZERO, Duration::from_secs(1)));
    assert_eq!(t.tolerances.ttft_mean, 0.2);
    assert_eq!(t.tolerances.request_count, 0.05);
    assert_eq!(t.schedule, Some(Schedule { interval: Duration::from_secs(300), jitter: Duration::from_secs(10) }));
}

#[test]
fn closed_loop_and_request_count_defaults_follow_the_other_keys() {
    let w = ok(&workload("rate = 5.0")).targets[0].workload.clone();
    assert_eq!((w.concurrency, w.rate), (None, Some(5.0)), "with rate, no concurrency cap by default");
    let w = ok(&workload("duration = \"30s\"")).targets[0].workload.clone();
    assert_eq!((w.requests, w.duration), (None, Some(Duration::from_secs(30))));
    let w = ok(&workload("dataset_format = \"sharegpt\"")).targets[0].workload.clone();
    assert_eq!(w.dataset_format, DatasetFormat::Sharegpt);
}

// ---- unknown keys ----

#[test]
fn unknown_top_level_key_suggests_the_known_one() {
    one(&format!("lisen = \"0.0.0.0:1\"\n{SIM}"), "lisen", "did you mean `listen`");
}

#[test]
fn unknown_workload_key_suggests_the_known_one() {
    one(&workload("concurency = 3"), &format!("{W}.concurency"), "did you mean `concurrency`");
}

#[test]
fn unknown_keys_are_all_reported_with_their_path() {
    let ps = problems(&format!(
        "bogus = 1\n[history]\nkeep = 1\n[auth]\ntokn = \"x\"\n[limits]\nmax_reqs = 1\n\
         [defaults]\nschedule = {{ interval = \"1m\" }}\n\
         {SIM}colour = \"red\"\n[targets.sim.workload]\nfoo = 1\n\
         [targets.sim.workload.goodput]\nttft = 5\n[targets.sim.tolerances]\nttft = 0.1\n\
         [targets.sim.schedule]\ninterval = \"1m\"\nevery = \"1m\"\n"
    ));
    for key in [
        "bogus",
        "history.keep",
        "auth.tokn",
        "limits.max_reqs",
        "defaults.schedule",
        "targets.sim.colour",
        "targets.sim.workload.foo",
        "targets.sim.workload.goodput.ttft",
        "targets.sim.tolerances.ttft",
        "targets.sim.schedule.every",
    ] {
        assert!(
            ps.iter().any(|p| p.starts_with(&format!("{key}: unknown key"))),
            "no unknown-key problem for {key} in {ps:#?}"
        );
    }
    assert_eq!(ps.len(), 10, "{ps:#?}");
    assert!(ps.iter().any(|p| p.contains("did you mean `token`")), "{ps:#?}");
    assert!(ps.iter().any(|p| p.contains("did you mean `ttft_ms`")), "{ps:#?}");
}

// ---- targets ----

#[test]
fn at_least_one_target() {
    one("listen = \"127.0.0.1:9464\"\n", "targets", "no target configured");
    one("[targets]\n", "targets", "no target configured");
}

#[test]
fn target_names_are_label_and_path_safe() {
    let t = |name: &str| format!("[targets.{name}]\nurl = \"http://h\"\nmodel = \"m\"\n");
    one(&t("\"has space\""), "targets.\"has space\"", "A-Z a-z 0-9 _ . -");
    one(&t("\"a/b\""), "targets.\"a/b\"", "URL path segment");
    one(&t(&"x".repeat(65)), &format!("targets.{}", "x".repeat(65)), "1 to 64");
    one(&t("\"..\""), "targets.\"..\"", "only dots");
    one(&t("\"\""), "targets.\"\"", "1 to 64");
    ok(&t("\"Llama-3.1_8B\""));
    ok(&t(&"x".repeat(64)));
}

#[test]
fn target_names_must_differ_beyond_case_and_punctuation() {
    let toml =
        "[targets.Sim-1]\nurl = \"http://h\"\nmodel = \"m\"\n[targets.sim_1]\nurl = \"http://h\"\nmodel = \"m\"\n";
    one(toml, "targets.sim_1", "differs from targets.Sim-1 only in case");
}

#[test]
fn a_target_must_be_a_table() {
    one("targets = { sim = 3 }\n", "targets.sim", "expected a table");
}

#[test]
fn url_and_model_are_required() {
    let ps = problems("[targets.sim]\ncontainer = \"c\"\n");
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert!(ps[0].starts_with("targets.sim.url: missing"), "{ps:#?}");
    assert!(ps[1].starts_with("targets.sim.model: missing"), "{ps:#?}");
}

#[test]
fn url_must_parse() {
    one("[targets.sim]\nurl = \"not a url\"\nmodel = \"m\"\n", "targets.sim.url", "is not a URL");
}

#[test]
fn url_must_be_http() {
    one("[targets.sim]\nurl = \"ftp://h/x\"\nmodel = \"m\"\n", "targets.sim.url", "http:// or https://");
    one("[targets.sim]\nurl = \"localhost:8000\"\nmodel = \"m\"\n", "targets.sim.url", "http:// or https://");
}

#[test]
fn metrics_url_must_be_http() {
    one(&format!("{SIM}metrics_url = \"file:///metrics\"\n"), "targets.sim.metrics_url", "http://");
    one(&format!("{SIM}metrics_url = \"::\"\n"), "targets.sim.metrics_url", "is not a URL");
}

#[test]
fn a_fleet_is_a_list_of_metrics_urls_or_a_dns_name() {
    let c = ok(&format!("{SIM}metrics_url = [\"http://10.0.0.1:8000/metrics\", \"http://10.0.0.2:8000/metrics\"]\n"));
    let t = c.target("sim").unwrap();
    let Some(MetricsSource::Urls(urls)) = &t.metrics else { panic!("{:?}", t.metrics) };
    assert_eq!(urls.len(), 2);
    assert_eq!(
        t.effective_metrics_url().as_deref(),
        Some("http://10.0.0.1:8000/metrics, http://10.0.0.2:8000/metrics")
    );
    let c = ok(&format!("{SIM}metrics_dns = \"http://vllm-headless.llm.svc:8000/metrics\"\n"));
    let t = c.target("sim").unwrap();
    assert_eq!(t.effective_metrics_url().as_deref(), Some("dns+http://vllm-headless.llm.svc:8000/metrics"));

    one(&format!("{SIM}metrics_url = []\n"), "targets.sim.metrics_url", "at least one URL");
    one(&format!("{SIM}metrics_url = [\"http://a/metrics\", \"ftp://b\"]\n"), "targets.sim.metrics_url", "ftp://b");
    one(
        &format!("{SIM}metrics_url = \"http://a/metrics\"\nmetrics_dns = \"http://svc:8000/metrics\"\n"),
        "targets.sim.metrics_dns",
        "keep one",
    );
    one(&format!("{SIM}metrics_dns = \"http://10.0.0.1:8000/metrics\"\n"), "targets.sim.metrics_dns", "not a DNS name");
}

#[test]
fn model_must_not_be_empty() {
    one("[targets.sim]\nurl = \"http://h\"\nmodel = \"  \"\n", "targets.sim.model", "must not be empty");
}

#[test]
fn a_fleets_containers_are_a_list_or_a_label() {
    let c = ok(&format!("{SIM}container = [\"vllm-0\", \"vllm-1\"]\n"));
    assert_eq!(c.targets[0].container, Some(ContainerSource::Named(vec!["vllm-0".into(), "vllm-1".into()])));
    let c = ok(&format!("{SIM}container_label = \"app=vllm\"\n"));
    assert_eq!(c.targets[0].container, Some(ContainerSource::Label("app=vllm".into())));
    one(&format!("{SIM}container = []\n"), "targets.sim.container", "an empty list");
    one(&format!("{SIM}container = [\"a\", \"\"]\n"), "targets.sim.container", "must not be empty");
    one(&format!("{SIM}container_label = \" \"\n"), "targets.sim.container_label", "must not be empty");
    one(&format!("{SIM}container = \"a\"\ncontainer_label = \"app\"\n"), "targets.sim.container_label", "keep one");
}

#[test]
fn container_must_not_be_empty() {
    one(&format!("{SIM}container = \"\"\n"), "targets.sim.container", "must not be empty");
}

// ---- workload ----

#[test]
fn concurrency_at_least_one() {
    one(&workload("concurrency = 0"), &format!("{W}.concurrency"), "must be at least 1");
}

#[test]
fn concurrency_must_fit() {
    one(&workload("concurrency = -1"), &format!("{W}.concurrency"), "whole number from 0 to");
    one(&workload("concurrency = 5000000000"), &format!("{W}.concurrency"), "whole number from 0 to");
}

#[test]
fn rate_must_be_positive_and_finite() {
    for rate in ["0.0", "-1", "inf", "nan"] {
        one(&workload(&format!("rate = {rate}")), &format!("{W}.rate"), "must be a number above 0");
    }
}

#[test]
fn poisson_needs_a_rate() {
    one(&workload("poisson = true"), &format!("{W}.poisson"), "set rate too");
}

#[test]
fn requests_at_least_one() {
    one(&workload("requests = 0"), &format!("{W}.requests"), "must be at least 1");
}

#[test]
fn duration_above_zero() {
    one(&workload("duration = \"0s\""), &format!("{W}.duration"), "more than 0s");
}

#[test]
fn requests_and_duration_not_both() {
    one(&workload("requests = 5\nduration = \"5s\""), &format!("{W}.duration"), "either requests or duration");
}

#[test]
fn max_tokens_at_least_one() {
    one(&workload("max_tokens = 0"), &format!("{W}.max_tokens"), "must be at least 1");
}

#[test]
fn timeouts_above_zero() {
    for key in ["timeout", "first_token_timeout", "connect_timeout", "inter_chunk_timeout"] {
        let ps = problems(&workload(&format!("{key} = \"0s\"")));
        assert!(ps.iter().any(|p| p.starts_with(&format!("{W}.{key}: must be more than 0s"))), "{ps:#?}");
    }
}

#[test]
fn first_token_timeout_within_timeout() {
    one(
        &workload("timeout = \"10s\"\nfirst_token_timeout = \"20s\""),
        &format!("{W}.first_token_timeout"),
        "longer than timeout (10s)",
    );
}

#[test]
fn temperature_not_negative() {
    one(&workload("temperature = -0.5"), &format!("{W}.temperature"), "from 0 up");
}

#[test]
fn input_tokens_are_checked_as_the_cli_does() {
    one(&workload("input_tokens = 0"), &format!("{W}.input_tokens"), "at least 1 token");
    one(&workload("input_tokens = \"a..b\""), &format!("{W}.input_tokens"), "not a whole number");
    one(&workload("input_tokens = true"), &format!("{W}.input_tokens"), "expected N or \"MIN..MAX\"");
}

#[test]
fn input_tokens_not_with_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.jsonl");
    std::fs::write(&data, "{\"prompt\": \"hi\"}\n").unwrap();
    let toml = workload(&format!("input_tokens = 64\ndataset = {:?}", data.display().to_string()));
    one(&toml, &format!("{W}.input_tokens"), "cannot be combined with dataset");
}

#[test]
fn dataset_and_tokenizer_files_must_exist() {
    let ps = problems(&workload("dataset = \"/nonexistent/d.jsonl\"\ntokenizer = \"/nonexistent/t.json\""));
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert!(ps[0].starts_with(&format!("{W}.dataset: /nonexistent/d.jsonl does not exist")), "{ps:#?}");
    assert!(ps[1].starts_with(&format!("{W}.tokenizer: ")), "{ps:#?}");
}

#[test]
fn goodput_slos_above_zero() {
    one(&workload("goodput = { ttft_ms = 0 }"), &format!("{W}.goodput.ttft_ms"), "above 0 (milliseconds)");
}

#[test]
fn choices_list_the_accepted_values() {
    one(&workload("endpoint = \"chats\""), &format!("{W}.endpoint"), "is not one of chat, completions");
    one(&workload("dataset_format = \"csv\""), &format!("{W}.dataset_format"), "auto, jsonl, sharegpt");
    one(&format!("log_format = \"xml\"\n{SIM}"), "log_format", "text, json");
}

#[test]
fn values_are_typed_strictly() {
    one(&workload("concurrency = \"8\""), &format!("{W}.concurrency"), "expected a whole number, got the string");
    one(&workload("concurrency = 8.5"), &format!("{W}.concurrency"), "expected a whole number, got the number 8.5");
    one(&workload("stream = \"yes\""), &format!("{W}.stream"), "expected true or false");
    one(&workload("stream = 1"), &format!("{W}.stream"), "expected true or false");
    one(&workload("max_tokens = true"), &format!("{W}.max_tokens"), "expected a whole number");
    one(&workload("extra_body = \"{}\""), &format!("{W}.extra_body"), "expected a table");
    one("[targets.sim]\nurl = \"http://h\"\nmodel = 3\n", "targets.sim.model", "expected a string");
    one(&format!("{SIM}[targets.sim.workload.goodput]\nttft_ms = \"5\"\n"), &format!("{W}.goodput.ttft_ms"), "number");
}

#[test]
fn durations_need_a_unit() {
    one(&workload("timeout = 30"), &format!("{W}.timeout"), "needs a unit: write \"30s\"");
    one(&workload("timeout = \"30x\""), &format!("{W}.timeout"), "is not a duration like");
    one(&workload("timeout = \"-3s\""), &format!("{W}.timeout"), "is not a duration like");
}

#[test]
fn durations_at_most_a_year() {
    one(&workload("settle_timeout = \"400d\""), &format!("{W}.settle_timeout"), "at most 365d");
    one(&workload("timeout = \"100000000000y\""), &format!("{W}.timeout"), "at most 365d");
    one(&workload("timeout = \"1000000000000000000000y\""), &format!("{W}.timeout"), "is not a duration");
}

// ---- tolerances ----

#[test]
fn tolerances_are_checked_by_tolerances_check() {
    one(&format!("{SIM}[targets.sim.tolerances]\nttft_mean = -1.0\n"), "targets.sim.tolerances", "ttft_mean");
    one(
        &format!("{SIM}[targets.sim.tolerances]\nlatency_floor_ms = -1\n"),
        "targets.sim.tolerances",
        "latency_floor_ms",
    );
}

#[test]
fn tolerances_are_typed() {
    one(
        &format!("{SIM}[targets.sim.tolerances]\nttft_mean = \"a\"\n"),
        "targets.sim.tolerances.ttft_mean",
        "invalid type",
    );
}

// ---- schedule ----

#[test]
fn schedule_interval_at_least_one_second() {
    one(
        &format!("{SIM}[targets.sim.schedule]\ninterval = \"500ms\"\n"),
        "targets.sim.schedule.interval",
        "at least 1s",
    );
}

#[test]
fn schedule_interval_is_required() {
    one(&format!("{SIM}[targets.sim.schedule]\njitter = \"1s\"\n"), "targets.sim.schedule.interval", "missing");
}

#[test]
fn schedule_jitter_below_interval() {
    one(
        &format!("{SIM}[targets.sim.schedule]\ninterval = \"1m\"\njitter = \"1m\"\n"),
        "targets.sim.schedule.jitter",
        "less than schedule.interval (1m)",
    );
}

#[test]
fn schedule_interval_longer_than_the_burst() {
    one(
        &format!("{}[targets.sim.schedule]\ninterval = \"30s\"\n", workload("duration = \"1m\"")),
        "targets.sim.schedule.interval",
        "not longer than workload.duration (1m)",
    );
}

// ---- daemon-wide ----

#[test]
fn history_keeps_at_least_one_run() {
    one(&format!("[history]\nmax_runs = 0\n{SIM}"), "history.max_runs", "must be at least 1");
    one(&format!("[history]\nmax_age = \"0s\"\n{SIM}"), "history.max_age", "more than 0s");
}

#[test]
fn auth_token_not_empty() {
    one(&format!("[auth]\ntoken = \"\"\n{SIM}"), "auth.token", "must not be empty");
}

#[test]
fn auth_token_and_token_file_not_both() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    std::fs::write(&f, "abc\n").unwrap();
    let toml = format!("[auth]\ntoken = \"x\"\ntoken_file = {:?}\n{SIM}", f.display().to_string());
    one(&toml, "auth.token", "either auth.token or auth.token_file");
}

#[test]
fn auth_token_file_is_read_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    std::fs::write(&f, "  abc  \nsecond line\n").unwrap();
    let c = ok(&format!("[auth]\ntoken_file = {:?}\n{SIM}", f.display().to_string()));
    assert_eq!(c.auth.read_token().unwrap().as_deref(), Some("abc"));

    std::fs::write(&f, "\n").unwrap();
    one(&format!("[auth]\ntoken_file = {:?}\n{SIM}", f.display().to_string()), "auth.token_file", "is empty");
    one(&format!("[auth]\ntoken_file = \"/nonexistent/token\"\n{SIM}"), "auth.token_file", "cannot read");
}

#[test]
fn api_key_file_is_read_at_load() {
    one(&format!("{SIM}api_key_file = \"/nonexistent/key\"\n"), "targets.sim.api_key_file", "cannot read");
}

#[test]
fn listen_must_parse() {
    one(&format!("listen = \"localhost:9464\"\n{SIM}"), "listen", "is not an IP address and port");
    one(&format!("listen = 9464\n{SIM}"), "listen", "expected a string");
}

#[test]
fn trigger_limits_above_zero() {
    let ps = problems(&format!(
        "[limits]\nmax_requests = 0\nmax_duration = \"0s\"\nmax_concurrency = 0\nmax_rate = 0.0\nmax_tokens = 0\n{SIM}"
    ));
    for key in ["max_requests", "max_duration", "max_concurrency", "max_rate", "max_tokens"] {
        assert!(ps.iter().any(|p| p.starts_with(&format!("limits.{key}: "))), "{key} in {ps:#?}");
    }
    assert_eq!(ps.len(), 5, "{ps:#?}");
}

#[test]
fn sections_must_be_tables() {
    one(&format!("history = 3\n{SIM}"), "history", "expected a table, got the integer 3");
    one(&format!("{SIM}workload = \"fast\"\n"), "targets.sim.workload", "expected a table");
}

#[test]
fn toml_syntax_errors_are_reported() {
    let ps = problems("[targets.sim\nurl = 3");
    assert_eq!(ps.len(), 1);
    assert!(ps[0].starts_with("not valid TOML"), "{ps:#?}");
}

// ---- all at once ----

#[test]
fn every_problem_is_reported_at_once() {
    let toml = r#"
listen = "nowhere"
[history]
max_runs = 0
[targets.a]
url = "ftp://x"
model = ""
[targets.a.workload]
concurrency = 0
max_tokens = "many"
[targets.b]
url = "http://h"
model = "m"
[targets.b.workload]
requests = 1
duration = "1s"
[targets.b.schedule]
interval = "1s"
jitter = "2s"
"#;
    let err = load_from_str(toml, &[]).unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|p| p.split(": ").next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "listen",
            "targets.a.workload.max_tokens",
            "history.max_runs",
            "targets.a.url",
            "targets.a.model",
            "targets.a.workload.concurrency",
            "targets.b.workload.duration",
            "targets.b.schedule.jitter",
            "targets.b.schedule.interval",
        ],
        "{err}"
    );
    let text = err.to_string();
    assert!(text.starts_with("invalid configuration (9 problems):\n  - listen: "), "{text}");
}

#[test]
fn a_value_that_cannot_be_read_is_not_judged_again() {
    // The unreadable timeout must not also fail first_token_timeout <= timeout against a stand-in.
    one(&workload("timeout = \"soon\"\nfirst_token_timeout = \"59s\""), &format!("{W}.timeout"), "not a duration");
    one(&workload("timeout = \"soon\"\nfirst_token_timeout = \"90s\""), &format!("{W}.timeout"), "not a duration");
}

// ---- [defaults] ----

#[test]
fn targets_inherit_defaults_key_by_key() {
    let c = ok(&format!(
        "[defaults.workload]\nmax_tokens = 16\nsettle_timeout = \"2s\"\nrequests = 10\n\
         [defaults.tolerances]\nttft_mean = 0.3\n{SIM}[targets.sim.workload]\nmax_tokens = 32\n\
         [targets.other]\nurl = \"http://h\"\nmodel = \"m\"\n[targets.other.workload]\nduration = \"5s\"\n"
    ));
    let sim = &c.target("sim").unwrap().workload;
    assert_eq!((sim.max_tokens, sim.settle_timeout, sim.requests), (32, Duration::from_secs(2), Some(10)));
    assert_eq!(c.target("sim").unwrap().tolerances.ttft_mean, 0.3);
    let other = &c.target("other").unwrap().workload;
    assert_eq!((other.max_tokens, other.requests, other.duration), (16, None, Some(Duration::from_secs(5))));
}

#[test]
fn grouped_keys_are_inherited_together() {
    let c =
        ok(&format!("[defaults.workload]\nrate = 5.0\npoisson = true\n{SIM}[targets.sim.workload]\nconcurrency = 2\n"));
    let w = &c.targets[0].workload;
    assert_eq!((w.concurrency, w.rate, w.poisson), (Some(2), None, false));
}

#[test]
fn a_problem_in_defaults_is_reported_once_under_defaults() {
    let toml = format!(
        "[defaults.workload]\nconcurrency = 0\nmax_tokens = \"x\"\n[defaults.tolerances]\nttft_mean = -1.0\n\
         {SIM}[targets.b]\nurl = \"http://h\"\nmodel = \"m\"\n"
    );
    let ps = problems(&toml);
    assert_eq!(ps.len(), 3, "{ps:#?}");
    assert!(ps.iter().any(|p| p.starts_with("defaults.workload.max_tokens: expected a whole number")), "{ps:#?}");
    assert!(ps.iter().any(|p| p.starts_with("defaults.workload.concurrency: must be at least 1")), "{ps:#?}");
    assert!(ps.iter().any(|p| p.starts_with("defaults.tolerances: ")), "{ps:#?}");
}

#[test]
fn a_target_overriding_a_bad_default_is_fine_but_the_default_is_still_reported() {
    let toml = format!("[defaults.workload]\nconcurrency = 0\n{SIM}[targets.sim.workload]\nconcurrency = 4\n");
    one(&toml, "defaults.workload.concurrency", "must be at least 1");
}

// ---- environment ----

#[test]
fn env_overrides_apply_and_single_underscore_variables_are_ignored() {
    let c = load_from_str(
        SIM,
        &env(&[
            ("LLM_LOADTEST__TARGETS__SIM__WORKLOAD__CONCURRENCY", "3"),
            ("LLM_LOADTEST__LISTEN", "0.0.0.0:9999"),
            ("LLM_LOADTEST__ALLOW_PARALLEL_TARGETS", "TRUE"),
            ("LLM_LOADTEST__HISTORY__MAX_AGE", "2d"),
            ("LLM_LOADTEST_PORT", "tcp://10.0.0.1:9464"),
            ("LLM_LOADTEST_SERVICE_HOST", "10.0.0.1"),
            ("LLM_LOADTEST_API_KEY", "k"),
            ("OTHER__LISTEN", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(c.targets[0].workload.concurrency, Some(3));
    assert_eq!(c.listen.to_string(), "0.0.0.0:9999");
    assert!(c.allow_parallel_targets);
    assert_eq!(c.history.max_age, Duration::from_secs(2 * 86400));
}

#[test]
fn env_finds_targets_whose_names_have_case_dashes_and_dots() {
    let toml = "[targets.\"Llama-3.1\"]\nurl = \"http://h\"\nmodel = \"m\"\n";
    let c = load_from_str(toml, &env(&[("LLM_LOADTEST__TARGETS__LLAMA_3_1__WORKLOAD__MAX_TOKENS", "7")])).unwrap();
    assert_eq!(c.targets.len(), 1);
    assert_eq!(c.targets[0].name, "Llama-3.1");
    assert_eq!(c.targets[0].workload.max_tokens, 7);
    assert_eq!(
        env_var(&["targets", "Llama-3.1", "workload", "max_tokens"]),
        "LLM_LOADTEST__TARGETS__LLAMA_3_1__WORKLOAD__MAX_TOKENS"
    );
}

#[test]
fn env_cannot_add_a_target() {
    let ps = problems_env(SIM, &[("LLM_LOADTEST__TARGETS__SIMM__MODEL", "m")]);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert!(ps[0].starts_with("targets.simm: LLM_LOADTEST__TARGETS__SIMM__* names no target"), "{ps:#?}");
    assert!(ps[0].contains("targets: sim"), "{ps:#?}");
}

#[test]
fn env_problems_name_the_key_and_the_variable() {
    let ps = problems_env(
        SIM,
        &[
            ("LLM_LOADTEST__TARGETS__SIM__WORKLOAD__CONCURENCY", "3"),
            ("LLM_LOADTEST__TARGETS__SIM__WORKLOAD__MAX_TOKENS", "lots"),
            ("LLM_LOADTEST__TARGETS__SIM__WORKLOAD__REQUESTS", "0"),
        ],
    );
    assert_eq!(
        ps,
        [
            "targets.sim.workload.max_tokens: expected a whole number, got the string \"lots\" \
             (from LLM_LOADTEST__TARGETS__SIM__WORKLOAD__MAX_TOKENS)",
            "targets.sim.workload.concurency: unknown key; did you mean `concurrency`? \
             (from LLM_LOADTEST__TARGETS__SIM__WORKLOAD__CONCURENCY)",
            "targets.sim.workload.requests: must be at least 1 (from LLM_LOADTEST__TARGETS__SIM__WORKLOAD__REQUESTS)",
        ]
    );
}

#[test]
fn env_strings_stay_strings_where_a_string_is_wanted() {
    let c = load_from_str(
        SIM,
        &env(&[
            ("LLM_LOADTEST__AUTH__TOKEN", "0123"),
            ("LLM_LOADTEST__TARGETS__SIM__MODEL", "1.0"),
            ("LLM_LOADTEST__TARGETS__SIM__WORKLOAD__EXTRA_BODY", r#"{"top_p": 0.5}"#),
            ("LLM_LOADTEST__TARGETS__SIM__TOLERANCES__TTFT_MEAN", "0.25"),
            ("LLM_LOADTEST__TARGETS__SIM__WORKLOAD__RATE", "2.5"),
        ]),
    )
    .unwrap();
    assert_eq!(c.auth.token.as_deref(), Some("0123"));
    assert_eq!(c.targets[0].model, "1.0");
    assert_eq!(c.targets[0].workload.extra_body.as_ref().unwrap()["top_p"], 0.5);
    assert_eq!(c.targets[0].tolerances.ttft_mean, 0.25);
    assert_eq!(c.targets[0].workload.rate, Some(2.5));
}

#[test]
fn env_can_fill_a_section_the_file_lacks() {
    let c = load_from_str(SIM, &env(&[("LLM_LOADTEST__TARGETS__SIM__SCHEDULE__INTERVAL", "10m")])).unwrap();
    assert_eq!(c.targets[0].schedule, Some(Schedule { interval: Duration::from_secs(600), jitter: Duration::ZERO }));
}

// ---- API ----

#[test]
fn debug_never_shows_the_token() {
    let c = load_from_str(SIM, &env(&[("LLM_LOADTEST__AUTH__TOKEN", "hunter2-secret")])).unwrap();
    let shown = format!("{c:?} {c:#?} {:?}", c.auth);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn check_applies_the_rules_to_a_config_built_in_code() {
    let mut c = ok(SIM);
    assert_eq!(c.check(), Ok(()));
    c.targets[0].workload.concurrency = Some(0);
    c.targets[0].workload.rate = Some(f64::NAN);
    c.history.max_runs = 0;
    let e = c.check().unwrap_err();
    assert_eq!(
        e.0,
        [
            "history.max_runs: must be at least 1",
            "targets.sim.workload.concurrency: must be at least 1",
            "targets.sim.workload.rate: must be a number above 0 (requests per second), got NaN",
        ]
    );
    assert_eq!(
        Config::default().check().unwrap_err().0,
        ["targets: no target configured; add a [targets.NAME] table with url and model"]
    );
}

#[test]
fn target_looks_up_by_exact_name() {
    let c = ok(SIM);
    assert!(c.target("sim").is_some());
    assert!(c.target("SIM").is_none());
}

#[test]
fn an_open_api_on_a_public_address_is_warned_about() {
    assert!(ok(SIM).warnings().is_empty());
    let open = ok(&format!("listen = \"0.0.0.0:9464\"\n{SIM}"));
    assert!(open.warnings()[0].contains("anyone who can reach it"));
    let closed = ok(&format!("listen = \"0.0.0.0:9464\"\n[auth]\ntoken = \"t\"\n{SIM}"));
    assert!(closed.warnings().is_empty());
}

#[test]
fn the_demo_config_targets_the_simulator() {
    let url = url::Url::parse("http://127.0.0.1:4321").unwrap();
    let c = demo(&url, "demo-model").unwrap();
    assert_eq!(c.targets.len(), 1);
    assert_eq!(c.targets[0].url, url);
    assert_eq!(c.targets[0].model, "demo-model");
    assert!(c.targets[0].schedule.is_some());
}

// ---- the `run` flags ----

#[derive(clap::Parser, Debug)]
struct RunCommand {
    #[command(flatten)]
    run: crate::cli::RunArgs,
}

fn parse_run(flags: &[String]) -> crate::cli::RunArgs {
    use clap::Parser;
    let mut argv: Vec<String> = ["run", "--target", "http://127.0.0.1:1", "--model", "m"].map(String::from).to_vec();
    argv.extend(flags.iter().cloned());
    match RunCommand::try_parse_from(&argv) {
        Ok(c) => c.run,
        Err(e) => panic!("`run` rejects {flags:?}: {e}"),
    }
}

fn flags_workload(flags: &[&str]) -> Workload {
    let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    Workload::default().overlaid(&parse_run(&flags).workload)
}

#[test]
fn the_cli_adds_no_defaults_of_its_own() {
    // Defaults live in `Workload::default()` only: `run` with no workload flags sets no key.
    assert_eq!(parse_run(&[]).workload.set_keys(), Vec::<&str>::new());
    assert_eq!(ok(&workload("")).targets[0].workload, Workload::default());
    assert_eq!(Workload::default().requests, Some(DEFAULT_REQUESTS));
    assert_eq!(Workload::default().concurrency, Some(DEFAULT_CONCURRENCY));
}

#[test]
fn every_workload_key_means_the_same_in_config_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.jsonl");
    std::fs::write(&data, "{\"prompt\": \"hi\"}\n").unwrap();
    let c = ok(&workload(&format!(
        "endpoint = \"completions\"\nstream = false\nduration = \"1m 30s 250ms\"\nrate = 2.5\npoisson = true\n\
         concurrency = 4\nseed = 9\nwarmup = 3\nmax_tokens = 16\nignore_eos = true\ntemperature = 0.0\n\
         extra_body = {{ top_p = 0.9 }}\ndataset = {:?}\ndataset_format = \"jsonl\"\n\
         timeout = \"20s\"\nfirst_token_timeout = \"1500ms\"\nconnect_timeout = \"2s\"\n\
         goodput = {{ ttft_ms = 500, e2el_ms = 2500.5 }}\nidle_window = \"0s\"\nsettle_timeout = \"1s\"",
        data.display().to_string()
    )));
    let configured = &c.targets[0].workload;
    let dataset = format!("--dataset={}", data.display());
    let flagged = flags_workload(&[
        "--endpoint",
        "completions",
        "--no-stream",
        "--duration",
        "1m 30s 250ms",
        "--rate",
        "2.5",
        "--poisson",
        "--concurrency",
        "4",
        "--seed",
        "9",
        "--warmup",
        "3",
        "--max-tokens",
        "16",
        "--ignore-eos",
        "--temperature",
        "0.0",
        "--extra-body",
        r#"{"top_p": 0.9}"#,
        &dataset,
        "--dataset-format",
        "jsonl",
        "--timeout",
        "20s",
        "--first-token-timeout",
        "1500ms",
        "--connect-timeout",
        "2s",
        "--goodput",
        "ttft:500",
        "--goodput",
        "e2el:2500.5",
        "--idle-window",
        "0s",
        "--settle-timeout",
        "1s",
    ]);
    assert_eq!(&flagged, configured);
    assert_eq!(configured.endpoint, Endpoint::Completions);
    assert!(!configured.stream);
    assert_eq!((configured.requests, configured.duration), (None, Some(Duration::from_millis(90_250))));
    assert_eq!(configured.first_token_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(configured.dataset.as_deref(), Some(data.as_path()));
    assert_eq!(configured.dataset_format, DatasetFormat::Jsonl);

    let synthetic = ok(&workload("input_tokens = \"32..64\"\ntokenizer = \"Cargo.toml\"\nrequests = 5"));
    let flagged = flags_workload(&["--input-tokens", "32..64", "--tokenizer", "Cargo.toml", "--requests", "5"]);
    assert_eq!(flagged, synthetic.targets[0].workload);
    assert_eq!(flagged.input_tokens, Some(LengthSpec::Uniform { min: 32, max: 64 }));
}

#[test]
fn a_dataset_path_starting_with_a_dash_is_not_taken_for_a_flag() {
    assert_eq!(flags_workload(&["--dataset=-odd.jsonl"]).dataset, Some(PathBuf::from("-odd.jsonl")));
}

// ---- no panics ----

proptest::proptest! {
    #[test]
    fn no_input_panics(text in "\\PC{0,200}") {
        let _ = load_from_str(&text, &[]);
    }

    #[test]
    fn no_key_value_panics(
        section in proptest::sample::select(vec!["", "[history]", "[auth]", "[limits]", "[targets.x]",
            "[targets.x.workload]", "[targets.x.schedule]", "[targets.x.tolerances]", "[defaults.workload]",
            "[targets.x.workload.goodput]"]),
        key in "[a-z_]{1,20}",
        value in proptest::sample::select(vec!["0", "-1", "1e308", "-inf", "nan", "\"\"", "\"30s\"", "true",
            "[]", "{}", "\"999999999999y\"", "18446744073709551615", "\"http://[::1]:0\"", "{ a = 1 }"]),
        var in "[A-Z_]{0,40}",
        env_value in "\\PC{0,20}",
    ) {
        let toml = format!("{SIM}{section}\n{key} = {value}\n");
        let _ = load_from_str(&toml, &[(format!("LLM_LOADTEST__{var}"), env_value)]);
    }
}

#[test]
fn one_otlp_receiver_for_every_target() {
    let c = ok(&format!("[otlp]\nreceiver = \"127.0.0.1:4317\"\n{SIM}"));
    assert_eq!(c.otlp_receiver, Some("127.0.0.1:4317".parse().unwrap()));
    assert_eq!(ok(SIM).otlp_receiver, None);
    one(&format!("[otlp]\nreceiver = \"somewhere\"\n{SIM}"), "otlp.receiver", "");
    one(&format!("[otlp]\nendpoint = \"x\"\n{SIM}"), "otlp.endpoint", "not a URL");
    one(&format!("[otlp]\nexporter = \"x\"\n{SIM}"), "otlp.exporter", "unknown");
    let c = ok(&format!("[otlp]\nendpoint = \"http://127.0.0.1:4317\"\n{SIM}"));
    assert_eq!(c.otlp_endpoint.as_ref().map(url::Url::as_str), Some("http://127.0.0.1:4317/"));
}

#[test]
fn a_distributed_target_needs_the_workers_token() {
    let c = ok(&format!("[workers]\ntoken = \"s3cret\"\n{SIM}workers = 4\n"));
    assert_eq!(c.target("sim").unwrap().workers, Some(4));
    assert_eq!(c.workers.as_ref().unwrap().read_token().unwrap().as_deref(), Some("s3cret"));
    assert_eq!(ok(SIM).workers, None);
    one(&format!("{SIM}workers = 2\n"), "targets.sim.workers", "needs a [workers] section");
    one(&format!("[workers]\ntoken = \"t\"\n{SIM}workers = 0\n"), "targets.sim.workers", "at least 1");
    one(&format!("[workers]\ntoken = \"t\"\n{SIM}workers = 257\n"), "targets.sim.workers", "at most 256");
    one(&format!("[workers]\n{SIM}"), "workers", "needs token_file");
    let ps = problems(&format!(
        "[workers]\ntoken = \"t\"\n{SIM}workers = 2\n[targets.sim.workload]\ndataset = \"p.jsonl\"\n"
    ));
    assert!(
        ps.iter().any(|p| p.starts_with("targets.sim.workers: ") && p.contains("cannot use workload.dataset")),
        "{ps:?}"
    );
}
