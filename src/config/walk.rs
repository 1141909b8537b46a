//! Strict reading of the value tree config-rs builds from the file and the
//! environment.
//!
//! config-rs's own deserializer is lenient (`8.5` becomes 8, `"yes"` becomes
//! true) and stops at the first error, so every key is read here by hand:
//! each leaf with a strict reader, each problem recorded under the key it is
//! about, every unknown key reported with the closest known one. The caller
//! gets all problems of a file at once.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use config::{Map, Value, ValueKind};

/// One problem: the key it is about and what is wrong. `involved` lists the
/// keys whose values the problem depends on (for cross-key rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub key: String,
    pub message: String,
    pub involved: Vec<String>,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        let key = key.into();
        Problem { involved: vec![key.clone()], key, message: message.into() }
    }

    /// A problem about `key` that also depends on the values of `others`.
    pub fn across(key: impl Into<String>, others: &[String], message: impl Into<String>) -> Problem {
        let mut p = Problem::new(key, message);
        p.involved.extend(others.iter().cloned());
        p
    }
}

/// Everything learnt while reading: the problems, and what the rule checks
/// need to know to avoid repeating them.
#[derive(Debug, Default)]
pub(super) struct Problems {
    pub list: Vec<Problem>,
    /// Keys (named as the target sees them) whose value could not be read: a
    /// rule about such a key would only judge the stand-in default.
    pub unreadable: HashSet<String>,
    /// Keys whose value a target took from `[defaults]`: their rule problems
    /// are reported once, under `defaults`.
    pub inherited: HashSet<String>,
    /// Keys set by an environment variable, with the variable's name.
    pub from_env: HashMap<String, String>,
}

impl Problems {
    pub fn push(&mut self, problem: Problem) {
        self.list.push(problem);
    }

    /// Should a rule's problem be dropped because it was already reported
    /// (under `defaults`) or judges a value that could not be read?
    pub fn suppresses(&self, problem: &Problem) -> bool {
        let unreadable = problem.involved.iter().any(|k| {
            self.unreadable.iter().any(|u| k == u || k.strip_prefix(u.as_str()).is_some_and(|r| r.starts_with('.')))
        });
        let all_inherited = !problem.involved.is_empty() && problem.involved.iter().all(|k| self.inherited.contains(k));
        unreadable || all_inherited
    }
}

/// `path.key`, quoting the key as TOML does when it is not a bare key.
pub(super) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare { key.to_owned() } else { format!("{key:?}") };
    if path.is_empty() { key } else { format!("{path}.{key}") }
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: Value,
    /// Where the value is written (differs from the section's own path for
    /// values inherited from `[defaults]`).
    written_at: String,
    inherited: bool,
}

/// The keys of one table, consumed one by one; what is left at the end is unknown.
#[derive(Debug, Clone)]
pub(super) struct Section {
    /// The key of this table as its target sees it, e.g. `targets.sim.workload`.
    path: String,
    entries: Vec<Entry>,
    asked: Vec<&'static str>,
}

impl Section {
    pub fn empty(path: &str) -> Section {
        Section { path: path.to_owned(), entries: Vec::new(), asked: Vec::new() }
    }

    /// The table at `path`, or a problem saying it is not a table.
    pub fn new(path: &str, value: Value, p: &mut Problems) -> Option<Section> {
        Section::at(path, path, value, false, p)
    }

    fn at(path: &str, written: &str, value: Value, inherited: bool, p: &mut Problems) -> Option<Section> {
        let origin = value.origin().map(str::to_owned);
        match value.kind {
            ValueKind::Table(map) => {
                let mut entries: Vec<Entry> = map
                    .into_iter()
                    .map(|(key, value)| Entry { written_at: join(written, &key), key, value, inherited })
                    .collect();
                entries.sort_by(|a, b| a.key.cmp(&b.key));
                Some(Section { path: path.to_owned(), entries, asked: Vec::new() })
            }
            other => {
                let value = Value::new(origin.as_ref(), other);
                p.push(Problem::new(
                    written,
                    with_origin(format!("expected a table, got {}", describe(&value)), &value),
                ));
                p.unreadable.insert(path.to_owned());
                None
            }
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Entries the table sets itself (not inherited).
    pub fn own_len(&self) -> usize {
        self.entries.iter().filter(|e| !e.inherited).count()
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    /// Take over the entries of `defaults` this table does not set itself.
    /// Keys of one group go together: a table that sets any key of a group
    /// inherits none of it (`duration` here drops the default `requests`).
    pub fn inherit(&mut self, defaults: &Section, groups: &[&[&str]]) {
        for e in &defaults.entries {
            if self.has(&e.key) {
                continue;
            }
            let group = groups.iter().find(|g| g.contains(&e.key.as_str()));
            if group.is_some_and(|g| g.iter().any(|k| self.has(k))) {
                continue;
            }
            self.entries.push(Entry { inherited: true, ..e.clone() });
        }
    }

    fn take_entry(&mut self, key: &'static str) -> Option<Entry> {
        self.asked.push(key);
        let i = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(i))
    }

    fn note(&self, key: &str, e: &Entry, p: &mut Problems) -> String {
        let target_key = join(&self.path, key);
        if let Some(var) = e.value.origin().filter(|o| is_env_origin(o)) {
            p.from_env.insert(e.written_at.clone(), var.to_owned());
            p.from_env.insert(target_key.clone(), var.to_owned());
        }
        if e.inherited {
            p.inherited.insert(target_key.clone());
        }
        target_key
    }

    /// Read `key` with `read`; a problem (naming the key) when it cannot be read.
    pub fn get<T>(&mut self, key: &'static str, p: &mut Problems, read: fn(&Value) -> Result<T, String>) -> Option<T> {
        let e = self.take_entry(key)?;
        let target_key = self.note(key, &e, p);
        match read(&e.value) {
            Ok(v) => Some(v),
            Err(msg) => {
                p.push(Problem::new(&e.written_at, with_origin(msg, &e.value)));
                p.unreadable.insert(target_key);
                None
            }
        }
    }

    /// Like [`get`](Self::get), with a problem when the key is absent.
    pub fn require<T>(
        &mut self,
        key: &'static str,
        example: &str,
        p: &mut Problems,
        read: fn(&Value) -> Result<T, String>,
    ) -> Option<T> {
        if !self.has(key) {
            self.asked.push(key);
            let k = self.key(key);
            p.push(Problem::new(&k, format!("missing; this key is required, e.g. {key} = {example}")));
            p.unreadable.insert(k);
            return None;
        }
        self.get(key, p, read)
    }

    /// The sub-table at `key`, if present.
    pub fn section(&mut self, key: &'static str, p: &mut Problems) -> Option<Section> {
        let e = self.take_entry(key)?;
        let target_key = self.note(key, &e, p);
        Section::at(&target_key, &e.written_at, e.value, e.inherited, p)
    }

    /// Every remaining entry as (key, value, where it is written), for tables
    /// keyed by user names or read by serde.
    pub fn drain(&mut self, p: &mut Problems) -> Vec<(String, Value, String)> {
        let entries = std::mem::take(&mut self.entries);
        entries
            .into_iter()
            .map(|e| {
                self.note(&e.key.clone(), &e, p);
                (e.key, e.value, e.written_at)
            })
            .collect()
    }

    /// Report every key nobody asked for.
    pub fn finish(self, p: &mut Problems) {
        for e in self.entries {
            let hint = match closest(&e.key, &self.asked) {
                Some(known) => format!("; did you mean `{known}`?"),
                None if self.asked.is_empty() => String::new(),
                None => format!(" (known keys here: {})", self.asked.join(", ")),
            };
            let msg = with_origin(format!("unknown key{hint}"), &e.value);
            p.push(Problem::new(e.written_at, msg));
        }
    }
}

/// The known key closest to a misspelt one, if close enough to be a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, k), *k))
        .filter(|(d, k)| (*d <= 2.max(k.len() / 3) && *d < k.len()) || (key.len() >= 3 && k.starts_with(&key)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Append "(from LLM_LOADTEST__…)" when the value came from the environment.
/// The origin recorded on values from the environment is the variable's name
/// (`ENV_PREFIX` + `__` + the key path, see `env.rs`); a file's origin is its path.
pub(super) fn is_env_origin(origin: &str) -> bool {
    origin.starts_with("LLM_LOADTEST__")
}

fn with_origin(msg: String, value: &Value) -> String {
    match value.origin().filter(|o| is_env_origin(o)) {
        Some(var) => format!("{msg} (from {var})"),
        None => msg,
    }
}

/// What a value is, for messages.
pub(super) fn describe(value: &Value) -> String {
    match &value.kind {
        ValueKind::Nil => "nothing".into(),
        ValueKind::Boolean(b) => format!("the boolean {b}"),
        ValueKind::I64(n) => format!("the integer {n}"),
        ValueKind::I128(n) => format!("the integer {n}"),
        ValueKind::U64(n) => format!("the integer {n}"),
        ValueKind::U128(n) => format!("the integer {n}"),
        ValueKind::Float(f) => format!("the number {f}"),
        ValueKind::String(s) => format!("the string {s:?}"),
        ValueKind::Table(_) => "a table".into(),
        ValueKind::Array(_) => "an array".into(),
    }
}

/// Strict readers of one value. Strings are converted to numbers and booleans
/// only when they come from the environment, where everything is a string.
pub(super) mod read {
    use super::*;

    fn env(value: &Value) -> bool {
        value.origin().is_some_and(is_env_origin)
    }

    fn integer(value: &Value) -> Result<i128, String> {
        let n = match &value.kind {
            ValueKind::I64(n) => i128::from(*n),
            ValueKind::I128(n) => *n,
            ValueKind::U64(n) => i128::from(*n),
            ValueKind::U128(n) => i128::try_from(*n).unwrap_or(i128::MAX),
            ValueKind::String(s) if env(value) => {
                s.trim().parse().map_err(|_| format!("expected a whole number, got {}", describe(value)))?
            }
            _ => return Err(format!("expected a whole number, got {}", describe(value))),
        };
        Ok(n)
    }

    pub fn u32(value: &Value) -> Result<u32, String> {
        let n = integer(value)?;
        u32::try_from(n).map_err(|_| format!("must be a whole number from 0 to {}, got {n}", u32::MAX))
    }

    pub fn u64(value: &Value) -> Result<u64, String> {
        let n = integer(value)?;
        u64::try_from(n).map_err(|_| format!("must be a whole number from 0 to {}, got {n}", u64::MAX))
    }

    pub fn f64(value: &Value) -> Result<f64, String> {
        match &value.kind {
            ValueKind::Float(f) => Ok(*f),
            ValueKind::String(s) if env(value) => {
                s.trim().parse().map_err(|_| format!("expected a number, got {}", describe(value)))
            }
            _ => integer(value).map(|n| n as f64).map_err(|_| format!("expected a number, got {}", describe(value))),
        }
    }

    pub fn bool(value: &Value) -> Result<bool, String> {
        match &value.kind {
            ValueKind::Boolean(b) => Ok(*b),
            ValueKind::String(s) if env(value) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("expected true or false, got {}", describe(value))),
            },
            _ => Err(format!("expected true or false, got {}", describe(value))),
        }
    }

    pub fn string(value: &Value) -> Result<String, String> {
        match &value.kind {
            ValueKind::String(s) => Ok(s.clone()),
            _ => Err(format!("expected a string, got {}", describe(value))),
        }
    }

    /// A string, or a non-empty list of them.
    pub fn strings(value: &Value) -> Result<Vec<String>, String> {
        match &value.kind {
            ValueKind::Array(items) if items.is_empty() => {
                Err("an empty list; give at least one, or remove the key".into())
            }
            ValueKind::Array(items) => items.iter().map(string).collect(),
            _ => string(value).map(|s| vec![s]),
        }
    }

    pub fn path(value: &Value) -> Result<PathBuf, String> {
        let s = string(value)?;
        if s.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(PathBuf::from(s))
    }

    /// `"30s"`, `"1m 30s"`, `"500ms"`, `"30d"`: a duration with its unit.
    pub fn duration(value: &Value) -> Result<Duration, String> {
        let s = match &value.kind {
            ValueKind::String(s) => s,
            ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::Float(_) => {
                return Err(format!("a duration needs a unit: write \"{}s\" (or ms, m, h, d)", describe_number(value)));
            }
            _ => return Err(format!("expected a duration like \"30s\", got {}", describe(value))),
        };
        humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?} is not a duration like \"30s\", \"5m\" or \"500ms\" ({e})"))
    }

    fn describe_number(value: &Value) -> String {
        match &value.kind {
            ValueKind::I64(n) => n.to_string(),
            ValueKind::U64(n) => n.to_string(),
            ValueKind::Float(f) => f.to_string(),
            _ => String::new(),
        }
    }

    pub fn url(value: &Value) -> Result<url::Url, String> {
        let s = string(value)?;
        url::Url::parse(s.trim()).map_err(|e| {
            let shown = crate::http::redact_url(&s);
            format!("{shown:?} is not a URL ({e}); expected e.g. \"http://127.0.0.1:8000\"")
        })
    }

    /// One URL, or a list of them (the replicas of a fleet).
    pub fn urls(value: &Value) -> Result<Vec<url::Url>, String> {
        match &value.kind {
            ValueKind::Array(items) if items.is_empty() => {
                Err("an empty list; give at least one URL, or remove the key for the default".into())
            }
            ValueKind::Array(items) => items.iter().map(url).collect(),
            _ => url(value).map(|u| vec![u]),
        }
    }

    pub fn socket_addr(value: &Value) -> Result<std::net::SocketAddr, String> {
        let s = string(value)?;
        s.trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address and port like \"127.0.0.1:9464\" or \"[::]:9464\""))
    }

    /// A value of a clap `ValueEnum`, by the same names the command line takes.
    pub fn choice<T: clap::ValueEnum>(value: &Value) -> Result<T, String> {
        let names: Vec<String> =
            T::value_variants().iter().filter_map(|v| v.to_possible_value()).map(|v| v.get_name().to_owned()).collect();
        let s = string(value).map_err(|_| format!("expected one of {}, got {}", names.join(", "), describe(value)))?;
        T::from_str(s.trim(), false).map_err(|_| format!("{s:?} is not one of {}", names.join(", ")))
    }

    /// `128` or `"32..256"`: a prompt length in tokens.
    pub fn length(value: &Value) -> Result<crate::workload::prompts::LengthSpec, String> {
        let s = match &value.kind {
            ValueKind::String(s) => s.clone(),
            ValueKind::I64(_) | ValueKind::U64(_) => integer(value)?.to_string(),
            _ => return Err(format!("expected N or \"MIN..MAX\" (tokens), got {}", describe(value))),
        };
        s.parse().map_err(|e: crate::workload::prompts::PromptError| match e {
            crate::workload::prompts::PromptError::InvalidLength { reason, .. } => reason,
            other => other.to_string(),
        })
    }

    /// A table (or, from the environment, a JSON object string) as a JSON object.
    pub fn json_object(value: &Value) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        match (&value.kind, to_json(value)?) {
            (_, serde_json::Value::Object(m)) => Ok(m),
            (ValueKind::String(s), _) if env(value) => match serde_json::from_str(s) {
                Ok(serde_json::Value::Object(m)) => Ok(m),
                Ok(_) => Err("expected a JSON object like {\"top_p\": 0.9}".into()),
                Err(e) => Err(format!("not a JSON object: {e}")),
            },
            _ => Err(format!("expected a table like {{ top_p = 0.9 }}, got {}", describe(value))),
        }
    }

    /// The value as JSON; strings from the environment that read as numbers or
    /// booleans become numbers or booleans.
    pub fn to_json(value: &Value) -> Result<serde_json::Value, String> {
        use serde_json::Value as J;
        Ok(match &value.kind {
            ValueKind::Nil => J::Null,
            ValueKind::Boolean(b) => J::Bool(*b),
            ValueKind::I64(n) => J::from(*n),
            ValueKind::U64(n) => J::from(*n),
            ValueKind::I128(n) => i64::try_from(*n).map(J::from).map_err(|_| format!("{n} is too large"))?,
            ValueKind::U128(n) => u64::try_from(*n).map(J::from).map_err(|_| format!("{n} is too large"))?,
            ValueKind::Float(f) => {
                serde_json::Number::from_f64(*f).map(J::Number).ok_or_else(|| format!("{f} is not a finite number"))?
            }
            ValueKind::String(s) if env(value) => match s.trim() {
                "true" => J::Bool(true),
                "false" => J::Bool(false),
                t => t
                    .parse::<i64>()
                    .map(J::from)
                    .ok()
                    .or_else(|| t.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(J::Number))
                    .unwrap_or_else(|| J::String(s.clone())),
            },
            ValueKind::String(s) => J::String(s.clone()),
            ValueKind::Array(items) => J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
            ValueKind::Table(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), to_json(&map[k])?);
                }
                J::Object(out)
            }
        })
    }
}

/// Read a table into a serde type whose every field has a default (such as
/// `Tolerances`), one key at a time so that every bad key is reported.
pub(super) fn serde_section<T>(mut section: Section, p: &mut Problems) -> T
where
    T: serde::de::DeserializeOwned + Default,
{
    let mut good = serde_json::Map::new();
    for (key, value, written_at) in section.drain(p) {
        let problem = match read::to_json(&value) {
            Err(msg) => Some(msg),
            Ok(json) => {
                let one = serde_json::Value::Object([(key.clone(), json.clone())].into_iter().collect());
                match serde_json::from_value::<T>(one) {
                    Ok(_) => {
                        good.insert(key.clone(), json);
                        None
                    }
                    Err(e) => Some(serde_message(&e.to_string())),
                }
            }
        };
        if let Some(msg) = problem {
            p.push(Problem::new(&written_at, with_origin(msg, &value)));
            p.unreadable.insert(section.key(&key));
        }
    }
    section.finish(p);
    serde_json::from_value(serde_json::Value::Object(good)).unwrap_or_default()
}

/// serde's "unknown field `x`, expected one of ..." reads better as "unknown key".
fn serde_message(msg: &str) -> String {
    match msg.strip_prefix("unknown field ") {
        Some(rest) => format!("unknown key {rest}"),
        None => msg.to_owned(),
    }
}

/// The root table of a config-rs value (an empty one for anything else).
pub(super) fn into_table(value: Value) -> Map<String, Value> {
    match value.kind {
        ValueKind::Table(m) => m,
        _ => Map::new(),
    }
}
