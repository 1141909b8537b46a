//! The Grafana dashboards and the Prometheus rule files as the observability tests read them:
//! every panel query (raw, and with the variables substituted the way "All" would be, as
//! grafana/check_dashboards.py does), the rule and rule-test files, and PromQL identifiers.
//! Included with `#[path]` by tests/observability_*.rs (not a module of common/mod.rs).
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files of `dir` (relative to the repository) whose name starts with `prefix` and ends with
/// `suffix`, sorted; panics when there is none.
pub fn files(dir: &str, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let dir = repo().join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            p.is_file() && n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {prefix}*{suffix} in {}", dir.display());
    out
}

/// `alerts/llm-loadtest.*.yml`: the rule files (not alertmanager.yml).
pub fn rule_files() -> Vec<PathBuf> {
    files("alerts", "llm-loadtest.", ".yml")
}

/// `alerts/tests/*.yml`: the `promtool test rules` files.
pub fn rule_test_files() -> Vec<PathBuf> {
    files("alerts/tests", "", ".yml")
}

pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

pub fn dashboards() -> Vec<Dashboard> {
    files("grafana/dashboards", "", ".json")
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            Dashboard { file: p.file_name().unwrap().to_string_lossy().into_owned(), json }
        })
        .collect()
}

pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub ref_id: String,
    /// As written in the dashboard.
    pub raw: String,
    /// With the dashboard's variables set to "All" and Grafana's built-ins to fixed values.
    pub expr: String,
}

impl std::fmt::Display for PanelQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {:?} / {}: {}", self.dashboard, self.panel, self.ref_id, self.expr)
    }
}

/// Every panel, row panels' nested panels included.
pub fn panels(d: &Value) -> Vec<&Value> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        for p in v.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// What each variable stands for when "All" (or the Prometheus data source) is chosen, and
/// Grafana's built-ins (the same values as grafana/check_dashboards.py).
pub fn variable_values(d: &Value) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = [
        ("__rate_interval", "1m"),
        ("__range", "5m"),
        ("__interval", "15s"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
        ("__interval_ms", "15000"),
        ("__rate_interval_ms", "60000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let Some(name) = v["name"].as_str() else { continue };
        let value = match v["type"].as_str() {
            Some("datasource") => "prometheus".to_owned(),
            Some("constant") => v["query"].as_str().unwrap_or_default().to_owned(),
            _ => v["allValue"].as_str().filter(|s| !s.is_empty()).unwrap_or(".*").to_owned(),
        };
        values.push((name.to_owned(), value));
    }
    values
}

/// `${name}`, `${name:format}`, `$name`, `[[name]]`, `[[name:format]]` replaced by `values`;
/// an unknown name (`$1` of label_replace, ...) stays as written.
pub fn substitute(expr: &str, values: &[(String, String)]) -> String {
    let re = Regex::new(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]").unwrap();
    re.replace_all(expr, |c: &regex::Captures| {
        let name = c.get(1).or(c.get(2)).or(c.get(3)).unwrap().as_str();
        values.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_else(|| c[0].to_owned())
    })
    .into_owned()
}

/// Every panel query (targets with an `expr`) of every dashboard.
pub fn panel_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for d in dashboards() {
        let values = variable_values(&d.json);
        let name = d.json["uid"].as_str().map(str::to_owned).unwrap_or_else(|| d.file.clone());
        for p in panels(&d.json) {
            for t in p["targets"].as_array().into_iter().flatten() {
                let Some(raw) = t["expr"].as_str() else { continue };
                out.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: p["title"].as_str().unwrap_or_default().to_owned(),
                    ref_id: t["refId"].as_str().unwrap_or_default().to_owned(),
                    raw: raw.to_owned(),
                    expr: substitute(raw, &values),
                });
            }
        }
    }
    assert!(!out.is_empty(), "the dashboards have no panel query");
    out
}

/// PromQL identifiers in `text` (metric names, recording-rule names with `:`, label names,
/// function names), with their byte offsets.
pub fn identifiers(text: &str) -> Vec<(usize, &str)> {
    let re = Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    re.find_iter(text).map(|m| (m.start(), m.as_str())).collect()
}

/// The `llm_loadtest_*` metric names `text` uses; recording-rule names (`llm_loadtest:...`,
/// `target:llm_loadtest_...:...`) contain a colon and are not metrics of the daemon.
pub fn daemon_metric_names(text: &str) -> Vec<&str> {
    identifiers(text)
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.starts_with("llm_loadtest_") && !t.contains(':'))
        .collect()
}

/// The repository-relative path, for messages.
pub fn rel(p: &Path) -> String {
    p.strip_prefix(repo()).unwrap_or(p).display().to_string()
}
