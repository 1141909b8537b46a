//! The OpenAI-compatible wire format: request bodies we send, the SSE framing
//! and the streamed chunks we read back. Pure: no I/O here, so it is tested
//! with plain strings and bytes.

mod chunk;
mod request;
mod sse;

pub use chunk::{ChunkEvent, Usage, parse_chunk, parse_full_response};
pub use request::{Endpoint, RequestOptions, build_body};
pub use sse::{SseDecoder, SseError, SseLimits};
