//! What to send and when: prompts and the arrival plan.

pub mod arrival;
pub mod prompts;

pub use arrival::{ArrivalPlan, StopCondition};
pub use prompts::{Prompt, PromptSource};
