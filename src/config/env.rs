//! Environment overrides: `LLM_LOADTEST__SECTION__KEY=value`.
//!
//! config-rs's `Environment` source reads the variables with the prefix
//! `LLM_LOADTEST` and `__` both after the prefix and between keys, so
//! snake_case keys (`max_tokens`) survive, and Kubernetes' service variables
//! (`LLM_LOADTEST_PORT`, `LLM_LOADTEST_SERVICE_HOST`, single `_`) and the CLI's
//! `LLM_LOADTEST_API_KEY` are not read at all. Values stay strings
//! (`try_parsing` off): the strict readers convert them for numeric and
//! boolean keys only, so a token `"0123"` or a model `"1.0"` stays as written.
//!
//! Environment variable names are case-insensitive here (config-rs lower-cases
//! them) and cannot hold `-` or `.`, while target names are case-sensitive
//! and may. So the segment after `TARGETS` is matched against the names in
//! the file after the same normalisation (lower case, `-` and `.` read as
//! `_`): `LLM_LOADTEST__TARGETS__LLAMA_3_1__WORKLOAD__CONCURRENCY` changes
//! `[targets."Llama-3.1"]`. The environment changes targets; it does not add them.

use config::{Environment, Map, Value, ValueKind};

use super::walk::{Problem, Problems, join};

/// The prefix of every override variable, without its `__`.
pub const ENV_PREFIX: &str = "LLM_LOADTEST";

/// A target name as an environment variable segment sees it.
pub fn env_segment(name: &str) -> String {
    name.chars().map(|c| if c == '-' || c == '.' { '_' } else { c.to_ascii_lowercase() }).collect()
}

/// The variable that overrides `segments` (e.g. `["targets", "sim", "workload", "concurrency"]`).
pub fn env_var(segments: &[&str]) -> String {
    let mut var = ENV_PREFIX.to_owned();
    for s in segments {
        var.push_str("__");
        var.push_str(&env_segment(s).to_ascii_uppercase());
    }
    var
}

/// The override variables as a tree of lower-case keys. `vars` replaces the
/// process environment (tests); `None` reads the process environment.
pub(super) fn collect(vars: Option<&[(String, String)]>) -> Result<Map<String, Value>, Problem> {
    let mut source = Environment::with_prefix(ENV_PREFIX).prefix_separator("__").separator("__").try_parsing(false);
    if let Some(vars) = vars {
        source = source.source(Some(vars.iter().cloned().collect()));
    }
    let built = config::Config::builder()
        .add_source(source)
        .build()
        .map_err(|e| Problem::new("", format!("cannot read the {ENV_PREFIX}__* environment variables: {e}")))?;
    let mut root = super::walk::into_table(built.cache);
    let tagged = root.drain().map(|(k, v)| (k.clone(), tag(v, &mut vec![k]))).collect();
    Ok(tagged)
}

/// Record on each value the variable it came from.
fn tag(value: Value, path: &mut Vec<String>) -> Value {
    match value.kind {
        ValueKind::Table(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                path.push(k.clone());
                out.insert(k, tag(v, path));
                path.pop();
            }
            Value::new(None, ValueKind::Table(out))
        }
        kind => {
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            Value::new(Some(&env_var(&segments)), kind)
        }
    }
}

/// Lay the environment over the file.
pub(super) fn merge(root: &mut Map<String, Value>, env: Map<String, Value>, p: &mut Problems) {
    let mut env: Vec<(String, Value)> = env.into_iter().collect();
    env.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in env {
        if key == "targets" {
            merge_targets(root, value, p);
        } else {
            merge_key(root, key, value);
        }
    }
}

fn merge_key(table: &mut Map<String, Value>, key: String, value: Value) {
    match table.get_mut(&key) {
        Some(existing) => deep_merge(existing, value),
        None => {
            table.insert(key, value);
        }
    }
}

fn deep_merge(dst: &mut Value, src: Value) {
    let origin = src.origin().map(str::to_owned);
    match (&mut dst.kind, src.kind) {
        (ValueKind::Table(d), ValueKind::Table(s)) => {
            for (k, v) in s {
                merge_key(d, k, v);
            }
        }
        (_, kind) => *dst = Value::new(origin.as_ref(), kind),
    }
}

fn merge_targets(root: &mut Map<String, Value>, value: Value, p: &mut Problems) {
    let ValueKind::Table(overrides) = value.kind else {
        // `LLM_LOADTEST__TARGETS=x`: let the reader say that targets must be a table.
        root.insert("targets".into(), value);
        return;
    };
    let mut names: Vec<String> = match root.get("targets").map(|v| &v.kind) {
        Some(ValueKind::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    };
    names.sort();
    let mut overrides: Vec<(String, Value)> = overrides.into_iter().collect();
    overrides.sort_by(|a, b| a.0.cmp(&b.0));
    for (segment, value) in overrides {
        let matching: Vec<&String> = names.iter().filter(|n| env_segment(n) == env_segment(&segment)).collect();
        let var = env_var(&["targets", &segment]);
        match matching.as_slice() {
            [name] => {
                let name = (*name).clone();
                if let Some(ValueKind::Table(targets)) = root.get_mut("targets").map(|v| &mut v.kind) {
                    merge_key(targets, name, value);
                }
            }
            [] => {
                let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                p.push(Problem::new(
                    join("targets", &segment),
                    format!(
                        "{var}__* names no target of the config file (targets: {known}); \
                         the environment can change a target's keys but not add a target"
                    ),
                ));
            }
            several => {
                let several: Vec<&str> = several.iter().map(|s| s.as_str()).collect();
                p.push(Problem::new(
                    join("targets", &segment),
                    format!("{var}__* could mean any of the targets {}; rename them apart", several.join(", ")),
                ));
            }
        }
    }
}
