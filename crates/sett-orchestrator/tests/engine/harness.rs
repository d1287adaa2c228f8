//! The in-process harness: the real engine (`Orchestrator::new(store, settings, launcher)`) run
//! as a task against the real test Redis, and the test acting as the cubs through the same
//! sett-store calls a cub makes (bid, take a grant, write an output or a Failure, ask) and as
//! the operator (answer). No child process: each test gets its own instance name, so the tests
//! of this binary run in parallel against one `redis-server`.
#![allow(unreachable_pub)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use sett_core::config::SettConfig;
use sett_core::event::{ClaimGranted, Event, EventData, EventKind, QuestionAsked};
use sett_core::failure::FailurePayload;
use sett_core::machine::initial_claim_id;
use sett_core::record::ExecutionRecord;
use sett_core::{AgentName, Artifact, ArtifactId, BidType, Claim, ClaimId, StructuralType};
use sett_orchestrator::{
    LaunchedWorker, NoWorkers, Orchestrator, OrchestratorError, Settings, WorkerLauncher, WorkerRequest,
};
use sett_store::{AnswerRecord, CreateOutcome, Store, WorkerRecord, new_artifact_id, now_ms};
use sett_testkit::{WAIT, eventually, wait_for_event, wait_for_events};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn agent(name: &str) -> AgentName {
    AgentName::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A `sett.yml` with `orchestrator` settings (inside `{…}`) and one agent per `(name, extra)`:
/// its command is never run (the test plays the cub), `extra` adds lines under the agent
/// (indented by 4), e.g. `"timeout: 1s"`. Bids are the test's, so every strategy is `exclusive`.
pub fn team(orchestrator: &str, agents: &[(&str, &str)]) -> String {
    let mut yml = format!("version: \"1.0\"\norchestrator: {{{orchestrator}}}\nagents:\n");
    for (name, extra) in agents {
        yml.push_str(&format!("  {name}:\n    command: [\"true\"]\n    bidding_strategy: exclusive\n"));
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            yml.push_str(&format!("    {}\n", line.trim()));
        }
    }
    yml
}

/// A controller, `Boss`, with a pool of two workers.
pub fn pool_team() -> String {
    team("bid_timeout: 1h", &[("Boss", "mode: controller\nworker: {max_concurrent: 2}")])
}

/// The engine of one instance, running as a task of the test.
pub struct Harness {
    pub store: Store,
    pub config: SettConfig,
    shutdown: CancellationToken,
    run: Option<JoinHandle<Result<(), OrchestratorError>>>,
}

impl Harness {
    /// The engine for `sett_yml` on a fresh instance, started and attached to its event stream.
    pub async fn start(sett_yml: &str) -> Self {
        Self::start_with(sett_testkit::store().await, sett_yml, Arc::new(NoWorkers)).await
    }

    /// The engine for `sett_yml` with [`TestWorkers`] as its launcher, and the launches.
    pub async fn with_workers(sett_yml: &str) -> (Self, mpsc::UnboundedReceiver<Launched>) {
        let (workers, launches) = TestWorkers::new();
        (Self::start_with(sett_testkit::store().await, sett_yml, workers).await, launches)
    }

    /// The engine for `sett_yml` on `store` (records may already be there: a restart) with
    /// `launcher` starting its controller workers.
    pub async fn start_with(store: Store, sett_yml: &str, launcher: Arc<dyn WorkerLauncher>) -> Self {
        let config = SettConfig::parse("sett.yml", sett_yml).unwrap_or_else(|e| panic!("sett.yml: {e}"));
        let settings = Settings {
            instance: store.instance().clone(),
            config: config.clone(),
            run_id: uuid_like(),
            host: "harness".into(),
            pid: std::process::id(),
            lock_ttl: Duration::from_secs(15),
            health_addr: None,
            shutdown_grace: Duration::from_secs(1),
            holder_is_gone: Box::new(|_| false),
            on_usage: None,
        };
        let orchestrator = Orchestrator::new(store.clone(), settings, launcher);
        let ready = orchestrator.ready_flag();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(orchestrator.run(shutdown.clone()));
        let mut harness = Self { store, config, shutdown, run: Some(run) };
        harness.until_ready(&ready).await;
        harness
    }

    async fn until_ready(&mut self, ready: &AtomicBool) {
        let run = self.run.as_ref().expect("running");
        eventually(WAIT, "the orchestrator is ready (lock held, attached to the stream)", async || {
            assert!(!run.is_finished(), "the orchestrator stopped before it was ready");
            ready.load(Ordering::SeqCst)
        })
        .await;
    }

    /// Stops the engine gracefully (releasing the lock) and returns how its run ended.
    pub async fn stop(mut self) -> Result<(), OrchestratorError> {
        self.shutdown.cancel();
        let run = self.run.take().expect("running");
        tokio::time::timeout(WAIT, run).await.expect("the orchestrator stops").expect("the orchestrator task")
    }

    /// A cub of `name` (a configured agent), acting through the store.
    pub fn cub(&self, name: &str) -> Cub {
        let agent = agent(name);
        assert!(self.config.agents.contains_key(&agent), "{name} is not an agent of the test's sett.yml");
        Cub { store: self.store.clone(), agent }
    }

    /// Writes a goal (a root Standard artifact, as `sett forage` does) and returns it.
    pub async fn forage(&self, goal: &str) -> Artifact {
        let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "GoalDefined", goal, "user", now_ms());
        created(self.store.create_artifact(&a).await);
        a
    }

    pub async fn claim(&self, id: &ClaimId) -> Claim {
        self.store.get_claim(id).await.expect("read claim").unwrap_or_else(|| panic!("claim {id} does not exist"))
    }

    /// Waits until claim `id` exists and `done` holds for it; returns it.
    pub async fn claim_until(&self, id: &ClaimId, what: &str, done: impl Fn(&Claim) -> bool) -> Claim {
        eventually(WAIT, what, async || match self.store.get_claim(id).await.expect("read claim") {
            Some(c) if done(&c) => Ok(c),
            other => Err(other.map(|c| (c.status, c.revision))),
        })
        .await
    }

    /// The first event satisfying `pred` (blocking reads of the stream from its start).
    pub async fn event(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        wait_for_event(&self.store, WAIT, what, pred).await
    }

    /// The first `n` events satisfying `pred`.
    pub async fn events(&self, what: &str, n: usize, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        wait_for_events(&self.store, WAIT, what, n, pred).await
    }

    /// Every event of the instance so far, oldest first.
    pub async fn all_events(&self) -> Vec<Event> {
        self.store.events_after(None, 100_000).await.expect("events")
    }

    pub async fn events_of(&self, kind: EventKind) -> Vec<Event> {
        self.all_events().await.into_iter().filter(|e| e.kind() == kind).collect()
    }

    /// The artifact the claim ended with (its `claim_completed`/`claim_terminated`), waiting for it.
    pub async fn ended(&self, claim: &ClaimId) -> Claim {
        self.claim_until(claim, &format!("claim {claim} ends"), |c| c.status.is_final()).await
    }

    /// The artifact `claim` ended with (a Failure written through the outbox comes after the
    /// transition), waiting for it.
    pub async fn outcome(&self, claim: &ClaimId) -> Artifact {
        let ended = self.ended(claim).await;
        let id = ended.outcome_artifact.unwrap_or_else(|| panic!("claim {claim} ended without an outcome: {ended:?}"));
        eventually(WAIT, &format!("the outcome {id} of claim {claim} is written"), async || {
            self.store.get_artifact(&id).await.expect("read artifact")
        })
        .await
    }

    /// The question `claim` asked (its `question_asked`), waiting for it.
    pub async fn question_asked(&self, claim: &ClaimId) -> QuestionAsked {
        let e = self
            .event(
                &format!("a question of claim {claim}"),
                |e| matches!(&e.data, EventData::QuestionAsked(q) if q.claim_id == *claim),
            )
            .await;
        let EventData::QuestionAsked(q) = e.data else { unreachable!("matched") };
        q
    }

    /// Answers `question` as operator `operator` would with `sett answer` (the same atomic
    /// write: the Answer artifact, the answer record and `question_answered`).
    pub async fn answer(&self, question: &ArtifactId, text: &str, operator: &str) -> Artifact {
        let q = self.store.get_artifact(question).await.expect("read").expect("the question exists");
        let now = now_ms();
        let answer = Artifact::answer(new_artifact_id(), &q, text, format!("human:{operator}"), operator, now);
        let record = AnswerRecord::by_operator(answer.id, operator, now);
        created(self.store.create_answer(&answer, question, &record).await);
        answer
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A failed test's engine stops with it (the task is aborted when the runtime ends).
        self.shutdown.cancel();
    }
}

fn uuid_like() -> String {
    new_artifact_id().to_string()
}

fn created(outcome: Result<CreateOutcome, sett_store::StoreError>) {
    match outcome.expect("write artifact") {
        CreateOutcome::Created { .. } => {}
        other => panic!("the artifact was refused: {other:?}"),
    }
}

/// One agent's cub, played by the test through the store calls the real cub makes.
#[derive(Clone)]
pub struct Cub {
    pub store: Store,
    pub agent: AgentName,
}

impl Cub {
    /// Bids on the claim the orchestrator creates for `artifact` (from its `artifact_created`,
    /// possibly before the claim exists), as the cub does; returns the claim's id.
    pub async fn bid_on(&self, artifact: &Artifact, bid: BidType) -> ClaimId {
        let claim = initial_claim_id(&artifact.id);
        let recorded = self.store.submit_bid_before_claim(&claim, &self.agent, bid, now_ms()).await.expect("bid");
        assert!(recorded, "{}'s bid on {claim} was refused", self.agent);
        claim
    }

    /// Waits for grant number `nth` (1 = the first) of `claim` to this agent, and returns it.
    pub async fn granted(&self, claim: &ClaimId, nth: usize) -> ClaimGranted {
        let what = format!("grant {nth} of claim {claim} to {}", self.agent);
        let mut found = wait_for_events(
            &self.store,
            WAIT,
            &what,
            nth,
            |e| matches!(&e.data, EventData::ClaimGranted(g) if g.claim_id == *claim && g.agent == self.agent),
        )
        .await;
        let EventData::ClaimGranted(g) = found.swap_remove(nth - 1).data else { unreachable!("matched") };
        g
    }

    /// This agent's current grant on `claim`, read from the claim record, as a worker started
    /// for it reads it (a grant written without its event is still found).
    pub async fn grant_in(&self, claim: &ClaimId) -> ClaimGranted {
        let c = self.store.get_claim(claim).await.expect("read claim").expect("the claim exists");
        let g = c.grants.get(&self.agent).unwrap_or_else(|| panic!("claim {claim} has no grant for {}", self.agent));
        ClaimGranted {
            agent: self.agent.clone(),
            approval: None,
            artifact_id: c.artifact_id,
            claim_id: c.id,
            claim_type: g.claim_type,
            seq: g.seq,
            via_worker: g.via_worker,
        }
    }

    /// Takes the grant (HSETNX on `executions`, as the cub and a worker do); false when it was
    /// taken already.
    pub async fn take(&self, grant: &ClaimGranted) -> bool {
        let record = ExecutionRecord {
            agent: Some(self.agent.clone()),
            pid: Some(std::process::id()),
            taken_at_ms: now_ms(),
            taken_at_us: 0,
            worker: grant.via_worker,
        };
        self.store.take_grant(&grant.claim_id, grant.seq, &record).await.expect("take grant")
    }

    /// Takes `grant` and writes its output (under the grant's deterministic id, as the cub
    /// does): `shape` adjusts the artifact (a new version of the target's thread, a summary…).
    pub async fn complete_with(
        &self,
        grant: &ClaimGranted,
        structural_type: StructuralType,
        artifact_type: &str,
        payload: &str,
        shape: impl FnOnce(&mut Artifact),
    ) -> Artifact {
        assert!(self.take(grant).await, "grant {} of {} was taken before", grant.seq, grant.claim_id);
        let claim = self.store.get_claim(&grant.claim_id).await.expect("read claim").expect("the claim exists");
        let id = ArtifactId::grant_output(&grant.claim_id, grant.seq);
        let mut a =
            Artifact::of_claim(id, &claim, structural_type, artifact_type, payload, self.agent.as_str(), now_ms());
        shape(&mut a);
        created(self.store.create_artifact(&a).await);
        a
    }

    /// Takes `grant` and writes an output of `structural_type`.
    pub async fn complete(
        &self,
        grant: &ClaimGranted,
        structural_type: StructuralType,
        artifact_type: &str,
        payload: &str,
    ) -> Artifact {
        self.complete_with(grant, structural_type, artifact_type, payload, |_| {}).await
    }

    /// Takes a rework (or resume) grant and writes the next version of the claim's artifact, as
    /// the cub does for a grant that continues the thread.
    pub async fn rework(&self, grant: &ClaimGranted, artifact_type: &str, payload: &str) -> Artifact {
        let target = self.store.get_artifact(&grant.artifact_id).await.expect("read").expect("the target exists");
        self.complete_with(grant, StructuralType::Standard, artifact_type, payload, |a| {
            a.logical_id = target.logical_id;
            a.version = target.version + 1;
        })
        .await
    }

    /// Takes `grant` and writes the Failure a cub writes when its tool fails.
    pub async fn fail(&self, grant: &ClaimGranted, reason: &str) -> Artifact {
        let claim = self.store.get_claim(&grant.claim_id).await.expect("read claim").expect("the claim exists");
        let payload = FailurePayload::of_claim(reason, claim.id, claim.artifact_id).to_json();
        assert!(self.take(grant).await, "grant {} of {} was taken before", grant.seq, grant.claim_id);
        let id = ArtifactId::grant_output(&grant.claim_id, grant.seq);
        let a = Artifact::failure(id, &claim, "ToolExecutionFailure", payload, reason, self.agent.as_str(), now_ms());
        created(self.store.create_artifact(&a).await);
        a
    }

    /// Takes `grant` and asks `question` (a Question output), as a tool that needs a human does.
    pub async fn ask(&self, grant: &ClaimGranted, question: &str) -> Artifact {
        self.complete(grant, StructuralType::Question, "Clarification", question).await
    }
}

/// A worker launcher the test drives: each launch is handed to the test ([`TestWorkers::next`]),
/// which plays the worker (takes the grant, writes its output) and then lets it exit.
pub struct TestWorkers {
    launched: Mutex<mpsc::UnboundedSender<Launched>>,
    stop: CancellationToken,
}

/// A worker the engine launched, waiting for the test to let it exit.
pub struct Launched {
    pub req: WorkerRequest,
    exit: oneshot::Sender<bool>,
}

impl Launched {
    /// The worker exits (successfully or not).
    pub fn exit(self, success: bool) {
        let _ = self.exit.send(success);
    }
}

impl TestWorkers {
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Launched>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { launched: Mutex::new(tx), stop: CancellationToken::new() }), rx)
    }
}

impl WorkerLauncher for TestWorkers {
    fn launch(&self, req: WorkerRequest) -> BoxFuture<'static, Result<LaunchedWorker, String>> {
        let (exit, exited) = oneshot::channel();
        let sent = self.launched.lock().expect("lock").send(Launched { req, exit });
        let stop = self.stop.clone();
        Box::pin(async move {
            sent.map_err(|_| "the test no longer takes launches".to_owned())?;
            let exit = Box::pin(async move {
                tokio::select! {
                    success = exited => success.unwrap_or(false),
                    () = stop.cancelled() => false,
                }
            });
            Ok(LaunchedWorker { pid: None, container: None, exit })
        })
    }

    fn adopt(&self, _req: &WorkerRequest, _record: &WorkerRecord) -> Option<BoxFuture<'static, ()>> {
        None
    }

    fn shutdown(&self, _grace: Duration) -> BoxFuture<'static, ()> {
        self.stop.cancel();
        Box::pin(async {})
    }
}

/// The next worker the engine launches.
pub async fn next_launch(rx: &mut mpsc::UnboundedReceiver<Launched>) -> Launched {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a worker launch within the wait")
        .expect("the launcher is alive")
}
