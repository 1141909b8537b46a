//! Request bodies for `/v1/chat/completions` and `/v1/completions`.

use serde_json::{Map, Value, json};

/// Which OpenAI-compatible endpoint a burst targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Chat,
    Completions,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

/// Everything in a request body besides the prompt.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RequestOptions {
    pub model: String,
    pub stream: bool,
    pub max_tokens: Option<u32>,
    pub ignore_eos: bool,
    pub temperature: Option<f64>,
    /// Extra top-level body fields, merged last (they win over ours).
    pub extra_body: Option<Map<String, Value>>,
}

/// The JSON body of one request.
///
/// `max_tokens` (not `max_completion_tokens`) is sent on both endpoints: every
/// OpenAI-compatible server we target accepts it, while older vLLM and other
/// servers reject or ignore the newer name. `stream_options` is only sent with
/// `stream: true`: vLLM answers 400 otherwise.
pub fn build_body(endpoint: Endpoint, prompt: &str, opts: &RequestOptions) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(opts.model.clone()));
    match endpoint {
        Endpoint::Chat => {
            body.insert("messages".into(), json!([{ "role": "user", "content": prompt }]));
        }
        Endpoint::Completions => {
            body.insert("prompt".into(), Value::String(prompt.to_owned()));
        }
    }
    body.insert("stream".into(), Value::Bool(opts.stream));
    if opts.stream {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(m) = opts.max_tokens {
        body.insert("max_tokens".into(), Value::from(m));
    }
    if opts.ignore_eos {
        body.insert("ignore_eos".into(), Value::Bool(true));
    }
    if let Some(t) = opts.temperature {
        body.insert("temperature".into(), Value::from(t));
    }
    if let Some(extra) = &opts.extra_body {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RequestOptions {
        RequestOptions {
            model: "m".into(),
            stream: true,
            max_tokens: Some(16),
            ignore_eos: true,
            temperature: None,
            extra_body: None,
        }
    }

    #[test]
    fn chat_stream_body_asks_for_usage() {
        let b = build_body(Endpoint::Chat, "hi", &opts());
        assert_eq!(b["messages"][0]["content"], "hi");
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["max_tokens"], 16);
        assert_eq!(b["ignore_eos"], true);
        assert!(b.get("temperature").is_none());
    }

    #[test]
    fn non_stream_body_has_no_stream_options() {
        let mut o = opts();
        o.stream = false;
        let b = build_body(Endpoint::Completions, "hi", &o);
        assert_eq!(b["prompt"], "hi");
        assert!(b.get("stream_options").is_none());
        assert_eq!(b["stream"], false);
    }

    #[test]
    fn extra_body_wins() {
        let mut o = opts();
        let extra: Map<String, Value> = serde_json::from_str(r#"{"max_tokens": 3, "top_p": 0.5}"#).unwrap();
        o.extra_body = Some(extra);
        let b = build_body(Endpoint::Chat, "hi", &o);
        assert_eq!(b["max_tokens"], 3);
        assert_eq!(b["top_p"], 0.5);
    }
}
