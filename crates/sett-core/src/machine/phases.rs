//! Phases: consensus among the bidders, the phase order (work, review, …), a human review,
//! a phase's completion, and the feedback loop of a review's rejection (rework).

use std::collections::BTreeMap;

use crate::claim::{BidType, Claim, ClaimStatus, ClaimType, OpenQuestion, Phase};
use crate::ids::{AgentName, ArtifactId};
use crate::policy::Policy;
use crate::review::{HumanReview, ReviewDecision, human_review_role, review_artifact_id, review_question_id};

use super::assign::assigned_claim;
use super::grant::{grant, terminate};
use super::tick::routed_question;
use super::{Effect, FailureType};

pub(super) fn consensus(
    c: &mut Claim,
    bids: &BTreeMap<AgentName, BidType>,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    // Bids from agents that are not configured are ignored; missing bids count as `ignore`.
    let known =
        |b: BidType| -> Vec<AgentName> { policy.agents.keys().filter(|a| bids.get(*a) == Some(&b)).cloned().collect() };
    let missing: Vec<AgentName> = policy.agents.keys().filter(|a| !bids.contains_key(*a)).cloned().collect();
    if !missing.is_empty() {
        effects.push(Effect::BidsMissing { agents: missing.clone() });
    }
    c.missing_bids = missing;
    c.bid_deadline_ms = None;
    c.granted_review_agents = known(BidType::Review);
    c.granted_parallel_agents = known(BidType::Claim);
    c.granted_exclusive_agent = known(BidType::Exclusive).into_iter().next();
    match first_phase_from(c, None) {
        Some(phase) => start_phase(c, phase, policy, now_ms, effects),
        None => c.status = ClaimStatus::Dormant,
    }
}

/// The next non-empty phase after `after` (review → parallel → exclusive).
pub(super) fn first_phase_from(c: &Claim, after: Option<Phase>) -> Option<Phase> {
    let order = [Phase::Review, Phase::Parallel, Phase::Exclusive];
    let start = match after {
        None => 0,
        Some(p) => order.iter().position(|x| *x == p).map_or(order.len(), |i| i + 1),
    };
    order[start..]
        .iter()
        .copied()
        .find(|p| !phase_agents(c, *p).is_empty() || (*p == Phase::Review && !c.human_reviewers.is_empty()))
}

pub(super) fn phase_agents(c: &Claim, phase: Phase) -> Vec<AgentName> {
    match phase {
        Phase::Review => c.granted_review_agents.clone(),
        Phase::Parallel => c.granted_parallel_agents.clone(),
        Phase::Exclusive => c.granted_exclusive_agent.iter().cloned().collect(),
        Phase::Assignment => c.assigned_agent.iter().cloned().collect(),
    }
}

pub(super) fn start_phase(c: &mut Claim, phase: Phase, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    c.status = phase.status();
    c.grants.clear();
    c.received.clear();
    for agent in phase_agents(c, phase) {
        grant(c, &agent, phase.claim_type(), policy, now_ms, effects);
    }
    if phase == Phase::Review && !c.human_reviewers.is_empty() {
        ask_human_review(c, policy, now_ms, effects);
    }
}

/// Opens the human review of the claim's artifact, addressed to its `humans.reviewers`: the
/// claim waits (`pending_answer`) for it as well as for its reviewing agents. It has no deadline;
/// reminders and escalation apply as to any question.
pub(super) fn ask_human_review(c: &mut Claim, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    let question = review_question_id(&c.id);
    if c.status != ClaimStatus::PendingAnswer {
        c.resume_status = Some(c.status);
        c.status = ClaimStatus::PendingAnswer;
    }
    let to = c.human_reviewers.clone();
    c.open_questions.insert(
        question,
        OpenQuestion { review: true, ..routed_question(&human_review_role(), to, now_ms, None, &policy.routing) },
    );
    effects.push(Effect::ReviewAsked { question });
}

/// A person decided the human review `question`: it closes, its Review artifact is written (a
/// follow-up) and counted like an agent's — a request for changes vetoes — and the phase
/// completes once every reviewing agent delivered too. `None` when `question` is not this
/// claim's open review.
pub(super) fn human_reviewed(
    c: &mut Claim,
    question: ArtifactId,
    review: &HumanReview,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) -> Option<()> {
    if !c.open_questions.get(&question)?.review {
        return None;
    }
    c.open_questions.remove(&question);
    let artifact_id = review_artifact_id(&question);
    if review.decision == ReviewDecision::Changes {
        c.rejections.push(artifact_id);
    }
    effects.push(Effect::QuestionClosed { question });
    effects.push(Effect::HumanReviewed { question, artifact_id, review: review.clone() });
    if c.open_questions.is_empty() {
        c.status = c.resume_status.take().unwrap_or(ClaimStatus::Terminated);
        if c.grants.keys().all(|a| c.received.contains_key(a)) {
            complete_phase(c, policy, now_ms, effects);
        }
    }
    Some(())
}

pub(super) fn complete_phase(c: &mut Claim, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    let Some(phase) = c.status.phase() else {
        return;
    };
    match phase {
        Phase::Assignment | Phase::Exclusive => c.status = ClaimStatus::Complete,
        Phase::Review if !c.rejections.is_empty() => feedback(c, policy, now_ms, effects),
        Phase::Review | Phase::Parallel => match first_phase_from(c, Some(phase)) {
            Some(next) => start_phase(c, next, policy, now_ms, effects),
            None => c.status = ClaimStatus::Complete,
        },
    }
}

pub(super) fn feedback(c: &mut Claim, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    let reviews: Vec<String> = c.rejections.iter().map(ToString::to_string).collect();
    let reviews = reviews.join(", ");
    let Ok(producer) = AgentName::parse(&c.target_producer) else {
        terminate(
            c,
            FailureType::GoalRejected,
            format!(
                "review rejected artifact {} produced by '{}', which no agent can rework (reviews: {reviews})",
                c.artifact_id, c.target_producer
            ),
            effects,
        );
        return;
    };
    if !policy.agents.contains_key(&producer) {
        terminate(
            c,
            FailureType::MissingAgentConfiguration,
            format!(
                "review rejected artifact {} but its producer {producer} is not configured (reviews: {reviews})",
                c.artifact_id
            ),
            effects,
        );
        return;
    }
    let max = policy.max_review_iterations;
    if max > 0 && c.target_version.saturating_sub(1) >= max {
        terminate(
            c,
            FailureType::MaxIterationsExceeded,
            format!(
                "artifact {} was rejected at version {} and max_review_iterations is {max} (reviews: {reviews})",
                c.artifact_id, c.target_version
            ),
            effects,
        );
        return;
    }
    c.status = ClaimStatus::Terminated;
    c.termination_reason = Some(format!("rejected by review; rework assigned to {producer} (reviews: {reviews})"));
    let rework = Claim {
        id: crate::derive::rework_claim_id(&c.id),
        revision: 1,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        status: ClaimStatus::PendingAssignment,
        rework_of: Some(c.id),
        bid_deadline_ms: None,
        missing_bids: Vec::new(),
        granted_review_agents: Vec::new(),
        granted_parallel_agents: Vec::new(),
        granted_exclusive_agent: None,
        human_reviewers: Vec::new(),
        assigned_agent: Some(producer.clone()),
        additional_context_ids: c.rejections.clone(),
        grants: BTreeMap::new(),
        received: BTreeMap::new(),
        rejections: Vec::new(),
        grant_seq: 0,
        question_id: None,
        open_questions: BTreeMap::new(),
        answered_questions: Vec::new(),
        resume_status: None,
        termination_reason: None,
        outcome_artifact: None,
        ..c.clone()
    };
    effects.push(assigned_claim(rework, &producer, ClaimType::Rework, policy, now_ms));
}
