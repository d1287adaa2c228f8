//! The clock's input: bid, execution and question deadlines, and questions routed on (reminders
//! and escalation) when they are due.

use std::collections::BTreeMap;

use crate::claim::{BidType, Claim, ClaimStatus, HeldGrant, OpenQuestion};
use crate::ids::{AgentName, ArtifactId};
use crate::policy::{OnApprovalTimeout, OnQuestionTimeout, Policy};

use super::grant::{release_held_grant, terminate};
use super::phases::consensus;
use super::{Effect, FailureType};

pub(super) fn tick(
    c: &mut Claim,
    bids: &BTreeMap<AgentName, BidType>,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    if c.status == ClaimStatus::PendingConsensus {
        if c.bid_deadline_ms.is_some_and(|d| d <= now_ms) {
            consensus(c, bids, policy, now_ms, effects);
        }
        return;
    }
    let due_approvals: Vec<(ArtifactId, AgentName, HeldGrant)> = c
        .open_questions
        .iter()
        .filter(|(_, q)| q.deadline_ms.is_some_and(|d| d <= now_ms))
        .filter_map(|(id, q)| Some((*id, q.agent.clone(), q.approval.clone()?)))
        .collect();
    for (question, agent, held) in due_approvals {
        let gate = policy.agents.get(&agent).and_then(|p| p.approval.as_ref());
        let on_timeout = gate.map_or(OnApprovalTimeout::Reject, |g| g.on_timeout);
        effects.push(Effect::ApprovalTimedOut { question, on_timeout });
        match on_timeout {
            OnApprovalTimeout::Approve => release_held_grant(c, question, &agent, &held, policy, now_ms, effects),
            OnApprovalTimeout::Reject => {
                let waited = gate.and_then(|g| g.timeout_ms).unwrap_or(0);
                terminate(
                    c,
                    FailureType::ApprovalTimedOut,
                    format!(
                        "nobody approved agent {agent}'s {} claim within {waited} ms (approval {question}; on_timeout: reject)",
                        held.claim_type
                    ),
                    effects,
                );
                return;
            }
        }
    }
    let due_questions: Vec<ArtifactId> = c
        .open_questions
        .iter()
        .filter(|(_, q)| q.deadline_ms.is_some_and(|d| d <= now_ms) && q.approval.is_none())
        .map(|(id, _)| *id)
        .collect();
    if let Some(first) = due_questions.first() {
        match policy.on_question_timeout {
            OnQuestionTimeout::Fail => {
                let agent = c.open_questions[first].agent.clone();
                terminate(
                    c,
                    FailureType::QuestionTimeout,
                    format!("question {first} from agent {agent} was not answered in time"),
                    effects,
                );
                return;
            }
            policy @ (OnQuestionTimeout::Continue | OnQuestionTimeout::Default) => {
                for q in due_questions {
                    if let Some(open) = c.open_questions.get_mut(&q) {
                        open.deadline_ms = None;
                    }
                    effects.push(Effect::AutoAnswer { question: q, use_default: policy == OnQuestionTimeout::Default });
                }
            }
        }
    }
    route_due_questions(c, &policy.routing, now_ms, effects);
    let waiting: Vec<&AgentName> = c.open_questions.values().map(|q| &q.agent).collect();
    let overdue = c
        .grants
        .iter()
        .filter(|(a, _)| !c.received.contains_key(*a) && !waiting.contains(a))
        .find(|(_, g)| g.deadline_ms.is_some_and(|d| d <= now_ms))
        .map(|(a, _)| a.clone());
    if let Some(agent) = overdue {
        let timeout = policy.agents.get(&agent).map_or(0, |p| p.timeout_ms);
        terminate(
            c,
            FailureType::ExecutionTimeout,
            format!("agent {agent} produced no output within its timeout of {} ms", timeout),
            effects,
        );
    }
}

/// A question `agent` asks (or an approval held for it) at `now_ms`, addressed to `to`, with its
/// first reminder and its escalation scheduled by `routing`.
pub(super) fn routed_question(
    agent: &AgentName,
    to: Vec<String>,
    now_ms: i64,
    deadline_ms: Option<i64>,
    routing: &crate::routing::Routing,
) -> OpenQuestion {
    OpenQuestion {
        people: routing.people(&to),
        to,
        remind_at_ms: routing.remind_every_ms.map(|e| now_ms + e),
        escalate_at_ms: routing.escalate_after_ms.map(|e| now_ms + e),
        ..OpenQuestion::new(agent.clone(), now_ms, deadline_ms)
    }
}

/// Escalates and reminds the open questions whose time came: escalation adds
/// `humans.escalate_to` to the addressees once (a question addressed to nobody stays open to
/// anyone; its escalation still tells the list); a reminder is due every `remind_every` from
/// the last one (not from when it was due: after an outage one reminder goes out, not a burst).
pub(super) fn route_due_questions(
    c: &mut Claim,
    routing: &crate::routing::Routing,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    for (id, q) in &mut c.open_questions {
        if q.escalate_at_ms.is_some_and(|d| d <= now_ms) {
            q.escalate_at_ms = None;
            q.escalated = true;
            let added: Vec<String> = routing.escalate_to.iter().filter(|a| !q.to.contains(a)).cloned().collect();
            if !q.to.is_empty() {
                q.to = crate::routing::normalise(q.to.iter().chain(&added).cloned());
                q.people = routing.people(&q.to);
            }
            effects.push(Effect::QuestionEscalated { question: *id, added });
        }
        if q.remind_at_ms.is_some_and(|d| d <= now_ms) {
            q.reminders += 1;
            q.remind_at_ms = routing.remind_every_ms.map(|e| now_ms + e);
            effects.push(Effect::QuestionReminded { question: *id, reminder: q.reminders });
        }
    }
}
