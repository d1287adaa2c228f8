//! The local runtime: Sett's components as processes on this machine. It starts detached
//! daemons (orchestrator, cubs) with their logs in files, stops them gracefully, runs a managed
//! `redis-server` for workspaces without a configured Redis, and launches controller workers for
//! the orchestrator ([`LocalWorkerLauncher`]). [`Runtime`] puts the local and the docker runtime
//! (`sett-docker`) behind one interface: find, start, judge and stop an instance's components. It prints nothing.

mod instance;
mod launcher;
mod process;
mod redis;
mod start;

pub use instance::{Handle, Running, Runtime, RuntimeError, worker_launcher};
pub use launcher::{LocalWorkerLauncher, WorkerCommand};
pub use process::{DaemonSpec, is_alive, spawn_daemon, terminate, wait_gone};
pub use redis::{ManagedRedis, RedisStartError};
pub use start::{Component, Launch, LocalLaunch, StartRefused, check_workspace_access, docker_user};

/// Where the Sett binaries live: `$SETT_BIN_DIR`, else the directory of the running executable
/// (the binaries are built and installed side by side).
pub fn bin_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("SETT_BIN_DIR").filter(|d| !d.is_empty()) {
        return d.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| ".".into())
}

/// This machine's host name, for lock holders and audit records.
pub fn host_name() -> String {
    hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".to_owned())
}
