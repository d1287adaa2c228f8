//! The orchestrator's lifecycle on the blackboard: the instance lock (taken at start, renewed
//! every third of its TTL, released at the end), the instance's registry record and
//! `instance_started`/`instance_stopped` events, and the `orchestrator` component record with
//! its heartbeat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sett_core::event::{EventData, InstanceStarted, InstanceStopped};
use sett_core::metrics as m;
use sett_core::record::{ComponentRecord, ORCHESTRATOR_COMPONENT};
use sett_store::{LockHolder, LockPurpose, StoreError, now_ms};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::OrchestratorError;
use crate::engine::Engine;

/// How long the closing writes of a stopping orchestrator may take in all (one command timeout
/// each would add up while Redis is gone).
const CLOSING_WRITES_BOUND: Duration = Duration::from_secs(5);

/// How often the component record's heartbeat is refreshed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

impl Engine {
    pub(crate) async fn acquire_lock(&self) -> Result<(), OrchestratorError> {
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
                        previous_run = %current.run_id, previous_pid = current.pid,
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
        Err(OrchestratorError::LockContended)
    }

    /// Renews the lock until `token`; when it cannot be kept, sets `lost` and cancels `stop_all`.
    pub(crate) async fn renew_lock(&self, token: &CancellationToken, stop_all: &CancellationToken, lost: &AtomicBool) {
        let ttl = self.settings.lock_ttl;
        let every = ttl / 3;
        loop {
            // Cancel-safe: a token and a sleep.
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match self.store.renew_lock(&self.settings.run_id, ttl.as_millis() as u64).await {
                Ok(true) => {}
                Ok(false) => {
                    // Expired (e.g. Redis was unreachable for longer than the TTL): take it back
                    // if nobody else did, otherwise stop.
                    match self.acquire_lock().await {
                        Ok(()) => {
                            warn!("the instance lock had expired; re-acquired it")
                        }
                        Err(e) => {
                            error!(error = %e, "lost the instance lock; stopping");
                            metrics::counter!(m::LOCK_LOST).increment(1);
                            lost.store(true, Ordering::SeqCst);
                            stop_all.cancel();
                            return;
                        }
                    }
                }
                Err(e) => {
                    metrics::counter!(m::REDIS_ERRORS, "component" => "orchestrator").increment(1);
                    warn!(error = %e, "cannot renew the instance lock; retrying");
                }
            }
        }
    }

    /// Marks the instance running, publishes the component record, appends `instance_started`.
    pub(crate) async fn started(&self) -> Result<(), OrchestratorError> {
        let s = &self.settings;
        let redis = self.store.redis();
        let now = now_ms();
        redis.mark_instance_running(&s.instance, s.config.runtime, &s.run_id, now).await?;
        // A ring now is harmless (a cub reads the stream and finds nothing new), and tells whether
        // this Redis user may ring at all; the record says so before `instance_started`.
        let rings = self.store.ring_cubs().await?;
        if !rings {
            warn!(
                "this Redis user may not publish to the instance's channels (spublish on &sett:{{<instance>}}:*); cubs read every event as it comes instead of when rung"
            );
        }
        self.rings_bells.store(rings, Ordering::SeqCst);
        self.publish_component(now).await?;
        let started = InstanceStarted { host: s.host.clone(), pid: s.pid, run_id: s.run_id.clone() };
        self.store.append_event(&EventData::InstanceStarted(started), now).await?;
        // Cubs waiting on their bells read the orchestrator's record again at this event.
        if rings && let Err(e) = self.store.ring_cubs().await {
            debug!(error = %e, "cannot ring the cubs' bell after instance_started");
        }
        Ok(())
    }

    async fn publish_component(&self, started_at_ms: i64) -> Result<(), StoreError> {
        let s = &self.settings;
        self.store
            .put_component(
                ORCHESTRATOR_COMPONENT,
                &ComponentRecord {
                    addr: s.health_addr.clone(),
                    agent: None,
                    heartbeat_ms: Some(now_ms()),
                    host: Some(s.host.clone()),
                    pid: Some(s.pid),
                    run_id: Some(s.run_id.clone()),
                    started_at_ms: Some(started_at_ms),
                    standing_bid: None,
                    records_standing_bids: true,
                    rings_bells: self.rings_bells.load(Ordering::SeqCst),
                },
            )
            .await
    }

    /// Refreshes the component record's heartbeat until `token`.
    pub(crate) async fn heartbeat_loop(&self, token: &CancellationToken) {
        let started = now_ms();
        loop {
            // Cancel-safe: a token and a sleep.
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            }
            if let Err(e) = self.publish_component(started).await {
                debug!(error = %e, "cannot publish the orchestrator heartbeat");
            }
            // The wait of an open question grows while nothing happens to it.
            self.refresh_question_age_gauge().await;
        }
    }

    /// Reads the standing bids cubs offer (their component records) until `token`.
    pub(crate) async fn standing_offers_loop(&self, token: &CancellationToken) {
        loop {
            // Cancel-safe: a token and a sleep.
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(crate::standing::REFRESH_EVERY) => {}
            }
            self.refresh_standing_offers().await;
        }
    }

    /// The standing bids on `a` at `now_ms`, after reading the offers again when an agent that
    /// could offer one has none (cubs that started with the instance).
    pub(crate) async fn standing_bids(
        &self,
        a: &sett_core::Artifact,
        now_ms: i64,
    ) -> Vec<(sett_core::AgentName, sett_core::BidType)> {
        if self.standing.wants_refresh(now_ms) {
            self.refresh_standing_offers().await;
        }
        self.standing.bids_for(&self.settings.config, &a.artifact_type, &a.produced_by_role, now_ms)
    }

    /// Reads the offers once. When Redis does not answer, the offers known stay: each counts
    /// only while its heartbeat is fresh, so they lapse on their own.
    pub(crate) async fn refresh_standing_offers(&self) {
        match self.store.components().await {
            Ok(components) => self.standing.refresh(&self.settings.config, &components, now_ms()),
            Err(e) => debug!(error = %e, "cannot read the standing bids offered"),
        }
    }

    /// Appends `instance_stopped`, removes the component record, marks the instance stopped and
    /// releases the lock (each best effort: the lock expires on its own).
    pub(crate) async fn stopped(&self) {
        let s = &self.settings;
        let now = now_ms();
        let closing = async {
            let stopped = EventData::InstanceStopped(InstanceStopped { run_id: s.run_id.clone() });
            let _ = self.store.append_event(&stopped, now).await;
            let _ = self.store.remove_component(ORCHESTRATOR_COMPONENT).await;
            let redis = self.store.redis();
            let _ = redis.mark_instance_stopped(&s.instance, Some(&s.run_id), now).await;
            self.store.release_lock(&s.run_id).await
        };
        // Bounded: with Redis gone each write would wait out the command timeout in turn. What
        // is not written is told anyway: the component record and the lock expire, and the
        // registry shows the instance's components gone.
        match tokio::time::timeout(CLOSING_WRITES_BOUND, closing).await {
            Ok(Ok(_)) => info!("orchestrator stopped; lock released"),
            Ok(Err(e)) => {
                warn!(error = %e, "could not release the lock; it expires on its own")
            }
            Err(_) => warn!(
                bound = ?CLOSING_WRITES_BOUND,
                "Redis did not take the closing writes in time; the lock and the component record expire on their own"
            ),
        }
    }
}
