//! The orchestration engine: it drives the pure claim state machine (`sett_core::machine`)
//! against the blackboard. It creates one claim per Standard artifact, gathers bids, runs the
//! review → parallel → exclusive phases, the feedback loop, question waits and deadlines, and
//! schedules controller workers. It never prints; it logs through `tracing`.
//!
//! Delivery is durable: the engine consumes the instance's event stream through the consumer
//! group `orchestrator` (pending entries first after a restart) and acknowledges an event only
//! after handling it. Every handler is idempotent. Every claim change is one compare-and-set
//! write that also records the transition's follow-up effects in the outbox (see [`followup`]).
//!
//! Layout: [`engine`] (the shared state, background-loop guards and `run`), [`lifecycle`] (lock,
//! instance and component records, heartbeat), [`consumer`] (the event loop), [`transitions`]
//! (`machine::Input` → `machine::step` → compare-and-set write), then the three readers of a
//! written transition: [`ledger`] (the events it writes), [`followup`] (its outbox effects) and
//! [`observe`] (logs and metrics); [`deadlines`] (the deadline loop),
//! [`workers`] (controller worker scheduling), [`launcher`] (how workers are started:
//! implemented by the runtime).

mod approvals;
mod followup;
pub mod launcher;

mod consumer;
mod deadlines;
mod decided;
mod engine;
mod ledger;
mod lifecycle;
mod observe;
mod pause;
mod reviews;
mod standing;
mod steer;
mod transitions;
mod workers;
mod written;

use std::time::Duration;

use sett_core::config::SettConfig;
use sett_core::{ClaimId, InstanceName};
use sett_store::LockHolder;

pub use engine::Orchestrator;
pub use launcher::{LaunchedWorker, NoWorkers, WorkerLauncher, WorkerRequest};

/// Everything the engine needs to know about where and how it runs.
pub struct Settings {
    pub instance: InstanceName,
    pub config: SettConfig,
    /// Unique per orchestrator process start: the lock is compared on it.
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    /// The lock's time to live; it is renewed every third of it.
    pub lock_ttl: Duration,
    /// The address of this process's health server, published in the components record.
    pub health_addr: Option<String>,
    /// How long workers get to finish when the orchestrator stops.
    pub shutdown_grace: Duration,
    /// Decides whether a lock held by someone else belongs to a process that is gone (e.g. on
    /// this host, with a pid that no longer exists), so it can be taken over at once instead of
    /// waiting for its TTL to lapse.
    pub holder_is_gone: Box<dyn Fn(&LockHolder) -> bool + Send + Sync>,
    /// Called with each output that reported usage before the engine acts on it (budgets:
    /// sett_ops::budget pauses a workflow whose budget it reaches, so nothing the output leads
    /// to is granted).
    pub on_usage: Option<UsageHook>,
}

/// See [`Settings::on_usage`].
pub type UsageHook =
    std::sync::Arc<dyn Fn(sett_core::Artifact) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("instance", &self.instance)
            .field("run_id", &self.run_id)
            .field("host", &self.host)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// Why the orchestrator stopped with an error, or why handling an event, a deadline or a
/// follow-up failed (it is then retried).
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error(
        "instance '{instance}' is already running (orchestrator run {} on {} pid {}): stop it with 'sett down --name {instance}' first",
        holder.run_id, holder.host, holder.pid
    )]
    AlreadyRunning { instance: InstanceName, holder: LockHolder },
    #[error("instance '{instance}' is being destroyed (by {} pid {}): wait for 'sett destroy' to finish", holder.host, holder.pid)]
    BeingDestroyed { instance: InstanceName, holder: LockHolder },
    #[error("the instance lock of '{0}' was lost to another process; stopping so two orchestrators never run at once")]
    LockLost(InstanceName),
    /// Another process took the instance lock each time this one found it free.
    #[error("the instance lock kept changing hands; try again")]
    LockContended,
    /// A claim transition lost every compare-and-set race it was retried for.
    #[error("claim {0} kept changing during a transition")]
    TransitionContended(ClaimId),
    /// A transition's compare-and-set was refused as a create: the store's records contradict
    /// the claim this engine just read.
    #[error("unexpected 'exists' ({existing}) on a transition of claim {claim}")]
    TransitionRefusedAsCreate { claim: ClaimId, existing: String },
    /// A rework claim (a deterministic id, written once) exists at another revision.
    #[error("rework claim {claim} conflicts (revision {current})")]
    ReworkClaimConflict { claim: ClaimId, current: String },
    /// The store refused a follow-up's artifact (`what`) for a reason other than its being
    /// written already.
    #[error("cannot write the {what}: {outcome}")]
    FollowUpRefused { what: &'static str, outcome: String },
    /// A follow-up would grant while its scope (`instance` or a goal id) is paused; it stays in
    /// the outbox until the pause is lifted.
    #[error("paused ({0})")]
    Paused(String),
    #[error(transparent)]
    Store(#[from] sett_store::StoreError),
}

impl OrchestratorError {
    /// Whether Redis itself failed (see [`sett_store::StoreError::is_redis`]): what
    /// `sett_redis_errors_total` counts, never a refused write or an engine-level conflict.
    pub fn is_redis(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_redis())
    }

    /// Whether the same call may succeed later (see [`sett_store::StoreError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_transient())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sett_store::StoreError;

    use super::*;

    #[test]
    fn only_redis_failures_are_redis_errors() {
        assert!(OrchestratorError::from(StoreError::Timeout(Duration::from_secs(1))).is_redis());
        assert!(!OrchestratorError::from(StoreError::Decode("x".into())).is_redis());
        assert!(!OrchestratorError::from(StoreError::Unconfirmed("x".into())).is_redis());
        let claim = ClaimId::derived(&"c", "test");
        assert!(!OrchestratorError::TransitionContended(claim).is_redis());
        assert!(!OrchestratorError::TransitionRefusedAsCreate { claim, existing: "x".into() }.is_redis());
        assert!(!OrchestratorError::ReworkClaimConflict { claim, current: "3".into() }.is_redis());
        assert!(
            !OrchestratorError::FollowUpRefused { what: "Failure artifact", outcome: "IdExists".into() }.is_redis()
        );
        assert!(!OrchestratorError::LockContended.is_redis());
    }
}
