//! The agent runtime ("cub"): bidding on claims, executing grants under the tool contract
//! (design.md §5), assembling a tool's context, and the event loop that ties them to the blackboard.
//! It talks to the orchestrator and to other cubs only through the store.
//!
//! Layout:
//! - [`process`]: running a program in its own process group (filtered env, caps, timeout, kill),
//!   started by `sett_spawn` so the event loop is not suspended while it execs.
//! - [`context`]: context-chain assembly (breadth-first over provenance, deterministic order),
//!   which lives in sett-store so the orchestrator shows an approver the same chain.
//! - [`bidding`]: one agent's bid on one claim (static strategy, bid script, self-output guard).
//! - [`execute`]: executing one grant: the tool run and the one artifact it yields.
//! - [`runtime`]: the daemon's event loop over consumer group `cub:<agent>`.

pub mod bidding;
pub use sett_store::context;
pub mod execute;
pub mod process;
pub mod runtime;

use std::fmt;
use std::path::PathBuf;

use sett_core::ArtifactId;
use sett_core::config::AgentConfig;
use sett_store::{CreateOutcome, StoreError};

pub use bidding::{bid_on_claim, decide_bid, guard_own_output, static_bid};
pub use context::{ArtifactLookup, MAX_CONTEXT_DEPTH, context_chain, select_context};
pub use execute::{
    ExecutionOutcome, execute_announced_grant, execute_grant, execute_grant_stoppable, stop_when_cancelled,
};
pub use runtime::{Cub, RunOptions};

/// What a cub needs to know about itself.
#[derive(Clone)]
pub struct CubSettings {
    /// The agent's definition from `sett.yml`.
    pub agent: AgentConfig,
    /// The directory tools (and bid scripts, and `git`) run in.
    pub workspace: PathBuf,
    /// Handed to tools as `SETT_REDIS_URL` only when the agent has `expose_redis: true`.
    pub redis_url: Option<String>,
    /// True in a worker process (`--execute-claim`): the tool is `worker.command` when set.
    pub worker_mode: bool,
    /// OpenTelemetry traces are on (`OTEL_EXPORTER_OTLP_*`): each tool run is a span of its
    /// workflow's trace and the tool gets `TRACEPARENT`.
    pub traces: bool,
}

impl CubSettings {
    pub fn new(agent: AgentConfig, workspace: PathBuf) -> Self {
        Self { agent, workspace, redis_url: None, worker_mode: false, traces: false }
    }

    /// The argv of the tool this process runs for a grant.
    pub fn tool_command(&self) -> &[String] {
        match (&self.agent.worker, self.worker_mode) {
            (Some(w), true) if !w.command.is_empty() => &w.command,
            _ => &self.agent.command,
        }
    }
}

impl fmt::Debug for CubSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the Redis URL: it may carry a password.
        f.debug_struct("CubSettings")
            .field("agent", &self.agent.name)
            .field("workspace", &self.workspace)
            .field("redis_url", &self.redis_url.as_deref().map(sett_store::redact_url))
            .field("worker_mode", &self.worker_mode)
            .field("traces", &self.traces)
            .finish()
    }
}

/// What can stop a cub or a grant execution.
#[derive(Debug, thiserror::Error)]
pub enum CubError {
    /// The blackboard failed (unreachable, an error reply, a corrupt record, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blackboard refused the grant's `what` artifact for a reason no retry changes (its
    /// id or version belongs to another record).
    #[error("the {what} was refused: {outcome:?}")]
    Refused { what: &'static str, outcome: CreateOutcome },
    /// Every next version of the thread was taken by concurrent writers.
    #[error("version {version} of thread {logical_id} kept being taken")]
    VersionRace { version: u32, logical_id: ArtifactId },
    /// The claim names an artifact the blackboard does not hold.
    #[error("the claim's artifact {0} does not exist")]
    MissingArtifact(ArtifactId),
    /// Even the Failure artifact reporting a failed run could not be written.
    #[error("claim {claim}: cannot record the outcome of grant {seq}: {source}")]
    Record { claim: String, seq: u64, source: Box<CubError> },
}

impl CubError {
    /// Whether the same call may succeed later (see [`StoreError::is_transient`]); the cub's
    /// own refusals never do.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_transient())
    }
}
