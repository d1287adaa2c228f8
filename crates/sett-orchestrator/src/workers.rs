//! Controller workers: each controller grant runs in an ephemeral worker, at most
//! `worker.max_concurrent` at once per agent; the rest wait in a durable FIFO (the store's offer
//! and release scripts are atomic, so two exits never start one grant twice). After a restart,
//! workers of the previous run are adopted when alive, judged when gone, and queues are drained.

use sett_core::event::{EventData, WorkerExited, WorkerLaunched};
use sett_core::machine::Input;
use sett_core::{AgentName, ArtifactId, ClaimId, metrics as m};
use sett_store::{StoreError, WorkerOffer, WorkerRecord, now_ms};
use tracing::{info, warn};

use crate::engine::Engine;
use crate::launcher::WorkerRequest;

fn grant_key(claim: &ClaimId, seq: u64) -> String {
    format!("{claim}:{seq}")
}

fn parse_grant_key(key: &str) -> Option<(ClaimId, u64)> {
    let (c, s) = key.rsplit_once(':')?;
    Some((ClaimId::parse(c).ok()?, s.parse().ok()?))
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
        let key = grant_key(&claim, seq);
        match self.store.offer_worker(agent, max, &key, &self.worker_record()).await? {
            WorkerOffer::Launch => self.spawn_worker(agent.clone(), claim, seq),
            WorkerOffer::Queued => {
                info!(claim_id = %claim, agent = %agent, seq, "all worker slots busy; grant queued")
            }
            WorkerOffer::AlreadyRunning => {}
        }
        Ok(())
    }

    /// Starts the worker for a grant that holds a slot, watches it, then frees the slot and
    /// starts the next queued grants.
    fn spawn_worker(&self, agent: AgentName, claim: ClaimId, seq: u64) {
        let this = self.clone();
        self.tasks.spawn(async move {
            this.run_worker(&agent, claim, seq).await;
            this.release_slot(&agent, Some(&grant_key(&claim, seq))).await;
        });
    }

    async fn run_worker(&self, agent: &AgentName, claim: ClaimId, seq: u64) {
        match self.grant_is_current(&claim, agent, seq).await {
            Ok(true) => {}
            Ok(false) => return,
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
        let key = grant_key(&claim, seq);
        if let Err(e) = self.store.update_worker(agent, &key, &record).await {
            warn!(claim_id = %claim, error = %e, "cannot record the worker's pid");
        }
        let _ = self
            .store
            .append_event(
                &EventData::WorkerLaunched(WorkerLaunched {
                    agent: agent.clone(),
                    claim_id: claim,
                    container: worker.container.clone(),
                    pid: worker.pid,
                    seq,
                }),
                now_ms(),
            )
            .await;
        info!(claim_id = %claim, agent = %agent, seq, pid = ?worker.pid, "worker launched");
        if let Err(e) = self.apply(&claim, Input::WorkerLaunched { agent: agent.clone(), seq }).await {
            warn!(claim_id = %claim, error = %e, "cannot start the worker's deadline");
        }
        let success = worker.exit.await;
        if !success {
            metrics::counter!(m::WORKER_FAILURES, "agent" => agent.to_string()).increment(1);
        }
        self.worker_exited(agent, claim, seq, success, worker.pid).await;
    }

    async fn worker_exited(&self, agent: &AgentName, claim: ClaimId, seq: u64, success: bool, pid: Option<u32>) {
        let _ = self
            .store
            .append_event(
                &EventData::WorkerExited(WorkerExited { agent: agent.clone(), claim_id: claim, pid, seq, success }),
                now_ms(),
            )
            .await;
        info!(claim_id = %claim, agent = %agent, seq, success, "worker exited");
        if let Err(e) = self.apply(&claim, Input::WorkerExited { agent: agent.clone(), seq, success }).await {
            warn!(claim_id = %claim, error = %e, "cannot record the worker's exit; the claim's deadline still applies");
        }
    }

    /// Frees `grant`'s slot (if any) and launches the queued grants that now hold slots.
    async fn release_slot(&self, agent: &AgentName, grant: Option<&str>) {
        let max = self.max_concurrent(agent);
        match self.store.release_worker(agent, max, grant, &self.worker_record()).await {
            Ok(next) => {
                for key in next {
                    match parse_grant_key(&key) {
                        Some((c, s)) => self.spawn_worker(agent.clone(), c, s),
                        None => warn!(key, "ignoring a malformed queued grant"),
                    }
                }
            }
            Err(e) => {
                warn!(agent = %agent, error = %e, "cannot release a worker slot; it is recovered at the next start")
            }
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
                let Some((claim, seq)) = parse_grant_key(&key) else {
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
