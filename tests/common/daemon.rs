//! An in-process daemon and HTTP helpers for the tests that talk to it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use llm_loadtest::config::{self, Config};
use llm_loadtest::daemon::{self, ServeOverrides};
use tokio_util::sync::CancellationToken;

/// A daemon serving on a free loopback port until `stop`.
pub struct Running {
    pub base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Running {
    pub async fn start(config: Config) -> Running {
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
        let s = stop.clone();
        let overrides =
            ServeOverrides { listen: Some(([127, 0, 0, 1], 0).into()), data_dir: None, otlp_listener: None };
        let task = tokio::spawn(async move {
            daemon::serve(config, overrides, s, move |addr| {
                let _ = tx.send(addr);
            })
            .await
        });
        let addr = rx.await.expect("the daemon did not start");
        Running { base: format!("http://{addr}"), stop, task }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub fn config(toml: &str, data_dir: &Path) -> Config {
    let mut c = config::load_from_str(toml, &[]).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    c.data_dir = data_dir.to_owned();
    c
}

/// A short burst profile against `url`; `extra` is appended to the target table.
pub fn target_toml(name: &str, url: &str, requests: u32, extra: &str) -> String {
    format!(
        r#"
[targets.{name}]
url = "{url}"
model = "sim-model"
{extra}
[targets.{name}.workload]
requests = {requests}
concurrency = 4
max_tokens = 8
input_tokens = 16
idle_window = "0s"
settle_timeout = "2s"
# The daemon, not latency, is what these tests check: a latency difference under 25 ms (a
# loaded 2-core test machine's own delays in a few-request mean) is not drift here.
[targets.{name}.tolerances]
latency_floor_ms = 25
"#
    )
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

pub async fn get_json(url: &str) -> serde_json::Value {
    let r = http().get(url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

pub async fn post(url: &str, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = http().post(url).body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// Wait until the run is in the history and no burst is running on its target.
pub async fn wait_run(d: &Running, target: &str, run_id: &str) -> serde_json::Value {
    for _ in 0..300 {
        let t = get_json(&d.url("/api/v1/targets")).await;
        let busy = t["targets"].as_array().unwrap().iter().any(|x| x["name"] == target && x["running"] == true);
        let runs = get_json(&d.url(&format!("/api/v1/runs?target={target}"))).await;
        let found = runs["runs"].as_array().unwrap().iter().find(|r| r["run_id"] == run_id).cloned();
        if let (false, Some(r)) = (busy, found) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run_id} did not finish");
}

/// One triggered run of `target` on a daemon started for it over `data_dir`: the run's id and
/// its full result as the API serves it; the daemon is shut down after.
pub async fn one_triggered_run(toml: &str, data_dir: &Path, target: &str) -> (String, serde_json::Value) {
    let d = Running::start(config(toml, data_dir)).await;
    let (s, v) = post(&d.url(&format!("/api/v1/targets/{target}/runs")), "", None).await;
    assert_eq!(s, 202, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_owned();
    wait_run(&d, target, &run_id).await;
    let full = get_json(&d.url(&format!("/api/v1/runs/{run_id}"))).await;
    d.shutdown().await;
    (run_id, full)
}

pub async fn metrics(d: &Running) -> String {
    http().get(d.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

/// The value of the sample `name{labels}` (labels given in any order; all must match).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let exposition = llm_loadtest::promtext::parse(text);
    exposition
        .families
        .iter()
        .flat_map(|f| f.samples.iter())
        .find_map(|s| (&*s.name == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).then_some(s.value))
}
