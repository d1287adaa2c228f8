//! What a claim transition writes to the audit ledger and to the open-question index, derived
//! from the old claim, the new claim and the effects. Pure: no I/O, unit-tested.

use serde_json::{Value, json};
use sett_core::config::OnQuestionTimeout;
use sett_core::event::EventKind;
use sett_core::machine::{Effect, FailureType, GrantOrder};
use sett_core::{Claim, ClaimStatus};
use sett_store::QuestionOp;

/// The `claim_created` event of a new claim.
pub(crate) fn claim_created(c: &Claim) -> (EventKind, Value) {
    (
        EventKind::ClaimCreated,
        json!({
            "claim_id": c.id,
            "artifact_id": c.artifact_id,
            "status": c.status,
            "rework_of": c.rework_of,
            "agent": c.assigned_agent,
        }),
    )
}

/// The `claim_granted` event of one grant.
pub(crate) fn claim_granted(c: &Claim, g: &GrantOrder) -> (EventKind, Value) {
    (
        EventKind::ClaimGranted,
        json!({
            "claim_id": c.id,
            "artifact_id": c.artifact_id,
            "agent": g.agent,
            "claim_type": g.claim_type,
            "seq": g.seq,
            "via_worker": g.via_worker,
        }),
    )
}

/// Events and question-index changes of the transition `old → new` with `effects`.
pub(crate) fn transition_records(
    old: &Claim,
    new: &Claim,
    effects: &[Effect],
    on_question_timeout: OnQuestionTimeout,
) -> (Vec<(EventKind, Value)>, Vec<QuestionOp>) {
    let mut events = Vec::new();
    let mut ops = Vec::new();
    for e in effects {
        match e {
            Effect::BidsMissing { agents } => {
                events.push((
                    EventKind::BidsMissing,
                    json!({"claim_id": new.id, "artifact_id": new.artifact_id, "agents": agents}),
                ));
            }
            Effect::QuestionOpened { question, agent } => {
                let open = new.open_questions.get(question);
                let asked_at_ms = open.map_or(new.updated_at_ms, |q| q.asked_at_ms);
                ops.push(QuestionOp::Open { question: *question, asked_at_ms });
                events.push((
                    EventKind::QuestionAsked,
                    json!({
                        "claim_id": new.id,
                        "artifact_id": question,
                        "question_id": question,
                        "agent": agent,
                        "deadline_ms": open.and_then(|q| q.deadline_ms),
                    }),
                ));
            }
            Effect::QuestionClosed { question } => ops.push(QuestionOp::Close { question: *question }),
            Effect::AutoAnswer { question } => {
                events.push((
                    EventKind::QuestionTimedOut,
                    json!({
                        "claim_id": new.id, "artifact_id": question, "question_id": question, "policy": "continue",
                    }),
                ));
            }
            Effect::Fail { failure_type: FailureType::QuestionTimeout, .. } => {
                if let Some(q) = old.open_questions.keys().next() {
                    let policy = match on_question_timeout {
                        OnQuestionTimeout::Fail => "fail",
                        OnQuestionTimeout::Continue => "continue",
                    };
                    events.push((
                        EventKind::QuestionTimedOut,
                        json!({
                            "claim_id": new.id, "artifact_id": q, "question_id": q, "policy": policy,
                        }),
                    ));
                }
            }
            Effect::Grant(g) => events.push(claim_granted(new, g)),
            Effect::Fail { .. } | Effect::CreateClaim { .. } => {}
        }
    }
    if old.status != new.status {
        events.push((
            EventKind::ClaimUpdated,
            json!({
                "claim_id": new.id,
                "artifact_id": new.artifact_id,
                "status": new.status,
                "previous_status": old.status,
                "revision": new.revision,
            }),
        ));
        let end = match new.status {
            ClaimStatus::Complete => Some(EventKind::ClaimCompleted),
            ClaimStatus::Terminated => Some(EventKind::ClaimTerminated),
            ClaimStatus::Dormant => Some(EventKind::ClaimDormant),
            _ => None,
        };
        if let Some(kind) = end {
            events.push((
                kind,
                json!({
                    "claim_id": new.id,
                    "artifact_id": new.artifact_id,
                    "reason": new.termination_reason,
                    "outcome_artifact": new.outcome_artifact,
                }),
            ));
        }
    }
    (events, ops)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sett_core::machine::{AgentPolicy, Input, Policy, new_claim, step};
    use sett_core::{AgentName, Artifact, BidType, ClaimId, StructuralType};

    use super::*;

    #[test]
    fn consensus_writes_grants_then_the_status_change() {
        let coder = AgentName::parse("Coder").unwrap();
        let policy = Policy {
            agents: BTreeMap::from([(
                coder.clone(),
                AgentPolicy { timeout_ms: 1000, question_timeout_ms: None, via_worker: false },
            )]),
            max_review_iterations: 3,
            bid_timeout_ms: 1000,
            on_question_timeout: OnQuestionTimeout::Fail,
        };
        let goal = Artifact::new_root(StructuralType::Standard, "GoalDefined", "g", "user", 1);
        let claim = new_claim(ClaimId::new_v7(), &goal, &policy, 1);
        let bids = BTreeMap::from([(coder, BidType::Exclusive)]);
        let t = step(&claim, Input::Bids { bids: &bids, now_ms: 2 }, &policy).unwrap();
        let (events, ops) = transition_records(&claim, &t.claim, &t.effects, policy.on_question_timeout);
        let kinds: Vec<EventKind> = events.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, vec![EventKind::ClaimGranted, EventKind::ClaimUpdated]);
        assert_eq!(events[0].1["claim_type"], "exclusive");
        assert_eq!(events[1].1["status"], "pending_exclusive");
        assert!(ops.is_empty());
    }
}
