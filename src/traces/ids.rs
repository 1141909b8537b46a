//! From a request id as vLLM writes it back to the burst request it names.
//! Pure. The burst sends `X-Request-Id: <run_id>-<index>`; vLLM 0.32 builds
//! `chatcmpl-<X-Request-Id>` (chat) and `cmpl-<X-Request-Id>-0` (completions,
//! one choice) for its spans, and the same ids in its `Received request` lines.

/// The prefix of the X-Request-Id of every request of the burst `run_id`.
pub fn request_id_prefix(run_id: &str) -> String {
    format!("{run_id}-")
}

/// The burst's request index carried by `vllm_id`, when it is one of ours
/// (`prefix` from [`request_id_prefix`]). A suffix after the index
/// (`-0`, or a later vLLM's random part) is allowed; anything else is not ours.
pub fn request_index(vllm_id: &str, prefix: &str) -> Option<u64> {
    let id = vllm_id.strip_prefix("chatcmpl-").or_else(|| vllm_id.strip_prefix("cmpl-")).unwrap_or(vllm_id);
    let rest = id.strip_prefix(prefix)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (index, suffix) = rest.split_at(digits);
    if !(suffix.is_empty() || suffix.starts_with('-')) {
        return None;
    }
    index.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_and_completion_ids_name_their_request() {
        let p = request_id_prefix("20261204T205317Z-a1b2c3");
        assert_eq!(request_index("chatcmpl-20261204T205317Z-a1b2c3-12", &p), Some(12));
        assert_eq!(request_index("cmpl-20261204T205317Z-a1b2c3-7-0", &p), Some(7));
        assert_eq!(request_index("20261204T205317Z-a1b2c3-3", &p), Some(3), "a bare X-Request-Id");
        assert_eq!(request_index("chatcmpl-20261204T205317Z-a1b2c3-3-9f2e", &p), Some(3));
    }

    #[test]
    fn other_clients_ids_are_not_ours() {
        let p = request_id_prefix("20261204T205317Z-a1b2c3");
        for id in [
            "chatcmpl-5d1c0e8a9b7f4c1e",
            "chatcmpl-20261204T205317Z-ffffff-1",
            "cmpl-20261204T205317Z-a1b2c3-",
            "chatcmpl-20261204T205317Z-a1b2c3-12x",
            "chatcmpl-20261204T205317Z-a1b2c3-99999999999999999999999",
            "",
        ] {
            assert_eq!(request_index(id, &p), None, "{id}");
        }
    }
}
