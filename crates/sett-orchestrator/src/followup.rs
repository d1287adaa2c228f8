//! Follow-up effects of a claim transition that need writes of their own (a Failure artifact, a
//! rework claim, an automatic answer, a worker launch). They are recorded in the store's outbox
//! atomically with the transition and removed once carried out, so a crash in between loses
//! nothing; each one is idempotent (deterministic ids, idempotent worker offers).

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sett_core::machine::{Effect, FailureType};
use sett_core::{AgentName, Artifact, ArtifactId, Claim, ClaimId, ClaimType, StructuralType, metrics as m};
use sett_store::{AnswerRecord, CreateOutcome, StoreError, WriteOutcome, now_ms};
use tracing::{error, info, warn};

use crate::engine::Engine;
use crate::ledger;

/// One follow-up effect, serialisable for the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FollowUp {
    /// Write the Failure artifact that ended the claim.
    Fail { artifact_id: ArtifactId, failure_type: FailureType, reason: String },
    /// Create a rework claim (its grant events are written with it).
    CreateClaim { claim: Box<Claim>, grants: Vec<GrantSpec> },
    /// Answer a timed-out question as the orchestrator (`on_question_timeout: continue`).
    AutoAnswer { question: ArtifactId },
    /// Offer a controller grant to the agent's worker pool.
    LaunchWorker { agent: AgentName, seq: u64 },
}

/// A grant to announce (the payload of a `claim_granted` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSpec {
    pub agent: AgentName,
    pub claim_type: ClaimType,
    pub seq: u64,
    pub via_worker: bool,
}

impl GrantSpec {
    pub(crate) fn from_effect(e: &Effect) -> Option<Self> {
        match e {
            Effect::Grant { agent, claim_type, seq, via_worker } => {
                Some(Self { agent: agent.clone(), claim_type: *claim_type, seq: *seq, via_worker: *via_worker })
            }
            _ => None,
        }
    }
}

/// The follow-ups among a transition's effects (grants to cubs need none: their event is written
/// with the transition).
pub(crate) fn follow_ups(effects: &[Effect]) -> Vec<FollowUp> {
    let mut out = Vec::new();
    for e in effects {
        match e {
            Effect::Fail { artifact_id, failure_type, reason } => out.push(FollowUp::Fail {
                artifact_id: *artifact_id,
                failure_type: *failure_type,
                reason: reason.clone(),
            }),
            Effect::CreateClaim { claim, grants } => out.push(FollowUp::CreateClaim {
                claim: claim.clone(),
                grants: grants.iter().filter_map(GrantSpec::from_effect).collect(),
            }),
            Effect::AutoAnswer { question } => out.push(FollowUp::AutoAnswer { question: *question }),
            Effect::Grant { agent, seq, via_worker: true, .. } => {
                out.push(FollowUp::LaunchWorker { agent: agent.clone(), seq: *seq });
            }
            Effect::Grant { .. }
            | Effect::QuestionOpened { .. }
            | Effect::QuestionClosed { .. }
            | Effect::BidsMissing { .. } => {}
        }
    }
    out
}

impl Engine {
    /// After a restart: carries out the follow-ups recorded before a crash.
    pub(crate) async fn recover_outbox(&self) -> Result<(), StoreError> {
        let outbox = self.store.outbox().await?;
        if !outbox.is_empty() {
            info!(entries = outbox.len(), "carrying out follow-ups recorded before a restart");
        }
        self.carry_out_all(outbox).await
    }

    /// Carries out every given outbox entry (all of them are idempotent, so an entry another
    /// task is carrying out at the same moment is harmless).
    pub(crate) async fn carry_out_all(&self, outbox: Vec<(String, serde_json::Value)>) -> Result<(), StoreError> {
        for (entry, value) in outbox {
            let Some(claim) = entry.split(':').next().and_then(|c| ClaimId::parse(c).ok()) else {
                warn!(entry, "ignoring a malformed outbox entry");
                self.store.outbox_done(&entry).await?;
                continue;
            };
            match serde_json::from_value::<Vec<FollowUp>>(value) {
                Ok(follow) => self.carry_out(claim, &entry, follow).await,
                Err(e) => {
                    warn!(entry, error = %e, "ignoring an unreadable outbox entry");
                    self.store.outbox_done(&entry).await?;
                }
            }
        }
        Ok(())
    }

    /// Carries out follow-ups recorded in outbox `entry`; removes the entry when all succeeded.
    /// A failure leaves the entry for a retry in the background.
    pub(crate) async fn carry_out(&self, claim: ClaimId, entry: &str, follow: Vec<FollowUp>) {
        let mut attempt = 0u32;
        loop {
            let mut ok = true;
            for f in &follow {
                if let Err(e) = self.follow_up(&claim, f).await {
                    warn!(claim_id = %claim, error = %e, "a follow-up failed; retrying");
                    ok = false;
                    break;
                }
            }
            if ok && self.store.outbox_done(entry).await.is_ok() {
                return;
            }
            attempt += 1;
            if attempt >= 5 {
                error!(claim_id = %claim, entry, "follow-ups keep failing; they stay in the outbox and are retried shortly");
                self.outbox_left.store(true, Ordering::SeqCst);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    async fn follow_up(&self, claim_id: &ClaimId, f: &FollowUp) -> Result<(), StoreError> {
        let now = now_ms();
        match f {
            FollowUp::Fail { artifact_id, failure_type, reason } => {
                let Some(claim) = self.store.get_claim(claim_id).await? else {
                    return Ok(());
                };
                let failure = Artifact {
                    id: *artifact_id,
                    logical_id: *artifact_id,
                    version: 1,
                    structural_type: StructuralType::Failure,
                    artifact_type: failure_type.to_string(),
                    payload: json!({"reason": reason, "claim_id": claim.id, "artifact_id": claim.artifact_id})
                        .to_string(),
                    source_artifacts: vec![claim.artifact_id],
                    produced_by_role: "orchestrator".into(),
                    claim_id: Some(claim.id),
                    created_at_ms: now,
                    summary: Some(reason.clone()),
                    answered_by: None,
                    timed_out: false,
                };
                match self.store.create_artifact(&failure).await? {
                    CreateOutcome::Created { .. } | CreateOutcome::IdExists => Ok(()),
                    other => Err(StoreError::Conflict(format!("cannot write the Failure artifact: {other:?}"))),
                }
            }
            FollowUp::CreateClaim { claim, grants } => {
                let mut events = vec![ledger::claim_created(claim)];
                events.extend(grants.iter().map(|g| ledger::claim_granted(claim, g)));
                let launches: Vec<FollowUp> = grants
                    .iter()
                    .filter(|g| g.via_worker)
                    .map(|g| FollowUp::LaunchWorker { agent: g.agent.clone(), seq: g.seq })
                    .collect();
                let outbox = (!launches.is_empty()).then(|| serde_json::to_value(&launches).expect("serialisable"));
                match self.store.write_claim_with_outbox(claim, None, false, &[], &events, outbox.as_ref(), now).await?
                {
                    WriteOutcome::Written => {
                        metrics::counter!(m::CLAIMS_CREATED, "kind" => "rework").increment(1);
                        for g in grants {
                            metrics::counter!(m::GRANTS, "claim_type" => g.claim_type.as_str()).increment(1);
                        }
                        info!(claim_id = %claim.id, rework_of = %claim_id, agent = ?claim.assigned_agent.as_ref().map(AgentName::as_str), "rework claim created");
                        self.wake.notify_one();
                        if !launches.is_empty() {
                            let entry = format!("{}:{}", claim.id, claim.revision);
                            Box::pin(self.carry_out(claim.id, &entry, launches)).await;
                        }
                        Ok(())
                    }
                    WriteOutcome::Exists(_) => Ok(()),
                    WriteOutcome::Conflict { current } => {
                        Err(StoreError::Conflict(format!("rework claim {} conflicts (revision {current})", claim.id)))
                    }
                }
            }
            FollowUp::AutoAnswer { question } => {
                let Some(q) = self.store.get_artifact(question).await? else {
                    return Ok(());
                };
                let id = ArtifactId::derived(question, "timeout-answer");
                let answer = Artifact {
                    id,
                    logical_id: id,
                    version: 1,
                    structural_type: StructuralType::Answer,
                    artifact_type: "Answer".into(),
                    payload: "No answer arrived before the question timed out; continue with your best judgement."
                        .into(),
                    source_artifacts: vec![q.id],
                    produced_by_role: "orchestrator".into(),
                    claim_id: q.claim_id,
                    created_at_ms: now,
                    summary: Some("question timed out".into()),
                    answered_by: Some("orchestrator".into()),
                    timed_out: true,
                };
                let record = AnswerRecord {
                    answer_id: id,
                    answered_by: "orchestrator".into(),
                    answered_at_ms: now,
                    timed_out: true,
                };
                match self.store.create_answer(&answer, question, &record).await? {
                    CreateOutcome::Created { .. } | CreateOutcome::IdExists | CreateOutcome::AlreadyAnswered(_) => {
                        Ok(())
                    }
                    other => Err(StoreError::Conflict(format!("cannot write the timeout answer: {other:?}"))),
                }
            }
            FollowUp::LaunchWorker { agent, seq } => self.offer_worker(*claim_id, agent, *seq).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_round_trip_through_json() {
        let agent = AgentName::parse("Coder").unwrap();
        let effects = vec![
            Effect::Grant { agent: agent.clone(), claim_type: ClaimType::Exclusive, seq: 1, via_worker: false },
            Effect::Grant { agent: agent.clone(), claim_type: ClaimType::Claim, seq: 2, via_worker: true },
            Effect::AutoAnswer { question: ArtifactId::new_v7() },
        ];
        let f = follow_ups(&effects);
        assert_eq!(f.len(), 2, "a grant to a cub needs no follow-up");
        let json = serde_json::to_value(&f).unwrap();
        let back: Vec<FollowUp> = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }
}
