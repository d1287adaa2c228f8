//! Deadlines: the loop sleeps until the earliest entry of `index:deadlines` (or until a write
//! wakes it), then applies `Tick` to every due claim; a stale index entry is repaired, never spun
//! on. It also carries out follow-ups left in the outbox after their retries failed, and every
//! few seconds (a safety net for writes whose reply was lost) carries out the whole outbox and
//! moves the worker pools' queues on.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sett_core::machine::Input;
use sett_core::{ArtifactId, ClaimId, metrics as m};
use sett_store::now_ms;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::OrchestratorError;
use crate::engine::Engine;

/// The deadline loop never sleeps longer than this (a safety net: writes wake it earlier).
const MAX_DEADLINE_SLEEP: Duration = Duration::from_secs(5);

/// How often the deadline loop carries out what the outbox holds and moves the worker pools'
/// queues on (see `sweep_worker_pools`): a safety net for steps whose reply was lost.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl Engine {
    /// Applies due deadlines; sleeps until the next one or until a write wakes it.
    pub(crate) async fn deadline_loop(&self, token: &CancellationToken) {
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + SWEEP_EVERY;
                // A transition whose reply was lost (the connection dropped after the script
                // ran; the client's re-sent copy then lost the compare-and-set) wrote its outbox
                // entry, but nobody carries it out: the engine saw a failure or a conflict, and
                // the retried input finds nothing left to do. Follow-ups are idempotent, so an
                // entry being carried out right now may be carried out twice.
                self.outbox_left.store(true, Ordering::SeqCst);
                self.sweep_worker_pools().await;
            }
            if self.outbox_left.swap(false, Ordering::SeqCst) {
                let outbox = self.store.outbox::<serde_json::Value>().await;
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
            // Cancel-safe: a token, a sleep, and a notification (a `notify_one` that reaches a
            // dropped `notified()` is passed on to the next wait, so no wake-up is lost).
            tokio::select! {
                () = token.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn tick_due(&self, now: i64) -> Result<(), OrchestratorError> {
        for id in self.store.due_claims(now).await? {
            self.take_unhandled_outputs(&id, now).await?;
            if self.apply(&id, Input::Tick).await?.is_none() {
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
    async fn take_unhandled_outputs(&self, id: &ClaimId, now: i64) -> Result<(), OrchestratorError> {
        let Some(claim) = self.store.get_claim(id).await? else { return Ok(()) };
        let overdue: Vec<u64> = claim
            .grants
            .iter()
            .filter(|(agent, g)| !claim.received.contains_key(*agent) && g.deadline_ms.is_some_and(|d| d <= now))
            .map(|(_, g)| g.seq)
            .collect();
        for seq in overdue {
            let output = ArtifactId::grant_output(id, seq);
            if let Some(artifact) = self.store.get_artifact(&output).await? {
                self.apply(id, Input::Output(Box::new(artifact))).await?;
            }
        }
        Ok(())
    }
}
