//! Approval gates (`agents.<name>.approval`): the orchestrator writes the approval Question of a
//! grant it holds back — what the approver is shown: the agent, the claim type, the target and
//! its context chain, each with its content hash — before the transition that opens it (so the
//! question exists whenever the open-question index names it), and judges an answered approval
//! (the decision, and whether it binds the target as stored) into the state machine's
//! `Input::Approval`. Nothing of the agent runs before: no grant event exists until then.

use sett_core::approval::{APPROVAL_ARTIFACT_TYPE, ApprovalAnswer, ApprovalSubject, BoundArtifact, judge};
use sett_core::machine::{ApprovalOrder, Input};
use sett_core::{Artifact, ArtifactId, Claim, StructuralType, metrics as m};
use sett_store::{AnswerRecord, CreateOutcome, StoreError, now_ms};
use tracing::info;

use crate::engine::Engine;

impl Engine {
    /// Writes the approval Question of each of `orders` (grants of `claim` held back). Each has
    /// a derived id, so writing it again (a retried transition, a recovered follow-up) is a no-op.
    pub(crate) async fn write_approval_questions(
        &self,
        claim: &Claim,
        orders: &[ApprovalOrder],
    ) -> Result<(), StoreError> {
        if orders.is_empty() {
            return Ok(());
        }
        let target = self.store.get_artifact(&claim.artifact_id).await?.ok_or_else(|| {
            StoreError::Conflict(format!("the target {} of claim {} does not exist", claim.artifact_id, claim.id))
        })?;
        let chain = sett_store::context::context_chain(&self.store, &target).await?;
        let ids: Vec<ArtifactId> = std::iter::once(target.id).chain(chain.iter().map(|a| a.id)).collect();
        let hashes = self.store.artifact_hashes(&ids).await?;
        let target_bound = BoundArtifact::of(&target, hashes[0].as_deref());
        let context: Vec<BoundArtifact> =
            chain.iter().zip(&hashes[1..]).map(|(a, h)| BoundArtifact::of(a, h.as_deref())).collect();
        let now = now_ms();
        for order in orders {
            let subject = ApprovalSubject {
                agent: order.agent.clone(),
                claim_id: claim.id,
                claim_type: order.claim_type,
                target: target_bound.clone(),
                context: context.clone(),
            };
            let mut question = Artifact::of_claim(
                order.question,
                claim,
                StructuralType::Question,
                APPROVAL_ARTIFACT_TYPE,
                subject.to_payload(),
                "orchestrator",
                now,
            );
            question.summary = Some(format!(
                "approval: may {} act on {} {} ({} claim)?",
                order.agent,
                target.artifact_type,
                target.id.short(),
                order.claim_type
            ));
            match self.store.create_artifact(&question).await? {
                CreateOutcome::Created { .. } => {
                    metrics::counter!(m::APPROVALS, "outcome" => "asked").increment(1);
                    info!(claim_id = %claim.id, question_id = %order.question, agent = %order.agent, claim_type = %order.claim_type, "approval asked; the grant waits for it");
                }
                CreateOutcome::IdExists => {}
                other => {
                    return Err(StoreError::Conflict(format!(
                        "cannot write approval question {}: {other:?}",
                        order.question
                    )));
                }
            }
        }
        Ok(())
    }

    /// The state machine's input for answered question `question` (answer record `record`):
    /// an approval is judged (`approval::judge`: the decision, the hash it binds, the target's
    /// stored hash now); any other question resumes its agent.
    pub(crate) async fn answer_input(&self, question: ArtifactId, record: &AnswerRecord) -> Result<Input, StoreError> {
        let Some(binding) = &record.approval else {
            if let Some(review) = self.human_review_of(question, record).await? {
                return Ok(Input::HumanReview { question, review });
            }
            return Ok(Input::Answer { question, answer: record.answer_id });
        };
        let (asked, answer) =
            tokio::try_join!(self.store.get_artifact(&question), self.store.get_artifact(&record.answer_id))?;
        let Some(subject) = asked.and_then(|q| ApprovalSubject::of_payload(&q.payload)) else {
            // Not an approval after all: the machine ignores an approval binding elsewhere.
            return Ok(Input::Answer { question, answer: record.answer_id });
        };
        let reason =
            answer.and_then(|a| serde_json::from_str::<ApprovalAnswer>(&a.payload).ok()).and_then(|a| a.reason);
        let current = self.store.artifact_hashes(&[subject.target.id]).await?.pop().flatten();
        let verdict = judge(&subject, binding, &record.answered_by, reason.as_deref(), current.as_deref());
        Ok(Input::Approval { question, verdict })
    }
}
