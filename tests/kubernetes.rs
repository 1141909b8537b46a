//! The Kubernetes base (deploy/kubernetes/) holds together.
//!
//! Without any tool: the PrometheusRule carries exactly the groups of alerts/llm-loadtest.*.yml,
//! the dashboards' ConfigMaps are generated from exact copies of grafana/dashboards/*.json, and
//! the daemon config of the ConfigMap is valid and names what the Deployment mounts.
//!
//! Ignored in a plain `cargo test` (they need kubectl, python3 and Node.js; scripts/test.sh runs
//! them, and then they fail, never skip, when one is missing): scripts/check-kubernetes.sh
//! validates every rendered object offline (Kubernetes schemas, prometheus-operator's API), and
//! the rendered objects reference each other correctly (names that kustomize rewrites, label
//! selectors, the scrape job name the alert rules expect).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml_ng::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    let full = repo().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every non-empty document of a YAML stream.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("not YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The names of the `*.json` files of `dir` (relative to the repository), sorted.
fn json_files(dir: &str) -> Vec<String> {
    let full = repo().join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&full)
        .unwrap_or_else(|e| panic!("{}: {e}", full.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

fn group_names(groups: &[Value]) -> Vec<String> {
    groups.iter().map(|g| g["name"].as_str().unwrap_or("(no name)").to_owned()).collect()
}

const RULE_FILES: [&str; 2] = ["alerts/llm-loadtest.rules.yml", "alerts/llm-loadtest.recording.yml"];

#[test]
fn prometheusrule_carries_exactly_the_groups_of_the_rule_files() {
    // Every rule file of alerts/ is a source (a new one must be added to the generator too).
    let mut present: Vec<String> = std::fs::read_dir(repo().join("alerts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("llm-loadtest.") && n.ends_with(".yml"))
        .map(|n| format!("alerts/{n}"))
        .collect();
    present.sort();
    let mut sources: Vec<String> = RULE_FILES.iter().map(|s| s.to_string()).collect();
    sources.sort();
    assert_eq!(present, sources, "scripts/gen-prometheusrule.py reads exactly these rule files");

    let mut groups: Vec<Value> = Vec::new();
    for file in RULE_FILES {
        let doc = yaml(file);
        let g = doc["groups"].as_sequence().unwrap_or_else(|| panic!("{file}: no `groups` list"));
        assert!(!g.is_empty(), "{file}: no group");
        groups.extend(g.iter().cloned());
    }
    let rule = yaml("deploy/kubernetes/prometheusrule.yaml");
    assert_eq!(rule["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    let got = rule["spec"]["groups"].as_sequence().expect("deploy/kubernetes/prometheusrule.yaml: spec.groups");
    assert_eq!(group_names(got), group_names(&groups), "the groups, in order");
    for (g, want) in got.iter().zip(&groups) {
        // Whole groups compared as data: every rule, expression, `for`, label and annotation.
        assert!(
            g == want,
            "group {:?} of deploy/kubernetes/prometheusrule.yaml differs from alerts/: run `python3 \
             scripts/gen-prometheusrule.py`",
            want["name"]
        );
    }
    let rules: usize = got.iter().map(|g| g["rules"].as_sequence().map_or(0, |r| r.len())).sum();
    let alerts = got
        .iter()
        .flat_map(|g| g["rules"].as_sequence().into_iter().flatten())
        .filter(|r| r["alert"].as_str().is_some())
        .count();
    assert!(rules > 20 && alerts > 10, "{rules} rules, {alerts} alerts");
}

#[test]
fn dashboard_configmaps_are_generated_from_exact_copies_of_the_dashboards() {
    let names = json_files("grafana/dashboards");
    assert!(!names.is_empty());
    assert_eq!(json_files("deploy/kubernetes/dashboards"), names, "run `python3 scripts/gen-prometheusrule.py`");
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    for n in &names {
        let copy = read(&format!("deploy/kubernetes/dashboards/{n}"));
        assert!(
            copy == read(&format!("grafana/dashboards/{n}")),
            "deploy/kubernetes/dashboards/{n} differs from grafana/dashboards/{n}: run `python3 \
             scripts/gen-prometheusrule.py`"
        );
        assert!(
            kustomization.contains(&format!("- dashboards/{n}")),
            "kustomization.yaml generates no ConfigMap from {n}"
        );
    }
}

/// The volume mount of `container` named `name`.
fn mount_path(container: &Value, name: &str) -> String {
    let mounts = container["volumeMounts"].as_sequence().expect("volumeMounts");
    let m = mounts.iter().find(|m| m["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("no mount {name}"));
    m["mountPath"].as_str().unwrap().to_owned()
}

/// The volume of the pod spec `pod` named `name`.
fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    let volumes = pod["volumes"].as_sequence().expect("volumes");
    volumes.iter().find(|v| v["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("no volume {name}"))
}

#[test]
fn daemon_config_is_valid_and_names_what_the_deployment_mounts() {
    const TOKEN_FILE: &str = "/run/secrets/llm-loadtest/token";
    let text = read("deploy/kubernetes/llm-loadtest.toml");
    assert!(text.contains(&format!("token_file = \"{TOKEN_FILE}\"")), "[auth] token_file = {TOKEN_FILE:?}");
    // The token file is read at load: a local one stands in for the Secret.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let local = text.replace(TOKEN_FILE, &token.display().to_string());
    let config = llm_loadtest::config::load_from_str(&local, &[])
        .unwrap_or_else(|e| panic!("deploy/kubernetes/llm-loadtest.toml: {e}"));
    assert!(!config.listen.ip().is_loopback(), "listen = {}: the Service cannot reach loopback", config.listen);
    assert!(config.auth.is_enabled());
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    assert!(!config.targets.is_empty());
    for t in &config.targets {
        assert!(t.container.is_none(), "target {}: a pod has no Docker socket for `container`", t.name);
    }

    let deployment = yaml("deploy/kubernetes/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args, ["serve", "--config", "/etc/llm-loadtest/llm-loadtest.toml"]);
    // The ConfigMap's key is the file name (configMapGenerator `files: [llm-loadtest.toml]`).
    assert_eq!(mount_path(container, "config"), "/etc/llm-loadtest");
    assert!(read("deploy/kubernetes/kustomization.yaml").contains("- llm-loadtest.toml"));
    assert_eq!(format!("{}/token", mount_path(container, "token")), TOKEN_FILE);
    assert_eq!(mount_path(container, "data"), config.data_dir.to_str().unwrap());
    assert_eq!(container["ports"][0]["name"].as_str(), Some("http"));
    assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(u64::from(config.listen.port())));

    let secret = &volume(pod, "token")["secret"];
    assert_eq!(secret["secretName"].as_str(), Some("llm-loadtest-token"));
    assert_eq!(secret["items"][0]["key"].as_str(), Some("token"));
    assert_eq!(secret["items"][0]["path"].as_str(), Some("token"));
    assert_eq!(volume(pod, "data")["persistentVolumeClaim"]["claimName"].as_str(), Some("llm-loadtest-data"));

    // SIGTERM: up to SHUTDOWN_GRACE for the cancelled bursts, then the OTLP flush (10 s).
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(
        Duration::from_secs(grace) >= llm_loadtest::daemon::SHUTDOWN_GRACE + Duration::from_secs(10),
        "terminationGracePeriodSeconds {grace} < the daemon's shutdown"
    );
}

// ---------------------------------------------------------------------------------------------
// With kubectl, python3 and Node.js
// ---------------------------------------------------------------------------------------------

/// The kinds of the base; scripts/check-kubernetes.sh prints `ok KIND/NAME: ...` for each object.
const KINDS: [&str; 7] = [
    "ConfigMap",
    "Deployment",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "PrometheusRule",
    "Service",
    "ServiceMonitor",
];

#[test]
#[ignore = "needs kubectl, python3 and Node.js: run scripts/test.sh"]
fn check_kubernetes_validates_every_rendered_object() {
    let script = repo().join("scripts/check-kubernetes.sh");
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("bash {}: {e}", script.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/check-kubernetes.sh failed ({}); it never skips:\n{text}", out.status);
    assert!(text.contains("generated files up to date"), "{text}");
    for kind in KINDS {
        let prefix = format!("ok {kind}/");
        assert!(text.lines().any(|l| l.starts_with(&prefix)), "no line `{prefix}...`:\n{text}");
    }
    assert!(!text.lines().any(|l| l.starts_with("error")), "{text}");
    assert!(text.contains("kubernetes: OK, 9 objects"), "{text}");
}

/// `kubectl kustomize deploy/kubernetes`, every object.
fn render() -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", "deploy/kubernetes"])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("kubectl: {e}; it must be installed; this test never skips"));
    assert!(out.status.success(), "kubectl kustomize deploy/kubernetes: {}", String::from_utf8_lossy(&out.stderr));
    documents(&String::from_utf8(out.stdout).unwrap())
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"].as_str() == Some(kind)).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

/// Every `key: value` of the selector `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(m) = selector.as_mapping() else { return false };
    !m.is_empty() && m.iter().all(|(k, v)| &labels[k] == v)
}

#[test]
#[ignore = "needs kubectl: run scripts/test.sh"]
fn rendered_objects_reference_each_other() {
    let objects = render();
    let mut kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds, KINDS);
    for o in &objects {
        let meta = &o["metadata"];
        let labels = &meta["labels"];
        let id = format!("{}/{}", o["kind"].as_str().unwrap(), meta["name"].as_str().unwrap());
        assert_eq!(labels["app.kubernetes.io/name"].as_str(), Some("llm-loadtest"), "{id}");
        assert_eq!(labels["app.kubernetes.io/part-of"].as_str(), Some("llm-loadtest"), "{id}");
        assert!(labels["app.kubernetes.io/component"].as_str().is_some(), "{id}");
        // Namespace-agnostic: `kubectl apply -n` or an overlay picks the namespace.
        assert!(meta["namespace"].is_null(), "{id}");
    }

    let deployment = one(&objects, "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert!(selects(&deployment["spec"]["selector"]["matchLabels"], pod_labels));
    let pod = &deployment["spec"]["template"]["spec"];

    // The config volume names the generated ConfigMap (its name carries kustomize's hash).
    let config_map = volume(pod, "config")["configMap"]["name"].as_str().unwrap();
    let config =
        of_kind(&objects, "ConfigMap").into_iter().find(|c| c["metadata"]["name"].as_str() == Some(config_map));
    let config = config.unwrap_or_else(|| panic!("no ConfigMap {config_map}"));
    assert!(config_map.starts_with("llm-loadtest-config-"), "{config_map}");
    assert!(config["data"]["llm-loadtest.toml"].as_str().unwrap().contains("[targets."));

    let pvc = one(&objects, "PersistentVolumeClaim");
    assert_eq!(volume(pod, "data")["persistentVolumeClaim"]["claimName"], pvc["metadata"]["name"]);

    // The Service selects the pod on its `http` port.
    let service = one(&objects, "Service");
    assert!(selects(&service["spec"]["selector"], pod_labels));
    assert_eq!(service["spec"]["type"].as_str(), Some("ClusterIP"));
    assert_eq!(service["spec"]["ports"][0]["name"].as_str(), Some("http"));
    assert_eq!(service["spec"]["ports"][0]["targetPort"].as_str(), Some("http"));

    // The ServiceMonitor scrapes that port, as job="llm-loadtest" (the rules' job name).
    let monitor = one(&objects, "ServiceMonitor");
    assert!(selects(&monitor["spec"]["selector"]["matchLabels"], &service["metadata"]["labels"]));
    let job_label = monitor["spec"]["jobLabel"].as_str().expect("jobLabel");
    assert_eq!(service["metadata"]["labels"][job_label].as_str(), Some("llm-loadtest"));
    assert!(read("alerts/llm-loadtest.rules.yml").contains("job=\"llm-loadtest\""));
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"].as_str(), Some("http"));
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));

    // The NetworkPolicy applies to the pod and lets its port in.
    let policy = one(&objects, "NetworkPolicy");
    assert!(selects(&policy["spec"]["podSelector"]["matchLabels"], pod_labels));
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"].as_str(), Some("http"));

    // The dashboards, for Grafana's sidecar.
    let dashboards: Vec<&Value> = of_kind(&objects, "ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["labels"]["grafana_dashboard"].as_str() == Some("1"))
        .collect();
    assert_eq!(dashboards.len(), json_files("grafana/dashboards").len());
    let rule = one(&objects, "PrometheusRule");
    assert!(rule["spec"]["groups"].as_sequence().is_some_and(|g| !g.is_empty()));
}

#[test]
#[ignore = "needs kubectl: run scripts/test.sh"]
fn rendered_deployment_has_probes_and_a_locked_down_security_context() {
    let objects = render();
    let deployment = one(&objects, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(1), "one daemon per data volume");
    assert_eq!(spec["strategy"]["type"].as_str(), Some("Recreate"));
    let pod = &spec["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"].as_str(), Some("llm-loadtest:local"));

    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")] {
        assert_eq!(c[probe]["httpGet"]["path"].as_str(), Some(path), "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"].as_str(), Some("http"), "{probe}");
    }

    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["runAsUser"].as_u64(), Some(65532));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    assert_eq!(sc["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"));
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(psc["fsGroup"].as_u64(), Some(65532), "the data volume must be writable by 65532");
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));

    for (kind, what) in [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")] {
        assert!(!c["resources"][kind][what].is_null(), "resources.{kind}.{what}");
    }
    assert!(pod["terminationGracePeriodSeconds"].as_u64().is_some_and(|g| g >= 40));
}

/// The Indexed Job of deploy/kubernetes/sharded-burst: every pod's command, with the values
/// Kubernetes substitutes for `$(SHARD_INDEX)` and `$(START_AT)`, is a `run` this binary accepts
/// and plans, and the pods together are every shard of one plan exactly once.
#[test]
fn the_sharded_burst_job_runs_every_shard_of_one_plan_once() {
    use clap::Parser;
    use llm_loadtest::cli::{Cli, Command as Cmd};

    let job = yaml("deploy/kubernetes/sharded-burst/job.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(completions), "every shard must start at the shared instant");
    let container = &spec["template"]["spec"]["containers"][0];
    let env = container["env"].as_sequence().unwrap();
    let index_from = env.iter().find(|e| e["name"].as_str() == Some("SHARD_INDEX")).unwrap();
    assert_eq!(
        index_from["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
    );
    let plan_env = read("deploy/kubernetes/sharded-burst/plan.env");
    let start_at = plan_env.lines().find_map(|l| l.strip_prefix("START_AT=")).expect("plan.env sets START_AT");
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();

    let mut plans = Vec::new();
    let mut out_dirs = std::collections::BTreeSet::new();
    for index in 0..completions {
        let argv: Vec<String> = std::iter::once("llm-loadtest".to_owned())
            .chain(
                args.iter().map(|a| a.replace("$(SHARD_INDEX)", &index.to_string()).replace("$(START_AT)", start_at)),
            )
            .collect();
        let Cmd::Run(run) = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}")).command else {
            panic!("not a run: {argv:?}")
        };
        let shard = run.shard.expect("--shard");
        assert_eq!((u64::from(shard.index), u64::from(shard.count)), (index, completions), "{argv:?}");
        assert_eq!(run.start_at.map(|t| t.to_string()).as_deref(), Some(start_at));
        out_dirs.insert(run.save_artifacts.clone().expect("--save-artifacts"));
        let target = run.target.clone().expect("--target");
        let model = run.model.clone().expect("--model");
        let plan = llm_loadtest::run::prepare(&run, &target, &model, "t", None)
            .unwrap_or_else(|e| panic!("shard {index}: {e}"));
        plans.push(plan.recorded);
    }
    assert_eq!(out_dirs.len() as u64, completions, "each shard writes its own directory: {out_dirs:?}");
    // One plan: the shards differ only by their index.
    for p in &plans[1..] {
        assert_eq!((&p.arrival, &p.stop, p.max_tokens), (&plans[0].arrival, &plans[0].stop, plans[0].max_tokens));
    }
}

#[test]
#[ignore = "needs kubectl, python3 and Node.js: run scripts/test.sh"]
fn check_kubernetes_validates_the_sharded_burst_job() {
    let out = Command::new("bash")
        .args(["scripts/check-kubernetes.sh", "deploy/kubernetes/sharded-burst"])
        .current_dir(repo())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/check-kubernetes.sh deploy/kubernetes/sharded-burst failed:\n{text}");
    for kind in ["ConfigMap", "Job", "PersistentVolumeClaim"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("ok {kind}/"))), "no `ok {kind}/...`:\n{text}");
    }
    assert!(text.contains("kubernetes: OK, 3 objects"), "{text}");
}

/// The workers component: its daemon config is the base's plus [workers] and `workers` (so the
/// two do not drift apart), valid, with a token file the daemon's patch mounts; the worker
/// Deployment's command is a `worker` this binary accepts, pointed at the base's Service with
/// the same token, and it has at least as many replicas as any target's `workers`.
#[test]
fn the_workers_component_adds_workers_to_the_base_and_nothing_else() {
    use clap::Parser;
    use llm_loadtest::cli::{Cli, Command as Cmd};
    const TOKEN_FILE: &str = "/run/secrets/llm-loadtest-workers/token";

    let base = read("deploy/kubernetes/llm-loadtest.toml");
    let with = read("deploy/kubernetes/workers/llm-loadtest.toml");
    let body = with.split_once("\n\n").map(|(_, b)| b).expect("a header, then the base's text");
    let added: Vec<&str> = diff_lines(&base, body);
    assert!(added.iter().any(|l| l.starts_with("workers = ")), "{added:?}");
    assert!(added.contains(&"[workers]") && added.contains(&format!("token_file = \"{TOKEN_FILE}\"").as_str()));
    assert!(
        added.iter().all(|l| l.starts_with('#')
            || l.starts_with("workers = ")
            || l.starts_with("[workers]")
            || l.starts_with("token_file = ")),
        "{added:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let local = with
        .replace(TOKEN_FILE, &dir.path().join("w").display().to_string())
        .replace("/run/secrets/llm-loadtest/token", &dir.path().join("t").display().to_string());
    std::fs::write(dir.path().join("w"), "workers\n").unwrap();
    std::fs::write(dir.path().join("t"), "trigger\n").unwrap();
    let config = llm_loadtest::config::load_from_str(&local, &[]).unwrap_or_else(|e| panic!("{e}"));
    let most = config.targets.iter().filter_map(|t| t.workers).max().expect("a target with workers");

    let component = read("deploy/kubernetes/workers/kustomization.yaml");
    assert!(component.contains("mountPath: /run/secrets/llm-loadtest-workers"), "the daemon mounts the token");
    let deployment = yaml("deploy/kubernetes/workers/worker-deployment.yaml");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= u64::from(most), "fewer workers than shards");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(format!("{}/token", mount_path(container, "workers-token")), TOKEN_FILE);
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let argv = std::iter::once("llm-loadtest").chain(args.iter().copied());
    let Cmd::Worker(w) = Cli::try_parse_from(argv).unwrap().command else { panic!("not a worker: {args:?}") };
    assert_eq!(w.token_file.to_str(), Some(TOKEN_FILE));
    let service = yaml("deploy/kubernetes/service.yaml");
    assert_eq!(w.coordinator.host_str(), service["metadata"]["name"].as_str());
    assert_eq!(w.coordinator.port(), Some(config.listen.port()));
}

/// Lines of `new` that `old` does not have, in order.
fn diff_lines<'a>(old: &str, new: &'a str) -> Vec<&'a str> {
    let old: std::collections::BTreeSet<&str> = old.lines().collect();
    new.lines().filter(|l| !old.contains(l)).collect()
}

#[test]
#[ignore = "needs kubectl, python3 and Node.js: run scripts/test.sh"]
fn check_kubernetes_validates_the_base_with_workers() {
    let out = Command::new("bash")
        .args(["scripts/check-kubernetes.sh", "deploy/kubernetes-with-workers"])
        .current_dir(repo())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/check-kubernetes.sh deploy/kubernetes-with-workers failed:\n{text}");
    assert!(text.contains("ok Deployment/llm-loadtest-worker:"), "{text}");
    assert!(text.contains("kubernetes: OK, 10 objects"), "{text}");
    // The daemon's rendered pod mounts the workers' token, and its config has [workers].
    let rendered = Command::new("kubectl")
        .args(["kustomize", "deploy/kubernetes-with-workers"])
        .current_dir(repo())
        .output()
        .unwrap();
    let objects = documents(&String::from_utf8(rendered.stdout).unwrap());
    let daemon = objects.iter().find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "llm-loadtest").unwrap();
    let pod = &daemon["spec"]["template"]["spec"];
    assert_eq!(volume(pod, "workers-token")["secret"]["secretName"].as_str(), Some("llm-loadtest-workers-token"));
    let config_map = volume(pod, "config")["configMap"]["name"].as_str().unwrap();
    let config = objects.iter().find(|o| o["metadata"]["name"].as_str() == Some(config_map)).unwrap();
    assert!(config["data"]["llm-loadtest.toml"].as_str().unwrap().contains("\n[workers]\n"));
}
