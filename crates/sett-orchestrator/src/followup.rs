//! Follow-up effects of a claim transition that need writes of their own (a Failure artifact, a
//! rework claim, an automatic answer, a worker launch). They are recorded in the store's outbox
//! atomically with the transition and removed once carried out, so a crash in between loses
//! nothing; each one is idempotent (deterministic ids, idempotent worker offers).

use serde::{Deserialize, Serialize};
use sett_core::machine::{Effect, FailureType};
use sett_core::{AgentName, ArtifactId, Claim, ClaimType};

/// One follow-up effect, serialisable for the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FollowUp {
    /// Write the Failure artifact that ended the claim.
    Fail { artifact_id: ArtifactId, failure_type: FailureType, reason: String },
    /// Create a rework claim (its grant events are written with it).
    CreateClaim { claim: Box<Claim>, grants: Vec<GrantSpec> },
    /// Answer a timed-out question as the orchestrator (`on_question_timeout: continue`).
    AutoAnswer { question: ArtifactId },
    /// Offer a controller grant to the agent's worker pool.
    LaunchWorker { agent: AgentName, seq: u64 },
}

/// A grant to announce (the payload of a `claim_granted` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSpec {
    pub agent: AgentName,
    pub claim_type: ClaimType,
    pub seq: u64,
    pub via_worker: bool,
}

impl GrantSpec {
    pub(crate) fn from_effect(e: &Effect) -> Option<Self> {
        match e {
            Effect::Grant { agent, claim_type, seq, via_worker } => {
                Some(Self { agent: agent.clone(), claim_type: *claim_type, seq: *seq, via_worker: *via_worker })
            }
            _ => None,
        }
    }
}

/// The follow-ups among a transition's effects (grants to cubs need none: their event is written
/// with the transition).
pub(crate) fn follow_ups(effects: &[Effect]) -> Vec<FollowUp> {
    let mut out = Vec::new();
    for e in effects {
        match e {
            Effect::Fail { artifact_id, failure_type, reason } => out.push(FollowUp::Fail {
                artifact_id: *artifact_id,
                failure_type: *failure_type,
                reason: reason.clone(),
            }),
            Effect::CreateClaim { claim, grants } => out.push(FollowUp::CreateClaim {
                claim: claim.clone(),
                grants: grants.iter().filter_map(GrantSpec::from_effect).collect(),
            }),
            Effect::AutoAnswer { question } => out.push(FollowUp::AutoAnswer { question: *question }),
            Effect::Grant { agent, seq, via_worker: true, .. } => {
                out.push(FollowUp::LaunchWorker { agent: agent.clone(), seq: *seq });
            }
            Effect::Grant { .. }
            | Effect::QuestionOpened { .. }
            | Effect::QuestionClosed { .. }
            | Effect::BidsMissing { .. } => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_round_trip_through_json() {
        let agent = AgentName::parse("Coder").unwrap();
        let effects = vec![
            Effect::Grant { agent: agent.clone(), claim_type: ClaimType::Exclusive, seq: 1, via_worker: false },
            Effect::Grant { agent: agent.clone(), claim_type: ClaimType::Claim, seq: 2, via_worker: true },
            Effect::AutoAnswer { question: ArtifactId::new_v7() },
        ];
        let f = follow_ups(&effects);
        assert_eq!(f.len(), 2, "a grant to a cub needs no follow-up");
        let json = serde_json::to_value(&f).unwrap();
        let back: Vec<FollowUp> = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }
}
