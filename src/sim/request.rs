//! Completion request bodies as vLLM 0.32 validates them, and its error
//! bodies (`{"error": {"message", "type", "param", "code"}}`). Pure.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::engine::{chat_prompt_tokens, completion_prompt_tokens, count_words};

/// vLLM's `ErrorResponse`: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn bad_request(message: String, param: &str) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("{message} (parameter={param})"),
            kind: "BadRequestError".to_string(),
            param: Some(param.to_string()),
        }
    }

    /// A FastAPI/pydantic request-validation error as vLLM words it.
    fn validation(error_type: &str, field: &str, msg: &str, input: &str) -> Self {
        let loc = if field.is_empty() { "body".to_string() } else { format!("body.{field}") };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "1 validation error:\n  {{'type': '{error_type}', 'loc': '{loc}', 'msg': '{msg}', 'input': {input}}}"
            ),
            kind: "Bad Request".to_string(),
            param: Some(loc),
        }
    }

    /// The body of an injected HTTP error with `status`.
    pub fn injected(status: u16) -> Self {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 400)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = match status.as_u16() {
            400 => "BadRequestError".to_string(),
            404 => "NotFoundError".to_string(),
            422 => "UnprocessableEntityError".to_string(),
            500 => "InternalServerError".to_string(),
            501 => "NotImplementedError".to_string(),
            503 => "ServiceUnavailableError".to_string(),
            _ => status.canonical_reason().unwrap_or("Error").to_string(),
        };
        ApiError {
            status,
            message: "EngineGenerateError: simulated engine failure (llm-loadtest sim fault injection)".to_string(),
            kind,
            param: None,
        }
    }

    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Info<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: u16,
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Info<'a>,
        }
        serde_json::to_string(&Envelope {
            error: Info {
                message: &self.message,
                kind: &self.kind,
                param: self.param.as_deref(),
                code: self.status.as_u16(),
            },
        })
        .unwrap_or_default()
    }

    /// Python repr of the `ErrorInfo`, as in vLLM's "Error with model" line.
    pub fn python_repr(&self) -> String {
        let param = self.param.as_deref().map_or_else(|| "None".to_string(), |p| format!("'{p}'"));
        format!(
            "ErrorInfo(message='{}', type='{}', param={param}, code={})",
            self.message,
            self.kind,
            self.status.as_u16()
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, self.body())
    }
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

/// The fields of a completion request the simulator acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRequest {
    pub model: Option<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    /// Which field carried `max_tokens` (for error messages).
    pub max_tokens_param: &'static str,
    pub ignore_eos: bool,
    pub prompt_tokens: u32,
}

/// How pydantic shows an input value inside a validation error.
fn input_repr(v: &Value) -> String {
    match v {
        Value::Object(m) => format!("'<dict of {} items>'", m.len()),
        Value::Array(a) => format!("'<list of {} items>'", a.len()),
        Value::String(s) => format!("'{s}'"),
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => n.to_string(),
    }
}

fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in body.split(|b| *b == b'\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1);
        }
        offset += l.len() + 1;
    }
    body.len()
}

fn opt_bool(obj: &serde_json::Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => {
            Err(ApiError::validation("bool_type", field, "Input should be a valid boolean", &input_repr(other)))
        }
    }
}

fn opt_tokens(obj: &serde_json::Map<String, Value>, field: &str) -> Result<Option<u32>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => match n.as_i64() {
            Some(i) if i < 1 => Err(ApiError::bad_request(format!("{field} must be at least 1, got {i}."), field)),
            Some(i) => Ok(Some(u32::try_from(i).unwrap_or(u32::MAX))),
            None => Err(ApiError::validation(
                "int_from_float",
                field,
                "Input should be a valid integer, got a number with a fractional part",
                &input_repr(v),
            )),
        },
        Some(other) => {
            Err(ApiError::validation("int_type", field, "Input should be a valid integer", &input_repr(other)))
        }
    }
}

/// Words of a message's `content`: a string, or a list of `{"type":"text","text":…}` parts.
fn content_words(content: Option<&Value>, index: usize) -> Result<u32, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => Ok(count_words(s)),
        Some(Value::Array(parts)) => {
            Ok(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).map(count_words).sum())
        }
        Some(other) => Err(ApiError::validation(
            "string_type",
            &format!("messages.{index}.content"),
            "Input should be a valid string",
            &input_repr(other),
        )),
    }
}

fn prompt_tokens(endpoint: Endpoint, obj: &serde_json::Map<String, Value>) -> Result<u32, ApiError> {
    let missing = |field: &str| {
        ApiError::validation("missing", field, "Field required", &format!("'<dict of {} items>'", obj.len()))
    };
    match endpoint {
        Endpoint::Chat => {
            let messages = match obj.get("messages") {
                None => return Err(missing("messages")),
                Some(Value::Array(m)) => m,
                Some(other) => {
                    return Err(ApiError::validation(
                        "list_type",
                        "messages",
                        "Input should be a valid list",
                        &input_repr(other),
                    ));
                }
            };
            let mut words = Vec::with_capacity(messages.len());
            for (i, m) in messages.iter().enumerate() {
                if !m.is_object() {
                    return Err(ApiError::validation(
                        "model_attributes_type",
                        &format!("messages.{i}"),
                        "Input should be a valid dictionary or object to extract fields from",
                        &input_repr(m),
                    ));
                }
                words.push(content_words(m.get("content"), i)?);
            }
            Ok(chat_prompt_tokens(&words))
        }
        Endpoint::Completions => match obj.get("prompt") {
            None | Some(Value::Null) => Err(missing("prompt")),
            Some(Value::String(s)) => Ok(completion_prompt_tokens(count_words(s))),
            Some(Value::Array(items)) => match items.as_slice() {
                [Value::String(s)] => Ok(completion_prompt_tokens(count_words(s))),
                [Value::Array(ids)] if ids.iter().all(Value::is_u64) => {
                    Ok(u32::try_from(ids.len()).unwrap_or(u32::MAX))
                }
                ids if !ids.is_empty() && ids.iter().all(Value::is_u64) => {
                    Ok(u32::try_from(ids.len()).unwrap_or(u32::MAX))
                }
                _ => Err(ApiError::bad_request(
                    "The simulator serves exactly one prompt (a string or a list of token ids) per request."
                        .to_string(),
                    "prompt",
                )),
            },
            Some(other) => {
                Err(ApiError::validation("string_type", "prompt", "Input should be a valid string", &input_repr(other)))
            }
        },
    }
}

/// vLLM's `CompletionRequest.max_tokens` default.
pub const COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;

/// Validates a request body the way vLLM's pydantic models do, up to (not
/// including) the model-name check.
pub fn parse_request(endpoint: Endpoint, body: &[u8]) -> Result<ParsedRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let offset = byte_offset(body, e.line(), e.column());
        ApiError::validation(
            "json_invalid",
            &offset.to_string(),
            "JSON decode error",
            &format!("'<dict of 0 items>', 'ctx': {{'error': '{e}'}}"),
        )
    })?;
    let Value::Object(obj) = &value else {
        return Err(ApiError::validation(
            "model_attributes_type",
            "",
            "Input should be a valid dictionary or object to extract fields from",
            &input_repr(&value),
        ));
    };
    let model = match obj.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::validation(
                "string_type",
                "model",
                "Input should be a valid string",
                &input_repr(other),
            ));
        }
    };
    let prompt_tokens = prompt_tokens(endpoint, obj)?;
    let stream = opt_bool(obj, "stream")?;
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(opts)) => {
            // vLLM's validator tests truthiness: `{}` passes without stream.
            if !opts.is_empty() && !stream {
                return Err(ApiError::bad_request(
                    "Stream options can only be defined when `stream=True`.".to_string(),
                    "stream_options",
                ));
            }
            opt_bool(opts, "include_usage")?
        }
        Some(other) => {
            return Err(ApiError::validation(
                "model_type",
                "stream_options",
                "Input should be a valid dictionary or instance of StreamOptions",
                &input_repr(other),
            ));
        }
    };
    if let Some(n) = obj.get("n").and_then(Value::as_u64)
        && n != 1
    {
        return Err(ApiError::bad_request(format!("The simulator only serves n=1, got n={n}."), "n"));
    }
    // Chat: `max_completion_tokens` takes precedence over the deprecated `max_tokens`.
    let (max_tokens, max_tokens_param) = match endpoint {
        Endpoint::Chat => match opt_tokens(obj, "max_completion_tokens")? {
            Some(m) => (Some(m), "max_completion_tokens"),
            None => (opt_tokens(obj, "max_tokens")?, "max_tokens"),
        },
        // The legacy completions API defaults to 16 tokens when the field is
        // absent (an explicit null means "the rest of the context").
        Endpoint::Completions if !obj.contains_key("max_tokens") => {
            (Some(COMPLETIONS_DEFAULT_MAX_TOKENS), "max_tokens")
        }
        Endpoint::Completions => (opt_tokens(obj, "max_tokens")?, "max_tokens"),
    };
    Ok(ParsedRequest {
        model,
        stream,
        include_usage,
        max_tokens,
        max_tokens_param,
        ignore_eos: opt_bool(obj, "ignore_eos")?,
        prompt_tokens,
    })
}

/// vLLM 0.32's length checks: `max_tokens > max_model_len` and a prompt that
/// leaves no room are 400s; `prompt + max_tokens > max_model_len` is clamped.
pub fn check_lengths(req: &ParsedRequest, max_model_len: u32) -> Result<(), ApiError> {
    if let Some(m) = req.max_tokens
        && m > max_model_len
    {
        return Err(ApiError {
            message: format!(
                "{p}={m} cannot be greater than max_model_len={max_model_len}. Please request fewer output tokens. (parameter={p}, value={m})",
                p = req.max_tokens_param
            ),
            ..ApiError::bad_request(String::new(), req.max_tokens_param)
        });
    }
    if req.prompt_tokens >= max_model_len {
        let n = req.prompt_tokens;
        return Err(ApiError {
            message: format!(
                "This model's maximum context length is {max_model_len} tokens. However, your prompt contains {n} input tokens, which exceeds this limit even without any output tokens. Please reduce the length of the input prompt. (parameter=input_tokens, value={n})"
            ),
            ..ApiError::bad_request(String::new(), "input_tokens")
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_chat_request() {
        let r = parse_request(
            Endpoint::Chat,
            br#"{"model":"tiny","messages":[{"role":"user","content":"Say hello"}],"max_completion_tokens":5,"max_tokens":9,"stream":true,"stream_options":{"include_usage":true},"ignore_eos":true}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            ParsedRequest {
                model: Some("tiny".to_string()),
                stream: true,
                include_usage: true,
                max_tokens: Some(5),
                max_tokens_param: "max_completion_tokens",
                ignore_eos: true,
                prompt_tokens: 14,
            }
        );
    }

    #[test]
    fn parses_completion_prompts() {
        let tokens = |body: &[u8]| parse_request(Endpoint::Completions, body).map(|r| r.prompt_tokens);
        assert_eq!(tokens(br#"{"prompt":"a b c"}"#), Ok(4));
        assert_eq!(tokens(br#"{"prompt":["a b c"]}"#), Ok(4));
        assert_eq!(tokens(br#"{"prompt":[1,2,3,4,5]}"#), Ok(5));
        assert_eq!(tokens(br#"{"prompt":[[1,2]]}"#), Ok(2));
        assert!(tokens(br#"{"prompt":["a","b"]}"#).is_err());
        assert!(tokens(br#"{"prompt":7}"#).is_err());
        let max = |body: &[u8]| parse_request(Endpoint::Completions, body).map(|r| r.max_tokens);
        assert_eq!(max(br#"{"prompt":"a"}"#), Ok(Some(16)));
        assert_eq!(max(br#"{"prompt":"a","max_tokens":null}"#), Ok(None));
        assert_eq!(max(br#"{"prompt":"a","max_tokens":40}"#), Ok(Some(40)));
    }

    #[test]
    fn stream_options_without_stream_is_the_real_400() {
        let e = parse_request(
            Endpoint::Chat,
            br#"{"model":"tiny","messages":[],"max_tokens":5,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"Stream options can only be defined when `stream=True`. (parameter=stream_options)","type":"BadRequestError","param":"stream_options","code":400}}"#
        );
    }

    #[test]
    fn missing_messages_is_the_real_400() {
        let e = parse_request(Endpoint::Chat, br#"{"model":"tiny","max_tokens":5}"#).unwrap_err();
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"1 validation error:\n  {'type': 'missing', 'loc': 'body.messages', 'msg': 'Field required', 'input': '<dict of 2 items>'}","type":"Bad Request","param":"body.messages","code":400}}"#
        );
    }

    #[test]
    fn malformed_json_is_a_400_with_an_offset() {
        let body = br#"{"model":"tiny","messages":[{"role":"user","content":"Say hello"}],"max_tokens":5,"#;
        let e = parse_request(Endpoint::Chat, body).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.kind, "Bad Request");
        assert!(e.message.starts_with("1 validation error:\n  {'type': 'json_invalid', 'loc': 'body."));
        assert!(parse_request(Endpoint::Chat, b"[1]").is_err());
        assert!(parse_request(Endpoint::Chat, b"").is_err());
    }

    #[test]
    fn wrong_types_and_values_are_400s() {
        for body in [
            &br#"{"messages":[],"max_tokens":"x"}"#[..],
            br#"{"messages":[],"max_tokens":0}"#,
            br#"{"messages":[],"max_tokens":1.5}"#,
            br#"{"messages":[],"stream":"yes"}"#,
            br#"{"messages":"hi"}"#,
            br#"{"messages":[1]}"#,
            br#"{"messages":[{"content":5}]}"#,
            br#"{"model":5,"messages":[]}"#,
            br#"{"messages":[],"n":2}"#,
        ] {
            let e = parse_request(Endpoint::Chat, body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn max_tokens_above_the_context_is_the_real_400() {
        let r = parse_request(
            Endpoint::Chat,
            br#"{"model":"tiny","messages":[{"role":"user","content":"Say hello"}],"max_tokens":5000}"#,
        )
        .unwrap();
        let e = check_lengths(&r, 1024).unwrap_err();
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"max_tokens=5000 cannot be greater than max_model_len=1024. Please request fewer output tokens. (parameter=max_tokens, value=5000)","type":"BadRequestError","param":"max_tokens","code":400}}"#
        );
        // A prompt that fills the context is a 400 too.
        let long = ParsedRequest { max_tokens: None, prompt_tokens: 1024, ..r };
        assert!(check_lengths(&long, 1024).is_err());
    }

    #[test]
    fn error_info_repr_matches_the_real_log_line() {
        let e = ApiError {
            status: StatusCode::NOT_FOUND,
            message: "The model `nope` does not exist. Valid aliases: tiny.".to_string(),
            kind: "NotFoundError".to_string(),
            param: Some("model".to_string()),
        };
        assert_eq!(
            e.python_repr(),
            "ErrorInfo(message='The model `nope` does not exist. Valid aliases: tiny.', type='NotFoundError', param='model', code=404)"
        );
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"The model `nope` does not exist. Valid aliases: tiny.","type":"NotFoundError","param":"model","code":404}}"#
        );
    }
}
