//! The line parser: text -> [`Exposition`]. Never panics, never fails the whole document.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::ControlFlow;
use std::sync::Arc;

use super::histogram::parse_le;
use super::{Exemplar, Exposition, Family, Format, Labels, LineError, MetricType, Sample, Timestamp, TimestampUnit};

/// Sample-name suffixes a typed family may own (see the module docs).
const SUFFIXES: [&str; 8] = ["_bucket", "_count", "_sum", "_created", "_total", "_gcount", "_gsum", "_info"];

/// Longest part of a line quoted back in a [`LineError`] message.
const EXCERPT_BYTES: usize = 80;

/// Parse a Prometheus text (0.0.4) or OpenMetrics 1.0 document, leniently.
pub fn parse(text: &str) -> Exposition {
    let mut builder = Builder::default();
    // About one sample per 100 bytes in real scrapes; spares the duplicate check most rehashing.
    builder.seen.reserve(text.len() / 100);
    let mut scratch = Vec::new();
    let mut last = (0usize, "");
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        last = (index + 1, line);
        if builder.line(index + 1, line, &mut scratch).is_break() {
            last = (0, "");
            break;
        }
    }
    // Every line of the format ends in a newline: a last sample without one was most likely
    // cut in transit (a proxy, a timeout), and its value may be a prefix of the real one.
    let (_, line) = last;
    let truncated = !line.trim().is_empty() && !line.trim_start().starts_with('#');
    Exposition { truncated, ..builder.finish() }
}

/// FxHash-style hasher: the keys are short strings from the scraped server, and SipHash would
/// dominate the profile.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        // splitmix64's finaliser: the multiplications above leave low bits depending on low input bits only.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type FastBuild = BuildHasherDefault<FastHasher>;

#[derive(Default)]
struct Builder {
    families: Vec<Family>,
    /// Per family: named by a `# TYPE`, `# HELP` or `# UNIT` line (not only created by a sample).
    declared: Vec<bool>,
    /// Per family: had a `# TYPE` line.
    typed: Vec<bool>,
    index: HashMap<String, usize, FastBuild>,
    /// Hashes of (family, sample name, labels) seen, to find duplicate series. A hash hit is confirmed
    /// by comparing with the family's samples, so a collision never drops a sample.
    seen: HashSet<u64, FastBuild>,
    errors: Vec<LineError>,
    /// The family the previous sample name resolved to (valid until a family is created or
    /// declared) and that name, shared by the samples that repeat it.
    last_family: Option<usize>,
    last_name: Option<Arc<str>>,
    openmetrics: bool,
    timestamps: bool,
}

impl Builder {
    /// `scratch` is reused for every line's label pairs.
    fn line<'a>(&mut self, line_no: usize, line: &'a str, scratch: &mut Pairs<'a>) -> ControlFlow<()> {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            return ControlFlow::Continue(());
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            return self.comment(line_no, line, comment);
        }
        match parse_sample(trimmed, scratch) {
            Ok(sample) => self.add_sample(line_no, line, sample),
            Err(message) => self.error(line_no, line, &message),
        }
        ControlFlow::Continue(())
    }

    fn error(&mut self, line_no: usize, line: &str, message: &str) {
        let mut end = line.len().min(EXCERPT_BYTES);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let ellipsis = if end < line.len() { "..." } else { "" };
        self.errors.push(LineError { line_no, message: format!("{message}: `{}{ellipsis}`", &line[..end]) });
    }

    /// `# HELP`, `# TYPE`, `# UNIT`, `# EOF` (a space after `#` is optional); anything else is a comment.
    fn comment(&mut self, line_no: usize, line: &str, comment: &str) -> ControlFlow<()> {
        let comment = comment.trim_start_matches([' ', '\t']);
        let end = comment.find([' ', '\t']).unwrap_or(comment.len());
        let (keyword, rest) = comment.split_at(end);
        let result = match keyword {
            "EOF" if rest.trim_matches([' ', '\t']).is_empty() => {
                self.openmetrics = true;
                return ControlFlow::Break(());
            }
            "HELP" => self.help(rest),
            "TYPE" => self.declare_type(rest),
            "UNIT" => self.unit(rest),
            _ => Ok(()),
        };
        if let Err(message) = result {
            self.error(line_no, line, &message);
        }
        ControlFlow::Continue(())
    }

    fn help(&mut self, rest: &str) -> Result<(), String> {
        let (name, text) = directive_name(rest, "HELP")?;
        let i = self.declare(name);
        if self.families[i].help.is_some() {
            return Err("second HELP line for this family, ignored".to_string());
        }
        self.families[i].help = Some(unescape(text.trim_start_matches([' ', '\t'])).into_owned());
        Ok(())
    }

    fn declare_type(&mut self, rest: &str) -> Result<(), String> {
        let (name, word) = directive_name(rest, "TYPE")?;
        let word = word.trim_matches([' ', '\t']);
        if word.is_empty() {
            return Err("TYPE line without a type".to_string());
        }
        let (kind, openmetrics_only) =
            MetricType::from_keyword(word).ok_or_else(|| format!("unknown metric type `{word}`"))?;
        self.openmetrics |= openmetrics_only;
        if let Some(&i) = self.index.get(name.as_ref()) {
            if self.typed[i] {
                return Err("second TYPE line for this family, ignored".to_string());
            }
            if !self.families[i].samples.is_empty() {
                return Err("TYPE line after samples of this family, ignored".to_string());
            }
        }
        let i = self.declare(name);
        self.families[i].kind = kind;
        self.typed[i] = true;
        Ok(())
    }

    fn unit(&mut self, rest: &str) -> Result<(), String> {
        let (name, unit) = directive_name(rest, "UNIT")?;
        self.openmetrics = true;
        let unit = unit.trim_matches([' ', '\t']);
        let i = self.declare(name);
        if !unit.is_empty() {
            self.families[i].unit = Some(unit.to_string());
        }
        Ok(())
    }

    /// The family named by a HELP/TYPE/UNIT line, created if new.
    fn declare(&mut self, name: Cow<'_, str>) -> usize {
        let i = match self.index.get(name.as_ref()) {
            Some(&i) => i,
            None => self.new_family(name.into_owned()),
        };
        self.declared[i] = true;
        self.last_family = None;
        i
    }

    fn new_family(&mut self, name: String) -> usize {
        let i = self.families.len();
        self.index.insert(name.clone(), i);
        self.families.push(Family { name, ..Family::default() });
        self.declared.push(false);
        self.typed.push(false);
        self.last_family = None;
        i
    }

    /// The family of a sample name, and the name as a shared string (consecutive samples with the
    /// same name, such as a histogram's buckets, share one allocation and skip the lookup).
    fn family_for(&mut self, name: &str) -> (usize, Arc<str>) {
        let shared = match &self.last_name {
            Some(last) if **last == *name => {
                if let Some(i) = self.last_family {
                    return (i, last.clone());
                }
                last.clone()
            }
            _ => Arc::from(name),
        };
        let i = self.resolve_family(name);
        self.last_family = Some(i);
        self.last_name = Some(shared.clone());
        (i, shared)
    }

    /// Which family a sample name belongs to (the rules in the module docs), created if needed.
    fn resolve_family(&mut self, name: &str) -> usize {
        let exact = self.index.get(name).copied();
        if let Some(i) = exact.filter(|&i| self.declared[i]) {
            return i;
        }
        for suffix in SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(&i) = self.index.get(base)
                && self.families[i].kind.owns_suffix(suffix)
            {
                return i;
            }
        }
        match exact {
            Some(i) => i,
            None => self.new_family(name.to_string()),
        }
    }

    fn add_sample(&mut self, line_no: usize, line: &str, parsed: ParsedSample<'_>) {
        let labels = parsed.labels;
        let (i, name) = self.family_for(&parsed.name);
        let mut hasher = FastHasher::default();
        (i, parsed.name.as_ref(), &labels).hash(&mut hasher);
        if !self.seen.insert(hasher.finish())
            && self.families[i].samples.iter().any(|s| s.name == name && s.labels == labels)
        {
            let flaw = format!("duplicate series {name}{labels:?} (line {line_no})");
            self.families[i].flaw.get_or_insert(flaw);
            return self.error(line_no, line, "duplicate series, first value kept");
        }
        if let Some(message) = self.bucket_goes_down(i, &name, &labels, parsed.value) {
            self.families[i].flaw.get_or_insert(format!("{message} (line {line_no})"));
            self.error(line_no, line, &format!("{message}, sample kept"));
        }
        let exemplar = match parsed.exemplar {
            Some(Ok(exemplar)) => {
                self.openmetrics = true;
                Some(exemplar)
            }
            Some(Err(message)) => {
                self.error(line_no, line, &format!("exemplar ignored ({message}), sample kept"));
                None
            }
            None => None,
        };
        self.timestamps |= parsed.timestamp.is_some();
        self.families[i].samples.push(Sample {
            name,
            labels,
            value: parsed.value,
            timestamp: parsed.timestamp.map(|value| Timestamp { value, unit: TimestampUnit::Milliseconds }),
            exemplar,
        });
    }

    /// A cumulative bucket count lower than the one of the smaller bucket printed just before it
    /// in the same series: the histogram is broken. Only neighbours are compared (every exporter
    /// prints a series' buckets together, in ascending order), which keeps this O(1) per line.
    fn bucket_goes_down(&self, family: usize, name: &str, labels: &Labels, count: f64) -> Option<String> {
        let f = &self.families[family];
        if !f.kind.is_histogram() || name.strip_prefix(f.name.as_str()) != Some("_bucket") {
            return None;
        }
        let le = parse_le(labels.get("le")?)?;
        let prev = f.samples.last().filter(|s| *s.name == *name && s.labels.eq_without(labels, "le"))?;
        let prev_le = parse_le(prev.labels.get("le")?)?;
        (prev_le < le && count < prev.value).then(|| {
            format!(
                "histogram {} bucket counts go down: le={prev_le} has {} but le={le} has {count}",
                f.name, prev.value
            )
        })
    }

    /// Histograms that lost their `# TYPE` line (federation, some proxies, a pasted copy): an
    /// untyped `x_bucket` family whose every sample has an `le` label becomes histogram `x`,
    /// with its untyped `x_sum`, `x_count` and `x_created` siblings, as Prometheus' own text
    /// parser reads such series by their suffixes. A declared family is never touched.
    fn type_histograms_by_suffix(&mut self) {
        let buckets: Vec<usize> = (0..self.families.len())
            .filter(|&i| !self.typed[i] && self.families[i].kind == MetricType::Untyped)
            .filter(|&i| self.families[i].name.ends_with("_bucket"))
            .filter(|&i| {
                let f = &self.families[i];
                !f.samples.is_empty() && f.samples.iter().all(|s| s.labels.get("le").is_some())
            })
            .collect();
        let mut absorbed = vec![false; self.families.len()];
        for i in buckets {
            let base = self.families[i].name.trim_end_matches("_bucket").to_owned();
            if self.index.contains_key(&base) {
                continue;
            }
            let mut samples = std::mem::take(&mut self.families[i].samples);
            for suffix in ["_sum", "_count", "_created"] {
                if let Some(&j) = self.index.get(&format!("{base}{suffix}"))
                    && !self.typed[j]
                    && self.families[j].kind == MetricType::Untyped
                {
                    samples.append(&mut self.families[j].samples);
                    absorbed[j] = true;
                }
            }
            let f = &mut self.families[i];
            f.name = base;
            f.kind = MetricType::Histogram;
            f.samples = samples;
        }
        let mut n = 0;
        self.families.retain(|_| {
            n += 1;
            !absorbed[n - 1]
        });
    }

    fn finish(mut self) -> Exposition {
        self.type_histograms_by_suffix();
        let format = if self.openmetrics { Format::OpenMetrics } else { Format::Classic };
        if format == Format::OpenMetrics && self.timestamps {
            for sample in self.families.iter_mut().flat_map(|f| f.samples.iter_mut()) {
                if let Some(ts) = &mut sample.timestamp {
                    ts.unit = TimestampUnit::Seconds;
                }
            }
        }
        Exposition { families: self.families, line_errors: self.errors, format, truncated: false }
    }
}

/// The metric name at the start of a HELP/TYPE/UNIT line's rest, and what follows it.
fn directive_name<'a>(rest: &'a str, keyword: &str) -> Result<(Cow<'a, str>, &'a str), String> {
    let mut c = Cursor::new(rest.trim_start_matches([' ', '\t']));
    let name = match c.peek() {
        None => return Err(format!("{keyword} line without a metric name")),
        Some(b'"') => c.quoted()?,
        Some(_) => Cow::Borrowed(c.metric_name().ok_or_else(|| format!("invalid metric name in {keyword} line"))?),
    };
    if name.is_empty() {
        return Err(format!("empty metric name in {keyword} line"));
    }
    if !matches!(c.peek(), None | Some(b' ' | b'\t')) {
        return Err(format!("invalid character after the metric name in {keyword} line"));
    }
    Ok((name, c.rest()))
}

/// Label pairs as parsed (borrowed unless unescaping was needed), before sorting.
type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

struct ParsedSample<'a> {
    name: Cow<'a, str>,
    labels: Labels,
    value: f64,
    timestamp: Option<f64>,
    exemplar: Option<Result<Exemplar, String>>,
}

/// `name{labels} value [timestamp] [# {labels} value [timestamp]]`, or `{"name", labels} ...`.
fn parse_sample<'a>(line: &'a str, pairs: &mut Pairs<'a>) -> Result<ParsedSample<'a>, String> {
    let mut c = Cursor::new(line);
    pairs.clear();
    let name = if c.peek() == Some(b'{') {
        c.bump();
        let mut name = None;
        c.label_set(pairs, Some(&mut name))?;
        name.ok_or("label set without a quoted metric name")?
    } else {
        let name = c.metric_name().ok_or("invalid metric name")?;
        if !matches!(c.peek(), None | Some(b' ' | b'\t' | b'{')) {
            return Err("invalid character in metric name".to_string());
        }
        c.skip_blanks();
        if c.peek() == Some(b'{') {
            c.bump();
            c.label_set(pairs, None)?;
        }
        Cow::Borrowed(name)
    };
    if name.is_empty() {
        return Err("empty metric name".to_string());
    }
    let labels = Labels::from_parsed(pairs).map_err(|name| format!("label `{name}` repeated"))?;
    c.skip_blanks();
    let value = c.value()?;
    c.skip_blanks();
    let mut timestamp = None;
    if !c.at_end() && c.peek() != Some(b'#') {
        timestamp = Some(c.timestamp()?);
        c.skip_blanks();
    }
    let exemplar = match c.peek() {
        None => None,
        Some(b'#') => Some(c.exemplar(pairs)),
        Some(_) => return Err("unexpected text after the timestamp".to_string()),
    };
    Ok(ParsedSample { name, labels, value, timestamp, exemplar })
}

/// Unescape `\\`, `\"` and `\n`; any other backslash sequence is kept as written.
fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// A byte cursor over one line. Every delimiter is ASCII, so slicing at its positions keeps
/// UTF-8 boundaries.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Bytes up to the next blank or the end.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while !matches!(self.peek(), None | Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    fn metric_name(&mut self) -> Option<&'a str> {
        let start = self.pos;
        match self.peek() {
            Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => self.pos += 1,
            _ => return None,
        }
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
            self.pos += 1;
        }
        Some(&self.text[start..self.pos])
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, leniently also with colons.
    fn label_name(&mut self) -> Option<&'a str> {
        self.metric_name()
    }

    /// A `"..."` string at the cursor, unescaped.
    fn quoted(&mut self) -> Result<Cow<'a, str>, String> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    self.pos = i + 1;
                    let raw = &self.text[start..i];
                    return Ok(if escaped { unescape(raw) } else { Cow::Borrowed(raw) });
                }
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        Err("unterminated quoted string".to_string())
    }

    /// After `{`: `name="value", ...}` (trailing comma and blanks allowed). With `metric_name`,
    /// one quoted string without `=` is the metric name (Prometheus 3 `{"name", l="v"}`).
    fn label_set(
        &mut self,
        labels: &mut Pairs<'a>,
        mut metric_name: Option<&mut Option<Cow<'a, str>>>,
    ) -> Result<(), String> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Err("unterminated label set".to_string()),
                Some(b'}') => {
                    self.bump();
                    return Ok(());
                }
                _ => {}
            }
            let quoted = self.peek() == Some(b'"');
            let name =
                if quoted { self.quoted()? } else { Cow::Borrowed(self.label_name().ok_or("invalid label name")?) };
            self.skip_blanks();
            if self.peek() == Some(b'=') {
                self.bump();
                self.skip_blanks();
                if self.peek() != Some(b'"') {
                    return Err(format!("value of label `{name}` is not quoted"));
                }
                let value = self.quoted()?;
                labels.push((name, value));
            } else {
                match metric_name.as_deref_mut() {
                    Some(slot) if quoted && slot.is_none() => *slot = Some(name),
                    _ => return Err(format!("expected `=` after label name `{name}`")),
                }
            }
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b'}') => {
                    self.bump();
                    return Ok(());
                }
                None => return Err("unterminated label set".to_string()),
                Some(_) => return Err("expected `,` or `}` in label set".to_string()),
            }
        }
    }

    /// A sample value: a float, `NaN`, `+Inf`, `-Inf`, `Inf`.
    fn value(&mut self) -> Result<f64, String> {
        let token = self.token();
        if token.is_empty() {
            return Err("missing value".to_string());
        }
        token.parse().map_err(|_| format!("invalid value `{token}`"))
    }

    /// Integer milliseconds (classic) or float seconds (OpenMetrics), kept as written.
    fn timestamp(&mut self) -> Result<f64, String> {
        let token = self.token();
        let parsed = match token.parse::<i64>() {
            Ok(int) => Some(int as f64),
            Err(_) => token.parse::<f64>().ok().filter(|v| v.is_finite()),
        };
        parsed.ok_or_else(|| format!("invalid timestamp `{token}`"))
    }

    /// ` # {labels} value [timestamp]`, the cursor on `#`.
    fn exemplar(&mut self, pairs: &mut Pairs<'a>) -> Result<Exemplar, String> {
        self.bump();
        self.skip_blanks();
        if self.peek() != Some(b'{') {
            return Err("expected `{` after `#`".to_string());
        }
        self.bump();
        pairs.clear();
        self.label_set(pairs, None)?;
        let labels = Labels::from_parsed(pairs).map_err(|name| format!("label `{name}` repeated"))?;
        self.skip_blanks();
        let value = self.value()?;
        self.skip_blanks();
        let timestamp = if self.at_end() { None } else { Some(self.timestamp()?) };
        self.skip_blanks();
        if !self.at_end() {
            return Err("unexpected text after the exemplar".to_string());
        }
        Ok(Exemplar { labels, value, timestamp })
    }
}
