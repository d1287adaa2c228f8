//! The engine: lock and lifecycle, event consumption, claim transitions, deadlines, follow-ups.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use sett_core::event::{Event, EventKind};
use sett_core::machine::{Effect, FailureType, Input, Policy, Transition, initial_claim_id, new_claim, step};
use sett_core::{AgentName, Artifact, ArtifactId, BidType, Claim, ClaimId, ClaimStatus, StructuralType, metrics as m};
use sett_store::{
    AnswerRecord, CreateOutcome, EventReader, GroupRead, LockHolder, LockPurpose, Store, StoreError, WriteOutcome,
    now_ms,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::followup::{FollowUp, follow_ups};
use crate::launcher::WorkerLauncher;
use crate::ledger;
use crate::{OrchestratorError, Settings};

const GROUP: &str = "orchestrator";
const CONSUMER: &str = "orchestrator";
const BATCH: u64 = 256;
/// How long one blocking read waits before the loop looks at its shutdown token again.
const BLOCK: Duration = Duration::from_secs(2);
/// The deadline loop never sleeps longer than this (a safety net: writes wake it earlier).
const MAX_DEADLINE_SLEEP: Duration = Duration::from_secs(5);
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

/// The running orchestrator of one instance.
pub struct Orchestrator {
    pub(crate) store: Store,
    pub(crate) settings: Settings,
    pub(crate) policy: Policy,
    pub(crate) launcher: Arc<dyn WorkerLauncher>,
    ready: Arc<AtomicBool>,
    /// Woken whenever a write may have created an earlier deadline.
    wake: Notify,
    pub(crate) tasks: TaskTracker,
    /// Set when a handler failed: the next read re-reads this consumer's pending entries.
    retry_pending: AtomicBool,
    /// Set when follow-ups were left in the outbox after their retries (Redis failing over):
    /// the deadline loop carries them out again instead of leaving them to the next start.
    outbox_left: AtomicBool,
    /// Lets background tasks (workers) hold the engine.
    pub(crate) me: Weak<Self>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Orchestrator {
    pub fn new(store: Store, settings: Settings, launcher: Arc<dyn WorkerLauncher>) -> Arc<Self> {
        let policy = settings.config.policy();
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            store,
            settings,
            policy,
            launcher,
            ready: Arc::new(AtomicBool::new(false)),
            wake: Notify::new(),
            tasks: TaskTracker::new(),
            retry_pending: AtomicBool::new(false),
            outbox_left: AtomicBool::new(false),
        })
    }

    /// The readiness flag served on `/readyz`: true while the lock is held and the engine is
    /// attached to the event stream.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until `shutdown` is cancelled (then stops gracefully and releases the lock) or the
    /// lock is lost.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), OrchestratorError> {
        self.acquire_lock().await?;
        let stop = shutdown.child_token();
        let lock_lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(self.clone().renew_lock(stop.clone(), lock_lost.clone()));
        let result = self.clone().serve(stop.clone()).await;
        stop.cancel();
        let _ = renewer.await;
        self.ready.store(false, Ordering::SeqCst);
        self.tasks.close();
        self.launcher.shutdown(self.settings.shutdown_grace).await;
        let _ = tokio::time::timeout(self.settings.shutdown_grace + Duration::from_secs(5), self.tasks.wait()).await;
        self.stopped().await;
        if lock_lost.load(Ordering::SeqCst) {
            return Err(OrchestratorError::LockLost(self.settings.instance.clone()));
        }
        result
    }

    async fn acquire_lock(&self) -> Result<(), OrchestratorError> {
        let s = &self.settings;
        let holder = LockHolder {
            run_id: s.run_id.clone(),
            host: s.host.clone(),
            pid: s.pid,
            started_at: now_ms(),
            purpose: LockPurpose::Run,
        };
        let ttl = s.lock_ttl.as_millis() as u64;
        for _ in 0..3 {
            match self.store.acquire_lock(&holder, ttl).await? {
                Ok(()) => return Ok(()),
                Err(current) if current.purpose == LockPurpose::Run && (s.holder_is_gone)(&current) => {
                    warn!(
                        instance = %s.instance, previous_run = %current.run_id, previous_pid = current.pid,
                        "taking over the lock of an orchestrator that is gone"
                    );
                    self.store.release_lock(&current.run_id).await?;
                }
                Err(current) if current.purpose == LockPurpose::Destroy => {
                    return Err(OrchestratorError::BeingDestroyed { instance: s.instance.clone(), holder: current });
                }
                Err(current) => {
                    return Err(OrchestratorError::AlreadyRunning { instance: s.instance.clone(), holder: current });
                }
            }
        }
        Err(StoreError::Conflict("the instance lock kept changing hands; try again".into()).into())
    }

    async fn renew_lock(self: Arc<Self>, stop: CancellationToken, lost: Arc<AtomicBool>) {
        let ttl = self.settings.lock_ttl;
        let every = ttl / 3;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match self.store.renew_lock(&self.settings.run_id, ttl.as_millis() as u64).await {
                Ok(true) => {}
                Ok(false) => {
                    // Expired (e.g. Redis was unreachable for longer than the TTL): take it back
                    // if nobody else did, otherwise stop.
                    match self.acquire_lock().await {
                        Ok(()) => {
                            warn!(instance = %self.settings.instance, "the instance lock had expired; re-acquired it")
                        }
                        Err(e) => {
                            error!(instance = %self.settings.instance, error = %e, "lost the instance lock; stopping");
                            metrics::counter!(m::LOCK_LOST).increment(1);
                            lost.store(true, Ordering::SeqCst);
                            stop.cancel();
                            return;
                        }
                    }
                }
                Err(e) => {
                    metrics::counter!(m::REDIS_ERRORS, "component" => "orchestrator").increment(1);
                    warn!(instance = %self.settings.instance, error = %e, "cannot renew the instance lock; retrying");
                }
            }
        }
    }

    /// Registers, recovers, then consumes events and deadlines until `stop`.
    async fn serve(self: Arc<Self>, stop: CancellationToken) -> Result<(), OrchestratorError> {
        self.started().await?;
        let reader = self.store.event_reader().await?;
        // Attach, retrying while Redis does not answer in time (loading, writes paused).
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = reader.ensure_group(GROUP).await {
            warn!(error = %e, "cannot attach to the event stream yet; retrying");
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        self.recover().await?;
        let deadlines = tokio::spawn(self.clone().deadline_loop(stop.clone()));
        let heartbeat = tokio::spawn(self.clone().heartbeat_loop(stop.clone()));
        // Pending entries first: delivered to us before a crash, never acknowledged.
        self.drain_pending(&reader).await?;
        // Exposed from the start (0 included), not only after the first question.
        self.refresh_open_questions_gauge().await;
        self.ready.store(true, Ordering::SeqCst);
        info!(instance = %self.settings.instance, run_id = %self.settings.run_id, "orchestrator ready");
        let result = self.event_loop(&reader, &stop).await;
        stop.cancel();
        let _ = deadlines.await;
        let _ = heartbeat.await;
        reader.quit().await;
        result
    }

    async fn started(&self) -> Result<(), OrchestratorError> {
        let s = &self.settings;
        let redis = self.store.redis();
        let now = now_ms();
        redis.mark_instance_running(&s.instance, s.config.runtime.as_str(), &s.run_id, now).await?;
        self.publish_component(now).await?;
        self.store
            .append_event(EventKind::InstanceStarted, &json!({"run_id": s.run_id, "host": s.host, "pid": s.pid}), now)
            .await?;
        Ok(())
    }

    async fn publish_component(&self, started_at_ms: i64) -> Result<(), StoreError> {
        let s = &self.settings;
        self.store
            .put_component(
                "orchestrator",
                &json!({
                    "pid": s.pid, "host": s.host, "addr": s.health_addr, "run_id": s.run_id,
                    "started_at_ms": started_at_ms, "heartbeat_ms": now_ms(),
                }),
            )
            .await
    }

    async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let started = now_ms();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            if let Err(e) = self.publish_component(started).await {
                debug!(error = %e, "cannot publish the orchestrator heartbeat");
            }
        }
    }

    async fn stopped(&self) {
        let s = &self.settings;
        let now = now_ms();
        let _ = self.store.append_event(EventKind::InstanceStopped, &json!({"run_id": s.run_id}), now).await;
        let _ = self.store.remove_component("orchestrator").await;
        let redis = self.store.redis();
        let _ = redis.mark_instance_stopped(&s.instance, Some(&s.run_id), now).await;
        match self.store.release_lock(&s.run_id).await {
            Ok(_) => info!(instance = %s.instance, "orchestrator stopped; lock released"),
            Err(e) => {
                warn!(instance = %s.instance, error = %e, "could not release the lock; it expires on its own")
            }
        }
    }

    /// After a restart: carry out follow-ups recorded before a crash, adopt or relaunch workers.
    async fn recover(self: &Arc<Self>) -> Result<(), OrchestratorError> {
        let outbox = self.store.outbox().await?;
        if !outbox.is_empty() {
            info!(entries = outbox.len(), "carrying out follow-ups recorded before a restart");
        }
        self.carry_out_all(outbox).await?;
        self.recover_workers().await?;
        Ok(())
    }

    /// Carries out every given outbox entry (all of them are idempotent, so an entry another
    /// task is carrying out at the same moment is harmless).
    async fn carry_out_all(&self, outbox: Vec<(String, serde_json::Value)>) -> Result<(), StoreError> {
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

    async fn drain_pending(&self, reader: &EventReader) -> Result<(), OrchestratorError> {
        loop {
            let events = reader.read_group(GROUP, CONSUMER, GroupRead::Pending, BATCH, BLOCK).await?;
            if events.is_empty() {
                return Ok(());
            }
            let n = events.len();
            self.handle_batch(reader, events).await?;
            // Entries whose handling failed stay pending; do not loop on them here.
            if n < BATCH as usize || self.retry_pending.load(Ordering::SeqCst) {
                return Ok(());
            }
        }
    }

    async fn event_loop(&self, reader: &EventReader, stop: &CancellationToken) -> Result<(), OrchestratorError> {
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            if self.retry_pending.swap(false, Ordering::SeqCst) {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if let Err(e) = self.drain_pending(reader).await {
                    warn!(error = %e, "cannot re-read pending events; retrying");
                    self.retry_pending.store(true, Ordering::SeqCst);
                }
                continue;
            }
            let read = tokio::select! {
                () = stop.cancelled() => break,
                r = reader.read_group(GROUP, CONSUMER, GroupRead::New, BATCH, BLOCK) => r,
            };
            match read {
                Ok(events) if events.is_empty() => {}
                Ok(events) => {
                    self.handle_batch(reader, events).await?;
                    if !self.retry_pending.load(Ordering::SeqCst) {
                        backoff = Duration::from_millis(100);
                    }
                }
                Err(e) => {
                    metrics::counter!(m::REDIS_ERRORS, "component" => "orchestrator").increment(1);
                    warn!(error = %e, "cannot read the event stream; retrying");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(())
    }

    /// Handles a batch: events about the same claim in order, different claims concurrently.
    /// Acknowledges the events that were handled.
    async fn handle_batch(&self, reader: &EventReader, events: Vec<Event>) -> Result<(), OrchestratorError> {
        let mut groups: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for ev in events {
            let key = match ev.field("claim_id").or_else(|| ev.field("question_id")) {
                Some(key) => key.to_owned(),
                // A new root artifact goes with the bids on the claim it gets (cubs bid on its
                // event), so the claim is created before those bids are handled.
                None => parse_artifact(ev.field("artifact_id"))
                    .map_or_else(String::new, |a| initial_claim_id(&a).to_string()),
            };
            groups.entry(key).or_default().push(ev);
        }
        let results = join_all(groups.into_values().map(|group| async move {
            let mut done = Vec::with_capacity(group.len());
            for (i, ev) in group.iter().enumerate() {
                let lag = (now_ms() - event_time_ms(ev)).max(0) as f64 / 1000.0;
                metrics::histogram!(m::EVENT_LAG_SECONDS, "component" => "orchestrator").record(lag);
                // A bid followed by another bid on the same claim needs no handling of its own:
                // the later one reads every bid recorded so far. If the later one fails, it
                // stays pending and its retry still covers this one.
                if ev.kind == EventKind::BidSubmitted
                    && group.get(i + 1).is_some_and(|next| next.kind == EventKind::BidSubmitted)
                {
                    done.push(ev.id.clone());
                    continue;
                }
                match self.handle(ev).await {
                    Ok(()) => {
                        metrics::counter!(m::EVENTS_HANDLED, "component" => "orchestrator", "kind" => ev.kind.as_str()).increment(1);
                        done.push(ev.id.clone());
                    }
                    Err(e) => {
                        // A handler that failed over a refused write or a bad record is no
                        // Redis error; only Redis's own failures are counted as such.
                        if e.is_redis() {
                            metrics::counter!(m::REDIS_ERRORS, "component" => "orchestrator").increment(1);
                        }
                        warn!(event_id = %ev.id, kind = %ev.kind, error = %e, "handling an event failed; it will be retried");
                        self.retry_pending.store(true, Ordering::SeqCst);
                        // Later events of this claim must not overtake it.
                        break;
                    }
                }
            }
            done
        }))
        .await;
        let done: Vec<String> = results.into_iter().flatten().collect();
        if let Err(e) = reader.ack(GROUP, &done).await {
            // Handled but not acknowledged: they are re-read as pending and handled again, which
            // is harmless (every handler is idempotent). Never stop over it.
            metrics::counter!(m::REDIS_ERRORS, "component" => "orchestrator").increment(1);
            warn!(error = %e, "cannot acknowledge handled events; they will be re-read");
            self.retry_pending.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    async fn handle(&self, ev: &Event) -> Result<(), StoreError> {
        match ev.kind {
            EventKind::ArtifactCreated => {
                let Some(id) = parse_artifact(ev.field("artifact_id")) else {
                    return Ok(());
                };
                self.on_artifact(&id).await
            }
            EventKind::BidSubmitted => {
                let Some(claim) = parse_claim(ev.field("claim_id")) else {
                    return Ok(());
                };
                self.apply(&claim, Trigger::Bids).await.map(drop)
            }
            EventKind::QuestionAnswered => {
                let (Some(question), Some(answer)) =
                    (parse_artifact(ev.field("question_id")), parse_artifact(ev.field("answer_id")))
                else {
                    return Ok(());
                };
                self.on_answer(question, answer, parse_claim(ev.field("claim_id"))).await
            }
            _ => Ok(()),
        }
    }

    async fn on_artifact(&self, id: &ArtifactId) -> Result<(), StoreError> {
        let Some(a) = self.store.get_artifact(id).await? else {
            warn!(artifact_id = %id, "artifact_created names an artifact that does not exist; ignoring");
            return Ok(());
        };
        metrics::counter!(m::ARTIFACTS_CREATED, "structural_type" => a.structural_type.as_str()).increment(1);
        // Route it as an output first: a rework output completes its claim before its own review.
        let targets: Vec<ClaimId> = match a.claim_id {
            Some(c) => vec![c],
            None if a.producing_agent().is_some() => {
                let mut out = Vec::new();
                for s in &a.source_artifacts {
                    if let Some(c) = self.store.claim_for_artifact(s).await? {
                        out.push(c);
                    }
                }
                out
            }
            None => Vec::new(),
        };
        for claim in targets {
            self.apply(&claim, Trigger::Output(Box::new(a.clone()))).await?;
        }
        if a.structural_type.creates_claim() {
            self.create_claim(&a).await?;
        }
        if a.structural_type == StructuralType::Question
            && let Some(rec) = self.store.answer_record(&a.id).await?
        {
            // Answered before we saw the question (e.g. by its full id): unblock now.
            if let Some(claim) = a.claim_id {
                self.apply(&claim, Trigger::Answer { question: a.id, answer: rec.answer_id }).await?;
            }
        }
        Ok(())
    }

    async fn create_claim(&self, a: &Artifact) -> Result<(), StoreError> {
        let now = now_ms();
        let claim = new_claim(initial_claim_id(&a.id), a, &self.policy, now);
        let events = [ledger::claim_created(&claim)];
        match self.store.write_claim(&claim, None, true, &[], &events, now).await? {
            WriteOutcome::Written => {
                metrics::counter!(m::CLAIMS_CREATED, "kind" => "initial").increment(1);
                info!(claim_id = %claim.id, artifact_id = %a.id, artifact_type = %a.artifact_type, "claim created");
                self.wake.notify_one();
            }
            WriteOutcome::Exists(_) => debug!(artifact_id = %a.id, "claim exists already"),
            WriteOutcome::Conflict { .. } => return Ok(()),
        }
        // Cubs bid on the artifact's event while the claim is being created: bids recorded
        // before the claim existed were handled when there was no claim yet, so they are
        // applied now (a bid recorded after this write has its own event, handled after it).
        self.apply(&claim.id, Trigger::Bids).await.map(drop)
    }

    async fn on_answer(
        &self,
        question: ArtifactId,
        answer: ArtifactId,
        claim: Option<ClaimId>,
    ) -> Result<(), StoreError> {
        let claim = match claim {
            Some(c) => Some(c),
            None => self.store.get_artifact(&question).await?.and_then(|q| q.claim_id),
        };
        match claim {
            Some(c) => self.apply(&c, Trigger::Answer { question, answer }).await.map(drop),
            None => {
                warn!(question_id = %question, "an answer names a question without a claim; ignoring");
                Ok(())
            }
        }
    }

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

    async fn refresh_open_questions_gauge(&self) {
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

    /// Applies due deadlines; sleeps until the next one or until a write wakes it.
    async fn deadline_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if self.outbox_left.swap(false, Ordering::SeqCst) {
                let outbox = self.store.outbox().await;
                if let Err(e) = match outbox {
                    Ok(entries) => self.carry_out_all(entries).await,
                    Err(e) => Err(e),
                } {
                    warn!(error = %e, "cannot carry out the follow-ups left in the outbox yet; retrying");
                    self.outbox_left.store(true, Ordering::SeqCst);
                }
            }
            let now = now_ms();
            let next = self.store.next_deadline().await;
            if let Ok(d) = &next {
                metrics::gauge!(m::NEXT_CLAIM_DEADLINE).set(d.map_or(0.0, |ms| ms as f64 / 1000.0));
            }
            let sleep = match next {
                Ok(Some(d)) if d <= now => {
                    if let Err(e) = self.tick_due(now).await {
                        warn!(error = %e, "applying deadlines failed; retrying");
                        Duration::from_millis(500)
                    } else {
                        continue;
                    }
                }
                Ok(Some(d)) => Duration::from_millis((d - now) as u64).min(MAX_DEADLINE_SLEEP),
                Ok(None) => MAX_DEADLINE_SLEEP,
                Err(e) => {
                    metrics::counter!(m::REDIS_ERRORS, "component" => "orchestrator").increment(1);
                    debug!(error = %e, "cannot read deadlines; retrying");
                    Duration::from_millis(500)
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn tick_due(&self, now: i64) -> Result<(), StoreError> {
        for id in self.store.due_claims(now).await? {
            self.take_unhandled_outputs(&id, now).await?;
            if self.apply(&id, Trigger::Tick).await?.is_none() {
                // Nothing was due after all (the index is stale): repair it so we never spin.
                let next = self.store.get_claim(&id).await?.and_then(|c| c.next_deadline_ms());
                let repaired = next.map(|d| d.max(now + 1_000));
                self.store.set_claim_deadline(&id, repaired).await?;
            }
        }
        Ok(())
    }

    /// Before an execution deadline fails a claim, applies any output its overdue grants already
    /// wrote whose event has not been handled yet (after an outage or a restart the backlog can
    /// trail the deadline). Without this a goal could end with both a Terminal and a Failure.
    async fn take_unhandled_outputs(&self, id: &ClaimId, now: i64) -> Result<(), StoreError> {
        let Some(claim) = self.store.get_claim(id).await? else { return Ok(()) };
        let overdue: Vec<u64> = claim
            .grants
            .iter()
            .filter(|(agent, g)| !claim.received.contains_key(*agent) && g.deadline_ms.is_some_and(|d| d <= now))
            .map(|(_, g)| g.seq)
            .collect();
        for seq in overdue {
            // The executor's deterministic output id (see sett-cub's execute module).
            let output = ArtifactId::derived(id, &format!("output:{seq}"));
            if let Some(artifact) = self.store.get_artifact(&output).await? {
                self.apply(id, Trigger::Output(Box::new(artifact))).await?;
            }
        }
        Ok(())
    }
}

fn secs(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

fn parse_artifact(s: Option<&str>) -> Option<ArtifactId> {
    s.and_then(|s| ArtifactId::parse(s).ok())
}

fn parse_claim(s: Option<&str>) -> Option<ClaimId> {
    s.and_then(|s| ClaimId::parse(s).ok())
}

/// The time an event was written: its stream id's millisecond part.
fn event_time_ms(ev: &Event) -> i64 {
    ev.id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(ev.ts_ms)
}
