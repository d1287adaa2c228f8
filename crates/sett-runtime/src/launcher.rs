//! Controller workers as local processes: `sett-cub --execute-claim <claim> --seq <n>`, children
//! of the orchestrator in their own process groups, logs appended to `<log_dir>/<agent>-workers.log`.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sett_orchestrator::{LaunchedWorker, WorkerLauncher, WorkerRequest};
use sett_store::WorkerRecord;

use crate::process::is_alive;

/// How to start a worker: the `sett-cub` binary and what every worker gets. `Debug` redacts
/// the Redis password.
#[derive(Clone)]
pub struct WorkerCommand {
    pub cub_bin: PathBuf,
    pub instance: String,
    pub config: PathBuf,
    pub workspace: PathBuf,
    pub log_dir: PathBuf,
    /// Passed through the environment (never on the command line, where `ps` shows it).
    pub redis_url: String,
}

impl std::fmt::Debug for WorkerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerCommand")
            .field("cub_bin", &self.cub_bin)
            .field("instance", &self.instance)
            .field("config", &self.config)
            .field("workspace", &self.workspace)
            .field("log_dir", &self.log_dir)
            .field("redis_url", &sett_store::redact_url(&self.redis_url))
            .finish()
    }
}

/// Launches workers as child processes.
#[derive(Debug, Clone)]
pub struct LocalWorkerLauncher {
    cmd: WorkerCommand,
    running: Arc<Mutex<HashMap<u32, ()>>>,
}

impl LocalWorkerLauncher {
    pub fn new(cmd: WorkerCommand) -> Self {
        Self { cmd, running: Arc::default() }
    }
}

impl WorkerLauncher for LocalWorkerLauncher {
    fn launch(&self, req: WorkerRequest) -> BoxFuture<'static, Result<LaunchedWorker, String>> {
        let cmd = self.cmd.clone();
        let running = self.running.clone();
        Box::pin(async move {
            std::fs::create_dir_all(&cmd.log_dir)
                .map_err(|e| format!("cannot create {}: {e}", cmd.log_dir.display()))?;
            let log_path = cmd.log_dir.join(format!("{}-workers.log", req.agent));
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            let env: BTreeMap<&str, String> = BTreeMap::from([("SETT_REDIS_URL", cmd.redis_url.clone())]);
            let mut child = tokio::process::Command::new(&cmd.cub_bin)
                .args(["--instance", &cmd.instance, "--agent", req.agent.as_str()])
                .arg("--config")
                .arg(&cmd.config)
                .arg("--workspace")
                .arg(&cmd.workspace)
                .args(["--execute-claim", &req.claim.to_string(), "--seq", &req.seq.to_string()])
                .envs(env)
                .current_dir(&cmd.workspace)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(err))
                .process_group(0)
                .kill_on_drop(false)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", cmd.cub_bin.display()))?;
            let pid = child.id();
            if let Some(p) = pid {
                running.lock().expect("not poisoned").insert(p, ());
            }
            let exit = Box::pin(async move {
                let ok = child.wait().await.map(|s| s.success()).unwrap_or(false);
                if let Some(p) = pid {
                    running.lock().expect("not poisoned").remove(&p);
                }
                ok
            });
            Ok(LaunchedWorker { pid, container: None, exit })
        })
    }

    fn adopt(&self, req: &WorkerRequest, record: &WorkerRecord) -> Option<BoxFuture<'static, ()>> {
        let pid = record.pid.filter(|p| is_alive(*p)).or_else(|| find_worker(&self.cmd.instance, req))?;
        Some(Box::pin(async move {
            // Not our child: its exit cannot be awaited, only observed.
            while is_alive(pid) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()> {
        let pids: Vec<u32> = self.running.lock().expect("not poisoned").keys().copied().collect();
        Box::pin(async move {
            for pid in &pids {
                let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGTERM);
            }
            let until = tokio::time::Instant::now() + grace;
            while tokio::time::Instant::now() < until && pids.iter().any(|p| is_alive(*p)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for pid in pids.iter().filter(|p| is_alive(**p)) {
                let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
        })
    }
}

/// Finds the live worker process of `req` by its command line (for a worker launched by an
/// orchestrator that died before recording its pid).
fn find_worker(instance: &str, req: &WorkerRequest) -> Option<u32> {
    let claim = req.claim.to_string();
    let seq = req.seq.to_string();
    let wanted: [&[&str]; 3] = [&["--instance", instance], &["--execute-claim", &claim], &["--seq", &seq]];
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&str> = raw.split(|b| *b == 0).filter_map(|a| std::str::from_utf8(a).ok()).collect();
        let has = |pair: &[&str]| args.windows(2).any(|w| w == pair);
        if wanted.iter().all(|pair| has(pair)) && is_alive(pid) {
            return Some(pid);
        }
    }
    None
}
