//! Grants: an agent granted the claim, or its grant held back for an approval, and the claim's
//! termination with its Failure.

use crate::approval::approval_question_id;
use crate::claim::{Claim, ClaimStatus, ClaimType, Grant, HeldGrant, OpenQuestion};
use crate::ids::{AgentName, ArtifactId};
use crate::policy::Policy;

use super::tick::routed_question;
use super::{ApprovalOrder, EXECUTION_GRACE_MS, Effect, FailureType, GrantOrder};

/// Grants `agent` the claim — or, when the agent's grants of `claim_type` need approval, holds
/// the grant back and asks for it: the claim waits (`pending_answer`) on an approval question.
pub(super) fn grant(
    c: &mut Claim,
    agent: &AgentName,
    claim_type: ClaimType,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    let gate = policy.agents.get(agent).and_then(|p| p.approval.as_ref()).filter(|g| g.gates(claim_type));
    let Some(gate) = gate else {
        grant_now(c, agent, claim_type, None, policy, now_ms, effects);
        return;
    };
    c.grant_seq += 1;
    let question = approval_question_id(&c.id, c.grant_seq);
    if c.status != ClaimStatus::PendingAnswer {
        c.resume_status = Some(c.status);
        c.status = ClaimStatus::PendingAnswer;
    }
    // An approval is routed like the agent's own questions: to its `questions_to`, reminded
    // and escalated alike.
    let to = policy.routing.questions_to.get(agent).cloned().unwrap_or_default();
    c.open_questions.insert(
        question,
        OpenQuestion {
            approval: Some(HeldGrant { claim_type }),
            ..routed_question(agent, to, now_ms, gate.timeout_ms.map(|t| now_ms + t), &policy.routing)
        },
    );
    effects.push(Effect::ApprovalAsked(ApprovalOrder { question, agent: agent.clone(), claim_type }));
}

/// The approval `question` was given (by a person, or by `on_timeout: approve`): closes it and
/// makes the grant it held back.
pub(super) fn release_held_grant(
    c: &mut Claim,
    question: ArtifactId,
    agent: &AgentName,
    held: &HeldGrant,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    c.open_questions.remove(&question);
    effects.push(Effect::QuestionClosed { question });
    if c.open_questions.is_empty() {
        c.status = c.resume_status.take().unwrap_or(ClaimStatus::Terminated);
    }
    grant_now(c, agent, held.claim_type, Some(question), policy, now_ms, effects);
}

pub(super) fn grant_now(
    c: &mut Claim,
    agent: &AgentName,
    claim_type: ClaimType,
    approval: Option<ArtifactId>,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    let (timeout_ms, via_worker) = policy.agents.get(agent).map_or((0, false), |p| (p.timeout_ms, p.via_worker));
    c.grant_seq += 1;
    let seq = c.grant_seq;
    c.grants.insert(
        agent.clone(),
        Grant {
            claim_type,
            seq,
            granted_at_ms: now_ms,
            // A worker's clock starts when it is launched (it may wait in the queue first).
            deadline_ms: (!via_worker).then_some(now_ms + timeout_ms + EXECUTION_GRACE_MS),
            via_worker,
        },
    );
    effects.push(Effect::Grant(GrantOrder { agent: agent.clone(), claim_type, seq, via_worker, approval }));
}

pub(super) fn terminate(c: &mut Claim, failure_type: FailureType, reason: String, effects: &mut Vec<Effect>) {
    let artifact_id = crate::derive::failure_artifact_id(&c.id);
    for q in std::mem::take(&mut c.open_questions).into_keys() {
        effects.push(Effect::QuestionClosed { question: q });
    }
    c.status = ClaimStatus::Terminated;
    c.outcome_artifact = Some(artifact_id);
    c.termination_reason = Some(reason.clone());
    effects.push(Effect::Fail { artifact_id, failure_type, reason });
}
