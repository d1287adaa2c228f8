//! What the claim state machine applies, and what `sett.yml` decides of it: the policy is the
//! one thing both [`crate::config`] (which builds it) and [`crate::machine`] (which follows it)
//! need, so it lives here and neither module depends on the other.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::claim::ClaimType;
use crate::ids::AgentName;
use crate::routing::Routing;

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

/// What happens when an approval is not given in time (`agents.<name>.approval.on_timeout`):
/// `reject` ends the claim with a Failure (the default: nobody said yes), `approve` grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnApprovalTimeout {
    #[default]
    Reject,
    Approve,
}

/// What followed a question's timeout, as the ledger records it (`question_timed_out`'s
/// `policy`): an agent question's `on_question_timeout`, or an approval's `on_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutPolicy {
    Fail,
    Continue,
    Default,
    Approve,
    Reject,
}

impl TimeoutPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Continue => "continue",
            Self::Default => "default",
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

impl From<OnQuestionTimeout> for TimeoutPolicy {
    fn from(p: OnQuestionTimeout) -> Self {
        match p {
            OnQuestionTimeout::Fail => Self::Fail,
            OnQuestionTimeout::Continue => Self::Continue,
            OnQuestionTimeout::Default => Self::Default,
        }
    }
}

impl From<OnApprovalTimeout> for TimeoutPolicy {
    fn from(p: OnApprovalTimeout) -> Self {
        match p {
            OnApprovalTimeout::Reject => Self::Reject,
            OnApprovalTimeout::Approve => Self::Approve,
        }
    }
}

impl PartialEq<OnQuestionTimeout> for TimeoutPolicy {
    fn eq(&self, other: &OnQuestionTimeout) -> bool {
        *self == Self::from(*other)
    }
}

/// An agent whose grants wait for a person's approval (`agents.<name>.approval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// `None`: the approval waits forever.
    pub timeout_ms: Option<i64>,
    pub on_timeout: OnApprovalTimeout,
    /// The claim types that need approval (a resumed grant never does: its claim was approved).
    pub claim_types: Vec<ClaimType>,
}

impl ApprovalPolicy {
    pub fn gates(&self, claim_type: ClaimType) -> bool {
        claim_type != ClaimType::Resume && self.claim_types.contains(&claim_type)
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
    /// `Some`: this agent's grants (of the gated claim types) wait for a person's approval.
    pub approval: Option<ApprovalPolicy>,
}

/// The configuration the state machine applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub agents: BTreeMap<AgentName, AgentPolicy>,
    /// 0 = unlimited.
    pub max_review_iterations: u32,
    pub bid_timeout_ms: i64,
    pub on_question_timeout: OnQuestionTimeout,
    /// Who questions are addressed to, reminders and escalation (`humans:`).
    pub routing: Routing,
}
