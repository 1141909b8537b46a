//! One line on its own: record header, access line, stats line, uvicorn level.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::clean::{clean, skip_prefixes};
use super::{AccessLine, EngineStats, Level, Parsed};

/// `LEVEL MM-DD HH:MM:SS [file:line] ` (0.8+) or `LEVEL MM-DD HH:MM:SS file:line] ` (<= 0.7).
/// The message may be empty (blank lines inside a traceback, trailing spaces trimmed).
static RECORD_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?-u:\b)(DEBUG|INFO|WARNING|ERROR|CRITICAL) [0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)? \[?[^\s\[\]]{1,256}:[0-9]+\](?: |$)",
    )
    .expect("valid regex")
});

/// The stats line of every version (`vllm-facts.md` section c), engine number widened to `\d+`.
static ENGINE_STATS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?:Engine (?P<engine>[0-9]+): |(?P<aggregated>[0-9]+) Engines Aggregated: )?",
        r"Avg prompt throughput: (?P<prompt>[0-9.]+) tokens/s, ",
        r"Avg generation throughput: (?P<gen>[0-9.]+) tokens/s, ",
        r"Running: (?P<running>[0-9]+) reqs, ",
        r"(?:Swapped: (?P<swapped>[0-9]+) reqs, Pending: (?P<pending>[0-9]+) reqs|Waiting: (?P<waiting>[0-9]+) reqs)",
        r"(?P<rest>.*)$",
    ))
    .expect("valid regex")
});
/// The first `<DEV> KV cache usage` part; v0 prints GPU then CPU (swap space).
static KV_CACHE_USAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?P<dev>[A-Z]+) KV cache usage: (?P<pct>[0-9.]+)%").expect("valid regex"));
/// v1's part; `, ` in front keeps `External prefix cache hit rate` out.
static V1_PREFIX_CACHE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|, )Prefix cache hit rate: (?P<pct>[0-9.]+)%").expect("valid regex"));
static PREEMPTIONS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|, )Preemptions: (?P<n>[0-9]+)").expect("valid regex"));
/// v0's second stats line (0.6+).
static V0_PREFIX_CACHE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Prefix cache hit rate: GPU: (?P<gpu>[0-9.]+)%, CPU: (?P<cpu>[0-9.]+)%").expect("valid regex")
});

/// uvicorn's access format `%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s`.
/// The path is percent-quoted by uvicorn, so it has no spaces. Only located by the regex (no
/// capture groups: this runs on most lines), then split by [`access_line`].
static ACCESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"INFO:[ \t]+[^ \t"]* - "[A-Z]+ [^ \t"]+ HTTP/[0-9.]+" [0-9]{3}(?:[ \t]|$)"#).expect("valid regex")
});

/// uvicorn's level prefix is the level name and `:` padded to 9 characters plus a space. This
/// exact padding is distinctive enough to be matched anywhere (after progress-bar output).
static UVICORN_LEVEL_PADDED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)(?P<level>ERROR:    |WARNING:  |CRITICAL: )(?P<message>\S.*)$").expect("valid regex")
});
/// At the start of a line (after prefixes): uvicorn with any spacing, or Python's default
/// `logging` format `ERROR:asyncio:Task exception was never retrieved`.
static LEVEL_AT_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<level>ERROR|WARNING|CRITICAL):(?:[A-Za-z_][A-Za-z0-9_.]*:|\s+|$)").expect("valid regex")
});

/// What one cleaned line is; borrows from the line.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind<'a> {
    Access {
        client: &'a str,
        method: &'a str,
        path: &'a str,
        status: u16,
    },
    Stats(EngineStats),
    V0PrefixCache {
        gpu_pct: f64,
        cpu_pct: f64,
    },
    /// A vLLM record line; `level` is `None` for INFO/DEBUG.
    Record {
        level: Option<Level>,
        header: RecordHeader<'a>,
        message: &'a str,
    },
    /// uvicorn's (or Python's default) level prefix without a vLLM header.
    Unheaded {
        level: Level,
        message: &'a str,
    },
    /// Nothing recognised; `body` is the text after prefixes.
    Other {
        body: &'a str,
    },
}

/// The part of a record line that every line of the same record repeats: everything up to
/// the end of `[file:line] ` (process prefix, level, second, call site).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordHeader<'a>(pub &'a str);

/// Classifies one line as it comes from the log.
pub fn parse_line(text: &str) -> Parsed {
    let line = clean(text);
    match classify(&line.text) {
        Kind::Access { client, method, path, status } => Parsed::Access(AccessLine {
            client: client.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            status,
        }),
        Kind::Stats(stats) => Parsed::EngineStats(stats),
        Kind::V0PrefixCache { gpu_pct, cpu_pct } => Parsed::PrefixCacheHitRate { gpu_pct, cpu_pct },
        Kind::Record { level: Some(level), message, .. } | Kind::Unheaded { level, message } => {
            Parsed::Log { level, message: message.to_string() }
        }
        Kind::Record { level: None, .. } | Kind::Other { .. } => Parsed::Other,
    }
}

/// Classifies a cleaned line (see `clean`).
///
/// With a vLLM record header, the header decides: WARNING/ERROR/CRITICAL make a level line
/// whatever the message says, and an INFO record is a stats line only if its message *starts*
/// with the stats text (a prompt logged by `Received request` can quote anything). Without a
/// header, stats and access lines are matched anywhere, then uvicorn's / Python's level prefix.
/// So the word "ERROR" in an INFO message or in a request path never makes an error.
pub(super) fn classify(text: &str) -> Kind<'_> {
    if let Some(found) = RECORD_HEADER.find(text) {
        let token = found.as_str().split(' ').next().unwrap_or_default();
        let level = Level::from_token(token);
        let (header, message) = (RecordHeader(&text[..found.end()]), &text[found.end()..]);
        if level.is_none()
            && let Some(kind) = stats_or_prefix_cache(message).filter(|(start, _)| *start == 0)
        {
            return kind.1;
        }
        return Kind::Record { level, header, message };
    }
    if let Some((_, kind)) = stats_or_prefix_cache(text) {
        return kind;
    }
    if text.contains(" HTTP/")
        && let Some(access) = ACCESS.find(text).and_then(|found| access_line(found.as_str()))
    {
        return access;
    }
    let body = skip_prefixes(text);
    match unheaded_level(body) {
        Some((level, message)) => Kind::Unheaded { level, message },
        None => Kind::Other { body },
    }
}

/// A stats line or v0's prefix-cache line, and where in `text` it starts.
fn stats_or_prefix_cache(text: &str) -> Option<(usize, Kind<'static>)> {
    if text.contains("Avg prompt throughput: ") {
        let caps = ENGINE_STATS.captures(text)?;
        return Some((caps.get(0)?.start(), Kind::Stats(engine_stats(&caps)?)));
    }
    if text.contains("Prefix cache hit rate: GPU: ") {
        let caps = V0_PREFIX_CACHE.captures(text)?;
        let kind = Kind::V0PrefixCache { gpu_pct: number(&caps, "gpu")?, cpu_pct: number(&caps, "cpu")? };
        return Some((caps.get(0)?.start(), kind));
    }
    None
}

fn unheaded_level(body: &str) -> Option<(Level, &str)> {
    if let Some(caps) = LEVEL_AT_START.captures(body) {
        let level = Level::from_token(caps.name("level")?.as_str())?;
        return Some((level, body[caps.get(0)?.end()..].trim_start()));
    }
    let caps = UVICORN_LEVEL_PADDED.captures(body)?;
    let level = Level::from_token(caps.name("level")?.as_str().trim_end().trim_end_matches(':'))?;
    Some((level, caps.name("message")?.as_str()))
}

fn engine_stats(caps: &Captures<'_>) -> Option<EngineStats> {
    let rest = caps.name("rest").map_or("", |m| m.as_str());
    let kv = KV_CACHE_USAGE.captures(rest);
    let (waiting, swapped) = match caps.name("waiting") {
        Some(_) => (integer(caps, "waiting")?, None),
        None => (integer(caps, "pending")?, Some(integer(caps, "swapped")?)),
    };
    Some(EngineStats {
        engine: optional_integer(caps, "engine")?,
        engines_aggregated: optional_integer(caps, "aggregated")?,
        prompt_throughput: number(caps, "prompt")?,
        generation_throughput: number(caps, "gen")?,
        running: integer(caps, "running")?,
        waiting,
        swapped,
        kv_cache_usage_pct: kv.as_ref().and_then(|kv| number(kv, "pct")),
        kv_device: kv.as_ref().and_then(|kv| kv.name("dev")).map(|m| m.as_str().to_string()),
        prefix_cache_hit_rate_pct: V1_PREFIX_CACHE.captures(rest).and_then(|c| number(&c, "pct")),
        preemptions: PREEMPTIONS.captures(rest).and_then(|c| integer(&c, "n")),
        replica: None,
    })
}

/// Splits an access line located by [`ACCESS`]:
/// `INFO:     <client> - "<METHOD> <target> HTTP/<v>" <status> <reason>`.
fn access_line(found: &str) -> Option<Kind<'_>> {
    let rest = found.strip_prefix("INFO:")?.trim_start_matches([' ', '\t']);
    let (client, rest) = rest.split_once(" - \"")?;
    let (method, rest) = rest.split_once(' ')?;
    let (target, rest) = rest.split_once(" HTTP/")?;
    let status = rest.split_once("\" ")?.1.get(..3)?.parse().ok()?;
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    Some(Kind::Access { client, method, path, status })
}

/// A finite number; `[0-9.]+` still admits `1.2.3` and `.`.
fn number(caps: &Captures<'_>, name: &str) -> Option<f64> {
    caps.name(name)?.as_str().parse::<f64>().ok().filter(|v| v.is_finite())
}

fn integer<T: std::str::FromStr>(caps: &Captures<'_>, name: &str) -> Option<T> {
    caps.name(name)?.as_str().parse().ok()
}

/// `Some(None)` when the group did not take part, `None` when it did but does not fit.
fn optional_integer<T: std::str::FromStr>(caps: &Captures<'_>, name: &str) -> Option<Option<T>> {
    match caps.name(name) {
        None => Some(None),
        Some(m) => m.as_str().parse().ok().map(Some),
    }
}
