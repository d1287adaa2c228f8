//! Claim transitions: a trigger (bids, a deadline tick, an output, an answer, a worker launch
//! or exit) becomes a state-machine input; `get_claim → machine::step → write_claim_with_outbox`
//! (compare-and-set on the revision, recomputed from the fresh record when the race is lost)
//! writes the new claim with its ledger events and follow-ups; then its logs and metrics.

use std::collections::BTreeMap;

use sett_core::machine::{Effect, FailureType, Input, Transition, step};
use sett_core::{AgentName, Artifact, ArtifactId, BidType, Claim, ClaimId, ClaimStatus, metrics as m};
use sett_store::{StoreError, WriteOutcome, now_ms};
use tracing::{debug, info, warn};

use crate::engine::Engine;
use crate::followup::follow_ups;
use crate::ledger;

/// A transition that keeps losing compare-and-set races is given up (and retried by the next
/// event or tick) rather than spinning.
const MAX_CAS_ATTEMPTS: usize = 50;

/// What happened to a claim, before it is turned into a state-machine input.
#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    Bids,
    Tick,
    Output(Box<Artifact>),
    Answer { question: ArtifactId, answer: ArtifactId },
    WorkerLaunched { agent: AgentName, seq: u64 },
    WorkerExited { agent: AgentName, seq: u64, success: bool },
}

impl Engine {
    /// Applies `trigger` to a claim with compare-and-set, retrying on a lost race, then carries
    /// out the follow-ups. Returns the new claim when a transition was written.
    pub(crate) async fn apply(&self, id: &ClaimId, trigger: Trigger) -> Result<Option<Claim>, StoreError> {
        let wants_bids = matches!(trigger, Trigger::Bids | Trigger::Tick);
        for _ in 0..MAX_CAS_ATTEMPTS {
            // Bids are read together with the claim (one pipelined round trip on the shared
            // connection) and only used while the claim waits for them.
            let (claim, bids) = if wants_bids {
                let (claim, bids) = tokio::try_join!(self.store.get_claim(id), self.store.bids(id))?;
                (claim, bids)
            } else {
                (self.store.get_claim(id).await?, BTreeMap::new())
            };
            let Some(claim) = claim else {
                debug!(claim_id = %id, "no such claim");
                return Ok(None);
            };
            if claim.status.is_final() {
                return Ok(None);
            }
            let now = now_ms();
            let bids = if claim.status == ClaimStatus::PendingConsensus { bids } else { BTreeMap::new() };
            let input = match &trigger {
                Trigger::Bids => Input::Bids { bids: &bids, now_ms: now },
                Trigger::Tick => Input::Tick { bids: &bids, now_ms: now },
                Trigger::Output(a) => Input::Output { artifact: a, now_ms: now },
                Trigger::Answer { question, answer } => {
                    Input::Answer { question: *question, answer: *answer, now_ms: now }
                }
                Trigger::WorkerLaunched { agent, seq } => Input::WorkerLaunched { agent, seq: *seq, now_ms: now },
                Trigger::WorkerExited { agent, seq, success } => {
                    Input::WorkerExited { agent, seq: *seq, success: *success, now_ms: now }
                }
            };
            let Some(t) = step(&claim, input, &self.policy) else {
                return Ok(None);
            };
            let (events, ops) =
                ledger::transition_records(&claim, &t.claim, &t.effects, self.policy.on_question_timeout);
            let follow = follow_ups(&t.effects);
            let outbox = (!follow.is_empty()).then(|| serde_json::to_value(&follow).expect("serialisable"));
            let written = self
                .store
                .write_claim_with_outbox(&t.claim, Some(claim.revision), false, &ops, &events, outbox.as_ref(), now)
                .await?;
            match written {
                WriteOutcome::Written => {
                    self.observe(&claim, &t, &bids, &trigger, now);
                    if !ops.is_empty() {
                        self.refresh_open_questions_gauge().await;
                    }
                    if t.claim.next_deadline_ms().is_some() {
                        self.wake.notify_one();
                    }
                    if !follow.is_empty() {
                        let entry = format!("{id}:{}", t.claim.revision);
                        self.carry_out(*id, &entry, follow).await;
                    }
                    return Ok(Some(t.claim));
                }
                WriteOutcome::Conflict { .. } => continue,
                WriteOutcome::Exists(other) => {
                    return Err(StoreError::Conflict(format!("unexpected 'exists' ({other}) on a claim transition")));
                }
            }
        }
        warn!(claim_id = %id, "a transition kept losing compare-and-set races; giving up for now");
        Err(StoreError::Conflict(format!("claim {id} kept changing during a transition")))
    }

    pub(crate) async fn refresh_open_questions_gauge(&self) {
        if let Ok(n) = self.store.open_question_count().await {
            metrics::gauge!(m::OPEN_QUESTIONS).set(n as f64);
        }
        if let Ok(oldest) = self.store.oldest_open_question_ms().await {
            metrics::gauge!(m::OLDEST_OPEN_QUESTION).set(oldest.map_or(0.0, |ms| ms as f64 / 1000.0));
        }
    }

    /// Logs and metrics of a written transition.
    fn observe(&self, old: &Claim, t: &Transition, bids: &BTreeMap<AgentName, BidType>, trigger: &Trigger, now: i64) {
        let new = &t.claim;
        if old.status == ClaimStatus::PendingConsensus && new.status != ClaimStatus::PendingConsensus {
            for agent in self.policy.agents.keys() {
                let bid = bids.get(agent).copied().unwrap_or(BidType::Ignore);
                if new.missing_bids.contains(agent) {
                    continue;
                }
                metrics::counter!(m::BIDS, "bid" => bid.as_str()).increment(1);
            }
            info!(claim_id = %new.id, artifact_id = %new.artifact_id, status = %new.status, "consensus reached");
        }
        if let Some(phase) = old.status.phase()
            && old.status != new.status
            && let Some(start) = old.grants.values().map(|g| g.granted_at_ms).min()
        {
            metrics::histogram!(m::CLAIM_PHASE_SECONDS, "phase" => phase.as_str()).record(secs(now - start));
        }
        for e in &t.effects {
            match e {
                Effect::Grant { agent, claim_type, seq, via_worker } => {
                    metrics::counter!(m::GRANTS, "claim_type" => claim_type.as_str()).increment(1);
                    info!(claim_id = %new.id, artifact_id = %new.artifact_id, agent = %agent, claim_type = %claim_type, seq, via_worker, "granted");
                }
                Effect::BidsMissing { agents } => {
                    metrics::counter!(m::BIDS_MISSING).increment(agents.len() as u64);
                    let names: Vec<&str> = agents.iter().map(AgentName::as_str).collect();
                    warn!(claim_id = %new.id, agents = ?names, "agents did not bid before bid_timeout; counted as ignore");
                }
                Effect::QuestionOpened { question, agent } => {
                    info!(claim_id = %new.id, question_id = %question, agent = %agent, "question asked; claim waits for an answer");
                }
                Effect::AutoAnswer { question } => {
                    metrics::counter!(m::QUESTION_TIMEOUTS, "policy" => "continue").increment(1);
                    warn!(claim_id = %new.id, question_id = %question, "question timed out; continuing without an answer");
                }
                Effect::Fail { failure_type, reason, .. } => {
                    if *failure_type == FailureType::QuestionTimeout {
                        metrics::counter!(m::QUESTION_TIMEOUTS, "policy" => "fail").increment(1);
                    }
                    warn!(claim_id = %new.id, failure_type = failure_type.as_str(), reason, "claim failed");
                }
                Effect::QuestionClosed { .. } | Effect::CreateClaim { .. } => {}
            }
        }
        if let Trigger::Answer { question, .. } = trigger
            && let Some(open) = old.open_questions.get(question)
        {
            metrics::histogram!(m::QUESTION_ANSWER_SECONDS).record(secs(now - open.asked_at_ms));
            info!(claim_id = %new.id, question_id = %question, agent = %open.agent, "question answered; resuming the agent");
        }
        if new.status.is_final() {
            metrics::counter!(m::CLAIMS_FINISHED, "status" => new.status.as_str()).increment(1);
            metrics::histogram!(m::CLAIM_SECONDS).record(secs(now - new.created_at_ms));
            info!(
                claim_id = %new.id, artifact_id = %new.artifact_id, status = %new.status,
                reason = new.termination_reason.as_deref().unwrap_or(""), "claim finished"
            );
        }
    }
}

fn secs(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}
