//! An artifact produced for the claim: the work, a review, a question, a failure, and what each
//! moves the claim to.

use crate::artifact::{Artifact, StructuralType};
use crate::claim::{Claim, ClaimStatus, Phase};
use crate::policy::Policy;

use super::Effect;
use super::phases::complete_phase;
use super::tick::routed_question;

pub(super) fn output(c: &mut Claim, artifact: &Artifact, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    let Some(agent) = artifact.producing_agent() else {
        return;
    };
    let Some(grant) = c.grants.get(&agent) else {
        return;
    };
    if c.received.contains_key(&agent) || c.status == ClaimStatus::PendingConsensus {
        return;
    }
    let asking = c.open_questions.values().any(|q| q.agent == agent);
    let _ = grant;
    match artifact.structural_type {
        StructuralType::Question => {
            if asking {
                return;
            }
            if c.status != ClaimStatus::PendingAnswer {
                c.resume_status = Some(c.status);
                c.status = ClaimStatus::PendingAnswer;
            }
            let deadline_ms = policy.agents.get(&agent).and_then(|p| p.question_timeout_ms).map(|t| now_ms + t);
            let to = crate::routing::addressees_in_payload(&artifact.payload)
                .or_else(|| policy.routing.questions_to.get(&agent).cloned())
                .unwrap_or_default();
            c.open_questions.insert(artifact.id, routed_question(&agent, to, now_ms, deadline_ms, &policy.routing));
            c.question_id = Some(artifact.id);
            if let Some(g) = c.grants.get_mut(&agent) {
                g.deadline_ms = None;
            }
            effects.push(Effect::QuestionOpened { question: artifact.id, agent });
        }
        StructuralType::Answer => {}
        StructuralType::Failure => {
            for q in std::mem::take(&mut c.open_questions).into_keys() {
                effects.push(Effect::QuestionClosed { question: q });
            }
            c.received.insert(agent.clone(), artifact.id);
            c.status = ClaimStatus::Terminated;
            c.outcome_artifact = Some(artifact.id);
            c.termination_reason = Some(format!(
                "agent {agent} reported a failure ({}: artifact {})",
                artifact.artifact_type, artifact.id
            ));
        }
        StructuralType::Terminal => {
            for q in std::mem::take(&mut c.open_questions).into_keys() {
                effects.push(Effect::QuestionClosed { question: q });
            }
            c.received.insert(agent, artifact.id);
            c.status = ClaimStatus::Complete;
            c.outcome_artifact = Some(artifact.id);
        }
        StructuralType::Standard | StructuralType::Review => {
            if asking {
                // The agent answered its own question by producing output; keep the question
                // open for the record but accept the work.
                return;
            }
            c.received.insert(agent, artifact.id);
            let phase = c.status.phase().or(c.resume_status.and_then(ClaimStatus::phase));
            if phase == Some(Phase::Review) && !artifact.is_approval() {
                c.rejections.push(artifact.id);
            }
            if c.status == ClaimStatus::PendingAnswer {
                return; // the phase completes once the remaining questions are answered
            }
            if c.grants.keys().all(|a| c.received.contains_key(a)) {
                complete_phase(c, policy, now_ms, effects);
            }
        }
    }
}
