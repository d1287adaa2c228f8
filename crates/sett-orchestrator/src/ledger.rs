//! What a claim transition writes to the audit ledger and to the open-question index, derived
//! from the old claim, the new claim and the effects. Pure: no I/O, unit-tested.

use sett_core::config::OnQuestionTimeout;
use sett_core::event::{
    BidsMissing, ClaimCreated, ClaimEnded, ClaimGranted, ClaimUpdated, EventData, QuestionAsked, QuestionEscalated,
    QuestionReminded, QuestionTimedOut,
};
use sett_core::machine::{ApprovalOrder, Effect, FailureType, GrantOrder};
use sett_core::policy::TimeoutPolicy;
use sett_core::{Claim, ClaimStatus};
use sett_store::QuestionOp;

/// The `claim_created` event of a new claim.
pub(crate) fn claim_created(c: &Claim) -> EventData {
    EventData::ClaimCreated(ClaimCreated::new(c))
}

/// The `claim_granted` event of one grant.
pub(crate) fn claim_granted(c: &Claim, g: &GrantOrder) -> EventData {
    EventData::ClaimGranted(ClaimGranted {
        agent: g.agent.clone(),
        approval: g.approval,
        artifact_id: c.artifact_id,
        claim_id: c.id,
        claim_type: g.claim_type,
        seq: g.seq,
        via_worker: g.via_worker,
    })
}

/// The `question_asked` event and the open-index entry of approval `a` of claim `c` (its
/// question was written just before, by `approvals.rs`).
pub(crate) fn approval_asked(c: &Claim, a: &ApprovalOrder) -> (EventData, QuestionOp) {
    let open = c.open_questions.get(&a.question);
    let asked_at_ms = open.map_or(c.updated_at_ms, |q| q.asked_at_ms);
    (
        EventData::QuestionAsked(QuestionAsked {
            agent: a.agent.clone(),
            artifact_id: a.question,
            claim_id: c.id,
            deadline_ms: open.and_then(|q| q.deadline_ms),
            question_id: a.question,
            to: open.map(|q| q.to.clone()).unwrap_or_default(),
        }),
        QuestionOp::Open { question: a.question, asked_at_ms },
    )
}

/// Events and question-index changes of the transition `old → new` with `effects`.
pub(crate) fn transition_records(
    old: &Claim,
    new: &Claim,
    effects: &[Effect],
    on_question_timeout: OnQuestionTimeout,
) -> (Vec<EventData>, Vec<QuestionOp>) {
    let mut events = Vec::new();
    let mut ops = Vec::new();
    let timed_out = |question, policy: TimeoutPolicy| {
        EventData::QuestionTimedOut(QuestionTimedOut {
            artifact_id: question,
            claim_id: new.id,
            policy,
            question_id: question,
        })
    };
    for e in effects {
        match e {
            Effect::BidsMissing { agents } => {
                events.push(EventData::BidsMissing(BidsMissing {
                    agents: agents.clone(),
                    artifact_id: new.artifact_id,
                    claim_id: new.id,
                }));
            }
            Effect::QuestionOpened { question, agent } => {
                let open = new.open_questions.get(question);
                let asked_at_ms = open.map_or(new.updated_at_ms, |q| q.asked_at_ms);
                ops.push(QuestionOp::Open { question: *question, asked_at_ms });
                events.push(EventData::QuestionAsked(QuestionAsked {
                    agent: agent.clone(),
                    artifact_id: *question,
                    claim_id: new.id,
                    deadline_ms: open.and_then(|q| q.deadline_ms),
                    question_id: *question,
                    to: open.map(|q| q.to.clone()).unwrap_or_default(),
                }));
            }
            Effect::QuestionReminded { question, reminder } => {
                events.push(EventData::QuestionReminded(QuestionReminded {
                    artifact_id: *question,
                    claim_id: new.id,
                    question_id: *question,
                    reminder: *reminder,
                    to: new.open_questions.get(question).map(|q| q.to.clone()).unwrap_or_default(),
                }));
            }
            Effect::QuestionEscalated { question, added } => {
                events.push(EventData::QuestionEscalated(QuestionEscalated {
                    added: added.clone(),
                    artifact_id: *question,
                    claim_id: new.id,
                    question_id: *question,
                    to: new.open_questions.get(question).map(|q| q.to.clone()).unwrap_or_default(),
                }));
            }
            Effect::QuestionClosed { question } => ops.push(QuestionOp::Close { question: *question }),
            Effect::AutoAnswer { question, use_default } => {
                let policy = if *use_default { TimeoutPolicy::Default } else { TimeoutPolicy::Continue };
                events.push(timed_out(*question, policy))
            }
            Effect::Fail { failure_type: FailureType::QuestionTimeout, .. } => {
                if let Some(q) = old.open_questions.iter().find(|(_, q)| q.approval.is_none()).map(|(id, _)| id) {
                    events.push(timed_out(*q, on_question_timeout.into()));
                }
            }
            Effect::Grant(g) => events.push(claim_granted(new, g)),
            Effect::ApprovalAsked(a) => {
                let (event, op) = approval_asked(new, a);
                events.push(event);
                ops.push(op);
            }
            Effect::ReviewAsked { question } => {
                let order = ApprovalOrder {
                    question: *question,
                    agent: sett_core::review::human_review_role(),
                    claim_type: sett_core::ClaimType::Review,
                };
                let (event, op) = approval_asked(new, &order);
                events.push(event);
                ops.push(op);
            }
            // The Review artifact's own write records it (a follow-up).
            Effect::HumanReviewed { .. } => {}
            Effect::ApprovalTimedOut { question, on_timeout } => {
                events.push(timed_out(*question, (*on_timeout).into()))
            }
            Effect::Fail { .. } | Effect::CreateClaim { .. } => {}
        }
    }
    // A grant whose type names the new status (consensus → `pending_exclusive` with an
    // `exclusive` grant, and so on) records the status change itself: a `claim_updated` beside it
    // would repeat it, one more stream entry (~350 bytes) for every reader of the stream.
    let granted_into_status =
        effects.iter().any(|e| matches!(e, Effect::Grant(g) if g.claim_type.granted_status() == Some(new.status)));
    if old.status != new.status && !granted_into_status {
        // A claim that ends is recorded by its ending event alone (its kind names the status, as
        // `sett cancel`'s `claim_terminated` always did): a `claim_updated` beside it would repeat
        // it in the ledger, about 400 bytes of stream per claim.
        let ended = ClaimEnded::new(new);
        events.push(match new.status {
            ClaimStatus::Complete => EventData::ClaimCompleted(ended),
            ClaimStatus::Terminated => EventData::ClaimTerminated(ended),
            ClaimStatus::Dormant => EventData::ClaimDormant(ended),
            _ => EventData::ClaimUpdated(ClaimUpdated::transition(old, new)),
        });
    }
    (events, ops)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sett_core::event::EventKind;
    use sett_core::machine::{AgentPolicy, Input, Policy, StepContext, new_claim, step};
    use sett_core::{AgentName, Artifact, BidType, ClaimType, StructuralType};

    use super::*;

    #[test]
    fn consensus_writes_grants_that_record_the_status_change() {
        let coder = AgentName::parse("Coder").unwrap();
        let policy = Policy {
            agents: BTreeMap::from([(
                coder.clone(),
                AgentPolicy { timeout_ms: 1000, question_timeout_ms: None, via_worker: false, approval: None },
            )]),
            max_review_iterations: 3,
            bid_timeout_ms: 1000,
            on_question_timeout: OnQuestionTimeout::Fail,
            routing: Default::default(),
        };
        let goal =
            Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "GoalDefined", "g", "user", 1);
        let claim = new_claim(sett_store::new_claim_id(), &goal, &policy, 1);
        let bids = BTreeMap::from([(coder, BidType::Exclusive)]);
        let t = step(&claim, &Input::Bids, StepContext { bids: &bids, now_ms: 2 }, &policy).unwrap();
        let (events, ops) = transition_records(&claim, &t.claim, &t.effects, policy.on_question_timeout);
        let kinds: Vec<EventKind> = events.iter().map(EventData::kind).collect();
        // The grant records the status change: its type names `pending_exclusive`.
        assert_eq!(kinds, vec![EventKind::ClaimGranted]);
        assert!(matches!(&events[0], EventData::ClaimGranted(g) if g.claim_type == ClaimType::Exclusive));
        assert_eq!(t.claim.status, ClaimStatus::PendingExclusive);
        assert!(ops.is_empty());

        // The agent's Terminal completes the claim: one `claim_completed`, no `claim_updated`.
        let output = Artifact::of_claim(
            sett_store::new_artifact_id(),
            &t.claim,
            StructuralType::Terminal,
            "Done",
            "ok",
            "Coder",
            3,
        );
        let done =
            step(&t.claim, &Input::Output(Box::new(output)), StepContext { bids: &bids, now_ms: 3 }, &policy).unwrap();
        assert_eq!(done.claim.status, ClaimStatus::Complete);
        let (events, _) = transition_records(&t.claim, &done.claim, &done.effects, policy.on_question_timeout);
        let kinds: Vec<EventKind> = events.iter().map(EventData::kind).collect();
        assert_eq!(kinds, vec![EventKind::ClaimCompleted]);
    }
}
