//! Starting an instance's components and judging whether they still live, whatever the runtime:
//! the runtime-specific half of `sett up` (the flow itself, one for both runtimes, is
//! bins/sett/src/cmd/up.rs). Locally a component is a detached process group with its log file;
//! in Docker, a container on the instance network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sett_core::AgentName;
use sett_core::config::{RuntimeKind, SettConfig};
use sett_core::record::{ComponentRecord, cub_component};
use sett_store::{LockHolder, LockPurpose};

use crate::instance::{Handle, Running, Runtime, RuntimeError};
use crate::process::{DaemonSpec, is_alive, spawn_daemon, terminate};

/// Why `sett up` must not start an instance.
#[derive(Debug, thiserror::Error)]
pub enum StartRefused {
    #[error(
        "a 'sett destroy' of instance '{instance}' was interrupted (pid {pid} is gone): run 'sett destroy --name {instance}' again to finish it"
    )]
    DestroyInterrupted { instance: String, pid: u32 },
    #[error("instance '{instance}' is being destroyed (by {host} pid {pid}): wait for 'sett destroy' to finish")]
    BeingDestroyed { instance: String, host: String, pid: u32 },
    #[error(
        "instance '{instance}' is already running on host {host} (pid {pid}): see 'sett status --name {instance}', or stop it there with 'sett down --name {instance}'"
    )]
    RunningElsewhere { instance: String, host: String, pid: u32 },
}

/// What a component of the instance needs to start, per runtime.
#[derive(Debug, Clone)]
pub enum Launch {
    Local(LocalLaunch),
    Docker(Box<sett_docker::Spec>),
}

/// The local runtime's launch: binaries, paths and per-component Redis URLs.
#[derive(Clone)]
pub struct LocalLaunch {
    pub instance: String,
    /// Where `sett-orchestrator` and `sett-cub` are.
    pub bins: PathBuf,
    pub config: PathBuf,
    pub workspace: PathBuf,
    /// `.sett/logs/<instance>/`: one `<component>.log` each (cubs: `<agent>.log`).
    pub log_dir: PathBuf,
    /// The orchestrator's Redis URL (passed through the environment, never the command line).
    pub orchestrator_url: String,
    /// The cubs' and controller workers' Redis URL.
    pub cub_url: String,
}

impl std::fmt::Debug for LocalLaunch {
    // Redis URLs may carry ACL passwords: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLaunch")
            .field("instance", &self.instance)
            .field("workspace", &self.workspace)
            .field("orchestrator_url", &sett_store::redact_url(&self.orchestrator_url))
            .field("cub_url", &sett_store::redact_url(&self.cub_url))
            .finish_non_exhaustive()
    }
}

/// One of an instance's long-running components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    Orchestrator,
    Cub(AgentName),
}

impl Component {
    /// Every component `sett.yml` asks for: the orchestrator, then one cub per agent.
    pub fn all(config: &SettConfig) -> Vec<Self> {
        std::iter::once(Self::Orchestrator).chain(config.agents.keys().cloned().map(Self::Cub)).collect()
    }

    /// The name it registers under in the components hash (`orchestrator`, `cub:<agent>`).
    pub fn registered_as(&self) -> String {
        match self {
            Self::Orchestrator => "orchestrator".into(),
            Self::Cub(agent) => cub_component(agent),
        }
    }
}

impl Runtime {
    /// The components of a previous run that still run and are kept by `sett up` (cubs whose
    /// orchestrator crashed, or everything when `up` is run twice). Locally: live pids of this
    /// host, the orchestrator only if it is `running_orchestrator` (the lock holder's pid); in
    /// Docker: running containers other than workers.
    pub async fn kept(
        &self,
        components: &BTreeMap<String, ComponentRecord>,
        running_orchestrator: Option<u32>,
    ) -> Result<Vec<Running>, RuntimeError> {
        match self {
            Self::Local { .. } => {
                let host = crate::host_name();
                Ok(components
                    .iter()
                    .filter_map(|(component, rec)| {
                        let pid = rec.pid?;
                        let local = rec.host.as_deref().is_none_or(|h| h == host);
                        let keep = local
                            && is_alive(pid)
                            && (component != "orchestrator" || running_orchestrator == Some(pid));
                        keep.then(|| Running { component: component.clone(), handle: Handle::Pid(pid) })
                    })
                    .collect())
            }
            Self::Docker(rt) => Ok(rt
                .containers(None)
                .await?
                .into_iter()
                .filter(|c| c.running && c.component != "worker")
                .map(|c| Running { component: c.registered_as(), handle: Handle::Container(c.id) })
                .collect()),
        }
    }

    /// Whether `sett up` may start the instance given its lock `holder`: refuses an instance
    /// being destroyed or running on another host. Returns the pid of this host's live
    /// orchestrator, if one runs (then only missing components are started).
    pub fn may_start(
        &self,
        instance: &str,
        holder: Option<&LockHolder>,
        launch: &Launch,
    ) -> Result<Option<u32>, StartRefused> {
        let Some(holder) = holder else { return Ok(None) };
        let here = holder.host == crate::host_name();
        let local = match launch {
            Launch::Docker(spec) => here || holder.host == spec.container_name("orchestrator"),
            Launch::Local(_) => here,
        };
        // A local pid can be judged; a container's pid means nothing here (`kept` judges it).
        if local && matches!(self, Self::Local { .. }) && !is_alive(holder.pid) {
            if holder.purpose == LockPurpose::Destroy {
                // Starting a half-destroyed instance would run on partial data.
                return Err(StartRefused::DestroyInterrupted { instance: instance.into(), pid: holder.pid });
            }
            // A crashed orchestrator: the new orchestrator takes the lock over at once.
            return Ok(None);
        }
        match holder.purpose {
            LockPurpose::Destroy => Err(StartRefused::BeingDestroyed {
                instance: instance.into(),
                host: holder.host.clone(),
                pid: holder.pid,
            }),
            LockPurpose::Run if local => Ok(Some(holder.pid)),
            LockPurpose::Run => Err(StartRefused::RunningElsewhere {
                instance: instance.into(),
                host: holder.host.clone(),
                pid: holder.pid,
            }),
        }
    }

    /// Gets the runtime ready to start components: locally nothing; in Docker the log directory
    /// (writable by the containers' user) and the instance network, with the workspace's own
    /// Redis container attached when it is the instance's Redis.
    pub async fn prepare(&self, launch: &Launch) -> Result<(), RuntimeError> {
        if let (Self::Docker(rt), Launch::Docker(spec)) = (self, launch) {
            std::fs::create_dir_all(&spec.log_dir).map_err(|source| RuntimeError::Io {
                what: format!("cannot create {}", spec.log_dir.display()),
                source,
            })?;
            share_with_container_user(&spec.log_dir, &spec.user);
            // The orchestrator's ledger head and the witness file (`ledger.witness_file`'s
            // default) live here, outside Redis.
            let ledger = spec.ledger_dir();
            std::fs::create_dir_all(&ledger)
                .map_err(|source| RuntimeError::Io { what: format!("cannot create {}", ledger.display()), source })?;
            share_with_container_user(&ledger, &spec.user);
            rt.ensure_network(spec.redis_container.as_deref()).await?;
        }
        Ok(())
    }

    /// Starts one component (detached: it outlives this process).
    pub async fn start(&self, launch: &Launch, component: &Component) -> Result<Running, RuntimeError> {
        let registered = component.registered_as();
        let handle = match (self, launch) {
            (Self::Docker(rt), Launch::Docker(spec)) => Handle::Container(match component {
                Component::Orchestrator => rt.start_orchestrator(spec).await?,
                Component::Cub(agent) => rt.start_cub(spec, agent.as_str()).await?,
            }),
            (_, Launch::Local(l)) => Handle::Pid(start_local(l, component)?),
            (Self::Local { .. }, Launch::Docker(_)) => return Err(RuntimeError::Mismatch),
        };
        Ok(Running { component: registered, handle })
    }

    /// Which of `components` still live (one answer each, in order).
    pub async fn alive(&self, components: &[Running]) -> Result<Vec<bool>, RuntimeError> {
        let containers = match self {
            Self::Docker(rt) => rt.containers(None).await?,
            Self::Local { .. } => Vec::new(),
        };
        Ok(components
            .iter()
            .map(|r| match &r.handle {
                Handle::Pid(pid) => is_alive(*pid),
                Handle::Container(id) => containers.iter().any(|c| c.running && &c.id == id),
            })
            .collect())
    }

    /// How a stopped container ended: its exit code and the end of its own output (what is
    /// left when its daemon died before writing its log). `None` for a process.
    pub async fn exit_report(&self, component: &Running) -> Option<(Option<i64>, String)> {
        match (self, &component.handle) {
            (Self::Docker(rt), Handle::Container(id)) => {
                Some(rt.exit_report(id, 30).await.unwrap_or((None, String::new())))
            }
            _ => None,
        }
    }

    /// How often `sett up` polls while waiting for readiness (a Docker poll lists containers).
    pub fn poll_interval(&self) -> Duration {
        match self {
            Self::Local { .. } => Duration::from_millis(25),
            Self::Docker(_) => Duration::from_millis(100),
        }
    }

    /// Removes what a failed `sett up` started, so nothing half-started is left behind (in
    /// Docker: the started containers, and the instance network when no container is left).
    pub async fn discard(&self, started: &[Running]) -> Result<(), RuntimeError> {
        for r in started {
            match (&r.handle, self) {
                (Handle::Pid(pid), _) => {
                    let pid = *pid;
                    let _ = tokio::task::spawn_blocking(move || terminate(pid, Duration::from_secs(2))).await;
                }
                (Handle::Container(id), Self::Docker(rt)) => rt.remove(id).await?,
                (Handle::Container(_), Self::Local { .. }) => {}
            }
        }
        // The network `prepare` created goes too, unless components of a previous run use it.
        if let Self::Docker(rt) = self {
            rt.remove_network_if_unused().await?;
        }
        Ok(())
    }
}

/// The user the docker runtime's containers run as (`uid:gid`, never root):
/// `SETT_DOCKER_USER`, else the owner of the workspace.
pub fn docker_user(workspace: &Path) -> String {
    std::env::var("SETT_DOCKER_USER").unwrap_or_else(|_| sett_docker::default_user(workspace))
}

/// Docker runtime: checks that the containers' user can read the workspace (and write it when
/// an agent has `workspace: {mode: rw}`), so a container does not die at once; the local
/// runtime runs as the operator, who can.
pub fn check_workspace_access(config: &SettConfig, workspace: &Path, config_path: &Path) -> Result<(), RuntimeError> {
    if config.runtime != RuntimeKind::Docker {
        return Ok(());
    }
    let write = !sett_docker::rw_agents(config).is_empty();
    sett_docker::check_workspace_access(workspace, config_path, &docker_user(workspace), write)
        .map_err(|e| RuntimeError::Access(e.to_string()))
}

fn start_local(l: &LocalLaunch, component: &Component) -> Result<u32, RuntimeError> {
    let mut args = vec![
        "--instance".to_owned(),
        l.instance.clone(),
        "--config".to_owned(),
        l.config.display().to_string(),
        "--workspace".to_owned(),
        l.workspace.display().to_string(),
    ];
    let (program, env, log) = match component {
        Component::Orchestrator => {
            args.extend(["--log-dir".to_owned(), l.log_dir.display().to_string()]);
            let env = BTreeMap::from([
                ("SETT_REDIS_URL".to_owned(), l.orchestrator_url.clone()),
                ("SETT_WORKER_REDIS_URL".to_owned(), l.cub_url.clone()),
            ]);
            ("sett-orchestrator", env, "orchestrator".to_owned())
        }
        Component::Cub(agent) => {
            args.extend(["--agent".to_owned(), agent.to_string()]);
            ("sett-cub", BTreeMap::from([("SETT_REDIS_URL".to_owned(), l.cub_url.clone())]), agent.to_string())
        }
    };
    let spec = DaemonSpec {
        program: l.bins.join(program),
        args,
        env,
        cwd: l.workspace.clone(),
        log_file: l.log_dir.join(format!("{log}.log")),
    };
    spawn_daemon(&spec).map_err(|source| RuntimeError::Io { what: format!("cannot start {program}"), source })
}

/// Lets the containers' user write the log directory (when the CLI runs as root, it owns it).
fn share_with_container_user(dir: &Path, user: &str) {
    let mut ids = user.split(':').map(|p| p.parse::<u32>().ok());
    let (Some(Some(uid)), gid) = (ids.next(), ids.next().flatten()) else { return };
    let _ = std::os::unix::fs::chown(dir, Some(uid), gid);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::os::unix::fs::chown(e.path(), Some(uid), gid);
        }
    }
}
