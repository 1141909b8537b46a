//! [`Exposition`] -> classic text.

use std::fmt::Write as _;

use super::{Exposition, Labels, Sample, TimestampUnit};

pub(super) fn render(exposition: &Exposition) -> String {
    let mut out = String::with_capacity(exposition.sample_count() * 64);
    for family in &exposition.families {
        if let Some(help) = &family.help {
            out.push_str("# HELP ");
            write_directive_name(&mut out, &family.name);
            out.push(' ');
            for ch in help.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    _ => out.push(ch),
                }
            }
            out.push('\n');
        }
        out.push_str("# TYPE ");
        write_directive_name(&mut out, &family.name);
        out.push(' ');
        out.push_str(family.kind.as_str());
        out.push('\n');
        for sample in &family.samples {
            write_sample(&mut out, sample);
        }
    }
    out
}

fn write_sample(out: &mut String, sample: &Sample) {
    if is_legacy_name(&sample.name, true) {
        out.push_str(&sample.name);
        write_label_set(out, None, &sample.labels);
    } else {
        write_label_set(out, Some(&sample.name), &sample.labels);
    }
    out.push(' ');
    write_value(out, sample.value);
    let millis = sample.timestamp.map(|ts| match ts.unit {
        TimestampUnit::Milliseconds => ts.value,
        TimestampUnit::Seconds => (ts.value * 1000.0).round(),
    });
    // A timestamp that overflows when converted to milliseconds is dropped rather than written as `+Inf`.
    if let Some(millis) = millis.filter(|ms| ms.is_finite()) {
        out.push(' ');
        if millis.fract() == 0.0 && millis.abs() < 9.0e15 {
            let _ = write!(out, "{}", millis as i64);
        } else {
            write_value(out, millis);
        }
    }
    out.push('\n');
}

/// `{a="x",b="y"}`, or `{"metric.name",a="x"}` with a quoted metric name; nothing for an empty set
/// without a name.
pub(super) fn write_label_set(out: &mut String, quoted_name: Option<&str>, labels: &Labels) {
    if quoted_name.is_none() && labels.is_empty() {
        return;
    }
    out.push('{');
    let mut first = true;
    if let Some(name) = quoted_name {
        write_quoted(out, name);
        first = false;
    }
    for (name, value) in labels.iter() {
        if !first {
            out.push(',');
        }
        first = false;
        if is_legacy_name(name, false) {
            out.push_str(name);
        } else {
            write_quoted(out, name);
        }
        out.push('=');
        write_quoted(out, value);
    }
    out.push('}');
}

fn write_directive_name(out: &mut String, name: &str) {
    if is_legacy_name(name, true) {
        out.push_str(name);
    } else {
        write_quoted(out, name);
    }
}

/// `"..."` escaping `\`, `"` and newline.
fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    if !text.contains(['\\', '"', '\n']) {
        out.push_str(text);
    } else {
        for ch in text.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                _ => out.push(ch),
            }
        }
    }
    out.push('"');
}

/// Shortest representation that parses back to the same `f64`; `NaN`, `+Inf`, `-Inf`.
fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`; label names the same without colons.
fn is_legacy_name(name: &str, colons: bool) -> bool {
    let ok = |b: u8| b.is_ascii_alphabetic() || b == b'_' || (colons && b == b':');
    let mut bytes = name.bytes();
    bytes.next().is_some_and(ok) && bytes.all(|b| ok(b) || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names() {
        assert!(is_legacy_name("vllm:prompt_tokens_total", true));
        assert!(!is_legacy_name("vllm:x", false));
        assert!(!is_legacy_name("1abc", true));
        assert!(!is_legacy_name("", true));
        assert!(!is_legacy_name("a.b", true));
        assert!(is_legacy_name("_a9", false));
    }

    #[test]
    fn values() {
        let mut out = String::new();
        for v in [1.0, 0.1, 1e-7, 1.7954155149698982e9, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            write_value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "1.0 0.1 1e-7 1795415514.9698982 -0.0 NaN +Inf -Inf ");
    }
}
