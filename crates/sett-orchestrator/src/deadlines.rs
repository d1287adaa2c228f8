//! Deadlines: the loop sleeps until the earliest entry of `index:deadlines` (or until a write
//! wakes it), then applies `Tick` to every due claim; a stale index entry is repaired, never spun
//! on. It also carries out follow-ups left in the outbox after their retries failed, and every
//! few seconds (safety nets for writes whose reply was lost and for events never handled)
//! carries out the whole outbox, moves the worker pools' queues on and claims any artifact left
//! without its claim.

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

/// [`Shared::deadline_wake_at_ms`](crate::engine::Shared) while the deadline loop is awake: it
/// may have read the index before a write that is setting a deadline now.
pub(crate) const LOOP_AWAKE: i64 = 0;

/// Whether a deadline at `at_ms`, just written, must wake the deadline loop whose planned
/// wake-up is `planned_ms`: when it is awake (its read of the index may have come before the
/// write; the notification then waits for its next sleep, which ends at once), or sleeps past
/// the new deadline. A deadline at or after the planned wake-up is found by that read.
fn wakes_the_loop(planned_ms: i64, at_ms: i64) -> bool {
    planned_ms == LOOP_AWAKE || at_ms < planned_ms
}

/// How often the deadline loop carries out what the outbox holds and moves the worker pools'
/// queues on (see `sweep_worker_pools`): a safety net for steps whose reply was lost.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// An artifact this old (by its writer's clock) without its claim had its event missed: the
/// event loop handles a new artifact within milliseconds, so the margin only covers a backlog
/// and clock skew between writers (an artifact claimed early by the sweep is claimed once all
/// the same: creating a claim is idempotent).
const UNCLAIMED_AFTER_MS: i64 = 10_000;

/// Artifacts the sweep looks at per pass (the first pass after a start walks the whole index
/// in pages of this size, one page per [`SWEEP_EVERY`]).
const UNCLAIMED_PAGE: usize = 1_000;

impl Engine {
    /// A write just set a deadline at `at_ms` (a claim's [`next_deadline_ms`]): wakes the
    /// deadline loop only when it would otherwise read the index too late (issue 29: a woken loop
    /// reads the index at once, and with every claim written that was a round trip, and a
    /// process woken, beside the cub taking the grant).
    ///
    /// [`next_deadline_ms`]: sett_core::Claim::next_deadline_ms
    pub(crate) fn deadline_written(&self, at_ms: i64) {
        if wakes_the_loop(self.deadline_wake_at_ms.load(Ordering::SeqCst), at_ms) {
            self.wake.notify_one();
        }
    }

    /// Applies due deadlines; sleeps until the next one or until a write wakes it.
    pub(crate) async fn deadline_loop(&self, token: &CancellationToken) {
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        // The creation time from which the index has not been swept yet.
        let mut unswept_from_ms = 0;
        loop {
            // Before the index is read: a deadline written from now on wakes the loop again.
            self.deadline_wake_at_ms.store(LOOP_AWAKE, Ordering::SeqCst);
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + SWEEP_EVERY;
                // A transition whose reply was lost (the connection dropped after the script
                // ran; the client's re-sent copy then lost the compare-and-set) wrote its outbox
                // entry, but nobody carries it out: the engine saw a failure or a conflict, and
                // the retried input finds nothing left to do. Follow-ups are idempotent, so an
                // entry being carried out right now may be carried out twice.
                self.outbox_left.store(true, Ordering::SeqCst);
                self.sweep_worker_pools().await;
                // A resume whose event was handled before a crash, or a claim held again by a
                // pause lifted since: its held claims are applied here too.
                self.refresh_pause_gauges().await;
                if let Err(e) = self.release_held().await {
                    warn!(error = %e, "cannot apply the claims a pause held yet; retrying");
                }
                match self.claim_unclaimed_artifacts(unswept_from_ms).await {
                    Ok(next) => unswept_from_ms = next,
                    Err(e) => warn!(error = %e, "cannot sweep for artifacts without their claim yet; retrying"),
                }
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
            // A deadline written before this is in what the index read returned, or it woke the
            // loop (a permit the `notified()` below takes at once); one written from now on and
            // earlier than this wakes it. The margin covers the timer's rounding up to the next
            // millisecond, so the loop never sleeps past a deadline it was not told of.
            let planned = now_ms() + sleep.as_millis() as i64 + 2;
            self.deadline_wake_at_ms.store(planned, Ordering::SeqCst);
            // Cancel-safe: a token, a sleep, and a notification (a `notify_one` that reaches a
            // dropped `notified()` is passed on to the next wait, so no wake-up is lost).
            tokio::select! {
                () = token.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Creates the claim of every Standard artifact created from `from_ms` on (up to
    /// [`UNCLAIMED_AFTER_MS`] ago, one page) that has none: its `artifact_created` event was
    /// never handled, so nothing else would ever claim it. Events are delivered at least once
    /// through the consumer group, but the group's bookkeeping lives in Redis and a restart
    /// reloads it from the AOF; a lost entry must not strand a workflow. Returns where the next
    /// pass starts.
    async fn claim_unclaimed_artifacts(&self, from_ms: i64) -> Result<i64, OrchestratorError> {
        let until_ms = now_ms() - UNCLAIMED_AFTER_MS;
        if until_ms < from_ms {
            return Ok(from_ms);
        }
        let page = self.store.artifacts_created_between(from_ms, until_ms, UNCLAIMED_PAGE).await?;
        let next = match (page.first(), page.last()) {
            // A full page: the next one starts at its last creation time again (artifacts
            // created in the same millisecond may straddle the pages), or after it when the
            // whole page is that one millisecond.
            (Some((_, first)), Some((_, last))) if page.len() == UNCLAIMED_PAGE => {
                if first == last {
                    last + 1
                } else {
                    *last
                }
            }
            _ => until_ms + 1,
        };
        let ids: Vec<ArtifactId> = page.into_iter().map(|(id, _)| id).collect();
        let unclaimed = self.store.artifacts_without_claim(&ids).await?;
        for artifact in self.store.get_artifacts(&unclaimed).await? {
            if !artifact.structural_type.creates_claim() {
                continue;
            }
            warn!(
                artifact_id = %artifact.id,
                margin_ms = UNCLAIMED_AFTER_MS,
                "an artifact has had no claim past the margin: its event was missed (or is far behind); claiming it now"
            );
            self.on_artifact(&artifact.id, true).await?;
        }
        Ok(next)
    }

    async fn tick_due(&self, now: i64) -> Result<(), OrchestratorError> {
        for id in self.store.due_claims(now).await? {
            if let Some(claim) = self.store.get_claim(&id).await?
                && let Some(scope) = self.pause_holding(&claim).await?
            {
                // A deadline does not expire because of a pause: the claim leaves the index,
                // and the resume puts it back with its deadlines moved later (resume.lua).
                debug!(claim_id = %id, %scope, "a deadline is due while paused; it waits for the resume");
                self.store.set_claim_deadline(&id, None).await?;
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_wakes_the_loop_only_when_it_would_be_read_too_late() {
        // Awake: the loop may have read the index before the write.
        assert!(wakes_the_loop(LOOP_AWAKE, 1_000));
        // Asleep until 5_000: an earlier deadline wakes it, a later one waits for that read.
        assert!(wakes_the_loop(5_000, 4_999));
        assert!(!wakes_the_loop(5_000, 5_000));
        assert!(!wakes_the_loop(5_000, 65_000));
    }
}
