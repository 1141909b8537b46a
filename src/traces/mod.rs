//! vLLM's per-request truth: an OTLP trace receiver (gRPC and HTTP on one
//! address), the `llm_request` spans it decodes, and their routing to the
//! burst whose request ids they carry. The verdicts on them are
//! `validate::traces`; this module only receives, decodes and routes.

pub mod hub;
pub mod ids;
pub mod receiver;
pub mod span;

pub use hub::{Collected, Collector, Hub, ReceiverCounters};
pub use ids::{request_id_prefix, request_index};
pub use receiver::Receiver;
pub use span::LlmSpan;
