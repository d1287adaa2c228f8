//! The cub daemon's event loop. It reads the instance event stream through consumer group
//! `cub:<agent>` with a stable consumer name (the agent), so after a restart it first re-reads
//! the entries it received but never acknowledged, then new ones. A cub whose agent bids without
//! a script offers a standing bid in its component record (design.md §5): the orchestrator
//! records it when it creates a claim, so the cub does not bid on new artifacts itself. Without
//! one (or with an orchestrator that does not record them), `artifact_created` of an artifact
//! that gets a claim leads to one bid on that claim (made while the orchestrator creates it).
//! `claim_created` of a claim waiting for bids without this agent's bid leads to one bid,
//! `claim_granted` (to this agent, not via a worker) to one grant execution; all run in their
//! own tasks, so bidding never waits for a tool. An event is acknowledged once handled; every
//! handler is idempotent, so redelivery is harmless.
//!
//! While its standing bid is recorded by an orchestrator that rings bells, the cub has nothing
//! to do with most events (new artifacts, other agents' grants), so it waits on its bell
//! (sett-store presence.rs) instead of being woken by every entry: rung by a grant to its agent
//! or an event any cub may act on, and reading at least once a second anyway.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sett_core::event::{Event, EventData};
use sett_core::machine::initial_claim_id;
use sett_core::metrics::{EVENT_LAG_SECONDS, EVENTS_HANDLED, REDIS_ERRORS};
use sett_core::record::{ComponentRecord, ORCHESTRATOR_COMPONENT, cub_component};
use sett_core::{AgentName, ArtifactId, ClaimId, ClaimStatus};
use sett_store::{BatchedAcks, ConsumerDriver, GroupStart, Presence, Redeliver, Store};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::bidding::NewArtifact;
use crate::{CubError, CubSettings, bidding, execute};

/// How long one blocking read of new events waits.
const READ_BLOCK: Duration = Duration::from_secs(5);
/// Events read per call.
const READ_COUNT: u64 = 100;
/// The pending backlog is read in one go of at most this many entries per call.
const PENDING_COUNT: u64 = 10_000;
/// How often the component record's heartbeat is refreshed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// How long each closing write of a stopping cub may wait for Redis.
const CLOSING_WRITE_BOUND: Duration = Duration::from_secs(3);

/// How often the orchestrator's record is read while it does not record standing bids yet.
const ORCHESTRATOR_WATCH_EVERY: Duration = Duration::from_secs(1);
/// Bid decisions running at once (a late cub may find thousands of claims in the history).
const CONCURRENT_BIDS: usize = 8;
/// Claims bid on from their artifact's event and whose `claim_created` has not been seen yet.
/// Beyond this many (an orchestrator down for long) the set is emptied: a `claim_created` not
/// found in it is bid on again, which the store refuses as a duplicate.
const EARLY_BIDS_REMEMBERED: usize = 100_000;
/// Attempts of a handler whose store calls fail for a reason that will not pass by itself.
const HANDLER_ATTEMPTS: u32 = 3;
/// How long a handler is retried while Redis is unreachable or failing over. Longer than any
/// failover (a cluster's node timeout plus its election, or Sentinel's down-after plus its
/// election): a bid given up on leaves the claim without it (dormant), and a grant event given
/// up on stays pending until the cub restarts.
const HANDLER_PATIENCE: Duration = Duration::from_secs(60);
/// After the grace period the tools are killed; writing their Failures may take this long.
const AFTER_KILL_BOUND: Duration = Duration::from_secs(30);
/// How long a stopping cub waits for its queued acknowledgements to be sent.
const ACKS_FLUSH_BOUND: Duration = Duration::from_secs(5);

/// How a cub runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Cancelled on SIGTERM/SIGINT: stop taking events, let running tools finish.
    pub shutdown: CancellationToken,
    /// How long running tools may keep running after `shutdown`; then their process groups are
    /// killed and Failures written.
    pub grace: Duration,
    /// Set while the cub is attached to its stream (what `/readyz` reports).
    pub ready: Arc<AtomicBool>,
    /// The health server's address, published in the component record.
    pub health_addr: Option<SocketAddr>,
}

impl RunOptions {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { shutdown, grace: Duration::from_secs(10), ready: Arc::new(AtomicBool::new(false)), health_addr: None }
    }
}

/// One agent's runtime on one instance.
#[derive(Debug, Clone)]
pub struct Cub {
    store: Store,
    settings: Arc<CubSettings>,
}

/// This cub's standing bid (design.md §5): the terms of its agent's static bid, offered in its
/// component record from its start until it begins to stop.
struct StandingOffer {
    /// `None` for an agent with a bid script: it bids on each claim itself.
    terms: Option<String>,
    /// Set when the cub begins to stop: grants made after it would wait for the next start.
    withdrawn: AtomicBool,
    /// Whether the orchestrator records standing bids (its component record says so, read with
    /// each heartbeat): otherwise the cub bids on new artifacts itself.
    recorded: AtomicBool,
    /// Whether the orchestrator rings the cubs' bells (its record, read with `recorded`).
    rings: AtomicBool,
    /// Set while the event loop waits on the bell instead of reading every event as it comes:
    /// the offer is in effect and the orchestrator rings ([`StandingOffer::refresh_bell`]).
    bell_armed: Arc<AtomicBool>,
}

impl StandingOffer {
    /// The offer of `agent`'s cub; `present` says whether the cub announced its presence (the
    /// orchestrator records no standing bid without it).
    fn new(agent: &sett_core::config::AgentConfig, present: bool) -> Self {
        let terms = if present { agent.standing_bid_terms() } else { None };
        Self {
            terms,
            withdrawn: AtomicBool::new(false),
            recorded: AtomicBool::new(false),
            rings: AtomicBool::new(false),
            bell_armed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Arms the bell when nothing but a ring can concern this cub: its standing bid is recorded
    /// (so new artifacts need nothing from it) and the orchestrator rings it for its grants and
    /// for claims waiting for bids. Disarmed otherwise, e.g. once withdrawn.
    fn refresh_bell(&self) {
        let armed = self.in_effect() && self.rings.load(Ordering::SeqCst);
        self.bell_armed.store(armed, Ordering::SeqCst);
    }

    /// The terms to publish now.
    fn offered(&self) -> Option<String> {
        if self.withdrawn.load(Ordering::SeqCst) { None } else { self.terms.clone() }
    }

    /// Whether the orchestrator records this agent's bids on new artifacts. When it did not for
    /// a claim after all (its view of the offers is a second old, or it disagrees with the
    /// terms), the claim's `claim_created` comes without this agent's bid, and the cub bids then.
    fn in_effect(&self) -> bool {
        self.offered().is_some() && self.recorded.load(Ordering::SeqCst)
    }
}

/// What every handler task shares.
struct Shared {
    store: Store,
    settings: Arc<CubSettings>,
    /// Acknowledgements from the event loop and the handler tasks (while the loop's connection
    /// is blocked in a read), sent in the background, as many in one XACK as arrived meanwhile.
    acks: BatchedAcks,
    /// A task gave up on its event: the driver reads the pending entries again after the backoff.
    redeliver: Redeliver,
    /// Events a task is working on: a re-read of the pending entries skips them.
    in_flight: std::sync::Mutex<HashSet<String>>,
    /// Cancelled after the grace period: running tools and bid scripts are killed.
    kill: CancellationToken,
    /// Taken before a bid task is spawned: the event loop stops reading while every slot is
    /// busy, so a burst of claims waits in Redis instead of as thousands of parked tasks (whose
    /// memory the allocator would keep after the burst).
    bid_slots: Arc<Semaphore>,
    /// Cancelled on shutdown: bids not started yet are left for the next start.
    stopping: CancellationToken,
    /// Initial claims bid on from `artifact_created`, or whose standing bid the orchestrator
    /// recorded: their `claim_created` needs nothing more.
    bid_early: std::sync::Mutex<HashSet<ClaimId>>,
    /// This cub's standing bid.
    offer: Arc<StandingOffer>,
    /// The grants executed here, announced by their event or rung (`start_grant`).
    grants: std::sync::Mutex<Grants>,
}

/// The grants this cub executes, whether their event or their ring came first.
#[derive(Default)]
struct Grants {
    /// Running here, by claim and seq.
    running: HashMap<(ClaimId, u64), RunningGrant>,
    /// Started from their ring and ended well before their event was read: that event needs
    /// nothing more. Emptied beyond [`EARLY_BIDS_REMEMBERED`]: such an event then finds the
    /// grant taken, as a redelivered one does.
    rung_done: HashSet<(ClaimId, u64)>,
}

struct RunningGrant {
    /// A `workflow_cancelled` naming the claim stops its tool.
    stop: CancellationToken,
    /// The events that announced it (none yet when it was started from its ring), acknowledged
    /// when it ends.
    events: Vec<String>,
}

impl Cub {
    pub fn new(store: Store, settings: CubSettings) -> Self {
        Self { store, settings: Arc::new(settings) }
    }

    /// The consumer group, and the component record's name: `cub:<agent>`.
    pub fn component_name(&self) -> String {
        cub_component(&self.settings.agent.name)
    }

    /// Runs until `options.shutdown` is cancelled and running work has finished (or was killed
    /// after the grace period). Errors only when the stream cannot be attached at start.
    pub async fn run(&self, options: RunOptions) -> Result<(), CubError> {
        let span = tracing::info_span!("cub", agent = %self.settings.agent.name);
        self.run_inner(options).instrument(span).await
    }

    async fn run_inner(&self, options: RunOptions) -> Result<(), CubError> {
        let agent = self.settings.agent.name.clone();
        let group = self.component_name();
        let consumer = agent.to_string();
        let stream = self.store.group_consumer(&group, &consumer, GroupStart::Beginning).await?;
        let mut driver = ConsumerDriver::new(stream, "cub", READ_COUNT, READ_BLOCK);
        // Attach, retrying while Redis does not answer (down, loading, or writes paused): a cub
        // waits for its blackboard instead of dying; it reports ready only once attached.
        if !driver.attach(&options.shutdown).await {
            return Ok(());
        }

        let started_at_ms = sett_store::now_ms();
        // A standing bid is recorded only while this cub's presence subscription lives.
        let mut presence = match self.settings.agent.standing_bid_terms() {
            None => None,
            Some(_) => match self.store.announce_presence(&agent).await {
                Ok(presence) => Some(presence),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot announce this cub's presence (the Redis user may lack ssubscribe on the instance's channels); it bids on every claim itself");
                    None
                }
            },
        };
        let offer = Arc::new(StandingOffer::new(&self.settings.agent, presence.is_some()));
        // Registered before anything is handled, so whoever sees our work can also find us.
        let record = component_record(&agent, options.health_addr, started_at_ms, offer.offered());
        self.store.put_component(&group, &record).await?;
        read_orchestrator_record(&self.store, &offer).await;
        // Cancelled when this function returns, whichever way.
        let heartbeat_stop = CancellationToken::new();
        let stop_heartbeat = heartbeat_stop.clone().drop_guard();
        let heartbeat = tokio::spawn(
            heartbeat(
                self.store.clone(),
                group.clone(),
                agent.clone(),
                options.health_addr,
                started_at_ms,
                offer.clone(),
                heartbeat_stop.clone(),
            )
            .in_current_span(),
        );

        let (acks, acks_sent) = driver.batched_acks();
        let shared = Arc::new(Shared {
            store: self.store.clone(),
            settings: self.settings.clone(),
            acks,
            redeliver: driver.redeliver(),
            in_flight: std::sync::Mutex::new(HashSet::new()),
            kill: CancellationToken::new(),
            bid_slots: Arc::new(Semaphore::new(CONCURRENT_BIDS)),
            stopping: options.shutdown.clone(),
            bid_early: std::sync::Mutex::new(HashSet::new()),
            offer: offer.clone(),
            grants: std::sync::Mutex::new(Grants::default()),
        });
        let tracker = TaskTracker::new();
        // A grant rung for this agent is taken at once, before its event is read.
        let rung_grants = presence.as_mut().and_then(Presence::take_rung_grants).map(|mut rung| {
            let (shared, tracker, stop) = (shared.clone(), tracker.clone(), options.shutdown.clone());
            tokio::spawn(
                async move {
                    loop {
                        // Cancel-safe: a token and a channel receive.
                        let grant = tokio::select! {
                            () = stop.cancelled() => return,
                            g = rung.recv() => g,
                        };
                        let Some(g) = grant else { return };
                        start_grant(&shared, &tracker, g.claim, g.seq, g.artifact, None);
                    }
                }
                .in_current_span(),
            )
        });

        // The backlog: entries delivered to this consumer before a restart, never acknowledged
        // (paged with a cursor, so an entry dispatched but not acknowledged yet is not handed
        // out twice).
        let handle = |events| {
            let (shared, tracker) = (&shared, &tracker);
            async move {
                dispatch(shared, tracker, events).await;
                // Failures come later, from the tasks (`Redeliver`).
                true
            }
        };
        driver.drain_pending(PENDING_COUNT, &options.shutdown, handle).await?;
        if !options.shutdown.is_cancelled() {
            options.ready.store(true, Ordering::SeqCst);
            tracing::info!("attached to the event stream");
        }

        // The store's failure policy (a failed read or task: the pending entries again after the
        // backoff); a shutdown during the backlog ends it at once.
        let mut driver = driver.with_ready(options.ready.clone());
        if let Some(presence) = &presence {
            driver = driver.with_bell(presence.bell(), offer.bell_armed.clone());
        }
        driver.run(&options.shutdown, handle).await;
        options.ready.store(false, Ordering::SeqCst);
        if let Some(rung_grants) = rung_grants {
            rung_grants.abort();
        }
        // No standing bid is recorded for a cub that stops: its presence goes first (the
        // orchestrator's creating write checks it), then its offer (the heartbeat publishes the
        // withdrawal too, should it race with this write).
        offer.withdrawn.store(true, Ordering::SeqCst);
        offer.refresh_bell();
        if let Some(presence) = presence {
            presence.withdraw().await;
        }
        let record = component_record(&agent, options.health_addr, started_at_ms, None);
        // Closing writes are bounded: with Redis gone each would wait out the command timeout.
        match tokio::time::timeout(CLOSING_WRITE_BOUND, self.store.put_component(&group, &record)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot withdraw the standing bid; it lapses with the heartbeat"),
            Err(_) => {
                tracing::warn!(bound = ?CLOSING_WRITE_BOUND, "cannot withdraw the standing bid in time; it lapses with the heartbeat")
            }
        }

        tracker.close();
        if !tracker.is_empty() {
            tracing::info!(tasks = tracker.len(), grace = ?options.grace, "shutting down: waiting for running work");
        }
        if tokio::time::timeout(options.grace, tracker.wait()).await.is_err() {
            tracing::warn!(tasks = tracker.len(), "the grace period ended; killing running tools");
            shared.kill.cancel();
            if tokio::time::timeout(AFTER_KILL_BOUND, tracker.wait()).await.is_err() {
                tracing::error!(tasks = tracker.len(), "work did not end after its tools were killed; exiting anyway");
            }
        }
        // The acknowledgements still queued go out once the last handle is gone (a task that
        // outlived the grace still holds one: then they are re-read at the next start).
        drop(shared);
        if tokio::time::timeout(ACKS_FLUSH_BOUND, acks_sent).await.is_err() {
            tracing::warn!("some acknowledgements were not sent; those events are read again at the next start");
        }
        drop(stop_heartbeat);
        let mut heartbeat = heartbeat;
        if tokio::time::timeout(CLOSING_WRITE_BOUND, &mut heartbeat).await.is_err() {
            // In the middle of a write Redis does not answer: abandoned, as the record expires.
            heartbeat.abort();
        }
        match tokio::time::timeout(CLOSING_WRITE_BOUND, self.store.remove_component(&group)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot remove the component record; it expires with the heartbeat")
            }
            Err(_) => {
                tracing::warn!(bound = ?CLOSING_WRITE_BOUND, "cannot remove the component record in time; it expires with the heartbeat")
            }
        }
        // The reader's connection may still sit in the XREADGROUP abandoned at shutdown (up to
        // READ_BLOCK); QUIT would queue behind it, so close it in the background.
        tokio::spawn(async move { driver.quit().await });
        tracing::info!("stopped");
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn heartbeat(
    store: Store,
    name: String,
    agent: AgentName,
    addr: Option<SocketAddr>,
    started_at_ms: i64,
    offer: Arc<StandingOffer>,
    stop: CancellationToken,
) {
    // Ticks every second: the heartbeat is written every fifth tick; the orchestrator's record is
    // read on each tick until it records standing bids (an instance starting: the cub may start
    // before the orchestrator), then with the heartbeat.
    let mut every = tokio::time::interval(ORCHESTRATOR_WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    let ticks_per_beat = (HEARTBEAT_EVERY.as_millis() / ORCHESTRATOR_WATCH_EVERY.as_millis()).max(1);
    let mut tick = 0u128;
    loop {
        // Cancel-safe: a token and a timer tick.
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        tick += 1;
        if !tick.is_multiple_of(ticks_per_beat) {
            if offer.terms.is_some() && !offer.recorded.load(Ordering::SeqCst) {
                read_orchestrator_record(&store, &offer).await;
            }
            continue;
        }
        let offered = offer.offered();
        let put = store.put_component(&name, &component_record(&agent, addr, started_at_ms, offered.clone())).await;
        if let Err(e) = put {
            metrics::counter!(REDIS_ERRORS, "component" => "cub").increment(1);
            tracing::warn!(error = %e, "cannot refresh the component heartbeat");
            continue;
        }
        if offered.is_some() && offer.offered().is_none() {
            // Withdrawn while this write was on its way: it must not bring the offer back.
            let _ = store.put_component(&name, &component_record(&agent, addr, started_at_ms, None)).await;
        }
        read_orchestrator_record(&store, &offer).await;
    }
}

/// Reads whether the orchestrator records standing bids (an orchestrator that does not, or
/// none, and the cub bids on new artifacts itself).
async fn read_orchestrator_record(store: &Store, offer: &StandingOffer) {
    match store.component(ORCHESTRATOR_COMPONENT).await {
        Ok(record) => {
            let (records, rings) = record.map_or((false, false), |r| (r.records_standing_bids, r.rings_bells));
            offer.recorded.store(records, Ordering::SeqCst);
            offer.rings.store(rings, Ordering::SeqCst);
            offer.refresh_bell();
        }
        Err(e) => tracing::debug!(error = %e, "cannot read the orchestrator's record"),
    }
}

/// The component record: `{pid, agent, addr, started_at_ms, heartbeat_ms, standing_bid}`.
fn component_record(
    agent: &AgentName,
    addr: Option<SocketAddr>,
    started_at_ms: i64,
    standing_bid: Option<String>,
) -> ComponentRecord {
    ComponentRecord {
        addr: addr.map(|a| a.to_string()),
        agent: Some(agent.clone()),
        heartbeat_ms: Some(sett_store::now_ms()),
        pid: Some(std::process::id()),
        started_at_ms: Some(started_at_ms),
        standing_bid,
        ..ComponentRecord::default()
    }
}

/// What a bid task bids on: a new artifact's claim (created meanwhile), or a claim as
/// announced by `claim_created` (with its artifact's id, read together with the claim).
enum BidTarget {
    New(NewArtifact),
    Claim(ClaimId, Option<ArtifactId>),
}

/// What an event asks of this cub.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Work {
    /// Bid on the claim the orchestrator creates for this new artifact.
    BidOnNew(NewArtifact),
    /// The orchestrator recorded this agent's standing bid on a new claim.
    StandingBidRecorded(ClaimId),
    /// An orchestrator started: read whether it records standing bids.
    OrchestratorStarted,
    Bid(ClaimId),
    /// Run grant `(claim, seq)` on the claim's artifact.
    Execute(ClaimId, u64, ArtifactId),
    /// Stop the tools running for these claims: their workflow was cancelled.
    Stop(Vec<ClaimId>),
    Nothing,
}

fn classify(event: &Event, agent: &AgentName) -> Work {
    match &event.data {
        // Only a Standard artifact gets a claim.
        EventData::ArtifactCreated(a) if a.structural_type.creates_claim() => Work::BidOnNew(NewArtifact {
            id: a.artifact_id,
            artifact_type: a.artifact_type.clone(),
            produced_by_role: a.produced_by_role.clone(),
        }),
        // Written before issue 29 (standing bids are now listed by `claim_created`).
        EventData::BidSubmitted(b) if b.standing && &b.agent == agent => Work::StandingBidRecorded(b.claim_id),
        EventData::InstanceStarted(_) => Work::OrchestratorStarted,
        // Created with this agent's standing bid: it is bid on.
        EventData::ClaimCreated(c)
            if c.status == ClaimStatus::PendingConsensus && !c.standing_bids.contains_key(agent) =>
        {
            Work::Bid(c.claim_id)
        }
        EventData::ClaimGranted(g) if &g.agent == agent && !g.via_worker => {
            Work::Execute(g.claim_id, g.seq, g.artifact_id)
        }
        EventData::WorkflowCancelled(c) if !c.claims.is_empty() => Work::Stop(c.claims.clone()),
        _ => Work::Nothing,
    }
}

/// Remembers that this agent's bid on `claim` is made (or being made) before its
/// `claim_created` arrives, so that event needs nothing.
fn remember_bid(shared: &Shared, claim: ClaimId) {
    let mut early = shared.bid_early.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if early.len() >= EARLY_BIDS_REMEMBERED {
        early.clear();
    }
    early.insert(claim);
}

/// Starts a task per event that needs work and acknowledges the others at once.
async fn dispatch(shared: &Arc<Shared>, tracker: &TaskTracker, events: Vec<Event>) {
    let agent = &shared.settings.agent.name;
    let mut done = Vec::new();
    for event in events {
        if shared.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&event.id) {
            // Re-read while a task still works on it: that task acknowledges or reports it.
            continue;
        }
        metrics::counter!(EVENTS_HANDLED, "component" => "cub", "kind" => event.kind().as_str()).increment(1);
        let work = match classify(&event, agent) {
            // The orchestrator records this agent's bid with the claim.
            Work::BidOnNew(_) if shared.offer.in_effect() => Work::Nothing,
            Work::StandingBidRecorded(claim) => {
                remember_bid(shared, claim);
                Work::Nothing
            }
            // Its record, written just before this event, says whether it records standing bids
            // (a cub that started before it knows at once, not at its next heartbeat).
            Work::OrchestratorStarted => {
                if shared.offer.terms.is_some() {
                    read_orchestrator_record(&shared.store, &shared.offer).await;
                }
                Work::Nothing
            }
            Work::BidOnNew(artifact) => {
                remember_bid(shared, initial_claim_id(&artifact.id));
                Work::BidOnNew(artifact)
            }
            Work::Bid(claim)
                if shared.bid_early.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&claim) =>
            {
                // Bid on already, from its artifact's event.
                Work::Nothing
            }
            other => other,
        };
        if !matches!(work, Work::Nothing | Work::StandingBidRecorded(_) | Work::OrchestratorStarted) {
            // The lag of what this cub acts on: an event that needs nothing from it may be read up
            // to the bell's fallback late, by design.
            let lag_ms = (sett_store::now_ms() - event.ts_ms).max(0);
            metrics::histogram!(EVENT_LAG_SECONDS, "component" => "cub").record(lag_ms as f64 / 1000.0);
        }
        match work {
            // Handled above.
            Work::Nothing | Work::StandingBidRecorded(_) | Work::OrchestratorStarted => done.push(event.id),
            Work::BidOnNew(_) | Work::Bid(_) => {
                let (target, span) = match work {
                    Work::BidOnNew(artifact) => {
                        let claim = initial_claim_id(&artifact.id);
                        let span = tracing::info_span!("bid", claim_id = %claim, artifact_id = %artifact.id);
                        (BidTarget::New(artifact), span)
                    }
                    Work::Bid(claim) => {
                        let hint = event.data.artifact_id();
                        let span = tracing::info_span!("bid", claim_id = %claim, artifact_id = hint.map(|a| a.to_string()).unwrap_or_default());
                        (BidTarget::Claim(claim, hint), span)
                    }
                    _ => unreachable!("matched above"),
                };
                let shared = shared.clone();
                let Ok(slot) = shared.bid_slots.clone().acquire_owned().await else { continue };
                shared.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(event.id.clone());
                tracker.spawn(
                    async move {
                        let _slot = slot;
                        if shared.stopping.is_cancelled() {
                            // Unacknowledged: re-read from the pending list after a restart.
                            return;
                        }
                        let outcome = with_retries(&shared.kill, || async {
                            match &target {
                                BidTarget::New(artifact) => {
                                    bidding::bid_on_new_artifact(
                                        &shared.store,
                                        &shared.settings,
                                        artifact,
                                        &shared.kill,
                                    )
                                    .await
                                }
                                BidTarget::Claim(claim, hint) => {
                                    bidding::bid_on_claim_of(
                                        &shared.store,
                                        &shared.settings,
                                        claim,
                                        *hint,
                                        &shared.kill,
                                    )
                                    .await
                                }
                            }
                        })
                        .await;
                        match outcome {
                            Ok(_) => ack(&shared, event.id),
                            Err(e) => {
                                tracing::error!(error = %e, "bidding failed; the event will be read again");
                                gave_up(&shared, &event.id);
                            }
                        }
                    }
                    .instrument(span),
                );
            }
            Work::Stop(claims) => {
                let grants = shared.grants.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for ((claim, seq), running) in grants.running.iter().filter(|((c, _), _)| claims.contains(c)) {
                    tracing::info!(claim_id = %claim, seq, "the workflow was cancelled; stopping the tool");
                    running.stop.cancel();
                }
                done.push(event.id);
            }
            Work::Execute(claim, seq, artifact) => {
                if let Some(id) = start_grant(shared, tracker, claim, seq, artifact, Some(event.id)) {
                    done.push(id);
                }
            }
        }
    }
    shared.acks.ack(done);
}

/// Executes grant `(claim, seq)` on `artifact` in a task of its own, announced by its event
/// `event`, or by its ring (`None`; the event comes just after). The grant runs once: an event of
/// a grant already running is acknowledged when it ends, and one of a grant its ring ran already
/// is returned, to be acknowledged now.
fn start_grant(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    claim: ClaimId,
    seq: u64,
    artifact: ArtifactId,
    event: Option<String>,
) -> Option<String> {
    let mut grants = shared.grants.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(running) = grants.running.get_mut(&(claim, seq)) {
        if let Some(id) = event {
            shared.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone());
            running.events.push(id);
        }
        return None;
    }
    if grants.rung_done.contains(&(claim, seq)) {
        if event.is_some() {
            grants.rung_done.remove(&(claim, seq));
        }
        return event;
    }
    if event.is_none() && shared.stopping.is_cancelled() {
        // Rung while stopping: its event stays for the next start.
        return None;
    }
    let span = tracing::info_span!("grant", claim_id = %claim, seq, artifact_id = %artifact, rung = event.is_none());
    // Registered before the task starts, so a cancellation read after this grant (the stream's
    // order) always finds it.
    let stop = CancellationToken::new();
    if let Some(id) = &event {
        shared.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone());
    }
    grants.running.insert((claim, seq), RunningGrant { stop: stop.clone(), events: event.into_iter().collect() });
    drop(grants);
    let shared = shared.clone();
    tracker.spawn(
        async move {
            let outcome = with_retries(&shared.kill, || {
                execute::execute_announced_grant(
                    &shared.store,
                    &shared.settings,
                    claim,
                    seq,
                    artifact,
                    shared.kill.child_token(),
                    stop.clone(),
                )
            })
            .await;
            let mut grants = shared.grants.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let events = grants.running.remove(&(claim, seq)).map(|r| r.events).unwrap_or_default();
            match outcome {
                Ok(_) => {
                    if events.is_empty() {
                        if grants.rung_done.len() >= EARLY_BIDS_REMEMBERED {
                            grants.rung_done.clear();
                        }
                        grants.rung_done.insert((claim, seq));
                    }
                    drop(grants);
                    for id in events {
                        ack(&shared, id);
                    }
                }
                Err(e) => {
                    drop(grants);
                    // A rung grant whose event was not read yet: that event runs it again.
                    tracing::error!(error = %e, "executing the grant failed; the event will be read again");
                    for id in events {
                        gave_up(&shared, &id);
                    }
                }
            }
        }
        .instrument(span),
    );
    None
}

/// A task's event left pending: read again (with the pending entries after it) after the backoff.
fn gave_up(shared: &Shared, id: &str) {
    shared.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    if !shared.stopping.is_cancelled() {
        shared.redeliver.failed();
    }
}

fn ack(shared: &Shared, id: String) {
    shared.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    shared.acks.ack([id]);
}

/// Runs `f` again after a store error: while Redis is unreachable or failing over, for up to
/// [`HANDLER_PATIENCE`]; otherwise a few times. Not once killed. Every handler is idempotent.
async fn with_retries<T, F, Fut>(kill: &CancellationToken, mut f: F) -> Result<T, CubError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CubError>>,
{
    let until = tokio::time::Instant::now() + HANDLER_PATIENCE;
    let mut attempt = 1;
    loop {
        match f().await {
            Err(CubError::Store(e))
                if !kill.is_cancelled()
                    && if e.is_transient() {
                        tokio::time::Instant::now() < until
                    } else {
                        attempt < HANDLER_ATTEMPTS
                    } =>
            {
                // A refused write or a bad record is no Redis error.
                if e.is_redis() {
                    metrics::counter!(REDIS_ERRORS, "component" => "cub").increment(1);
                }
                tracing::warn!(error = %e, attempt, "the blackboard call failed; retrying");
                // Cancel-safe: a token and a sleep.
                tokio::select! {
                    () = kill.cancelled() => return Err(CubError::Store(e)),
                    () = tokio::time::sleep(Duration::from_secs(u64::from(attempt.min(5)))) => {}
                }
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use sett_core::event::{
        ArtifactCreated, BidSubmitted, ClaimCreated, ClaimGranted, InstanceStarted, InstanceStopped,
    };
    use sett_core::{ClaimType, StructuralType};

    use super::*;

    fn event(data: EventData) -> Event {
        Event { id: "1-0".into(), ts_ms: 1, data }
    }

    #[test]
    fn events_are_classified() {
        let me = AgentName::parse("Coder").unwrap();
        let c = sett_store::new_claim_id();
        let a = sett_store::new_artifact_id();
        let created_with = |status: ClaimStatus, standing: &[&str]| {
            event(EventData::ClaimCreated(ClaimCreated {
                agent: None,
                artifact_id: a,
                claim_id: c,
                rework_of: None,
                standing_bids: standing
                    .iter()
                    .map(|s| (AgentName::parse(s).unwrap(), sett_core::BidType::Exclusive))
                    .collect(),
                status,
            }))
        };
        let created = |status: ClaimStatus| created_with(status, &[]);
        assert_eq!(classify(&created(ClaimStatus::PendingConsensus), &me), Work::Bid(c));
        assert_eq!(classify(&created(ClaimStatus::PendingAssignment), &me), Work::Nothing);
        // Created with this agent's standing bid (and waiting for another agent's): no bid.
        assert_eq!(classify(&created_with(ClaimStatus::PendingConsensus, &["Coder"]), &me), Work::Nothing);
        assert_eq!(classify(&created_with(ClaimStatus::PendingConsensus, &["Other"]), &me), Work::Bid(c));
        let granted = |agent: &str, via_worker: bool| {
            event(EventData::ClaimGranted(ClaimGranted {
                agent: AgentName::parse(agent).unwrap(),
                approval: None,
                artifact_id: a,
                claim_id: c,
                claim_type: ClaimType::Claim,
                seq: 3,
                via_worker,
            }))
        };
        assert_eq!(classify(&granted("Coder", false), &me), Work::Execute(c, 3, a));
        assert_eq!(classify(&granted("Coder", true), &me), Work::Nothing);
        assert_eq!(classify(&granted("Other", false), &me), Work::Nothing);
        let stopped = EventData::InstanceStopped(InstanceStopped { run_id: "r".into() });
        assert_eq!(classify(&event(stopped), &me), Work::Nothing);
        let artifact = |structural_type: StructuralType| {
            event(EventData::ArtifactCreated(ArtifactCreated {
                answered_by: None,
                artifact_id: a,
                claim_id: None,
                hash: None,
                logical_id: a,
                produced_by_role: "user".into(),
                source_artifacts: vec![],
                structural_type,
                summary: None,
                timed_out: false,
                artifact_type: "Goal".into(),
                version: 1,
            }))
        };
        let new = NewArtifact { id: a, artifact_type: "Goal".into(), produced_by_role: "user".into() };
        assert_eq!(classify(&artifact(StructuralType::Standard), &me), Work::BidOnNew(new));
        assert_eq!(classify(&artifact(StructuralType::Terminal), &me), Work::Nothing, "no claim, no bid");
        // Standing bids: only this agent's, recorded by the orchestrator, spare its bid.
        let bid = |agent: &str, standing: bool| {
            event(EventData::BidSubmitted(BidSubmitted {
                agent: AgentName::parse(agent).unwrap(),
                bid: sett_core::BidType::Exclusive,
                claim_id: c,
                standing,
            }))
        };
        assert_eq!(classify(&bid("Coder", true), &me), Work::StandingBidRecorded(c));
        assert_eq!(classify(&bid("Coder", false), &me), Work::Nothing);
        assert_eq!(classify(&bid("Other", true), &me), Work::Nothing);
        let started = EventData::InstanceStarted(InstanceStarted { host: "h".into(), pid: 1, run_id: "r".into() });
        assert_eq!(classify(&event(started), &me), Work::OrchestratorStarted);
    }

    /// The bell is armed only while nothing but a ring can concern the cub: its standing bid
    /// offered and recorded, and the orchestrator ringing; never once withdrawn.
    #[test]
    fn the_bell_is_armed_only_while_the_offer_is_recorded_by_an_orchestrator_that_rings() {
        let text = "version: \"1.0\"\nagents:\n  Coder:\n    command: [x]\n    bidding_strategy: exclusive\n";
        let agent = sett_core::config::SettConfig::parse("t.yml", text).unwrap().agents.into_values().next().unwrap();
        let armed = |recorded: bool, rings: bool, present: bool| {
            let offer = StandingOffer::new(&agent, present);
            offer.recorded.store(recorded, Ordering::SeqCst);
            offer.rings.store(rings, Ordering::SeqCst);
            offer.refresh_bell();
            offer
        };
        assert!(armed(true, true, true).bell_armed.load(Ordering::SeqCst));
        assert!(!armed(false, true, true).bell_armed.load(Ordering::SeqCst), "bids on new artifacts itself");
        assert!(!armed(true, false, true).bell_armed.load(Ordering::SeqCst), "nobody would ring it");
        assert!(!armed(true, true, false).bell_armed.load(Ordering::SeqCst), "no presence, no offer");
        let offer = armed(true, true, true);
        offer.withdrawn.store(true, Ordering::SeqCst);
        offer.refresh_bell();
        assert!(!offer.bell_armed.load(Ordering::SeqCst), "withdrawn");
    }
}
