//! Pauses, from the engine's side (design.md §4a): a write that grants is refused by the store
//! while its scope is paused and the claim is held (`transitions.rs`); the deadline loop leaves
//! paused claims alone (their deadlines are moved later on resume, in the resume's own atomic
//! write); and on `resumed` (and every few seconds while anything is held) each held claim gets
//! every input it may have missed applied again: its bids, the outputs its grants wrote and the
//! answers to its open questions. Every input is idempotent, so applying one twice is harmless.

use sett_core::machine::Input;
use sett_core::{ArtifactId, Claim, ClaimId, ClaimStatus, metrics as m};
use sett_store::PauseScope;
use tracing::{debug, info};

use crate::OrchestratorError;
use crate::engine::Engine;

impl Engine {
    /// The pause that holds `claim`, if any.
    pub(crate) async fn pause_holding(&self, claim: &Claim) -> Result<Option<PauseScope>, OrchestratorError> {
        Ok(self.store.pause_holding(&claim.id, &claim.artifact_id).await?)
    }

    /// Applies again every held claim whose pause was lifted; a claim still paused stays held
    /// (and one applied into a new pause is held again by its own refused write).
    pub(crate) async fn release_held(&self) -> Result<(), OrchestratorError> {
        let held = self.store.held_claims().await?;
        let mut applied = 0;
        for (id, score) in held {
            // A claim still paused stays held (the sweep runs every few seconds while paused):
            // forgotten, nothing would apply it on resume.
            if self.reapply(&id).await? {
                self.store.release_held(&id, score).await?;
                applied += 1;
            }
        }
        if applied > 0 {
            info!(claims = applied, "applied the claims a pause held");
        }
        self.refresh_pause_gauges().await;
        Ok(())
    }

    /// Every input a held claim may have missed: the bids (while it waits for them), each output
    /// its open grants wrote, each answer to its open questions. False when the claim is still
    /// paused (nothing applied: it stays held).
    async fn reapply(&self, id: &ClaimId) -> Result<bool, OrchestratorError> {
        let Some(claim) = self.store.get_claim(id).await? else { return Ok(true) };
        if claim.status.is_final() {
            return Ok(true);
        }
        if let Some(scope) = self.pause_holding(&claim).await? {
            debug!(claim_id = %id, %scope, "still paused");
            return Ok(false);
        }
        if claim.status == ClaimStatus::PendingConsensus {
            self.apply(id, Input::Bids).await?;
        }
        let outputs: Vec<ArtifactId> = claim
            .grants
            .iter()
            .filter(|(agent, _)| !claim.received.contains_key(*agent))
            .map(|(_, g)| ArtifactId::grant_output(id, g.seq))
            .collect();
        for output in outputs {
            if let Some(artifact) = self.store.get_artifact(&output).await? {
                self.apply(id, Input::Output(Box::new(artifact))).await?;
            }
        }
        for question in claim.open_questions.keys() {
            if let Some(rec) = self.store.answer_record(question).await? {
                self.apply(id, Input::Answer { question: *question, answer: rec.answer_id }).await?;
            }
        }
        Ok(true)
    }

    /// Sets the pause gauges from the store (`sett_paused`, `sett_paused_workflows`,
    /// `sett_held_claims`).
    pub(crate) async fn refresh_pause_gauges(&self) {
        if let Ok(pauses) = self.store.pauses().await {
            let instance = pauses.iter().any(|(s, _)| *s == PauseScope::Instance);
            metrics::gauge!(m::PAUSED).set(if instance { 1.0 } else { 0.0 });
            let workflows = pauses.iter().filter(|(s, _)| *s != PauseScope::Instance).count();
            metrics::gauge!(m::PAUSED_WORKFLOWS).set(workflows as f64);
        }
        if let Ok(held) = self.store.held_claims().await {
            metrics::gauge!(m::HELD_CLAIMS).set(held.len() as f64);
        }
    }
}
