//! Turning the bytes of `GET /containers/{id}/logs?timestamps=1` into lines (pure).
//!
//! What the engine sends (observed on Docker 20.10, API 1.41):
//! - Non-TTY containers: 8-byte-header frames, one frame per log *message*;
//!   bollard hands us each frame whole as `StdOut` / `StdErr`. Every message
//!   starts with its own `RFC3339Nano ` prefix (fixed 9 fraction digits, `Z`).
//! - A line longer than 16 KiB is stored as several *partial* messages of
//!   16384 bytes each; each part arrives as its own frame, again with its own
//!   timestamp prefix, and only the last part ends in `\n`. Parts of one
//!   stream are consecutive in that stream but frames of the other stream may
//!   come between them, so each stream has its own pending line.
//! - TTY containers: one raw stream (`Console`), lines end in `\r\n`, and the
//!   partial parts of a long line are simply concatenated, so the timestamp
//!   prefix of every part after the first sits inside the line at each
//!   16384-byte boundary of its text; it is removed there (and only there).
//!   bollard splits `Console` chunks at `\n`, but nothing here relies on that.

use jiff::Timestamp;

use super::{Stream, TimedLine};

/// Size of Docker's partial log messages (the log copier's buffer).
pub(crate) const PARTIAL_LEN: usize = 16 * 1024;
/// Longest line kept; the rest of a longer line is dropped and counted.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// The longest timestamp prefix we accept (`2026-11-23T07:25:43.956677287+05:30 `).
const MAX_PREFIX: usize = 40;

/// Parses a leading `TIMESTAMP ` prefix; returns the time and the prefix length
/// including the space.
pub(crate) fn parse_prefix(bytes: &[u8]) -> Option<(Timestamp, usize)> {
    if !bytes.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let window = &bytes[..bytes.len().min(MAX_PREFIX)];
    let space = window.iter().position(|&b| b == b' ')?;
    let text = std::str::from_utf8(&window[..space]).ok()?;
    let ts = text.parse::<Timestamp>().ok()?;
    Some((ts, space + 1))
}

#[derive(Debug)]
struct Pending {
    ts: Option<Timestamp>,
    buf: Vec<u8>,
    truncated: bool,
}

/// Reassembles lines from log frames; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    stdout: Option<Pending>,
    stderr: Option<Pending>,
    /// TTY bytes after the last `\n`.
    console: Vec<u8>,
    /// Dropping the rest of an over-long TTY line up to its `\n`.
    console_skipping: bool,
    /// Lines cut at `MAX_LINE`.
    pub truncated: u64,
    /// Lines or parts that carried no timestamp prefix.
    pub untimed: u64,
}

impl Assembler {
    /// One multiplexed frame (one log message, or several whole lines).
    pub fn frame(&mut self, stream: Stream, payload: &[u8], emit: &mut impl FnMut(TimedLine)) {
        let mut rest = payload;
        while !rest.is_empty() {
            let (ts, start) = match parse_prefix(rest) {
                Some((ts, len)) => (Some(ts), len),
                None => {
                    self.untimed += 1;
                    (None, 0)
                }
            };
            let body = &rest[start..];
            match body.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.append(stream, ts, &body[..nl]);
                    self.complete(stream, emit);
                    rest = &body[nl + 1..];
                }
                None => {
                    self.append(stream, ts, body);
                    rest = &[];
                }
            }
        }
    }

    /// Bytes of a TTY stream, cut anywhere.
    pub fn console(&mut self, chunk: &[u8], emit: &mut impl FnMut(TimedLine)) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if self.console_skipping {
                self.console_skipping = false;
            } else if self.console.is_empty() {
                self.console_line(&rest[..nl], emit);
            } else {
                self.console.extend_from_slice(&rest[..nl]);
                let raw = std::mem::take(&mut self.console);
                self.console_line(&raw, emit);
            }
            rest = &rest[nl + 1..];
        }
        if self.console_skipping {
            return;
        }
        self.console.extend_from_slice(rest);
        // A line with its partial prefixes can be a little longer than MAX_LINE.
        if self.console.len() > MAX_LINE + MAX_LINE / PARTIAL_LEN * MAX_PREFIX + MAX_PREFIX {
            let raw = std::mem::take(&mut self.console);
            self.console_line(&raw, emit);
            self.console_skipping = true;
        }
    }

    /// End of the response: whatever is pending becomes a line.
    pub fn finish(&mut self, emit: &mut impl FnMut(TimedLine)) {
        self.complete(Stream::Stdout, emit);
        self.complete(Stream::Stderr, emit);
        if !self.console.is_empty() && !self.console_skipping {
            let raw = std::mem::take(&mut self.console);
            self.console_line(&raw, emit);
        }
        self.console.clear();
        self.console_skipping = false;
    }

    fn slot(&mut self, stream: Stream) -> &mut Option<Pending> {
        match stream {
            Stream::Stderr => &mut self.stderr,
            Stream::Stdout | Stream::Console => &mut self.stdout,
        }
    }

    fn append(&mut self, stream: Stream, ts: Option<Timestamp>, text: &[u8]) {
        let slot = self.slot(stream);
        let pending = slot.get_or_insert_with(|| Pending { ts, buf: Vec::new(), truncated: false });
        if pending.ts.is_none() {
            pending.ts = ts;
        }
        let room = MAX_LINE.saturating_sub(pending.buf.len());
        if text.len() > room {
            pending.truncated = true;
        }
        pending.buf.extend_from_slice(&text[..text.len().min(room)]);
    }

    fn complete(&mut self, stream: Stream, emit: &mut impl FnMut(TimedLine)) {
        if let Some(p) = self.slot(stream).take() {
            if p.truncated {
                self.truncated += 1;
            }
            emit(TimedLine { ts: p.ts, stream, text: text_of(&p.buf) });
        }
    }

    /// One raw TTY line (without its `\n`): prefix, then partial prefixes removed.
    fn console_line(&mut self, raw: &[u8], emit: &mut impl FnMut(TimedLine)) {
        let (ts, start) = match parse_prefix(raw) {
            Some((ts, len)) => (Some(ts), len),
            None => {
                self.untimed += 1;
                (None, 0)
            }
        };
        let mut rest = &raw[start..];
        let mut text: Vec<u8> = Vec::with_capacity(rest.len().min(MAX_LINE));
        while rest.len() > PARTIAL_LEN {
            match parse_prefix(&rest[PARTIAL_LEN..]) {
                Some((_, len)) => {
                    text.extend_from_slice(&rest[..PARTIAL_LEN]);
                    rest = &rest[PARTIAL_LEN + len..];
                }
                None => break,
            }
        }
        text.extend_from_slice(rest);
        if text.len() > MAX_LINE {
            text.truncate(MAX_LINE);
            self.truncated += 1;
        }
        emit(TimedLine { ts, stream: Stream::Console, text: text_of(&text) });
    }
}

/// Line text without the trailing `\r` (TTY lines end in `\r\n`).
fn text_of(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-11-23T07:25:43.956677287Z";
    const T2: &str = "2026-11-23T07:25:43.956809443Z";

    fn ts(s: &str) -> Option<Timestamp> {
        s.parse().ok()
    }

    fn collect(f: impl FnOnce(&mut Assembler, &mut dyn FnMut(TimedLine))) -> (Vec<TimedLine>, Assembler) {
        let mut a = Assembler::default();
        let mut out = Vec::new();
        f(&mut a, &mut |l| out.push(l));
        (out, a)
    }

    #[test]
    fn prefix_is_parsed_and_measured() {
        let (t, len) = parse_prefix(format!("{T1} hello").as_bytes()).unwrap_or_else(|| panic!("no prefix"));
        assert_eq!(Some(t), ts(T1));
        assert_eq!(len, 31);
        assert!(parse_prefix(b"hello world").is_none());
        assert!(parse_prefix(b"2026 is not a time").is_none());
        assert!(parse_prefix(b"").is_none());
        let (_, len) = parse_prefix(b"2026-11-23T07:25:43+05:30 x").unwrap_or_else(|| panic!("no prefix"));
        assert_eq!(len, 26);
    }

    #[test]
    fn frames_give_lines_per_stream_without_prefix_and_cr() {
        let (lines, _) = collect(|a, emit| {
            a.frame(Stream::Stdout, format!("{T1} INFO hello\r\n").as_bytes(), &mut |l| emit(l));
            a.frame(Stream::Stderr, format!("{T2} boom\n").as_bytes(), &mut |l| emit(l));
        });
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].stream, lines[0].text.as_str(), lines[0].ts), (Stream::Stdout, "INFO hello", ts(T1)));
        assert_eq!((lines[1].stream, lines[1].text.as_str(), lines[1].ts), (Stream::Stderr, "boom", ts(T2)));
    }

    #[test]
    fn partial_messages_join_per_stream_even_when_interleaved() {
        let part1 = "a".repeat(PARTIAL_LEN);
        let (lines, _) = collect(|a, emit| {
            a.frame(Stream::Stdout, format!("{T1} {part1}").as_bytes(), &mut |l| emit(l));
            a.frame(Stream::Stderr, format!("{T1} other\n").as_bytes(), &mut |l| emit(l));
            a.frame(Stream::Stdout, format!("{T2} end\n").as_bytes(), &mut |l| emit(l));
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "other");
        assert_eq!(lines[1].text, format!("{part1}end"));
        assert_eq!(lines[1].ts, ts(T1), "a joined line keeps its first part's time");
    }

    #[test]
    fn a_frame_with_several_lines_and_an_unfinished_one_flushed_at_the_end() {
        let (lines, _) = collect(|a, emit| {
            a.frame(Stream::Stdout, format!("{T1} one\n{T2} two\n{T2} three").as_bytes(), &mut |l| emit(l));
            a.finish(&mut |l| emit(l));
        });
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
    }

    #[test]
    fn console_lines_split_anywhere_and_partial_prefixes_removed() {
        let long = "x".repeat(PARTIAL_LEN * 2 + 100);
        let raw = format!(
            "{T1} first\r\n{T1} {}{T1} {}{T2} {}\r\n{T2} last\r\n{T2} no newline",
            &long[..PARTIAL_LEN],
            &long[PARTIAL_LEN..2 * PARTIAL_LEN],
            &long[2 * PARTIAL_LEN..]
        );
        for cut in [1usize, 7, 4096, 100_000] {
            let (lines, _) = collect(|a, emit| {
                for chunk in raw.as_bytes().chunks(cut) {
                    a.console(chunk, &mut |l| emit(l));
                }
                a.finish(&mut |l| emit(l));
            });
            let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["first", long.as_str(), "last", "no newline"], "cut {cut}");
            assert!(lines.iter().all(|l| l.stream == Stream::Console));
            assert_eq!(lines[1].ts, ts(T1));
        }
    }

    #[test]
    fn console_text_that_merely_looks_like_a_timestamp_is_kept() {
        let raw = format!("{T1} at {T2} something happened\r\n");
        let (lines, _) = collect(|a, emit| a.console(raw.as_bytes(), &mut |l| emit(l)));
        assert_eq!(lines[0].text, format!("at {T2} something happened"));
    }

    #[test]
    fn over_long_lines_are_truncated_and_counted() {
        let big = "y".repeat(MAX_LINE + 10);
        let (lines, a) = collect(|a, emit| {
            a.frame(Stream::Stdout, format!("{T1} {big}\n").as_bytes(), &mut |l| emit(l));
            let raw = format!("{T1} {big}{big}\n{T2} after\n");
            for chunk in raw.as_bytes().chunks(65536) {
                a.console(chunk, &mut |l| emit(l));
            }
            a.finish(&mut |l| emit(l));
        });
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].text.len(), MAX_LINE);
        assert_eq!(lines[1].text.len(), MAX_LINE);
        assert_eq!(lines[2].text, "after");
        assert_eq!(a.truncated, 2);
    }

    #[test]
    fn lines_without_prefix_are_kept_untimed() {
        let (lines, a) = collect(|a, emit| a.frame(Stream::Stdout, b"no prefix\n", &mut |l| emit(l)));
        assert_eq!(lines[0].ts, None);
        assert_eq!(lines[0].text, "no prefix");
        assert_eq!(a.untimed, 1);
    }

    #[test]
    fn utf8_split_across_parts_survives() {
        let mut part1 = "a".repeat(PARTIAL_LEN - 1).into_bytes();
        let euro = "€".as_bytes();
        part1.push(euro[0]);
        let mut f1 = format!("{T1} ").into_bytes();
        f1.extend_from_slice(&part1);
        let mut f2 = format!("{T1} ").into_bytes();
        f2.extend_from_slice(&euro[1..]);
        f2.push(b'\n');
        let (lines, _) = collect(|a, emit| {
            a.frame(Stream::Stdout, &f1, &mut |l| emit(l));
            a.frame(Stream::Stdout, &f2, &mut |l| emit(l));
        });
        assert!(lines[0].text.ends_with("a€"));
    }
}
