//! The OpenAI-compatible wire format: request bodies we send and the streamed
//! chunks we read back. Pure: no I/O here, so it is tested with plain strings.

mod chunk;
mod request;

pub use chunk::{ChunkEvent, Usage, parse_chunk, parse_full_response};
pub use request::{Endpoint, RequestOptions, build_body};
