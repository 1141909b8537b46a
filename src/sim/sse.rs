//! SSE chunk text in vLLM 0.32's exact field layout, from per-request
//! templates (see `tests/golden/vllm-0.32-chat-stream.txt`). Pure.

use super::metrics::FinishReason;
use super::request::Endpoint;

/// Writes `s` as a JSON string literal straight into the frame buffer.
fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => buf.extend_from_slice(b"\\\""),
            '\\' => buf.extend_from_slice(b"\\\\"),
            '\n' => buf.extend_from_slice(b"\\n"),
            '\r' => buf.extend_from_slice(b"\\r"),
            '\t' => buf.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => buf.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        }
    }
    buf.push(b'"');
}

/// Prebuilt chunk text of one request: only the token text and counts vary,
/// so a chunk costs one buffer and a few copies.
pub struct ChunkTemplate {
    endpoint: Endpoint,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`
    head: Vec<u8>,
    /// `,"system_fingerprint":"…"`
    fingerprint: Vec<u8>,
}

impl ChunkTemplate {
    pub fn new(endpoint: Endpoint, id: &str, created: u64, model: &str, fingerprint: &str) -> Self {
        let object = match endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completions => "text_completion",
        };
        let mut head = b"data: {\"id\":".to_vec();
        push_json_str(&mut head, id);
        head.extend_from_slice(format!(",\"object\":\"{object}\",\"created\":{created},\"model\":").as_bytes());
        push_json_str(&mut head, model);
        head.extend_from_slice(b",\"choices\":[");
        let mut fp = b",\"system_fingerprint\":".to_vec();
        push_json_str(&mut fp, fingerprint);
        ChunkTemplate { endpoint, head, fingerprint: fp }
    }

    /// Enough for the biggest frame: role + last token + usage + `[DONE]`.
    pub fn frame_capacity(&self) -> usize {
        self.head.len() * 3 + self.fingerprint.len() + 320
    }

    /// The chat role chunk vLLM sends before the first token.
    pub fn role(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.head);
        buf.extend_from_slice(
            br#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}"#,
        );
        buf.extend_from_slice(b"\n\n");
    }

    /// One token; the last one carries `finish_reason` (and the fingerprint
    /// when no usage chunk follows).
    pub fn token(&self, buf: &mut Vec<u8>, text: &str, finish: Option<FinishReason>, fingerprint: bool) {
        buf.extend_from_slice(&self.head);
        let finish_field = |buf: &mut Vec<u8>| match finish {
            Some(r) => {
                buf.extend_from_slice(b"\"finish_reason\":\"");
                buf.extend_from_slice(r.as_str().as_bytes());
                buf.extend_from_slice(b"\",\"stop_reason\":null");
            }
            None => buf.extend_from_slice(b"\"finish_reason\":null"),
        };
        match self.endpoint {
            Endpoint::Chat => {
                buf.extend_from_slice(br#"{"index":0,"delta":{"content":"#);
                push_json_str(buf, text);
                buf.extend_from_slice(br#"},"logprobs":null,"#);
                finish_field(buf);
                buf.extend_from_slice(br#","token_ids":null}]"#);
            }
            Endpoint::Completions => {
                buf.extend_from_slice(br#"{"index":0,"text":"#);
                push_json_str(buf, text);
                buf.extend_from_slice(br#","logprobs":null,"#);
                finish_field(buf);
                if finish.is_none() {
                    buf.extend_from_slice(br#","stop_reason":null"#);
                }
                buf.extend_from_slice(br#","prompt_token_ids":null,"token_ids":null}]"#);
            }
        }
        if fingerprint {
            buf.extend_from_slice(&self.fingerprint);
        }
        buf.extend_from_slice(b"}\n\n");
    }

    /// The `include_usage` chunk: empty `choices`, then `[DONE]` follows.
    pub fn usage(&self, buf: &mut Vec<u8>, prompt: u32, completion: u32) {
        buf.extend_from_slice(&self.head);
        let total = u64::from(prompt) + u64::from(completion);
        buf.extend_from_slice(
            format!(
                "],\"usage\":{{\"prompt_tokens\":{prompt},\"total_tokens\":{total},\"completion_tokens\":{completion}}}"
            )
            .as_bytes(),
        );
        buf.extend_from_slice(&self.fingerprint);
        buf.extend_from_slice(b"}\n\n");
    }
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const GOLDEN_CHAT: &str = include_str!("../../tests/golden/vllm-0.32-chat-stream.txt");
    const GOLDEN_COMPLETIONS: &str = include_str!("../../tests/golden/vllm-0.32-completions-stream.txt");

    fn events(text: &str) -> Vec<&str> {
        text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect()
    }

    /// Field names in order of appearance, recursively: the chunk's "layout".
    fn layout(json: &str) -> Vec<String> {
        fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, child) in m {
                        let p = format!("{path}.{k}");
                        out.push(p.clone());
                        walk(child, &p, out);
                    }
                }
                Value::Array(a) => {
                    for child in a {
                        walk(child, &format!("{path}[]"), out);
                    }
                }
                _ => {}
            }
        }
        let v: Value = serde_json::from_str(json).unwrap();
        let mut out = Vec::new();
        walk(&v, "", &mut out);
        out
    }

    /// serde_json without `preserve_order` sorts object keys, so compare the
    /// raw key order with a small scanner instead.
    fn key_order(json: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let bytes = json.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'"' {
                let start = i + 1;
                let mut j = start;
                while bytes[j] != b'"' {
                    if bytes[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                if bytes.get(j + 1) == Some(&b':') {
                    keys.push(json[start..j].to_string());
                }
                i = j + 1;
            } else {
                i += 1;
            }
        }
        keys
    }

    fn sim_stream(endpoint: Endpoint, tokens: &[&str], include_usage: bool) -> String {
        let t = ChunkTemplate::new(endpoint, "chatcmpl-x", 1795415520, "tiny", "vllm-0.32.0-a98fb38a");
        let mut buf = Vec::new();
        if endpoint == Endpoint::Chat {
            t.role(&mut buf);
        }
        for (i, tok) in tokens.iter().enumerate() {
            let last = i + 1 == tokens.len();
            t.token(&mut buf, tok, last.then_some(FinishReason::Length), last && !include_usage);
        }
        if include_usage {
            t.usage(&mut buf, 21, tokens.len() as u32);
        }
        buf.extend_from_slice(DONE);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn chat_chunks_have_the_real_layout() {
        let ours = sim_stream(Endpoint::Chat, &[" a"; 8], true);
        let (ours, real) = (events(&ours), events(GOLDEN_CHAT));
        assert_eq!(ours.len(), real.len());
        for (o, r) in ours.iter().zip(&real) {
            if *r == "[DONE]" {
                assert_eq!(*o, "[DONE]");
                continue;
            }
            assert_eq!(key_order(o), key_order(r), "\nours: {o}\nreal: {r}");
            assert_eq!(layout(o), layout(r));
        }
        // Exact text for the role and usage chunks (ids aside).
        assert_eq!(ours[0], real[0].replace("chatcmpl-golden-chat-1", "chatcmpl-x"));
        assert_eq!(ours[9], real[9].replace("chatcmpl-golden-chat-1", "chatcmpl-x"));
    }

    #[test]
    fn completion_chunks_have_the_real_layout() {
        let ours = sim_stream(Endpoint::Completions, &[" a"; 8], true);
        let (ours, real) = (events(&ours), events(GOLDEN_COMPLETIONS));
        assert_eq!(ours.len(), real.len());
        for (o, r) in ours.iter().zip(&real) {
            if *r == "[DONE]" {
                continue;
            }
            assert_eq!(key_order(o), key_order(r), "\nours: {o}\nreal: {r}");
        }
    }

    #[test]
    fn without_usage_the_last_chunk_carries_the_fingerprint() {
        let ours = sim_stream(Endpoint::Chat, &[" a", " b"], false);
        let ev = events(&ours);
        assert_eq!(ev.len(), 4);
        assert!(ev[2].ends_with(r#""token_ids":null}],"system_fingerprint":"vllm-0.32.0-a98fb38a"}"#));
        assert!(ev[2].contains(r#""finish_reason":"length","stop_reason":null"#));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut buf = Vec::new();
        push_json_str(&mut buf, "a\"b\\c\nd\u{1}é");
        let s = String::from_utf8(buf).unwrap();
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "a\"b\\c\nd\u{1}é");
    }
}
