//! What to send and when: the typed workload ([`Workload`], its defaults, rules and patches),
//! prompts, and the arrival plan.

pub mod arrival;
pub mod prompts;
pub mod shard;
pub mod spec;

use std::time::Duration;

pub use arrival::{ArrivalPlan, StopCondition};
pub use prompts::{Prompt, PromptSource};
pub use shard::Shard;
pub use spec::{DEFAULT_CONCURRENCY, DEFAULT_REQUESTS, MAX_DURATION, Problem, Workload, WorkloadPatch, flag_name};

/// Per-request time limits.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Timeouts {
    #[serde(serialize_with = "secs", deserialize_with = "secs_from_f64")]
    pub connect: Duration,
    #[serde(serialize_with = "secs", deserialize_with = "secs_from_f64")]
    pub first_token: Duration,
    #[serde(serialize_with = "secs", deserialize_with = "secs_from_f64")]
    pub request: Duration,
    /// After the first token, the longest wait for the next one (a stalled stream).
    #[serde(default = "default_inter_chunk", serialize_with = "secs", deserialize_with = "secs_from_f64")]
    pub inter_chunk: Duration,
}

/// Saved plans from before `inter_chunk` existed read back with the default.
fn default_inter_chunk() -> Duration {
    spec::DEFAULT_INTER_CHUNK_TIMEOUT
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn secs_from_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = <f64 as serde::Deserialize>::deserialize(d)?;
    Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
}

impl Default for Timeouts {
    /// The limits of the default [`Workload`].
    fn default() -> Self {
        Workload::default().timeouts()
    }
}
