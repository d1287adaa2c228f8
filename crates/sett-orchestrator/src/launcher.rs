//! How controller workers are started. The engine decides when (at most `max_concurrent` per
//! agent, FIFO); a runtime (local processes, containers) implements how.

use std::time::Duration;

use futures::future::BoxFuture;
use sett_core::{AgentName, ClaimId};
use sett_store::WorkerRecord;

/// One grant to execute in a worker (`sett-cub --execute-claim <claim> --seq <seq>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRequest {
    pub agent: AgentName,
    pub claim: ClaimId,
    pub seq: u64,
}

/// A started worker.
pub struct LaunchedWorker {
    pub pid: Option<u32>,
    pub container: Option<String>,
    /// Resolves when the worker exits: `true` when it exited successfully.
    pub exit: BoxFuture<'static, bool>,
}

impl std::fmt::Debug for LaunchedWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchedWorker").field("pid", &self.pid).field("container", &self.container).finish()
    }
}

/// Starts and stops workers for the engine.
pub trait WorkerLauncher: Send + Sync + 'static {
    /// Starts a worker for `req`. An error is reported as a failed worker.
    fn launch(&self, req: WorkerRequest) -> BoxFuture<'static, Result<LaunchedWorker, String>>;

    /// The worker of `req` recorded by an earlier orchestrator run (its record may lack the pid
    /// when that run stopped right after launching it): when it is still alive, a future that
    /// resolves when it exits (the engine adopts it); `None` when it is gone.
    fn adopt(&self, req: &WorkerRequest, record: &WorkerRecord) -> Option<BoxFuture<'static, ()>>;

    /// Asks every worker this launcher started to stop, killing those still running after
    /// `grace`.
    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()>;
}

/// A launcher for configurations without controller agents: every launch fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWorkers;

impl WorkerLauncher for NoWorkers {
    fn launch(&self, req: WorkerRequest) -> BoxFuture<'static, Result<LaunchedWorker, String>> {
        Box::pin(async move { Err(format!("no worker launcher is configured for agent {}", req.agent)) })
    }

    fn adopt(&self, _req: &WorkerRequest, _record: &WorkerRecord) -> Option<BoxFuture<'static, ()>> {
        None
    }

    fn shutdown(&self, _grace: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
