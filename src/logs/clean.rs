//! Undoing what terminals, Docker and vLLM's stdout wrapper add around a record.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// A line ready for matching, and whether it ended with `\r` (vLLM's `NewLineFormatter` joins
/// the lines of one record with `\r\n`, so a trailing `\r` means "the record goes on").
pub(super) struct CleanLine<'a> {
    pub text: Cow<'a, str>,
    pub ends_with_cr: bool,
}

/// Removes trailing `\r`/`\n`, everything up to the last inner `\r` (progress bars redraw with
/// `\r`; a terminal shows only what follows it) and colour codes.
pub(super) fn clean(raw: &str) -> CleanLine<'_> {
    let trimmed = raw.trim_end_matches('\n');
    let without_cr = trimmed.trim_end_matches('\r');
    let ends_with_cr = without_cr.len() < trimmed.len();
    let visible = match without_cr.rfind('\r') {
        Some(i) => &without_cr[i + 1..],
        None => without_cr,
    };
    CleanLine { text: strip_ansi(visible), ends_with_cr }
}

/// Removes ANSI escape sequences (`\x1b[1;36m`), the caret form pasted logs show (`^[[1;36m`)
/// and the ESC-less SGR remnant (`[1;36m`, `[0;0m`) left when the ESC byte was lost.
///
/// The remnant rule can also eat text such as `[5m` from a message; that only shortens a
/// message and is the price of reading pasted logs.
pub(super) fn strip_ansi(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == 0x1b || b == b'[') {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    let mut copied = 0; // bytes of `text` already handled
    let mut i = 0;
    while i < bytes.len() {
        let skip = match bytes[i] {
            0x1b => Some(escape_len(&bytes[i..])),
            b'^' if bytes.get(i + 1) == Some(&b'[') && bytes.get(i + 2) == Some(&b'[') => {
                csi_len(&bytes[i + 2..]).map(|n| 2 + n)
            }
            b'[' => sgr_remnant_len(&bytes[i..]),
            _ => None,
        };
        match skip {
            Some(n) => {
                // `i` and `i + n` sit on ASCII bytes, hence on char boundaries.
                out.push_str(&text[copied..i]);
                i += n;
                copied = i;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Length of the escape sequence starting with ESC: a CSI sequence, or ESC plus one byte.
fn escape_len(bytes: &[u8]) -> usize {
    match bytes.get(1) {
        Some(b'[') => csi_len(&bytes[1..]).map_or(1, |n| n + 1),
        Some(b) if b.is_ascii() && !b.is_ascii_control() => 2,
        _ => 1,
    }
}

/// `[` parameters (0x30-0x3F), intermediates (0x20-0x2F), one final byte (0x40-0x7E).
fn csi_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < bytes.len() && i < 32 {
        match bytes[i] {
            // Parameter and intermediate bytes.
            0x20..=0x3f => i += 1,
            0x40..=0x7e => return Some(i + 1),
            _ => return None,
        }
    }
    None
}

/// `[1;36m`, `[0m`: digits and semicolons, at least one digit, then `m`.
fn sgr_remnant_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < bytes.len() && i < 16 {
        match bytes[i] {
            b'0'..=b'9' | b';' => i += 1,
            b'm' if i > 1 && bytes[1].is_ascii_digit() => return Some(i + 1),
            _ => return None,
        }
    }
    None
}

/// docker compose `service-1  | `.
static COMPOSE_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62} *\| ").expect("valid regex"));
/// One or more `(APIServer pid=1) `, `(VllmWorker rank=0 pid=7) `, `(EngineCore_DP0 pid=2) `.
static PROCESS_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:\([A-Za-z][^()]{0,80}? pid=[0-9]+\) ?)+").expect("valid regex"));

/// The text after a docker timestamp and a compose prefix (`docker logs -t` puts the stamp
/// first, `docker compose logs -t` the service name), then process prefixes.
/// Exactly one space after a process prefix is removed: the wrapper adds one, and the
/// indentation of a traceback line after it is meaningful.
pub(super) fn skip_prefixes(text: &str) -> &str {
    let mut rest = split_docker_timestamp(text).1;
    if let Some(m) = COMPOSE_PREFIX.find(rest) {
        rest = split_docker_timestamp(&rest[m.end()..]).1;
    }
    if let Some(m) = PROCESS_PREFIX.find(rest) {
        rest = &rest[m.end()..];
    }
    rest
}

/// `"2026-11-23T07:01:02.123456789Z rest"` -> `(Some(ts), "rest")`; anything else -> `(None, line)`.
/// Docker's `--timestamps` prefix is RFC 3339 with nanoseconds (trailing zeros trimmed) and one space.
pub fn split_docker_timestamp(line: &str) -> (Option<jiff::Timestamp>, &str) {
    let bytes = line.as_bytes();
    let looks_like_date = bytes.len() >= 20
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T';
    if !looks_like_date {
        return (None, line);
    }
    let end = line.find(' ').unwrap_or(line.len());
    if end > 40 {
        return (None, line);
    }
    match line[..end].parse::<jiff::Timestamp>() {
        Ok(ts) => (Some(ts), line.get(end + 1..).unwrap_or("")),
        Err(_) => (None, line),
    }
}
