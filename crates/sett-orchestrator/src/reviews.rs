//! Human reviewers (`humans.reviewers`): the orchestrator writes a claim's review Question — the
//! artifact under review with its content hash, addressed to its reviewers — before the
//! transition that opens it (so the question exists whenever the open-question index names it),
//! reads a person's answer into the state machine's `Input::HumanReview`, and writes the Review
//! artifact (produced by `human:<name>`) that the decision became.

use sett_core::approval::BoundArtifact;
use sett_core::review::{HumanReview, REVIEW_ARTIFACT_TYPE, ReviewAnswer, ReviewDecision, ReviewSubject};
use sett_core::{Artifact, ArtifactId, Claim, ClaimId, StructuralType};
use sett_store::{AnswerRecord, CreateOutcome, StoreError, now_ms};
use tracing::info;

use crate::OrchestratorError;
use crate::engine::Engine;

impl Engine {
    /// Writes the review Question `question` of `claim`. Its id is derived, so writing it again
    /// (a retried transition) is a no-op.
    pub(crate) async fn write_review_question(&self, claim: &Claim, question: ArtifactId) -> Result<(), StoreError> {
        let target = self.store.get_artifact(&claim.artifact_id).await?.ok_or_else(|| {
            StoreError::Conflict(format!("the target {} of claim {} does not exist", claim.artifact_id, claim.id))
        })?;
        let hash = self.store.artifact_hashes(&[target.id]).await?.pop().flatten();
        let subject = ReviewSubject {
            claim_id: claim.id,
            target: BoundArtifact::of(&target, hash.as_deref()),
            reviewers: claim.human_reviewers.clone(),
        };
        let mut asked = Artifact::of_claim(
            question,
            claim,
            StructuralType::Question,
            REVIEW_ARTIFACT_TYPE,
            subject.to_payload(),
            "orchestrator",
            now_ms(),
        );
        asked.summary = Some(format!(
            "review: {} {} by {}",
            target.artifact_type,
            target.id.short(),
            claim.human_reviewers.join(", ")
        ));
        match self.store.create_artifact(&asked).await? {
            CreateOutcome::Created { .. } => {
                info!(claim_id = %claim.id, question_id = %question, reviewers = ?claim.human_reviewers, "human review asked; the review phase waits for it");
                Ok(())
            }
            CreateOutcome::IdExists => Ok(()),
            other => Err(StoreError::Conflict(format!("cannot write review question {question}: {other:?}"))),
        }
    }

    /// The decision a person gave on review `question` (answer record `record`): `None` when the
    /// question is not a human review. An answer that does not read as a decision (it was
    /// validated when written, so only a stored answer edited since) requests changes with its
    /// text: it never approves.
    pub(crate) async fn human_review_of(
        &self,
        question: ArtifactId,
        record: &AnswerRecord,
    ) -> Result<Option<HumanReview>, StoreError> {
        let (asked, answer) =
            tokio::try_join!(self.store.get_artifact(&question), self.store.get_artifact(&record.answer_id))?;
        if asked.and_then(|q| ReviewSubject::of_payload(&q.payload)).is_none() {
            return Ok(None);
        }
        let text = answer.map(|a| a.payload).unwrap_or_default();
        let (decision, comments) = match serde_json::from_str::<ReviewAnswer>(&text) {
            Ok(a) => (a.decision, a.comments),
            Err(_) => (ReviewDecision::Changes, Some(text)),
        };
        Ok(Some(HumanReview { by: record.answered_by.clone(), decision, comments, answer: record.answer_id }))
    }

    /// Writes the Review artifact `artifact_id` that `review` (of review question `question` of
    /// claim `claim_id`) became. Idempotent: the id is derived from the question.
    pub(crate) async fn write_human_review(
        &self,
        claim_id: &ClaimId,
        question: ArtifactId,
        artifact_id: ArtifactId,
        review: &HumanReview,
    ) -> Result<(), OrchestratorError> {
        let Some(claim) = self.store.get_claim(claim_id).await? else {
            return Ok(());
        };
        let mut artifact = Artifact::of_claim(
            artifact_id,
            &claim,
            StructuralType::Review,
            REVIEW_ARTIFACT_TYPE,
            review.payload(),
            review.role(),
            now_ms(),
        );
        artifact.source_artifacts = vec![claim.artifact_id, question, review.answer];
        artifact.summary = Some(review.summary());
        match self.store.create_artifact(&artifact).await? {
            CreateOutcome::Created { .. } => {
                info!(claim_id = %claim.id, review_id = %artifact_id, by = %review.by, decision = %review.decision, "human review recorded");
                Ok(())
            }
            CreateOutcome::IdExists => Ok(()),
            other => {
                Err(OrchestratorError::FollowUpRefused { what: "human Review artifact", outcome: format!("{other:?}") })
            }
        }
    }
}
