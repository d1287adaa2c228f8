//! Claim transitions: a state-machine input (bids, a deadline tick, an output, an answer, a
//! worker launch or exit) goes through `get_claim → machine::step → write_claim_with_outbox`
//! (compare-and-set on the revision, recomputed from the fresh record when the race is lost; the
//! read is skipped when this engine remembers the record it wrote last, `written`),
//! which writes the new claim with its ledger events (`ledger`) and follow-ups (`followup`), then
//! its logs and metrics (`observe`).

use std::collections::BTreeMap;

use sett_core::event::EventData;
use sett_core::machine::{ApprovalOrder, Effect, Input, StepContext, Transition, step};
use sett_core::{AgentName, BidType, Claim, ClaimId, ClaimStatus, metrics as m};
use sett_store::{StandingBids, StoreError, WriteOutcome, now_ms};
use tracing::{debug, warn};

use crate::OrchestratorError;
use crate::engine::Engine;
use crate::followup::follow_ups;
use crate::ledger;

/// A transition that keeps losing compare-and-set races is given up (and retried by the next
/// event or tick) rather than spinning.
const MAX_CAS_ATTEMPTS: usize = 50;

/// What a transition's write is made over ([`Engine::commit`]).
pub(crate) enum Commit<'a> {
    /// Nothing: the claim is created already decided, with its creation event and the standing
    /// bids it was decided with (their events first, then the creation event).
    Create(&'a EventData, &'a StandingBids),
    /// The record as this orchestrator wrote it last (compare-and-set on its revision; the
    /// stored hash is overwritten in place when it has no field the new record lacks).
    OverOwnWrite,
    /// A record read from Redis (compare-and-set on its revision; the hash is replaced whole:
    /// an older Sett may have written fields this one does not).
    OverRead,
}

impl Engine {
    /// Applies `input` to a claim with compare-and-set, retrying on a lost race, then carries
    /// out the follow-ups. Returns the new claim when a transition was written.
    pub(crate) async fn apply(&self, id: &ClaimId, input: Input) -> Result<Option<Claim>, OrchestratorError> {
        let wants_bids = matches!(input, Input::Bids | Input::Tick);
        // The record this orchestrator wrote last, when it remembers it, saves the read; it is
        // used for a write only (compare-and-set): if it leads to none, the claim is read.
        let mut remembered = self.written.get(id);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let from_memory = remembered.is_some();
            // Bids are read together with the claim (one pipelined round trip on the shared
            // connection) and only used while the claim waits for them.
            let (claim, bids) = match remembered.take() {
                Some(claim) if wants_bids && claim.status == ClaimStatus::PendingConsensus => {
                    (Some(claim), self.store.bids(id).await?)
                }
                Some(claim) => (Some(claim), BTreeMap::new()),
                None if wants_bids => tokio::try_join!(self.store.get_claim(id), self.store.bids(id))?,
                None => (self.store.get_claim(id).await?, BTreeMap::new()),
            };
            let Some(claim) = claim else {
                debug!(claim_id = %id, "no such claim");
                return Ok(None);
            };
            if claim.status.is_final() {
                return Ok(None);
            }
            let bids = if claim.status == ClaimStatus::PendingConsensus { bids } else { BTreeMap::new() };
            let ctx = StepContext { bids: &bids, now_ms: now_ms() };
            let Some(t) = step(&claim, &input, ctx, &self.policy) else {
                if from_memory {
                    // Nothing to write from the remembered record: the stored one may differ.
                    continue;
                }
                return Ok(None);
            };
            let how = if from_memory { Commit::OverOwnWrite } else { Commit::OverRead };
            match self.commit(&claim, &t, &input, ctx, how).await? {
                WriteOutcome::Written => return Ok(Some(t.claim)),
                WriteOutcome::Conflict { .. } => {
                    self.written.forget(id);
                    continue;
                }
                // Only a create is fenced or records standing bids, and this is a compare-and-set.
                WriteOutcome::Cancelled(_) | WriteOutcome::BidsChanged { .. } | WriteOutcome::OfferGone { .. } => {
                    return Ok(None);
                }
                // Held by a pause (see `commit`): applied again on resume.
                WriteOutcome::Paused(_) => return Ok(None),
                WriteOutcome::Exists(other) => {
                    return Err(OrchestratorError::TransitionRefusedAsCreate { claim: *id, existing: other });
                }
            }
        }
        warn!(claim_id = %id, "a transition kept losing compare-and-set races; giving up for now");
        Err(OrchestratorError::TransitionContended(*id))
    }

    /// Applies `bids` to `claim`, the record this orchestrator just wrote (no read): when they
    /// decide it, the transition is written with compare-and-set, falling back to
    /// [`Engine::apply`] (which reads) if the claim changed meanwhile.
    pub(crate) async fn decide(
        &self,
        claim: &Claim,
        bids: &BTreeMap<AgentName, BidType>,
    ) -> Result<(), OrchestratorError> {
        let ctx = StepContext { bids, now_ms: now_ms() };
        let Some(t) = step(claim, &Input::Bids, ctx, &self.policy) else {
            return Ok(());
        };
        match self.commit(claim, &t, &Input::Bids, ctx, Commit::OverOwnWrite).await? {
            WriteOutcome::Written => Ok(()),
            _ => self.apply(&claim.id, Input::Bids).await.map(drop),
        }
    }

    /// Writes transition `t` of claim `old` (the step of `input` in `ctx`) with its ledger events
    /// and follow-ups in one atomic step, then logs it and carries the follow-ups out. `how`
    /// says what `old` is: a claim that does not exist yet ([`Commit::Create`]), or the stored
    /// record the compare-and-set on its revision replaces.
    pub(crate) async fn commit(
        &self,
        old: &Claim,
        t: &Transition,
        input: &Input,
        ctx: StepContext<'_>,
        how: Commit<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        let now = ctx.now_ms;
        // An approval's question exists before the write that opens it (and names it in the
        // open-question index): nobody can see an open approval without its subject.
        let approvals: Vec<ApprovalOrder> = t
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::ApprovalAsked(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        self.write_approval_questions(&t.claim, &approvals).await?;
        for e in &t.effects {
            if let Effect::ReviewAsked { question } = e {
                self.write_review_question(&t.claim, *question).await?;
            }
        }
        let (events, ops) = ledger::transition_records(old, &t.claim, &t.effects, self.policy.on_question_timeout);
        let follow = follow_ups(&t.effects);
        let outbox = (!follow.is_empty()).then_some(&follow);
        let written = match how {
            Commit::Create(created, standing) => {
                let events: Vec<EventData> = std::iter::once(created.clone()).chain(events).collect();
                self.store.create_claim_with_standing_bids(&t.claim, &ops, &events, outbox, standing, now).await?
            }
            Commit::OverOwnWrite => {
                self.store.replace_claim_with_outbox(&t.claim, old, &ops, &events, outbox, now).await?
            }
            Commit::OverRead => {
                let expected = Some(old.revision);
                self.store.write_claim_with_outbox(&t.claim, expected, false, &ops, &events, outbox, now).await?
            }
        };
        if let WriteOutcome::Paused(scope) = &written {
            // Nothing is granted while paused: the claim is held and every input it may have
            // missed meanwhile is applied again on resume (`release_held`).
            self.store.hold_claim(&t.claim.id, now).await?;
            metrics::counter!(m::GRANTS_HELD).increment(1);
            debug!(claim_id = %t.claim.id, %scope, "a grant waits for the pause to be lifted");
        }
        if written == WriteOutcome::Written {
            self.written.wrote(&t.claim);
            if old.status == ClaimStatus::PendingConsensus && t.claim.status != ClaimStatus::PendingConsensus {
                self.decided.insert(t.claim.id);
            }
            self.observe(old, t, input, ctx);
            if !ops.is_empty() {
                self.refresh_open_questions_gauge().await;
            }
            if let Some(at) = t.claim.next_deadline_ms() {
                self.deadline_written(at);
            }
            if !follow.is_empty() {
                let entry = sett_store::OutboxEntry::new(&t.claim.id, t.claim.revision);
                self.carry_out(t.claim.id, &entry, follow).await;
            }
        }
        Ok(written)
    }
}
