//! Claims created already assigned: a rework claim, and the branch claim of a forked answer
//! (`sett fork` of a Question).

use std::collections::BTreeMap;

use crate::claim::{AnsweredQuestion, Claim, ClaimStatus, ClaimType};
use crate::ids::{AgentName, ArtifactId, ClaimId};
use crate::policy::Policy;

use super::Effect;
use super::grant::grant;

/// Creating `claim`, assigned to `agent`, with its first grant (of `claim_type`; or the approval
/// that grant waits for).
pub(super) fn assigned_claim(
    mut claim: Claim,
    agent: &AgentName,
    claim_type: ClaimType,
    policy: &Policy,
    now_ms: i64,
) -> Effect {
    let mut granted = Vec::new();
    grant(&mut claim, agent, claim_type, policy, now_ms, &mut granted);
    let (mut grants, mut approvals) = (Vec::new(), Vec::new());
    for e in granted {
        match e {
            Effect::Grant(g) => grants.push(g),
            Effect::ApprovalAsked(a) => approvals.push(a),
            _ => {}
        }
    }
    Effect::CreateClaim { claim: Box::new(claim), grants, approvals }
}

/// The claim of a branch that gives `question`, asked by `agent` in claim `asking`, the
/// different `answer` (`sett fork` of a Question): the asking claim as it stood when the question
/// was asked — same artifact and context, the answers given before it — with `answer` in place
/// of the first one, assigned to the agent, which is granted `resume` at once.
pub fn forked_answer_claim(
    asking: &Claim,
    id: ClaimId,
    agent: &AgentName,
    question: ArtifactId,
    answer: ArtifactId,
    policy: &Policy,
    now_ms: i64,
) -> Effect {
    let mut answered: Vec<AnsweredQuestion> =
        asking.answered_questions.iter().take_while(|qa| qa.question != question).cloned().collect();
    answered.push(AnsweredQuestion { agent: agent.clone(), question, answer });
    let branch = Claim {
        id,
        revision: 1,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        status: ClaimStatus::PendingAssignment,
        rework_of: None,
        bid_deadline_ms: None,
        missing_bids: Vec::new(),
        granted_review_agents: Vec::new(),
        granted_parallel_agents: Vec::new(),
        granted_exclusive_agent: None,
        assigned_agent: Some(agent.clone()),
        grants: BTreeMap::new(),
        received: BTreeMap::new(),
        rejections: Vec::new(),
        grant_seq: 0,
        question_id: Some(question),
        open_questions: BTreeMap::new(),
        answered_questions: answered,
        resume_status: None,
        termination_reason: None,
        outcome_artifact: None,
        ..asking.clone()
    };
    assigned_claim(branch, agent, ClaimType::Resume, policy, now_ms)
}
