//! The event loop: the orchestrator reads the instance's event stream through consumer group
//! `orchestrator`, driven by the store's [`ConsumerDriver`] (pending entries first, again after
//! a reconnection or a failed handler, with the one backoff), handles a batch with events about
//! one claim in stream order and different claims concurrently, turns each event into a
//! state-machine input, and acknowledges an event only after it was handled (in the background,
//! the acknowledgements of a few milliseconds in one command: [`BatchedAcks`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use sett_core::event::{ArtifactCreated, Event, EventData, EventKind};
use sett_core::machine::{Input, StepContext, initial_claim_id, new_claim, step};
use sett_core::{AgentName, Artifact, ArtifactId, BidType, ClaimId, StructuralType, metrics as m};
use sett_store::{BatchedAcks, ConsumerDriver, Fenced, WriteOutcome, now_ms};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::OrchestratorError;
use crate::engine::Engine;
use crate::ledger;
use crate::transitions::Commit;

pub(crate) const GROUP: &str = "orchestrator";
pub(crate) const CONSUMER: &str = "orchestrator";
pub(crate) const BATCH: u64 = 256;
/// How long one blocking read waits before the loop looks at its shutdown token again.
pub(crate) const BLOCK: Duration = Duration::from_secs(2);
/// How long a stopping engine waits for its queued acknowledgements to be sent; those not sent
/// are read again at the next start (every handler is idempotent), and with Redis gone the
/// stop does not wait out the command timeout.
const ACKS_FLUSH_BOUND: Duration = Duration::from_secs(2);

impl Engine {
    /// Reads and handles events until `stop`, with the store's failure policy
    /// ([`ConsumerDriver`]): the backlog first, then new events; a batch with a failed handler
    /// leaves its event pending, and the pending entries are handled again after the backoff,
    /// before anything new.
    pub(crate) async fn consume(
        &self,
        driver: &mut ConsumerDriver,
        stop: &CancellationToken,
    ) -> Result<(), OrchestratorError> {
        // Sent in the background (issue 29: a round trip less after every batch, which in a
        // lifecycle's critical moments competed for a CPU with the cub taking its grant). One
        // that fails is logged and counted in `sett_redis_errors_total`; its events stay
        // pending and are read again after the next reconnection or failed batch, or at the
        // next start, and handled again harmlessly.
        let (acks, mut acks_sent) = driver.batched_acks();
        let consumed = async {
            let acks = &acks;
            self.cancel_fence_possible.store(self.store.any_cancel_fence().await?, Ordering::SeqCst);
            driver.drain_pending(BATCH, stop, move |events| self.handle_batch(acks, events)).await?;
            // Exposed from the start (0 included), not only after the first question.
            self.refresh_open_questions_gauge().await;
            self.refresh_pause_gauges().await;
            self.ready.store(true, Ordering::SeqCst);
            info!(run_id = %self.settings.run_id, "orchestrator ready");
            driver.run(stop, move |events| self.handle_batch(acks, events)).await;
            Ok(())
        }
        .await;
        // The sending task ends once the last handle is gone, having sent what was queued.
        drop(acks);
        if tokio::time::timeout(ACKS_FLUSH_BOUND, &mut acks_sent).await.is_err() {
            warn!("some acknowledgements were not sent; those events are read again at the next start");
            acks_sent.abort();
        }
        consumed
    }

    /// Handles a batch: events about the same claim in order, different claims concurrently.
    /// Queues the acknowledgements of the events that were handled; returns whether all were.
    async fn handle_batch(&self, acks: &BatchedAcks, events: Vec<Event>) -> bool {
        let mut groups: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        if events.iter().any(|ev| ev.kind() == EventKind::WorkflowCancelled) {
            // Before any event is handled: one of this batch's artifacts may be fenced by it.
            self.cancel_fence_possible.store(true, Ordering::SeqCst);
        }
        for ev in events {
            let key = match (ev.data.claim_id(), ev.data.question_id(), ev.data.artifact_id()) {
                (Some(c), _, _) => c.to_string(),
                (None, Some(q), _) => q.to_string(),
                // A new root artifact goes with the bids on the claim it gets (cubs bid on its
                // event), so the claim is created before those bids are handled.
                (None, None, Some(a)) => initial_claim_id(&a).to_string(),
                (None, None, None) => String::new(),
            };
            groups.entry(key).or_default().push(ev);
        }
        let results = join_all(groups.into_values().map(|group| async move {
            let mut done = Vec::with_capacity(group.len());
            let mut all_handled = true;
            // Set once this group's root artifact got its claim: creating it applied every bid
            // recorded so far, which includes every bid event read in this batch.
            let mut bids_applied = false;
            for (i, ev) in group.iter().enumerate() {
                let lag = (now_ms() - event_time_ms(ev)).max(0) as f64 / 1000.0;
                metrics::histogram!(m::EVENT_LAG_SECONDS, "component" => "orchestrator").record(lag);
                // A bid followed by another bid on the same claim needs no handling of its own:
                // the later one reads every bid recorded so far. If the later one fails, it
                // stays pending and its retry still covers this one.
                if ev.kind() == EventKind::BidSubmitted
                    && (bids_applied || group.get(i + 1).is_some_and(|next| next.kind() == EventKind::BidSubmitted))
                {
                    done.push(ev.id.clone());
                    continue;
                }
                match self.handle(ev).await {
                    Ok(()) => {
                        metrics::counter!(m::EVENTS_HANDLED, "component" => "orchestrator", "kind" => ev.kind().as_str()).increment(1);
                        done.push(ev.id.clone());
                        if ev.kind() == EventKind::ArtifactCreated && ev.data.claim_id().is_none() {
                            bids_applied = true;
                        }
                    }
                    Err(e) => {
                        // A handler that failed over a refused write or a bad record is no
                        // Redis error; only Redis's own failures are counted as such.
                        if e.is_redis() {
                            metrics::counter!(m::REDIS_ERRORS, "component" => "orchestrator").increment(1);
                        }
                        warn!(event_id = %ev.id, kind = %ev.kind(), error = %e, "handling an event failed; it will be retried");
                        all_handled = false;
                        // Later events of this claim must not overtake it.
                        break;
                    }
                }
            }
            (done, all_handled)
        }))
        .await;
        let all_handled = results.iter().all(|(_, ok)| *ok);
        acks.ack(results.into_iter().flat_map(|(done, _)| done));
        all_handled
    }

    async fn handle(&self, ev: &Event) -> Result<(), OrchestratorError> {
        match &ev.data {
            EventData::ArtifactCreated(a) => self.on_artifact_event(a, ev.ts_ms).await,
            // A claim never returns to waiting for bids: a bid on a claim already decided here
            // changes nothing, and needs no read to find that out.
            EventData::BidSubmitted(b) if self.decided.contains(&b.claim_id) => Ok(()),
            // Recorded by the write that created the claim, which applied every bid recorded
            // by then (`create_claim`).
            EventData::BidSubmitted(b) if b.standing => Ok(()),
            EventData::BidSubmitted(b) => self.apply(&b.claim_id, Input::Bids).await.map(drop),
            EventData::QuestionAnswered(a) => self.on_answer(a.question_id, a.answer_id, a.claim_id).await,
            EventData::Resumed(_) => self.release_held().await,
            EventData::WorkflowRetried(r) => self.on_retry(r).await,
            EventData::ArtifactForked(f) => self.on_fork(f).await,
            EventData::Paused(_) => {
                self.refresh_pause_gauges().await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A new artifact as its `artifact_created` event describes it. A root artifact that no
    /// configured agent wrote and that names no sources (a goal, a user's task) is handled from
    /// the event alone: nothing of it is read but the bids on its claim. Claim creation uses
    /// nothing the event lacks (payload, usage, fork origin), it has no usage a budget counts
    /// (only agents' outputs do), it is routed to no claim as an output, and the claim write
    /// itself refuses an artifact of a cancelled workflow. Anything else is read whole
    /// ([`Engine::on_artifact`]): an output's payload and usage decide what happens next.
    async fn on_artifact_event(&self, ev: &ArtifactCreated, ts_ms: i64) -> Result<(), OrchestratorError> {
        let by_agent = AgentName::parse(&ev.produced_by_role).is_ok_and(|n| self.policy.agents.contains_key(&n));
        if ev.claim_id.is_some() || by_agent || !ev.source_artifacts.is_empty() {
            return self.on_artifact(&ev.artifact_id, ev.structural_type.creates_claim()).await;
        }
        metrics::counter!(m::ARTIFACTS_CREATED, "structural_type" => ev.structural_type.as_str()).increment(1);
        if !ev.structural_type.creates_claim() {
            // A Question without a claim unblocks nobody; nothing else is done for the rest.
            return Ok(());
        }
        let artifact = described(ev, ts_ms);
        let standing = self.standing_bids(&artifact, now_ms()).await;
        // When every agent has a standing bid there is nothing to wait for: a bid a cub recorded
        // meanwhile is compared by the creating write.
        let bids = if !self.policy.agents.is_empty() && standing.len() == self.policy.agents.len() {
            BTreeMap::new()
        } else {
            self.store.bids(&initial_claim_id(&ev.artifact_id)).await?
        };
        self.create_claim(&artifact, bids, standing).await
    }

    /// A new artifact, read whole. `creates_claim` (its structural type, when the caller knows
    /// it) says whether to read the bids on the claim it gets.
    pub(crate) async fn on_artifact(&self, id: &ArtifactId, creates_claim: bool) -> Result<(), OrchestratorError> {
        // The bids on the claim this artifact gets are read with it (one pipelined round trip):
        // cubs bid from the artifact's event, and when their bids are in already the claim is
        // created decided.
        let claim = initial_claim_id(id);
        let raw_id = id.to_string();
        let bids = async { if creates_claim { self.store.bids(&claim).await } else { Ok(BTreeMap::new()) } };
        // The cancel fence is read only once a workflow was ever cancelled (issue 29: one command
        // less per output in every other instance).
        let fenced = async {
            if self.cancel_fence_possible.load(Ordering::SeqCst) { self.store.fenced(&raw_id).await } else { Ok(None) }
        };
        let (artifact, bids, fenced) = tokio::try_join!(self.store.get_artifact(id), bids, fenced)?;
        let Some(a) = artifact else {
            warn!(artifact_id = %id, "artifact_created names an artifact that does not exist; ignoring");
            return Ok(());
        };
        metrics::counter!(m::ARTIFACTS_CREATED, "structural_type" => a.structural_type.as_str()).increment(1);
        self.observe_usage(&a);
        if a.usage.is_some()
            && let Some(hook) = &self.settings.on_usage
        {
            hook(a.clone()).await;
        }
        if let Some(fenced) = fenced {
            // Its workflow was cancelled: nobody acts on it. An output its grant wrote after the
            // cancellation is recorded as late (once; `sett watch` shows it).
            if let Fenced::Expected(goal) = fenced
                && self.store.record_late_output(id, a.claim_id, &goal, now_ms()).await?
            {
                metrics::counter!(m::LATE_OUTPUTS).increment(1);
                info!(artifact_id = %id, goal_id = %goal, "an output arrived after its workflow was cancelled; nobody acts on it");
            }
            return Ok(());
        }
        // Route it as an output first: a rework output completes its claim before its own review.
        let targets: Vec<ClaimId> = match a.claim_id {
            Some(c) => vec![c],
            // The sources' claims in one command.
            None if a.producing_agent().is_some() => {
                self.store.claims_for_artifacts(&a.source_artifacts).await?.into_iter().flatten().collect()
            }
            None => Vec::new(),
        };
        for claim in targets {
            self.apply(&claim, Input::Output(Box::new(a.clone()))).await?;
        }
        if a.structural_type.creates_claim() {
            let standing = self.standing_bids(&a, now_ms()).await;
            self.create_claim(&a, bids, standing).await?;
        }
        if a.structural_type == StructuralType::Question
            && let Some(rec) = self.store.answer_record(&a.id).await?
        {
            // Answered before we saw the question (e.g. by its full id): unblock now.
            if let Some(claim) = a.claim_id {
                let input = self.answer_input(a.id, &rec).await?;
                self.apply(&claim, input).await?;
            }
        }
        Ok(())
    }

    /// Creates `a`'s claim. The orchestrator records the standing bids of live cubs with it
    /// (design.md §5), and cubs without one bid from the artifact's event, so bids may be
    /// recorded before it exists: with the bids read with the artifact and the standing ones,
    /// or else those the creating write reads back, the claim is decided at once when they
    /// suffice (created and granted in one write, or granted by the next). A bid recorded after
    /// the creating write has its own event, read after this one and applied then. `standing`
    /// are the live cubs' standing bids on `a` ([`Engine::standing_bids`]).
    async fn create_claim(
        &self,
        a: &Artifact,
        bids: BTreeMap<AgentName, BidType>,
        mut standing: Vec<(AgentName, BidType)>,
    ) -> Result<(), OrchestratorError> {
        let now = now_ms();
        let claim = new_claim(initial_claim_id(&a.id), a, &self.policy, now);
        let created = ledger::claim_created(&claim);
        // A bid the cub recorded itself stands; the others are recorded now.
        standing.retain(|(agent, _)| !bids.contains_key(agent));
        // The outcome, and the bids to decide with after a create that left the claim waiting.
        // Each refused attempt drops standing bids, so this ends.
        let (outcome, later_bids) = loop {
            let mut known = bids.clone();
            known.extend(standing.iter().cloned());
            let ctx = StepContext { bids: &known, now_ms: now };
            let Some(decided) = step(&claim, &Input::Bids, ctx, &self.policy) else {
                let (outcome, later) = self.create_waiting(&claim, &created, standing, now).await?;
                // Only bids other than `known` (recorded since, or a standing bid the write
                // refused) can decide it now.
                break (outcome, if later == known { BTreeMap::new() } else { later });
            };
            match self.commit(&claim, &decided, &Input::Bids, ctx, Commit::Create(&created, &standing)).await? {
                // Paused: created waiting for bids instead (they are still collected); held,
                // it is decided on resume.
                WriteOutcome::Paused(_) => {
                    let (outcome, _) = self.create_waiting(&claim, &created, standing, now).await?;
                    if outcome == WriteOutcome::Written {
                        self.store.hold_claim(&claim.id, now).await?;
                    }
                    break (outcome, BTreeMap::new());
                }
                // A cub recorded another bid meanwhile: decide with the bids as recorded.
                WriteOutcome::BidsChanged { agent, held } => {
                    debug!(claim_id = %claim.id, %agent, %held, "a cub's own bid differs from its standing bid; deciding with the cub's");
                    metrics::counter!(m::STANDING_BIDS, "outcome" => "cub_bid_otherwise").increment(1);
                    standing.clear();
                }
                // The cub that offered it is gone: that agent bids, or counts as missing, as
                // any agent without a standing bid.
                WriteOutcome::OfferGone { agent } => {
                    debug!(claim_id = %claim.id, %agent, "the cub offering a standing bid is gone; not recording it");
                    metrics::counter!(m::STANDING_BIDS, "outcome" => "cub_gone").increment(1);
                    standing.retain(|(a, _)| a.as_str() != agent);
                }
                // Written decided: `commit` remembered the decided record.
                outcome => {
                    if outcome == WriteOutcome::Written {
                        metrics::counter!(m::STANDING_BIDS, "outcome" => "recorded").increment(standing.len() as u64);
                    }
                    break (outcome, BTreeMap::new());
                }
            }
        };
        match outcome {
            WriteOutcome::Written => {
                metrics::counter!(m::CLAIMS_CREATED, "kind" => "initial").increment(1);
                info!(claim_id = %claim.id, artifact_id = %a.id, artifact_type = %a.artifact_type, "claim created");
                if let Some(at) = claim.next_deadline_ms() {
                    self.deadline_written(at);
                }
                if !later_bids.is_empty() {
                    self.decide(&claim, &later_bids).await?;
                }
                Ok(())
            }
            WriteOutcome::Exists(_) => {
                // This event is handled again (after a restart or a failed batch): the claim may
                // have missed bids recorded since it was created.
                debug!(artifact_id = %a.id, "claim exists already");
                self.apply(&claim.id, Input::Bids).await.map(drop)
            }
            WriteOutcome::Conflict { .. } => Ok(()),
            WriteOutcome::Cancelled(fence) => {
                info!(artifact_id = %a.id, %fence, "no claim: the artifact's workflow was cancelled");
                Ok(())
            }
            // Only a write that grants is held, and this one waits for bids; `create_waiting`
            // records no standing bid that it refuses.
            WriteOutcome::Paused(_) | WriteOutcome::BidsChanged { .. } | WriteOutcome::OfferGone { .. } => Ok(()),
        }
    }

    /// Creates `claim` waiting for bids, with the `standing` bids the write accepts (none if a
    /// cub's own bid differs from one; none of a cub that is gone), and returns the bids
    /// recorded on it at that moment.
    async fn create_waiting(
        &self,
        claim: &sett_core::Claim,
        created: &EventData,
        mut standing: Vec<(AgentName, BidType)>,
        now: i64,
    ) -> Result<(WriteOutcome, BTreeMap<AgentName, BidType>), OrchestratorError> {
        let events = [created.clone()];
        loop {
            let written = self.store.create_claim_reading_bids(claim, &events, &standing, now).await?;
            match &written.0 {
                WriteOutcome::BidsChanged { .. } => {
                    metrics::counter!(m::STANDING_BIDS, "outcome" => "cub_bid_otherwise").increment(1);
                    standing.clear();
                }
                WriteOutcome::OfferGone { agent } => {
                    metrics::counter!(m::STANDING_BIDS, "outcome" => "cub_gone").increment(1);
                    standing.retain(|(a, _)| a.as_str() != agent);
                }
                outcome => {
                    if *outcome == WriteOutcome::Written {
                        metrics::counter!(m::STANDING_BIDS, "outcome" => "recorded").increment(standing.len() as u64);
                        self.written.wrote(claim);
                    }
                    return Ok(written);
                }
            }
        }
    }

    async fn on_answer(
        &self,
        question: ArtifactId,
        answer: ArtifactId,
        claim: Option<ClaimId>,
    ) -> Result<(), OrchestratorError> {
        let claim = match claim {
            Some(c) => Some(c),
            None => self.store.get_artifact(&question).await?.and_then(|q| q.claim_id),
        };
        match claim {
            Some(c) => {
                // The record says whether it is an approval (and what it binds).
                let input = match self.store.answer_record(&question).await? {
                    Some(record) => self.answer_input(question, &record).await?,
                    None => Input::Answer { question, answer },
                };
                self.apply(&c, input).await.map(drop)
            }
            None => {
                warn!(question_id = %question, "an answer names a question without a claim; ignoring");
                Ok(())
            }
        }
    }
}

/// The artifact an `artifact_created` event describes, written at `ts_ms`: everything but its
/// payload, usage and fork origin, which the event does not carry (empty here). Only for
/// creating the claim of a root artifact (see [`Engine::on_artifact_event`]).
fn described(ev: &ArtifactCreated, ts_ms: i64) -> Artifact {
    Artifact {
        id: ev.artifact_id,
        logical_id: ev.logical_id,
        version: ev.version,
        structural_type: ev.structural_type,
        artifact_type: ev.artifact_type.clone(),
        payload: String::new(),
        source_artifacts: ev.source_artifacts.clone(),
        produced_by_role: ev.produced_by_role.clone(),
        claim_id: ev.claim_id,
        created_at_ms: ts_ms,
        summary: ev.summary.clone(),
        answered_by: ev.answered_by.clone(),
        timed_out: ev.timed_out,
        usage: None,
        forked_from: None,
    }
}

/// The time an event was written: its stream id's millisecond part.
fn event_time_ms(ev: &Event) -> i64 {
    ev.id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(ev.ts_ms)
}
