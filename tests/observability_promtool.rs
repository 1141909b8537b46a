//! The shipped rules and Alertmanager configuration judged by Prometheus' own tools:
//! `promtool check rules`, `promtool test rules` (alerts/tests/*.yml: every alert firing and
//! not firing, with exact labels and annotations) and `amtool check-config`. Ignored in a plain
//! `cargo test`; scripts/test.sh installs the tools (Debian `prometheus`,
//! `prometheus-alertmanager`) and runs it, and then it fails, never skips, when one is missing.

use std::path::PathBuf;
use std::process::Command;

#[path = "common/observability.rs"]
mod observability;

use observability::{repo, rule_files, rule_test_files};

/// Runs `tool args` in the repository; panics with its whole output unless it succeeds.
fn run(tool: &str, package: &str, args: &[PathBuf], first: &[&str]) -> String {
    let out = Command::new(tool).current_dir(repo()).args(first).args(args).output().unwrap_or_else(|e| {
        panic!("{tool}: {e}; it must be installed (Debian: apt-get install {package}); this test never skips")
    });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{tool} {} {args:?} failed ({}):\n{text}", first.join(" "), out.status);
    text
}

#[test]
#[ignore = "needs promtool and amtool: run scripts/test.sh"]
fn promtool_checks_the_rule_files() {
    let files = rule_files();
    let text = run("promtool", "prometheus", &files, &["check", "rules"]);
    // One SUCCESS line per file, none with warnings.
    assert_eq!(text.matches("SUCCESS").count(), files.len(), "{text}");
    assert!(!text.to_lowercase().contains("warning"), "{text}");
}

#[test]
#[ignore = "needs promtool and amtool: run scripts/test.sh"]
fn promtool_unit_tests_of_the_rules_pass() {
    let files = rule_test_files();
    let text = run("promtool", "prometheus", &files, &["test", "rules"]);
    assert_eq!(text.matches("SUCCESS").count(), files.len(), "{text}");
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
#[ignore = "needs promtool and amtool: run scripts/test.sh"]
fn amtool_checks_the_alertmanager_configuration() {
    let text = run("amtool", "prometheus-alertmanager", &[repo().join("alerts/alertmanager.yml")], &["check-config"]);
    // amtool also fails on a route naming an undefined receiver, and on bad matchers.
    assert!(text.contains("SUCCESS") && text.contains("inhibit rules"), "{text}");
}

/// Routing by severity: every severity an alert rule uses reaches its receiver, and only
/// `critical` reaches the pager.
#[test]
#[ignore = "needs promtool and amtool: run scripts/test.sh"]
fn alertmanager_routes_each_severity_to_its_receiver() {
    let config = format!("--config.file={}", repo().join("alerts/alertmanager.yml").display());
    for (labels, receiver) in [
        (vec!["severity=critical", "alertname=LlmLoadtestRunsFailing"], "llm-loadtest-pager"),
        (vec!["severity=warning", "alertname=LlmLoadtestRunsFailing"], "llm-loadtest-tickets"),
        (vec!["severity=warning", "alertname=LlmLoadtestValidationDrift"], "llm-loadtest-tickets"),
        (vec!["severity=info", "alertname=LlmLoadtestClientBound"], "llm-loadtest-null"),
    ] {
        let mut first = vec!["config", "routes", "test", config.as_str()];
        first.extend(labels.iter().copied());
        let text = run("amtool", "prometheus-alertmanager", &[], &first);
        let routed: Vec<&str> = ["llm-loadtest-pager", "llm-loadtest-tickets", "llm-loadtest-null"]
            .into_iter()
            .filter(|r| text.contains(r))
            .collect();
        assert_eq!(routed, [receiver], "{labels:?}: {text}");
    }
    // Every severity the rules use is one of the three routed.
    let rules = std::fs::read_to_string(repo().join("alerts/llm-loadtest.rules.yml")).unwrap();
    for line in rules.lines().filter(|l| l.trim_start().starts_with("severity:")) {
        let severity = line.trim_start().trim_start_matches("severity:").trim();
        assert!(["critical", "warning", "info"].contains(&severity), "{line}");
    }
}

/// Both dashboards type-check against Grafana's own published types (`@grafana/schema` from
/// npm, pinned in grafana/types/package-lock.json) with `tsc --strict`.
#[test]
#[ignore = "needs Node.js and npm: run scripts/test.sh"]
fn dashboards_type_check_against_grafana_schema() {
    let text = run("bash", "nodejs npm", &[repo().join("scripts/check-dashboard-types.sh")], &[]);
    assert!(text.contains("dashboard types: OK (2 dashboards against @grafana/schema"), "{text}");
}

/// The dashboards' own lint: no `$__rate_interval` over the step counters, annotations in the
/// `target` form, unique panel ids, no overlapping panels.
#[test]
#[ignore = "needs python3: run scripts/test.sh"]
fn dashboards_pass_their_lint() {
    let first = ["grafana/check_dashboards.py", "--lint", "--coverage", "src/exporter/metrics.rs"];
    let text = run("python3", "python3", &[], &first);
    assert!(text.contains("coverage: ") && text.contains("metrics on a panel"), "{text}");
}
