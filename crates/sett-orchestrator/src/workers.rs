//! Controller workers: each controller grant runs in an ephemeral worker, at most
//! `worker.max_concurrent` at once per agent; the rest wait in a durable FIFO (the store's offer
//! and release scripts are atomic, so two exits never start one grant twice). After a restart,
//! workers of the previous run are adopted when alive, judged when gone, and queues are drained.
//!
//! A worker grant has no deadline until its worker is launched (it may wait in the queue), so
//! every step between the grant and the launch, and the release that lets the queue move on,
//! is retried through a Redis outage instead of given up: a step lost there would strand the
//! claim with nothing left to end it.

use std::future::Future;

use backon::Retryable;
use std::time::Duration;

use sett_core::event::{EventData, WorkerExited, WorkerLaunched};
use sett_core::machine::Input;
use sett_core::{AgentName, ArtifactId, ClaimId, metrics as m};
use sett_store::{StoreError, WorkerOffer, WorkerRecord, now_ms, parse_worker_grant_key, worker_grant_key};
use tracing::{info, warn};

use crate::OrchestratorError;
use crate::engine::Engine;
use crate::launcher::WorkerRequest;

/// The longest pause between two attempts of a worker step while Redis is unreachable.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Runs `op` until it succeeds or fails for a reason other than Redis being unreachable (every
/// worker step is idempotent, so repeating one whose reply was lost is safe), with the store's
/// backoff.
async fn until_redis_answers<T, F, Fut>(what: &str, claim: Option<&ClaimId>, op: F) -> Result<T, OrchestratorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OrchestratorError>>,
{
    op.retry(sett_store::backoff(MAX_RETRY_PAUSE))
        .when(OrchestratorError::is_transient)
        .notify(|e, pause| {
            metrics::counter!(m::REDIS_ERRORS, "component" => "orchestrator").increment(1);
            let claim = claim.map(ToString::to_string);
            warn!(claim_id = claim.as_deref(), error = %e, retry_in = ?pause, "cannot {what} yet; retrying");
        })
        .await
}

impl Engine {
    fn max_concurrent(&self, agent: &AgentName) -> u32 {
        self.settings.config.agents.get(agent).and_then(|a| a.worker.as_ref()).map_or(1, |w| w.max_concurrent.max(1))
    }

    fn worker_record(&self) -> WorkerRecord {
        WorkerRecord { run_id: self.settings.run_id.clone(), pid: None, container: None, launched_at_ms: now_ms() }
    }

    /// Offers grant `(claim, seq)` to `agent`'s pool: launches it when a slot is free, else it
    /// waits in the FIFO.
    pub(crate) async fn offer_worker(&self, claim: ClaimId, agent: &AgentName, seq: u64) -> Result<(), StoreError> {
        let max = self.max_concurrent(agent);
        let key = worker_grant_key(&claim, seq);
        match self.store.offer_worker(agent, max, &key, &self.worker_record()).await? {
            WorkerOffer::Launch => self.spawn_worker(agent.clone(), claim, seq),
            WorkerOffer::Queued => {
                info!(claim_id = %claim, agent = %agent, seq, "all worker slots busy; grant queued")
            }
            // Our own earlier offer took the slot but its reply was lost (the connection dropped
            // after the script ran): launch now, once. A slot of an earlier run is the recovery's.
            WorkerOffer::AlreadyRunning { holder } if holder.run_id == self.settings.run_id => {
                self.spawn_worker(agent.clone(), claim, seq)
            }
            WorkerOffer::AlreadyRunning { .. } => {}
        }
        Ok(())
    }

    /// Starts the worker for a grant that holds a slot, watches it, then frees the slot and
    /// starts the next queued grants. A grant whose worker task already runs here is left alone.
    fn spawn_worker(&self, agent: AgentName, claim: ClaimId, seq: u64) {
        let key = worker_grant_key(&claim, seq);
        if !self.worker_tasks.lock().expect("worker task set").insert(key.clone()) {
            return;
        }
        let this = self.clone();
        self.tasks.spawn(async move {
            this.run_worker(&agent, claim, seq).await;
            this.release_slot(&agent, Some(&key)).await;
            this.worker_tasks.lock().expect("worker task set").remove(&key);
        });
    }

    async fn run_worker(&self, agent: &AgentName, claim: ClaimId, seq: u64) {
        // Both reads in one round trip (pipelined on the shared connection).
        let state = until_redis_answers("check a worker grant", Some(&claim), || async {
            Ok(tokio::try_join!(self.grant_is_current(&claim, agent, seq), self.store.grant_taken(&claim, seq))?)
        })
        .await;
        match state {
            Ok((true, false)) => {}
            // Not current any more, or taken by an earlier worker, whose own task reports how it
            // ended: a second task for the same slot, started from a stale view of the pool,
            // launches nothing.
            Ok(_) => return,
            Err(e) => {
                warn!(claim_id = %claim, error = %e, "cannot check a worker grant; releasing its slot");
                return;
            }
        }
        let req = WorkerRequest { agent: agent.clone(), claim, seq };
        let launched = self.launcher.launch(req).await;
        let worker = match launched {
            Ok(w) => w,
            Err(e) => {
                metrics::counter!(m::WORKER_FAILURES, "agent" => agent.to_string()).increment(1);
                warn!(claim_id = %claim, agent = %agent, seq, error = %e, "cannot launch a worker");
                self.worker_exited(agent, claim, seq, false, None).await;
                return;
            }
        };
        metrics::counter!(m::WORKER_LAUNCHES, "agent" => agent.to_string()).increment(1);
        let record = WorkerRecord { pid: worker.pid, container: worker.container.clone(), ..self.worker_record() };
        let key = worker_grant_key(&claim, seq);
        let recorded = until_redis_answers("record the worker's pid", Some(&claim), || async {
            Ok(self.store.update_worker(agent, &key, &record).await?)
        });
        if let Err(e) = recorded.await {
            warn!(claim_id = %claim, error = %e, "cannot record the worker's pid");
        }
        let launched = EventData::WorkerLaunched(WorkerLaunched {
            agent: agent.clone(),
            claim_id: claim,
            container: worker.container.clone(),
            pid: worker.pid,
            seq,
        });
        let appended = until_redis_answers("record the worker's launch", Some(&claim), || async {
            Ok(self.store.append_event(&launched, now_ms()).await?)
        });
        if let Err(e) = appended.await {
            warn!(claim_id = %claim, error = %e, "cannot record the worker's launch");
        }
        info!(claim_id = %claim, agent = %agent, seq, pid = ?worker.pid, "worker launched");
        let started = until_redis_answers("start the worker's deadline", Some(&claim), || {
            self.apply(&claim, Input::WorkerLaunched { agent: agent.clone(), seq })
        });
        if let Err(e) = started.await {
            warn!(claim_id = %claim, error = %e, "cannot start the worker's deadline");
        }
        let success = worker.exit.await;
        if !success {
            metrics::counter!(m::WORKER_FAILURES, "agent" => agent.to_string()).increment(1);
        }
        self.worker_exited(agent, claim, seq, success, worker.pid).await;
    }

    async fn worker_exited(&self, agent: &AgentName, claim: ClaimId, seq: u64, success: bool, pid: Option<u32>) {
        let exited = EventData::WorkerExited(WorkerExited { agent: agent.clone(), claim_id: claim, pid, seq, success });
        let appended = until_redis_answers("record the worker's exit", Some(&claim), || async {
            Ok(self.store.append_event(&exited, now_ms()).await?)
        });
        if let Err(e) = appended.await {
            warn!(claim_id = %claim, error = %e, "cannot record the worker's exit");
        }
        info!(claim_id = %claim, agent = %agent, seq, success, "worker exited");
        let applied = until_redis_answers("apply the worker's exit", Some(&claim), || {
            self.apply(&claim, Input::WorkerExited { agent: agent.clone(), seq, success })
        });
        if let Err(e) = applied.await {
            warn!(claim_id = %claim, error = %e, "cannot record the worker's exit; the claim's deadline still applies");
        }
    }

    /// Frees `grant`'s slot (if any) and launches the queued grants that now hold slots. Retried
    /// through an outage: a slot left taken would hold the queue behind it until a restart.
    async fn release_slot(&self, agent: &AgentName, grant: Option<&str>) {
        let max = self.max_concurrent(agent);
        let claim = grant.and_then(parse_worker_grant_key).map(|(c, _)| c);
        let released = until_redis_answers("release a worker slot", claim.as_ref(), || async {
            Ok(self.store.release_worker(agent, max, grant, &self.worker_record()).await?)
        });
        let next = match released.await {
            Ok(next) => next,
            Err(e) => {
                warn!(agent = %agent, error = %e, "cannot release a worker slot; it is recovered at the next start");
                return;
            }
        };
        for key in next {
            match parse_worker_grant_key(&key) {
                Some((c, s)) => self.spawn_worker(agent.clone(), c, s),
                None => warn!(key, "ignoring a malformed queued grant"),
            }
        }
        // A release whose reply was lost (the client re-sends a command cut off by a dropped
        // connection, and the second run frees nothing) handed slots to queued grants that the
        // reply we got does not name: launch every slot this run holds without a task.
        let held = until_redis_answers("list the worker slots", claim.as_ref(), || async {
            Ok(self.store.running_workers(agent).await?)
        });
        match held.await {
            Ok(held) => {
                for (key, record) in held {
                    if record.run_id != self.settings.run_id {
                        continue;
                    }
                    if let Some((c, s)) = parse_worker_grant_key(&key) {
                        self.spawn_worker(agent.clone(), c, s);
                    }
                }
            }
            Err(e) => warn!(agent = %agent, error = %e, "cannot list the worker slots"),
        }
    }

    /// A worker grant waits for nothing but a slot and a task, and has no deadline before its
    /// worker is launched, so no lost step may leave it waiting: every few seconds each
    /// controller's pool hands free slots to its queue and gives every slot this run holds a
    /// task. Usually there is nothing to do (one read per controller).
    pub(crate) async fn sweep_worker_pools(&self) {
        let controllers = self.settings.config.agents.values().filter(|a| a.is_controller());
        for agent in controllers.map(|a| a.name.clone()).collect::<Vec<_>>() {
            self.release_slot(&agent, None).await;
        }
    }

    /// True when the claim still waits for `agent`'s output under grant `seq`.
    async fn grant_is_current(&self, claim: &ClaimId, agent: &AgentName, seq: u64) -> Result<bool, StoreError> {
        let Some(c) = self.store.get_claim(claim).await? else {
            return Ok(false);
        };
        Ok(!c.status.is_final() && c.grants.get(agent).is_some_and(|g| g.seq == seq) && !c.received.contains_key(agent))
    }

    /// After a restart: adopt live workers of the previous run, judge dead ones, drain queues.
    pub(crate) async fn recover_workers(&self) -> Result<(), StoreError> {
        let controllers: Vec<AgentName> =
            self.settings.config.agents.values().filter(|a| a.is_controller()).map(|a| a.name.clone()).collect();
        for agent in controllers {
            for (key, record) in self.store.running_workers(&agent).await? {
                let Some((claim, seq)) = parse_worker_grant_key(&key) else {
                    self.release_slot(&agent, Some(&key)).await;
                    continue;
                };
                if record.run_id == self.settings.run_id {
                    continue;
                }
                if !self.grant_is_current(&claim, &agent, seq).await? {
                    self.release_slot(&agent, Some(&key)).await;
                    continue;
                }
                let req = WorkerRequest { agent: agent.clone(), claim, seq };
                if let Some(exit) = self.launcher.adopt(&req, &record) {
                    info!(claim_id = %claim, agent = %agent, seq, pid = ?record.pid, "adopting a running worker");
                    // The previous run may have died before starting the grant's clock.
                    if let Err(e) = self.apply(&claim, Input::WorkerLaunched { agent: agent.clone(), seq }).await {
                        warn!(claim_id = %claim, error = %e, "cannot start an adopted worker's deadline");
                    }
                    let this = self.clone();
                    let agent = agent.clone();
                    self.tasks.spawn(async move {
                        exit.await;
                        // Not our child, so its exit status is unknown; a worker writes its output
                        // (or its Failure) before it exits, so the artifact tells.
                        let produced =
                            this.store.artifact_exists(&ArtifactId::grant_output(&claim, seq)).await.unwrap_or(true);
                        this.worker_exited(&agent, claim, seq, produced, record.pid).await;
                        this.release_slot(&agent, Some(&key)).await;
                    });
                } else if self.store.grant_taken(&claim, seq).await? {
                    let produced = self.store.artifact_exists(&ArtifactId::grant_output(&claim, seq)).await?;
                    info!(claim_id = %claim, agent = %agent, seq, produced, "a worker of the previous run is gone");
                    if !produced {
                        self.worker_exited(&agent, claim, seq, false, record.pid).await;
                    }
                    self.release_slot(&agent, Some(&key)).await;
                } else {
                    info!(claim_id = %claim, agent = %agent, seq, "relaunching a worker that never started its grant");
                    self.spawn_worker(agent.clone(), claim, seq);
                }
            }
            // Queued grants whose slots freed up while we were down.
            self.release_slot(&agent, None).await;
        }
        Ok(())
    }
}
