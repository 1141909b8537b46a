//! The contract between the exporter (`llm_loadtest::exporter::METRICS`), the Grafana
//! dashboards (grafana/dashboards/*.json), the Prometheus rules (alerts/llm-loadtest.*.yml and
//! their unit tests alerts/tests/*.yml) and the runbooks (docs/alerts.md). Files only: no
//! Prometheus, no Grafana, no promtool (tests/observability_promtool.rs and
//! tests/observability_e2e.rs run those).

use std::collections::{BTreeMap, BTreeSet};

use llm_loadtest::exporter::{Kind, METRIC_NAMES, METRICS};
use regex::Regex;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

#[path = "common/observability.rs"]
mod observability;

use observability::{daemon_metric_names, dashboards, panel_queries, panels, rel, repo, rule_files, rule_test_files};

/// Why `name` is not an exported metric, or None when it is one (a histogram's `_bucket`,
/// `_sum` and `_count` series included).
fn unknown_metric(name: &str) -> Option<String> {
    if METRIC_NAMES.contains(&name) {
        return None;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            match METRICS.iter().find(|m| m.name == base) {
                Some(m) if m.kind == Kind::Histogram => return None,
                Some(m) => return Some(format!("{base} is a {:?}, it has no {suffix} series", m.kind)),
                None => {}
            }
        }
    }
    Some("not in llm_loadtest::exporter::METRIC_NAMES".to_owned())
}

/// Whether the PromQL `text` uses the metric `name` (or, for a histogram, one of its series).
fn uses(text: &str, name: &str) -> bool {
    daemon_metric_names(text)
        .into_iter()
        .any(|t| t == name || ["_bucket", "_sum", "_count"].iter().any(|s| t.strip_suffix(s) == Some(name)))
}

fn yaml_file(p: &std::path::Path) -> Yaml {
    let text = std::fs::read_to_string(p).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", rel(p)))
}

/// Every string in a YAML document, with the key it is under (`series`, `expr`, an annotation
/// name, ...). Comments are gone with the parse, so prose there is never read as PromQL.
fn yaml_strings<'a>(v: &'a Yaml, key: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Yaml::String(s) => out.push((key.to_owned(), s)),
        Yaml::Sequence(items) => items.iter().for_each(|i| yaml_strings(i, key, out)),
        Yaml::Mapping(m) => {
            for (k, v) in m {
                yaml_strings(v, k.as_str().unwrap_or(key), out);
            }
        }
        _ => {}
    }
}

/// Every query string of a dashboard: panel queries, variable queries, annotation queries.
fn dashboard_query_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s),
                    _ => dashboard_query_strings(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_query_strings(i, out)),
        _ => {}
    }
}

#[test]
fn every_metric_a_dashboard_or_rule_uses_is_exported() {
    let mut bad = Vec::new();
    for d in dashboards() {
        let mut strings = Vec::new();
        dashboard_query_strings(&d.json, &mut strings);
        assert!(!strings.is_empty(), "{}: no query", d.file);
        for s in strings {
            for name in daemon_metric_names(s) {
                if let Some(why) = unknown_metric(name) {
                    bad.push(format!("grafana/dashboards/{}: {name}: {why}\n    in {s}", d.file));
                }
            }
        }
    }
    // The rule files, and the unit tests' input series and expressions (a test feeding a
    // renamed metric would pass while the rule no longer matches anything real).
    for p in rule_files().into_iter().chain(rule_test_files()) {
        let doc = yaml_file(&p);
        let mut strings = Vec::new();
        yaml_strings(&doc, "", &mut strings);
        for (key, s) in strings {
            for name in daemon_metric_names(s) {
                if let Some(why) = unknown_metric(name) {
                    bad.push(format!("{} ({key}): {name}: {why}\n    in {s}", rel(&p)));
                }
            }
        }
    }
    assert!(bad.is_empty(), "metrics that the exporter does not export:\n{}", bad.join("\n"));
}

/// `- `NAME`: reason` lines between the markers of grafana/README.md.
fn metrics_not_on_a_panel() -> BTreeMap<String, String> {
    let path = repo().join("grafana/README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (start, end) = ("<!-- metrics-not-on-a-panel: start -->", "<!-- metrics-not-on-a-panel: end -->");
    let a = text.find(start).unwrap_or_else(|| panic!("grafana/README.md: no `{start}` marker"));
    let b = text.find(end).unwrap_or_else(|| panic!("grafana/README.md: no `{end}` marker"));
    assert!(a < b, "grafana/README.md: the markers are out of order");
    let line_re = Regex::new(r"^- `([a-z0-9_]+)`\s*[:—-]\s*(\S.*)$").unwrap();
    let mut out = BTreeMap::new();
    for line in text[a + start.len()..b].lines().map(str::trim).filter(|l| !l.is_empty()) {
        let c = line_re
            .captures(line)
            .unwrap_or_else(|| panic!("grafana/README.md: not a \"- `NAME`: reason\" line: {line:?}"));
        assert!(out.insert(c[1].to_owned(), c[2].to_owned()).is_none(), "grafana/README.md lists {} twice", &c[1]);
    }
    out
}

#[test]
fn every_exported_metric_is_on_a_panel_or_listed_with_a_reason() {
    let queries = panel_queries();
    let listed = metrics_not_on_a_panel();
    let on_panel = |name: &str| queries.iter().any(|q| uses(&q.raw, name));
    let missing: Vec<&str> =
        METRIC_NAMES.iter().copied().filter(|n| !on_panel(n) && !listed.contains_key(*n)).collect();
    assert!(
        missing.is_empty(),
        "exported metrics that no dashboard panel queries: add them to a panel, or list them with a reason \
         under \"Metrics not on a panel\" in grafana/README.md:\n  {}",
        missing.join("\n  ")
    );
    for name in listed.keys() {
        assert!(METRIC_NAMES.contains(&name.as_str()), "grafana/README.md lists {name}, which is not exported");
        assert!(!on_panel(name), "grafana/README.md lists {name} as not on a panel, but a panel queries it");
    }
}

#[test]
fn dashboards_have_the_variables_and_no_hard_coded_instance_or_job() {
    let label_value_re = Regex::new(r#"\b(instance|job)\s*(=~|!~|!=|=)\s*"([^"]*)""#).unwrap();
    let mut bad = Vec::new();
    for d in dashboards() {
        let f = &d.file;
        let vars: BTreeMap<&str, &Value> = d.json["templating"]["list"]
            .as_array()
            .unwrap_or_else(|| panic!("{f}: no templating.list"))
            .iter()
            .filter_map(|v| Some((v["name"].as_str()?, v)))
            .collect();
        match vars.get("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            _ => bad.push(format!("{f}: no variable `datasource` of type datasource, query prometheus")),
        }
        for (name, query) in [
            ("target", "label_values(llm_loadtest_target_info, target)"),
            ("model", r#"label_values(llm_loadtest_target_info{target=~"$target"}, model)"#),
        ] {
            let Some(v) = vars.get(name) else {
                bad.push(format!("{f}: no variable `{name}`"));
                continue;
            };
            let q = v["query"].get("query").unwrap_or(&v["query"]);
            if v["type"] != "query" || q != query || v["multi"] != true || v["includeAll"] != true {
                bad.push(format!("{f}: variable `{name}` must be a multi-value query variable with All: {query}"));
            }
            if v["datasource"]["uid"] != "${datasource}" {
                bad.push(format!("{f}: variable `{name}` does not query ${{datasource}}"));
            }
        }
        // Every query string, panels and variables alike: an instance or a job is never a literal.
        let mut strings = Vec::new();
        dashboard_query_strings(&d.json, &mut strings);
        for s in strings {
            for c in label_value_re.captures_iter(s) {
                if !c[3].contains('$') {
                    bad.push(format!("{f}: hard-coded {}{}\"{}\" in {s}", &c[1], &c[2], &c[3]));
                }
            }
        }
        for p in panels(&d.json) {
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().unwrap_or_default();
            if p["datasource"]["uid"] != "${datasource}" {
                bad.push(format!("{f}: panel {title:?} does not use ${{datasource}}"));
            }
            let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
            if targets.is_empty() {
                bad.push(format!("{f}: panel {title:?} has no query"));
            }
            for t in targets {
                if t["datasource"]["uid"] != "${datasource}" {
                    bad.push(format!("{f}: panel {title:?} query {} does not use ${{datasource}}", t["refId"]));
                }
            }
        }
    }
    // After substitution, no variable is left (only label_replace's $1, $2, ...).
    let leftover_re = Regex::new(r"\$\{?([A-Za-z_]\w*)").unwrap();
    for q in panel_queries() {
        if let Some(c) = leftover_re.captures(&q.expr) {
            bad.push(format!("{}: unknown variable ${}", q, &c[1]));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// GitHub's anchors of the Markdown headings of `text` (fenced code blocks skipped).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#')) else { continue };
        if fenced || !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        out.insert(slug);
    }
    out
}

#[test]
fn every_alert_has_severity_annotations_a_runbook_and_unit_tests() {
    let docs = std::fs::read_to_string(repo().join("docs/alerts.md")).unwrap();
    let anchors = anchors(&docs);
    let runbook_re = Regex::new(r"^https://\S+/docs/alerts\.md#([a-z0-9_-]+)$").unwrap();

    // Alerts exercised by the unit tests: name -> (a case where it fires, a case where it does not).
    let mut tested: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for p in rule_test_files() {
        for t in yaml_file(&p)["tests"].as_sequence().into_iter().flatten() {
            for a in t["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = a["alertname"].as_str().unwrap_or_default().to_owned();
                let fires = a["exp_alerts"].as_sequence().is_some_and(|e| !e.is_empty());
                let e = tested.entry(name).or_default();
                if fires { e.0 = true } else { e.1 = true }
            }
        }
    }

    let mut alerts = 0;
    let mut bad = Vec::new();
    for p in rule_files() {
        let doc = yaml_file(&p);
        let groups = doc["groups"].as_sequence().unwrap_or_else(|| panic!("{}: no groups", rel(&p)));
        for rule in groups.iter().flat_map(|g| g["rules"].as_sequence().into_iter().flatten()) {
            let Some(alert) = rule["alert"].as_str() else { continue };
            alerts += 1;
            let w = format!("{}: {alert}", rel(&p));
            match rule["labels"]["severity"].as_str() {
                Some("critical" | "warning" | "info") => {}
                other => bad.push(format!("{w}: severity {other:?}, not critical, warning or info")),
            }
            for a in ["summary", "description", "runbook_url"] {
                if rule["annotations"][a].as_str().is_none_or(|s| s.trim().is_empty()) {
                    bad.push(format!("{w}: no {a} annotation"));
                }
            }
            if let Some(url) = rule["annotations"]["runbook_url"].as_str() {
                match runbook_re.captures(url) {
                    None => bad.push(format!("{w}: runbook_url {url} is not a section of docs/alerts.md")),
                    Some(c) if !anchors.contains(&c[1]) => {
                        bad.push(format!("{w}: runbook_url anchor #{} is no heading of docs/alerts.md", &c[1]))
                    }
                    Some(c) if c[1] != alert.to_lowercase() => {
                        bad.push(format!("{w}: runbook_url points at #{}, not the alert's own section", &c[1]))
                    }
                    Some(_) => {}
                }
            }
            match tested.get(alert) {
                Some((true, true)) => {}
                _ => bad.push(format!("{w}: alerts/tests/ needs a case where it fires and one where it does not")),
            }
        }
    }
    assert!(alerts >= 9, "only {alerts} alerts found in {:?}", rule_files());
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The helpers above are not vacuous: they find what they look for.
#[test]
fn the_scanners_see_names_variables_and_anchors() {
    let expr = r#"sum by (target) (increase(llm_loadtest_ttft_seconds_bucket{target=~"$target"}[5m]))
        / target:llm_loadtest_requests_ok:increase10m + llm_loadtest:threshold:x + llm_loadtest_nope_total"#;
    assert_eq!(daemon_metric_names(expr), ["llm_loadtest_ttft_seconds_bucket", "llm_loadtest_nope_total"]);
    assert!(unknown_metric("llm_loadtest_ttft_seconds_bucket").is_none());
    assert!(unknown_metric("llm_loadtest_runs_total").is_none());
    assert!(unknown_metric("llm_loadtest_runs_total_count").is_some());
    assert!(unknown_metric("llm_loadtest_nope_total").is_some());
    assert!(uses(expr, "llm_loadtest_ttft_seconds") && !uses(expr, "llm_loadtest_ttft"));
    let a = anchors("# Top\n```yaml\n# not a heading\n```\n## LlmLoadtestStale\n## Continuous validation in PromQL\n");
    assert_eq!(a.into_iter().collect::<Vec<_>>(), ["continuous-validation-in-promql", "llmloadteststale", "top"]);
}
