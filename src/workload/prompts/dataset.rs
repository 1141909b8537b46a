//! Dataset files: JSONL of `{"prompt": ...}` objects, or ShareGPT records
//! (`{"conversations": [{"from": "human", "value": ...}, ...]}`) as a JSON array
//! or as JSONL. Bad records are skipped with their line number and the reason;
//! only a file whose structure is broken (an unterminated array) is an error.
//!
//! Layout and kind are told apart independently: a file whose first non-blank
//! character is `[` is a JSON array, anything else is JSONL; with `auto`, the
//! records are ShareGPT when the first record that is a JSON object has a
//! "conversations" field, else prompt objects. So a ShareGPT array, ShareGPT
//! JSONL, prompt JSONL and an array of prompt objects are all understood.

use serde_json::{Map, Value};

use super::{DatasetFormat, SkippedLine};

pub(super) struct Parsed {
    pub prompts: Vec<String>,
    pub skipped: Vec<SkippedLine>,
    /// The record kind used (never `Auto`).
    pub format: DatasetFormat,
}

/// One record: its 1-based starting line and its bytes (empty for an empty array element).
struct Record<'a> {
    line: usize,
    bytes: &'a [u8],
}

/// Parse a whole dataset file. `Err((line, reason))` only for a broken structure.
pub(super) fn parse(bytes: &[u8], format: DatasetFormat) -> Result<Parsed, (usize, String)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let records = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => array_records(bytes)?,
        _ => line_records(bytes),
    };
    let format = match format {
        DatasetFormat::Auto => detect(&records),
        f => f,
    };
    let mut prompts = Vec::new();
    let mut skipped = Vec::new();
    for record in &records {
        match extract(record.bytes, format) {
            Ok(prompt) => prompts.push(prompt),
            Err(reason) => skipped.push(SkippedLine { line: record.line, reason }),
        }
    }
    Ok(Parsed { prompts, skipped, format })
}

/// ShareGPT when the first record that is an object has "conversations", else prompt objects.
fn detect(records: &[Record<'_>]) -> DatasetFormat {
    for record in records {
        if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(record.bytes) {
            return if obj.contains_key("conversations") { DatasetFormat::Sharegpt } else { DatasetFormat::Jsonl };
        }
    }
    DatasetFormat::Jsonl
}

/// Non-blank lines.
fn line_records(bytes: &[u8]) -> Vec<Record<'_>> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.trim_ascii();
            (!line.is_empty()).then_some(Record { line: i + 1, bytes: line })
        })
        .collect()
}

/// The elements of a top-level JSON array, found by tracking strings and nesting,
/// each with the line it starts on. The elements themselves are parsed later.
fn array_records(bytes: &[u8]) -> Result<Vec<Record<'_>>, (usize, String)> {
    let mut line = 1;
    let mut pos = 0;
    while pos < bytes.len() && bytes[pos] != b'[' {
        if bytes[pos] == b'\n' {
            line += 1;
        }
        pos += 1;
    }
    let open_line = line;
    pos += 1;
    let mut records = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut start: Option<(usize, usize)> = None;
    let mut saw_comma = false;
    while pos < bytes.len() {
        let b = bytes[pos];
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => {
                    in_string = true;
                    start.get_or_insert((pos, line));
                }
                b'{' | b'[' => {
                    depth += 1;
                    start.get_or_insert((pos, line));
                }
                b'}' | b']' if depth > 0 => depth -= 1,
                b',' | b']' if depth == 0 => {
                    match start.take() {
                        Some((s, l)) => records.push(Record { line: l, bytes: bytes[s..pos].trim_ascii() }),
                        // `[]` is an empty array; `[,` or `,,` or `,]` is an empty element.
                        None if b == b',' || saw_comma => records.push(Record { line, bytes: &[] }),
                        None => {}
                    }
                    if b == b']' {
                        let rest = &bytes[pos + 1..];
                        if let Some(extra) = rest.iter().position(|c| !c.is_ascii_whitespace()) {
                            let extra_line = line + rest[..extra].iter().filter(|&&c| c == b'\n').count();
                            return Err((extra_line, "unexpected content after the closing ']' of the array".into()));
                        }
                        return Ok(records);
                    }
                    saw_comma = true;
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => {
                    start.get_or_insert((pos, line));
                }
            }
        }
        pos += 1;
    }
    Err((open_line, "the JSON array opened here is never closed (truncated file?)".into()))
}

/// The prompt of one record, or why there is none.
fn extract(bytes: &[u8], format: DatasetFormat) -> Result<String, String> {
    if bytes.is_empty() {
        return Err("empty array element".into());
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {}", json_reason(&e)))?;
    let Value::Object(obj) = value else {
        return Err("not a JSON object".into());
    };
    let prompt = match format {
        DatasetFormat::Sharegpt => sharegpt_prompt(&obj)?,
        DatasetFormat::Jsonl | DatasetFormat::Auto => plain_prompt(obj)?,
    };
    if prompt.trim().is_empty() {
        return Err("empty prompt".into());
    }
    Ok(prompt)
}

/// `{"prompt": "..."}` or `{"text": "..."}`.
fn plain_prompt(mut obj: Map<String, Value>) -> Result<String, String> {
    let (key, value) = match obj.remove("prompt") {
        Some(v) => ("prompt", v),
        None => match obj.remove("text") {
            Some(v) => ("text", v),
            None => return Err("no \"prompt\" or \"text\" field".into()),
        },
    };
    match value {
        Value::String(s) => Ok(s),
        _ => Err(format!("\"{key}\" is not a string")),
    }
}

/// The first human turn of "conversations" (as `vllm bench serve` takes it).
/// Turns are `{"from": "human", "value": ...}`; `{"role": "user", "content": ...}` is accepted too.
fn sharegpt_prompt(obj: &Map<String, Value>) -> Result<String, String> {
    let turns = match obj.get("conversations") {
        Some(Value::Array(turns)) => turns,
        Some(_) => return Err("\"conversations\" is not an array".into()),
        None => return Err("no \"conversations\" field".into()),
    };
    let human = turns.iter().find(|turn| {
        let speaker = turn.get("from").or_else(|| turn.get("role")).and_then(Value::as_str);
        speaker.is_some_and(|s| s.eq_ignore_ascii_case("human") || s.eq_ignore_ascii_case("user"))
    });
    let Some(human) = human else {
        return Err("no human turn in \"conversations\"".into());
    };
    match human.get("value").or_else(|| human.get("content")) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err("the first human turn has no string \"value\"".into()),
    }
}

/// serde_json's message without its "at line L column C" (meaningless within one record), plus the column.
fn json_reason(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    if e.line() <= 1 && e.column() > 0 { format!("{msg} (column {})", e.column()) } else { msg }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str, format: DatasetFormat) -> Parsed {
        match parse(text.as_bytes(), format) {
            Ok(p) => p,
            Err((line, reason)) => panic!("line {line}: {reason}"),
        }
    }

    fn lines(p: &Parsed) -> Vec<usize> {
        p.skipped.iter().map(|s| s.line).collect()
    }

    #[test]
    fn array_elements_keep_their_line_numbers() {
        let text = "\n[\n  {\"conversations\": [{\"from\": \"human\", \"value\": \"a, [b] {c} \\\"d\\\"\"}]},\n  \
                    {\"conversations\": []},\n  42,\n  {\"conversations\":\n    [{\"from\": \"human\", \"value\": \"two\"}]}\n]\n";
        let p = ok(text, DatasetFormat::Auto);
        assert_eq!(p.format, DatasetFormat::Sharegpt);
        assert_eq!(p.prompts, vec!["a, [b] {c} \"d\"".to_string(), "two".to_string()]);
        assert_eq!(lines(&p), vec![4, 5]);
        assert_eq!(p.skipped[0].reason, "no human turn in \"conversations\"");
        assert_eq!(p.skipped[1].reason, "not a JSON object");
    }

    #[test]
    fn empty_elements_and_empty_arrays() {
        let p = ok("[]", DatasetFormat::Auto);
        assert!(p.prompts.is_empty() && p.skipped.is_empty());
        let p = ok("[{\"prompt\": \"x\"},\n,\n{\"prompt\": \"y\"},\n]", DatasetFormat::Auto);
        assert_eq!(p.format, DatasetFormat::Jsonl);
        assert_eq!(p.prompts, vec!["x".to_string(), "y".to_string()]);
        assert_eq!(lines(&p), vec![2, 4]);
    }

    #[test]
    fn broken_array_structure_is_an_error() {
        assert!(matches!(parse(b"\n[{\"prompt\": \"x\"},", DatasetFormat::Auto), Err((2, _))));
        assert!(matches!(parse(b"[{\"prompt\": \"x\"}]\n\nmore", DatasetFormat::Auto), Err((3, _))));
        assert!(matches!(parse(b"[\"unterminated string]", DatasetFormat::Auto), Err((1, _))));
    }

    #[test]
    fn jsonl_reasons() {
        let text = "{\"prompt\": 5}\n{\"text\": \"t\"}\n{\"other\": 1}\n{\"prompt\": \"  \"}\n{nope\n\r\n{\"prompt\": \"p\"}\r\n";
        let p = ok(text, DatasetFormat::Jsonl);
        assert_eq!(p.prompts, vec!["t".to_string(), "p".to_string()]);
        let reasons: Vec<_> = p.skipped.iter().map(|s| (s.line, s.reason.as_str())).collect();
        assert_eq!(reasons[0], (1, "\"prompt\" is not a string"));
        assert_eq!(reasons[1], (3, "no \"prompt\" or \"text\" field"));
        assert_eq!(reasons[2], (4, "empty prompt"));
        assert_eq!(reasons[3].0, 5);
        assert!(reasons[3].1.starts_with("not valid JSON: key must be a string (column 2)"), "{}", reasons[3].1);
        assert_eq!(reasons.len(), 4);
    }

    #[test]
    fn sharegpt_variants() {
        let text = concat!(
            "{\"conversations\": [{\"from\": \"gpt\", \"value\": \"hi\"}, {\"from\": \"human\", \"value\": \"q1\"}]}\n",
            "{\"conversations\": [{\"role\": \"user\", \"content\": \"q2\"}]}\n",
            "{\"conversations\": \"no\"}\n",
            "{\"conversations\": [{\"from\": \"human\", \"value\": 3}]}\n",
            "{\"prompt\": \"not sharegpt\"}\n",
        );
        let p = ok(text, DatasetFormat::Auto);
        assert_eq!(p.format, DatasetFormat::Sharegpt);
        assert_eq!(p.prompts, vec!["q1".to_string(), "q2".to_string()]);
        assert_eq!(lines(&p), vec![3, 4, 5]);
        assert_eq!(p.skipped[2].reason, "no \"conversations\" field");
    }

    #[test]
    fn explicit_format_overrides_detection() {
        let text = "{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}], \"prompt\": \"p\"}\n";
        assert_eq!(ok(text, DatasetFormat::Jsonl).prompts, vec!["p".to_string()]);
        assert_eq!(ok(text, DatasetFormat::Sharegpt).prompts, vec!["q".to_string()]);
        assert_eq!(ok(text, DatasetFormat::Auto).prompts, vec!["q".to_string()]);
    }

    #[test]
    fn bom_and_invalid_utf8() {
        let mut bytes = b"\xEF\xBB\xBF{\"prompt\": \"a\"}\n".to_vec();
        bytes.extend_from_slice(b"{\"prompt\": \"\xff\xfe\"}\n");
        let p = match parse(&bytes, DatasetFormat::Auto) {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(p.prompts, vec!["a".to_string()]);
        assert_eq!(lines(&p), vec![2]);
        assert!(p.skipped[0].reason.starts_with("not valid JSON"));
    }
}
