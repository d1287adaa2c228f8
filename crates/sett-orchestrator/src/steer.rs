//! Operators' steering that needs the engine: retried steps and forked answers.
//!
//! Retried steps: on `workflow_retried` (`sett retry`, written by `lua/retry.lua`) the
//! orchestrator creates the new attempt's claim on the failed claim's artifact, waiting for bids
//! as a new artifact's claim does, with the failed claim's context and the Failure that ended it
//! as additional context. Its id comes from the event, so handling the event again is refused as
//! a duplicate and only catches up on bids.
//!
//! Forked answers: on `artifact_forked` naming a branch claim (`sett fork` of a Question with a
//! different answer), the orchestrator creates that claim: the asking claim as it stood when the
//! question was asked, with the new answer, its agent granted `resume` at once
//! (`machine::forked_answer_claim`). A fork of any other artifact needs nothing here: the new
//! version gets its claim like every new artifact.

use sett_core::event::{ArtifactForked, WorkflowRetried};
use sett_core::machine::{Input, forked_answer_claim, new_claim};
use sett_core::{AgentName, metrics as m};
use sett_store::{WriteOutcome, now_ms};
use tracing::{info, warn};

use crate::OrchestratorError;
use crate::engine::Engine;
use crate::ledger;

impl Engine {
    pub(crate) async fn on_retry(&self, r: &WorkflowRetried) -> Result<(), OrchestratorError> {
        let (artifact, failed) =
            tokio::try_join!(self.store.get_artifact(&r.artifact_id), self.store.get_claim(&r.failed_claim))?;
        let Some(artifact) = artifact else {
            warn!(artifact_id = %r.artifact_id, "workflow_retried names an artifact that does not exist; ignoring");
            return Ok(());
        };
        let now = now_ms();
        let mut claim = new_claim(r.claim_id, &artifact, &self.policy, now);
        claim.additional_context_ids = failed.map(|f| f.additional_context_ids).unwrap_or_default();
        claim.additional_context_ids.extend(r.failure.filter(|f| !claim.additional_context_ids.contains(f)));
        let created = ledger::claim_created(&claim);
        match self.store.write_claim(&claim, None, false, &[], &[created], now).await? {
            WriteOutcome::Written => {
                self.written.wrote(&claim);
                metrics::counter!(m::CLAIMS_CREATED, "kind" => "retry").increment(1);
                info!(claim_id = %claim.id, failed_claim = %r.failed_claim, operator = %r.operator, "retry claim created");
                if let Some(at) = claim.next_deadline_ms() {
                    self.deadline_written(at);
                }
                Ok(())
            }
            // Handled again (a restart, a failed batch): bids may have come meanwhile.
            WriteOutcome::Exists(_) => self.apply(&claim.id, Input::Bids).await.map(drop),
            WriteOutcome::Cancelled(fence) => {
                info!(claim_id = %claim.id, %fence, "no retry claim: the workflow was cancelled");
                Ok(())
            }
            // A create that waits for bids (and records none) is never held nor compared.
            WriteOutcome::Conflict { .. }
            | WriteOutcome::Paused(_)
            | WriteOutcome::BidsChanged { .. }
            | WriteOutcome::OfferGone { .. } => Ok(()),
        }
    }

    pub(crate) async fn on_fork(&self, f: &ArtifactForked) -> Result<(), OrchestratorError> {
        let Some(branch) = f.claim_id else { return Ok(()) };
        let question = self.store.get_artifact(&f.forked_from).await?;
        let asking = match question.as_ref().and_then(|q| q.claim_id) {
            Some(c) => self.store.get_claim(&c).await?,
            None => None,
        };
        let (Some(question), Some(asking)) = (question, asking) else {
            warn!(forked_from = %f.forked_from, "artifact_forked names a question without its claim; ignoring");
            return Ok(());
        };
        let Ok(agent) = AgentName::parse(&question.produced_by_role) else {
            warn!(question_id = %question.id, role = %question.produced_by_role, "a forked question not asked by an agent; ignoring");
            return Ok(());
        };
        let effect = forked_answer_claim(&asking, branch, &agent, question.id, f.artifact_id, &self.policy, now_ms());
        self.follow_up(&asking.id, &effect).await?;
        info!(claim_id = %branch, question_id = %question.id, operator = %f.operator, "forked answer: branch claim created");
        Ok(())
    }
}
