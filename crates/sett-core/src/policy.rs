//! What the claim state machine applies, and what `sett.yml` decides of it: the policy is the
//! one thing both [`crate::config`] (which builds it) and [`crate::machine`] (which follows it)
//! need, so it lives here and neither module depends on the other.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::AgentName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// What happens when a question's `question_timeout` expires: `fail` the claim, `continue`
/// with a timed-out answer, or answer a structured question with its spec's `default` (a
/// question without a complete default then continues as under `continue`).
pub enum OnQuestionTimeout {
    #[default]
    Fail,
    Continue,
    Default,
}

impl OnQuestionTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Continue => "continue",
            Self::Default => "default",
        }
    }
}

/// What the state machine needs to know about one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPolicy {
    pub timeout_ms: i64,
    /// `None`: this agent's questions never time out.
    pub question_timeout_ms: Option<i64>,
    /// Grants run in a worker process launched by the orchestrator (controller mode).
    pub via_worker: bool,
}

/// The configuration the state machine applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub agents: BTreeMap<AgentName, AgentPolicy>,
    /// 0 = unlimited.
    pub max_review_iterations: u32,
    pub bid_timeout_ms: i64,
    pub on_question_timeout: OnQuestionTimeout,
}
