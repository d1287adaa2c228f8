//! The claim: the orchestrator's record of what happens to one artifact.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentName, ArtifactId, ClaimId};

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} '{}': expected one of {}",
                        stringify!($name), other, [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

str_enum!(
    /// A claim's status (design.md §4).
    ClaimStatus {
        PendingConsensus => "pending_consensus",
        PendingReview => "pending_review",
        PendingParallel => "pending_parallel",
        PendingExclusive => "pending_exclusive",
        PendingAssignment => "pending_assignment",
        PendingAnswer => "pending_answer",
        Complete => "complete",
        Terminated => "terminated",
        Dormant => "dormant",
    }
);

impl ClaimStatus {
    /// Final statuses never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Terminated | Self::Dormant)
    }

    /// The execution phase this status runs, if any.
    pub fn phase(self) -> Option<Phase> {
        match self {
            Self::PendingReview => Some(Phase::Review),
            Self::PendingParallel => Some(Phase::Parallel),
            Self::PendingExclusive => Some(Phase::Exclusive),
            Self::PendingAssignment => Some(Phase::Assignment),
            _ => None,
        }
    }
}

str_enum!(
    /// A cub's declaration for a claim.
    BidType {
        Review => "review",
        Claim => "claim",
        Exclusive => "exclusive",
        Ignore => "ignore",
    }
);

str_enum!(
    /// An execution phase.
    Phase {
        Review => "review",
        Parallel => "parallel",
        Exclusive => "exclusive",
        Assignment => "assignment",
    }
);

impl Phase {
    pub fn status(self) -> ClaimStatus {
        match self {
            Self::Review => ClaimStatus::PendingReview,
            Self::Parallel => ClaimStatus::PendingParallel,
            Self::Exclusive => ClaimStatus::PendingExclusive,
            Self::Assignment => ClaimStatus::PendingAssignment,
        }
    }

    /// The `claim_type` a first grant in this phase carries to the tool.
    pub fn claim_type(self) -> ClaimType {
        match self {
            Self::Review => ClaimType::Review,
            Self::Parallel => ClaimType::Claim,
            Self::Exclusive => ClaimType::Exclusive,
            Self::Assignment => ClaimType::Rework,
        }
    }
}

str_enum!(
    /// What a tool is asked to do (the `claim_type` on its stdin).
    ClaimType {
        Review => "review",
        Claim => "claim",
        Exclusive => "exclusive",
        Rework => "rework",
        Resume => "resume",
    }
);

impl ClaimType {
    /// The status a claim is in after a write that grants this type of work, when the type alone
    /// says it (a `resume` goes back to whichever phase asked): a `claim_granted` of that type
    /// records the status change, and no `claim_updated` repeats it.
    pub fn granted_status(self) -> Option<ClaimStatus> {
        match self {
            Self::Review => Some(ClaimStatus::PendingReview),
            Self::Claim => Some(ClaimStatus::PendingParallel),
            Self::Exclusive => Some(ClaimStatus::PendingExclusive),
            Self::Rework => Some(ClaimStatus::PendingAssignment),
            Self::Resume => None,
        }
    }
}

/// One grant to one agent in the current phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub claim_type: ClaimType,
    /// Unique per claim; the cub's idempotency key is `(claim_id, seq)`.
    pub seq: u64,
    pub granted_at_ms: i64,
    /// When the orchestrator gives up on this grant. `None` while a controller grant waits in
    /// its worker queue or while the agent waits for an answer.
    pub deadline_ms: Option<i64>,
    /// True when a worker process executes this grant (controller agents).
    #[serde(default)]
    pub via_worker: bool,
}

/// A question the claim is blocked on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenQuestion {
    pub agent: AgentName,
    pub asked_at_ms: i64,
    /// `None` when the question never times out (or is being auto-answered on timeout).
    pub deadline_ms: Option<i64>,
    /// Set when this is an approval the orchestrator asked before granting `agent` the claim:
    /// the grant it holds back. Absent on an agent's own question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<HeldGrant>,
    /// Who it is addressed to, as addressed (people and `group:<name>`, sorted); empty: anyone
    /// may answer. Escalation adds to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// The people `to` names with the `sett.yml` groups expanded (what `sett answer` checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<String>,
    /// When the next `question_reminder` is due (`humans.remind_every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_at_ms: Option<i64>,
    /// Reminders sent so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reminders: u32,
    /// When the escalation list joins the addressees (`humans.escalate_after`); `None` once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_at_ms: Option<i64>,
    /// Whether it was escalated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub escalated: bool,
    /// Set when this is the human review of the claim's artifact (`humans.reviewers`): decided
    /// by `Input::HumanReview`, never by an agent's resumption.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub review: bool,
}

/// A grant held back until a person approves it (`agents.<name>.approval`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldGrant {
    pub claim_type: ClaimType,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl OpenQuestion {
    /// A question asked by `agent` at `asked_at_ms`, addressed to nobody in particular.
    pub fn new(agent: AgentName, asked_at_ms: i64, deadline_ms: Option<i64>) -> Self {
        Self {
            agent,
            asked_at_ms,
            deadline_ms,
            to: Vec::new(),
            people: Vec::new(),
            remind_at_ms: None,
            reminders: 0,
            escalate_at_ms: None,
            escalated: false,
            approval: None,
            review: false,
        }
    }

    /// Whether `name`, a member of `groups` (beyond the `sett.yml` groups already expanded in
    /// `people`), may answer it.
    pub fn may_answer(&self, name: &str, groups: &[String]) -> bool {
        crate::routing::may_answer(&self.to, &self.people, name, groups)
    }

    /// The next reminder or escalation due, if any.
    pub fn next_routing_ms(&self) -> Option<i64> {
        [self.remind_at_ms, self.escalate_at_ms].into_iter().flatten().min()
    }
}

/// A question and its answer, handed to the resumed tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsweredQuestion {
    pub agent: AgentName,
    pub question: ArtifactId,
    pub answer: ArtifactId,
}

/// The claim record. Every field is persisted; transitions are compare-and-set on
/// (`status`, `revision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub id: ClaimId,
    pub artifact_id: ArtifactId,
    pub status: ClaimStatus,
    pub revision: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// `produced_by_role` and version of the claim's artifact, copied at creation so the state
    /// machine needs no lookup.
    pub target_producer: String,
    pub target_version: u32,
    /// Set on rework claims: the claim whose review rejected the artifact.
    pub rework_of: Option<ClaimId>,
    pub bid_deadline_ms: Option<i64>,
    /// Agents that did not bid before the deadline (counted as `ignore`).
    pub missing_bids: Vec<AgentName>,
    pub granted_review_agents: Vec<AgentName>,
    pub granted_parallel_agents: Vec<AgentName>,
    pub granted_exclusive_agent: Option<AgentName>,
    /// The people and groups who review the claim's artifact in its review phase
    /// (`humans.reviewers` of its type, fixed when the claim is created).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub human_reviewers: Vec<String>,
    /// The agent a `pending_assignment` claim is assigned to.
    pub assigned_agent: Option<AgentName>,
    pub additional_context_ids: Vec<ArtifactId>,
    /// Grants of the current phase, by agent.
    pub grants: BTreeMap<AgentName, Grant>,
    /// Outputs received in the current phase, by agent.
    pub received: BTreeMap<AgentName, ArtifactId>,
    /// Review artifacts that vetoed (gathered during the review phase).
    pub rejections: Vec<ArtifactId>,
    pub grant_seq: u64,
    /// The most recent question asked (kept for display after it is answered).
    pub question_id: Option<ArtifactId>,
    pub open_questions: BTreeMap<ArtifactId, OpenQuestion>,
    pub answered_questions: Vec<AnsweredQuestion>,
    /// The status to return to once every open question is answered.
    pub resume_status: Option<ClaimStatus>,
    pub termination_reason: Option<String>,
    /// The artifact that ended the claim (a Terminal or Failure), if any.
    pub outcome_artifact: Option<ArtifactId>,
}

impl Claim {
    /// The next time something must happen to this claim without outside input.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        if self.status.is_final() {
            return None;
        }
        let grants = self
            .grants
            .iter()
            .filter(|(agent, _)| !self.received.contains_key(*agent))
            .filter(|(agent, _)| !self.open_questions.values().any(|q| &q.agent == *agent))
            .filter_map(|(_, g)| g.deadline_ms);
        let questions = self.open_questions.values().flat_map(|q| [q.deadline_ms, q.next_routing_ms()]).flatten();
        let bids = if self.status == ClaimStatus::PendingConsensus { self.bid_deadline_ms } else { None };
        grants.chain(questions).chain(bids).min()
    }

    /// Moves every deadline later by the time it stood still in a pause from `paused_at_ms` to
    /// `resumed_at_ms` (design.md §4a): a deadline set before the pause gains the whole pause, one
    /// set during it (the claim was created, granted or asked meanwhile) the part after it was
    /// set. Returns whether anything moved.
    pub fn shift_deadlines(&mut self, paused_at_ms: i64, resumed_at_ms: i64) -> bool {
        let stood_still = |set_at_ms: i64| (resumed_at_ms - paused_at_ms.max(set_at_ms)).max(0);
        let mut moved = false;
        let mut shift = |deadline: &mut Option<i64>, set_at_ms: i64| {
            let by = stood_still(set_at_ms);
            if let Some(d) = deadline.as_mut()
                && by > 0
            {
                *d += by;
                moved = true;
            }
        };
        if self.status == ClaimStatus::PendingConsensus {
            shift(&mut self.bid_deadline_ms, self.created_at_ms);
        }
        for g in self.grants.values_mut() {
            shift(&mut g.deadline_ms, g.granted_at_ms);
        }
        for q in self.open_questions.values_mut() {
            shift(&mut q.deadline_ms, q.asked_at_ms);
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in ClaimStatus::ALL {
            assert_eq!(s.as_str().parse::<ClaimStatus>().unwrap(), *s);
        }
        for b in BidType::ALL {
            assert_eq!(b.as_str().parse::<BidType>().unwrap(), *b);
        }
        assert!("bogus".parse::<BidType>().is_err());
    }
}
