//! The engine's shape: the public [`Orchestrator`], the state its loops and worker tasks share
//! ([`Engine`]), the guard that owns each background loop ([`Background`]), and `run`, which
//! wires the jobs of the other modules together: lifecycle (lock, records, heartbeat), consumer
//! (event loop), transitions, follow-ups and deadlines.

use std::collections::HashSet;
use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sett_core::machine::Policy;
use sett_store::{ConsumerDriver, GroupStart, Store};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::consumer::{BATCH, BLOCK, CONSUMER, GROUP};
use crate::decided::DecidedClaims;
use crate::launcher::WorkerLauncher;
use crate::standing::StandingOffers;
use crate::written::WrittenClaims;
use crate::{OrchestratorError, Settings};

/// The running orchestrator of one instance.
pub struct Orchestrator {
    engine: Engine,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator").field("settings", &self.engine.settings).finish_non_exhaustive()
    }
}

impl Orchestrator {
    pub fn new(store: Store, settings: Settings, launcher: Arc<dyn WorkerLauncher>) -> Arc<Self> {
        let policy = settings.config.policy();
        let shared = Shared {
            store,
            settings,
            policy,
            launcher,
            ready: Arc::new(AtomicBool::new(false)),
            wake: Notify::new(),
            deadline_wake_at_ms: AtomicI64::new(crate::deadlines::LOOP_AWAKE),
            tasks: TaskTracker::new(),
            outbox_left: AtomicBool::new(false),
            cancel_fence_possible: AtomicBool::new(true),
            rings_bells: AtomicBool::new(false),
            decided: DecidedClaims::default(),
            written: WrittenClaims::default(),
            standing: StandingOffers::default(),
            worker_tasks: Mutex::default(),
            usage_labels: Mutex::new(UsageLabels::default()),
        };
        Arc::new(Self { engine: Engine(Arc::new(shared)) })
    }

    /// The readiness flag served on `/readyz`: true while the lock is held and the engine is
    /// attached to the event stream.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.engine.ready.clone()
    }

    pub fn store(&self) -> &Store {
        &self.engine.store
    }

    /// Runs until `shutdown` is cancelled (then stops gracefully and releases the lock) or the
    /// lock is lost.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), OrchestratorError> {
        self.engine.run(shutdown).await
    }
}

/// A handle on the engine's shared state; cloning it is one reference count, so a loop or a
/// worker task owns its own handle (no `Weak` back-reference).
#[derive(Clone)]
pub(crate) struct Engine(Arc<Shared>);

impl Deref for Engine {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the engine's loops and worker tasks share.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) settings: Settings,
    pub(crate) policy: Policy,
    pub(crate) launcher: Arc<dyn WorkerLauncher>,
    pub(crate) ready: Arc<AtomicBool>,
    /// Woken when a write set a deadline earlier than the deadline loop's planned wake-up
    /// ([`Engine::deadline_written`]), or left follow-ups in the outbox.
    pub(crate) wake: Notify,
    /// When the sleeping deadline loop reads the index again (ms), or
    /// [`crate::deadlines::LOOP_AWAKE`] while it reads it or applies deadlines.
    pub(crate) deadline_wake_at_ms: AtomicI64,
    /// The worker tasks (waited for, with the launcher's grace, when the engine stops).
    pub(crate) tasks: TaskTracker,
    /// Set when follow-ups were left in the outbox after their retries (Redis failing over):
    /// the deadline loop carries them out again instead of leaving them to the next start.
    pub(crate) outbox_left: AtomicBool,
    /// False while no workflow of the instance was cancelled: then no artifact is in the cancel
    /// fence, and a new artifact is handled without reading it there. Set from the fence's key
    /// before the first event is read, and by every `workflow_cancelled` read (a cancellation
    /// that fences an artifact is written before any event of that artifact read after it).
    pub(crate) cancel_fence_possible: AtomicBool,
    /// Whether this orchestrator's Redis user may ring the cubs' bells (probed at start): its
    /// component record says so, and cubs wait on their bells only then.
    pub(crate) rings_bells: AtomicBool,
    /// Claims moved out of `pending_consensus` by this orchestrator: their bid events are
    /// dropped without a read.
    pub(crate) decided: DecidedClaims,
    /// The open claims as this orchestrator last wrote them: a transition starts from the record
    /// it wrote (the write's compare-and-set refuses it if it is stale) instead of reading it.
    pub(crate) written: WrittenClaims,
    /// The standing bids live cubs offer, recorded with the claims this engine creates.
    pub(crate) standing: StandingOffers,
    /// The grants (`claim:seq`) whose worker task runs in this orchestrator, so a grant is never
    /// given two tasks (an offer repeated after a lost reply finds its slot taken by this run).
    pub(crate) worker_tasks: Mutex<HashSet<String>>,
    /// The bounded `model` and `currency` label values of the usage metrics (observe.rs).
    pub(crate) usage_labels: Mutex<UsageLabels>,
}

/// The usage metrics' label caps: models and currencies are the agents' words, so their number
/// of distinct values is bounded here.
pub(crate) struct UsageLabels {
    pub(crate) models: sett_core::usage::LabelCap,
    pub(crate) currencies: sett_core::usage::LabelCap,
}

impl Default for UsageLabels {
    fn default() -> Self {
        Self { models: sett_core::usage::LabelCap::new(32), currencies: sett_core::usage::LabelCap::keeping_case(8) }
    }
}

/// How long a stopping background loop may take to reach its next wait.
const BACKGROUND_STOP_BOUND: Duration = Duration::from_secs(2);

/// A background loop owned by its guard: dropping the guard (any early return of its owner)
/// cancels the loop; [`Background::stop`] cancels it and waits until it has finished.
pub(crate) struct Background {
    cancel: DropGuard,
    handle: JoinHandle<()>,
}

impl Background {
    /// Spawns `task` with a token that is cancelled with `parent` or when the guard goes.
    pub(crate) fn spawn<F>(parent: &CancellationToken, task: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = parent.child_token();
        let handle = tokio::spawn(task(token.clone()));
        Self { cancel: token.drop_guard(), handle }
    }

    /// Cancels the loop and waits for it, up to [`BACKGROUND_STOP_BOUND`]: a loop stops at its
    /// next wait, but one in the middle of a pass with Redis gone would first wait out the command
    /// timeout of each call left in the pass. Then it is aborted where it is, as a crash would
    /// stop it (every write is one atomic script, and what a pass leaves undone the next start's
    /// sweeps do).
    pub(crate) async fn stop(self) {
        drop(self.cancel);
        let mut handle = self.handle;
        if tokio::time::timeout(BACKGROUND_STOP_BOUND, &mut handle).await.is_err() {
            handle.abort();
            let _ = handle.await;
        }
    }
}

impl Engine {
    async fn run(&self, shutdown: CancellationToken) -> Result<(), OrchestratorError> {
        self.acquire_lock().await?;
        let stop = shutdown.child_token();
        let lock_lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            // A lost lock stops everything, not only the renewer.
            let (engine, stop_all, lost) = (self.clone(), stop.clone(), lock_lost.clone());
            Background::spawn(&stop, move |token| async move { engine.renew_lock(&token, &stop_all, &lost).await })
        };
        let result = self.serve(&stop).await;
        stop.cancel();
        renewer.stop().await;
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

    /// Registers, recovers, then consumes events and deadlines until `stop`.
    async fn serve(&self, stop: &CancellationToken) -> Result<(), OrchestratorError> {
        self.started().await?;
        let stream = self.store.group_consumer(GROUP, CONSUMER, GroupStart::Beginning).await?;
        let mut driver = ConsumerDriver::new(stream, "orchestrator", BATCH, BLOCK);
        if !driver.attach(stop).await {
            return Ok(());
        }
        // After a restart: follow-ups recorded before a crash, workers of the previous run.
        self.recover_outbox().await?;
        self.recover_workers().await?;
        let deadlines = {
            let engine = self.clone();
            Background::spawn(stop, move |token| async move { engine.deadline_loop(&token).await })
        };
        let heartbeat = {
            let engine = self.clone();
            Background::spawn(stop, move |token| async move { engine.heartbeat_loop(&token).await })
        };
        // Read once before the first event, so the first claims get the offers already made.
        self.refresh_standing_offers().await;
        let offers = {
            let engine = self.clone();
            Background::spawn(stop, move |token| async move { engine.standing_offers_loop(&token).await })
        };
        // Pending entries first (delivered to us before a crash, never acknowledged), then new.
        let result = self.consume(&mut driver, stop).await;
        deadlines.stop().await;
        heartbeat.stop().await;
        offers.stop().await;
        driver.quit().await;
        result
    }
}
