//! Follow-ups: the effects of a claim transition that need writes of their own (a Failure
//! artifact, a rework claim, an automatic answer, a worker launch). They are stored as they are
//! (sett-core's serialisable [`Effect`]) in the store's outbox atomically with the transition,
//! carried out right after and removed once done, so a crash in between loses nothing; each one
//! is idempotent (deterministic ids, idempotent worker offers). After a restart, or when their
//! retries ran out, the outbox is carried out again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use sett_core::answer_spec::StructuredQuestion;
use sett_core::failure::FailurePayload;
use sett_core::machine::{Effect, GrantOrder};
use sett_core::{AgentName, Artifact, ClaimId, ClaimType, metrics as m};
use sett_store::{AnswerRecord, CreateOutcome, OutboxEntry, StoreError, WriteOutcome, now_ms};
use tracing::{debug, error, info, warn};

use crate::engine::Engine;
use crate::{OrchestratorError, ledger};

/// Whether carrying out `effect` needs writes of its own, so it goes through the outbox (a grant
/// to a cub needs none: its event is written with the transition).
fn is_follow_up(effect: &Effect) -> bool {
    match effect {
        Effect::Fail { .. } | Effect::CreateClaim { .. } | Effect::AutoAnswer { .. } | Effect::HumanReviewed { .. } => {
            true
        }
        Effect::Grant(g) => g.via_worker,
        // An approval's question is written before the transition that opens it.
        Effect::QuestionOpened { .. }
        | Effect::QuestionClosed { .. }
        | Effect::BidsMissing { .. }
        | Effect::QuestionReminded { .. }
        | Effect::QuestionEscalated { .. }
        | Effect::ApprovalAsked(_)
        | Effect::ReviewAsked { .. }
        | Effect::ApprovalTimedOut { .. } => false,
    }
}

/// The follow-ups among a transition's effects, in order.
pub(crate) fn follow_ups(effects: &[Effect]) -> Vec<Effect> {
    effects.iter().filter(|e| is_follow_up(e)).cloned().collect()
}

/// The one outbox item earlier versions wrote in another shape than the effect's.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum LegacyFollowUp {
    LaunchWorker { agent: AgentName, seq: u64 },
}

/// Reads a stored outbox entry: a list of effects; an orchestrator restarted on data of an
/// earlier version also reads its `launch_worker` items (every other item had the effect's
/// shape already).
fn stored_follow_ups(value: serde_json::Value) -> Result<Vec<Effect>, serde_json::Error> {
    let items: Vec<serde_json::Value> = serde_json::from_value(value)?;
    items
        .into_iter()
        .map(|item| match serde_json::from_value::<Effect>(item.clone()) {
            Ok(effect) => Ok(effect),
            Err(e) => match serde_json::from_value::<LegacyFollowUp>(item) {
                // The old item did not record the grant's type; offering a worker does not use it.
                Ok(LegacyFollowUp::LaunchWorker { agent, seq }) => Ok(Effect::Grant(GrantOrder {
                    agent,
                    claim_type: ClaimType::Claim,
                    seq,
                    via_worker: true,
                    approval: None,
                })),
                Err(_) => Err(e),
            },
        })
        .collect()
}

impl Engine {
    /// After a restart: carries out the follow-ups recorded before a crash.
    pub(crate) async fn recover_outbox(&self) -> Result<(), StoreError> {
        let outbox = self.store.outbox::<serde_json::Value>().await?;
        if !outbox.is_empty() {
            info!(entries = outbox.len(), "carrying out follow-ups recorded before a restart");
        }
        self.carry_out_all(outbox).await
    }

    /// Carries out every given outbox entry (all of them are idempotent, so an entry another
    /// task is carrying out at the same moment is harmless).
    pub(crate) async fn carry_out_all(
        &self,
        outbox: Vec<(OutboxEntry, Result<serde_json::Value, StoreError>)>,
    ) -> Result<(), StoreError> {
        for (entry, value) in outbox {
            let Some(claim) = entry.claim() else {
                warn!(%entry, "ignoring a malformed outbox entry");
                self.store.outbox_done(&entry).await?;
                continue;
            };
            match value.and_then(|v| stored_follow_ups(v).map_err(|e| StoreError::Decode(e.to_string()))) {
                Ok(follow) => self.carry_out(claim, &entry, follow).await,
                Err(e) => {
                    warn!(%entry, error = %e, "ignoring an unreadable outbox entry");
                    self.store.outbox_done(&entry).await?;
                }
            }
        }
        Ok(())
    }

    /// Carries out follow-ups recorded in outbox `entry`; removes the entry when all succeeded.
    /// A failure leaves the entry for a retry in the background.
    pub(crate) async fn carry_out(&self, claim: ClaimId, entry: &OutboxEntry, follow: Vec<Effect>) {
        let mut attempt = 0u32;
        loop {
            let mut ok = true;
            for f in &follow {
                let done = self.follow_up(&claim, f).await;
                if let Err(OrchestratorError::Paused(scope)) = &done {
                    debug!(claim_id = %claim, %scope, "a follow-up grants and waits for the pause to be lifted");
                    return;
                }
                if let Err(e) = done {
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
                error!(claim_id = %claim, %entry, "follow-ups keep failing; they stay in the outbox and are retried shortly");
                self.outbox_left.store(true, Ordering::SeqCst);
                // Carried out by the deadline loop's next pass, which this starts now.
                self.wake.notify_one();
                return;
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    pub(crate) async fn follow_up(&self, claim_id: &ClaimId, effect: &Effect) -> Result<(), OrchestratorError> {
        let now = now_ms();
        match effect {
            Effect::Fail { artifact_id, failure_type, reason } => {
                let Some(claim) = self.store.get_claim(claim_id).await? else {
                    return Ok(());
                };
                let payload = FailurePayload::of_claim(reason.as_str(), claim.id, claim.artifact_id);
                let failure = Artifact::failure(
                    *artifact_id,
                    &claim,
                    failure_type.as_str(),
                    payload.to_json(),
                    reason.as_str(),
                    "orchestrator",
                    now,
                );
                match self.store.create_artifact(&failure).await? {
                    CreateOutcome::Created { .. } | CreateOutcome::IdExists => Ok(()),
                    other => Err(OrchestratorError::FollowUpRefused {
                        what: "Failure artifact",
                        outcome: format!("{other:?}"),
                    }),
                }
            }
            Effect::CreateClaim { claim, grants, approvals } => {
                self.write_approval_questions(claim, approvals).await?;
                let mut events = vec![ledger::claim_created(claim)];
                events.extend(grants.iter().map(|g| ledger::claim_granted(claim, g)));
                let mut ops = Vec::new();
                for a in approvals {
                    let (event, op) = ledger::approval_asked(claim, a);
                    events.push(event);
                    ops.push(op);
                }
                let launches = follow_ups(&grants.iter().cloned().map(Effect::Grant).collect::<Vec<_>>());
                let outbox = (!launches.is_empty()).then_some(&launches);
                match self.store.write_claim_with_outbox(claim, None, false, &ops, &events, outbox, now).await? {
                    WriteOutcome::Written => {
                        self.written.wrote(claim);
                        metrics::counter!(m::CLAIMS_CREATED, "kind" => "rework").increment(1);
                        for g in grants {
                            metrics::counter!(m::GRANTS, "claim_type" => g.claim_type.as_str()).increment(1);
                        }
                        info!(claim_id = %claim.id, rework_of = %claim_id, agent = ?claim.assigned_agent.as_ref().map(AgentName::as_str), "rework claim created");
                        if let Some(at) = claim.next_deadline_ms() {
                            self.deadline_written(at);
                        }
                        if !launches.is_empty() {
                            let entry = OutboxEntry::new(&claim.id, claim.revision);
                            Box::pin(self.carry_out(claim.id, &entry, launches)).await;
                        }
                        Ok(())
                    }
                    // An assigned claim records no bids.
                    WriteOutcome::Exists(_) | WriteOutcome::BidsChanged { .. } | WriteOutcome::OfferGone { .. } => {
                        Ok(())
                    }
                    WriteOutcome::Cancelled(fence) => {
                        info!(claim_id = %claim.id, rework_of = %claim_id, %fence, "no rework claim: the workflow was cancelled");
                        Ok(())
                    }
                    WriteOutcome::Conflict { current } => {
                        Err(OrchestratorError::ReworkClaimConflict { claim: claim.id, current })
                    }
                    // Its grant waits for the pause to be lifted: the entry stays in the outbox,
                    // which is carried out again every few seconds.
                    WriteOutcome::Paused(scope) => Err(OrchestratorError::Paused(scope)),
                }
            }
            Effect::AutoAnswer { question, use_default } => {
                let Some(q) = self.store.get_artifact(question).await? else {
                    return Ok(());
                };
                // Under `on_question_timeout: default`, a structured question with a complete
                // default is answered with it; any other continues with the timed-out text.
                let default = use_default
                    .then(|| StructuredQuestion::from_payload(&q.payload).ok().flatten())
                    .flatten()
                    .and_then(|s| s.spec.default_answer());
                let (text, summary) = match &default {
                    Some(d) => (d.to_string(), "question timed out; answered with its default"),
                    None => (
                        "No answer arrived before the question timed out; continue with your best judgement."
                            .to_owned(),
                        "question timed out",
                    ),
                };
                let mut answer = Artifact::answer(
                    sett_core::derive::question_timeout_answer_id(question),
                    &q,
                    text,
                    "orchestrator",
                    "orchestrator",
                    now,
                );
                answer.summary = Some(summary.into());
                answer.timed_out = true;
                let record = AnswerRecord::on_timeout(answer.id, now);
                match self.store.create_answer(&answer, question, &record).await? {
                    CreateOutcome::Created { .. } | CreateOutcome::IdExists | CreateOutcome::AlreadyAnswered(_) => {
                        Ok(())
                    }
                    other => Err(OrchestratorError::FollowUpRefused {
                        what: "timeout answer",
                        outcome: format!("{other:?}"),
                    }),
                }
            }
            Effect::HumanReviewed { question, artifact_id, review } => {
                self.write_human_review(claim_id, *question, *artifact_id, review).await
            }
            Effect::Grant(g) if g.via_worker => Ok(self.offer_worker(*claim_id, &g.agent, g.seq).await?),
            // Never stored in the outbox (see `is_follow_up`).
            Effect::Grant(_)
            | Effect::QuestionOpened { .. }
            | Effect::QuestionClosed { .. }
            | Effect::BidsMissing { .. }
            | Effect::QuestionReminded { .. }
            | Effect::QuestionEscalated { .. }
            | Effect::ApprovalAsked(_)
            | Effect::ReviewAsked { .. }
            | Effect::ApprovalTimedOut { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sett_core::machine::FailureType;
    use sett_core::{ArtifactId, Claim, ClaimStatus};

    use super::*;

    fn coder() -> AgentName {
        AgentName::parse("Coder").unwrap()
    }

    #[test]
    fn follow_ups_round_trip_through_json() {
        let effects = vec![
            Effect::Grant(GrantOrder {
                agent: coder(),
                claim_type: ClaimType::Exclusive,
                seq: 1,
                via_worker: false,
                approval: None,
            }),
            Effect::Grant(GrantOrder {
                agent: coder(),
                claim_type: ClaimType::Claim,
                seq: 2,
                via_worker: true,
                approval: None,
            }),
            Effect::AutoAnswer { question: sett_store::new_artifact_id(), use_default: true },
            Effect::QuestionClosed { question: sett_store::new_artifact_id() },
        ];
        let f = follow_ups(&effects);
        assert_eq!(f, effects[1..3].to_vec(), "a grant to a cub and an index change need no follow-up");
        let back = stored_follow_ups(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    /// An orchestrator restarted on data an earlier version wrote still carries out its outbox:
    /// every item as that version stored it.
    #[test]
    fn outbox_entries_of_the_previous_format_are_read() {
        let (claim_id, question) = (sett_store::new_claim_id(), sett_store::new_artifact_id());
        let failure = ArtifactId::derived(&claim_id, "failure");
        let goal = Artifact::new_root(
            sett_store::new_artifact_id(),
            sett_core::StructuralType::Standard,
            "GoalDefined",
            "g",
            "user",
            1,
        );
        let mut rework: Claim = sett_core::machine::new_claim(sett_store::new_claim_id(), &goal, &policy(), 1);
        rework.status = ClaimStatus::PendingAssignment;
        let stored = json!([
            {"op": "fail", "artifact_id": failure, "failure_type": "ExecutionTimeout", "reason": "too slow"},
            {"op": "create_claim", "claim": rework, "grants": [
                {"agent": "Coder", "claim_type": "rework", "seq": 1, "via_worker": true}
            ]},
            {"op": "auto_answer", "question": question},
            {"op": "launch_worker", "agent": "Coder", "seq": 3},
        ]);
        let read = stored_follow_ups(stored).unwrap();
        let rework_grant =
            GrantOrder { agent: coder(), claim_type: ClaimType::Rework, seq: 1, via_worker: true, approval: None };
        assert_eq!(
            read,
            vec![
                Effect::Fail {
                    artifact_id: failure,
                    failure_type: FailureType::ExecutionTimeout,
                    reason: "too slow".into()
                },
                Effect::CreateClaim { claim: Box::new(rework), grants: vec![rework_grant], approvals: vec![] },
                Effect::AutoAnswer { question, use_default: false },
                Effect::Grant(GrantOrder {
                    agent: coder(),
                    claim_type: ClaimType::Claim,
                    seq: 3,
                    via_worker: true,
                    approval: None
                }),
            ]
        );
        assert!(stored_follow_ups(json!([{"op": "launch_rocket"}])).is_err());
    }

    fn policy() -> sett_core::machine::Policy {
        sett_core::machine::Policy {
            agents: std::collections::BTreeMap::new(),
            max_review_iterations: 3,
            bid_timeout_ms: 1000,
            on_question_timeout: sett_core::config::OnQuestionTimeout::Fail,
            routing: Default::default(),
        }
    }
}
