//! The runtime abstraction: where an instance's components run (local processes or Docker
//! containers) and the three things `sett down` and the orchestrator need from it, whatever the
//! runtime: which components run, how to stop them, and how controller workers are launched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sett_core::config::RuntimeKind;
use sett_core::record::ComponentRecord;
use sett_orchestrator::{NoWorkers, WorkerLauncher};
use sett_store::LockHolder;

use crate::launcher::{LocalWorkerLauncher, WorkerCommand};
use crate::process::{is_alive, terminate};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Docker(#[from] sett_docker::DockerError),
    #[error("invalid SETT_DOCKER_SPEC: {0}")]
    Spec(#[from] serde_json::Error),
    #[error("instance '{instance}' runs on host {host} (pid {pid}): run 'sett down --name {instance}' there")]
    OtherHost { instance: String, host: String, pid: u32 },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("cannot start instance containers: {0}")]
    Access(String),
    #[error("a Docker launch was given to the local runtime (a bug in the caller)")]
    Mismatch,
}

/// How the runtime knows a running component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handle {
    Pid(u32),
    Container(String),
}

/// A running component: its registered name (`orchestrator`, `cub:<agent>`, `worker`) and handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub component: String,
    pub handle: Handle,
}

/// An instance's runtime.
#[derive(Debug, Clone)]
pub enum Runtime {
    Local { instance: String },
    Docker(sett_docker::DockerRuntime),
}

impl Runtime {
    pub async fn connect(kind: RuntimeKind, instance: &str) -> Result<Self, RuntimeError> {
        Ok(match kind {
            RuntimeKind::Local => Self::Local { instance: instance.to_owned() },
            RuntimeKind::Docker => Self::Docker(sett_docker::DockerRuntime::connect(instance).await?),
        })
    }

    pub fn kind(&self) -> RuntimeKind {
        match self {
            Self::Local { .. } => RuntimeKind::Local,
            Self::Docker(_) => RuntimeKind::Docker,
        }
    }

    /// The instance's running components. Locally: the live pids of this host recorded in the
    /// components hash, and the lock holder's (an instance run from another host is an error:
    /// it must be stopped there). In Docker: the running containers labelled with the instance.
    pub async fn running(
        &self,
        components: &BTreeMap<String, ComponentRecord>,
        holder: Option<&LockHolder>,
    ) -> Result<Vec<Running>, RuntimeError> {
        match self {
            Self::Local { instance } => {
                let host = crate::host_name();
                if let Some(h) = holder.filter(|h| h.host != host) {
                    return Err(RuntimeError::OtherHost {
                        instance: instance.clone(),
                        host: h.host.clone(),
                        pid: h.pid,
                    });
                }
                let mut pids: Vec<(String, u32)> = components
                    .iter()
                    .filter(|(_, rec)| rec.host.as_deref().is_none_or(|h| h == host))
                    .filter_map(|(c, rec)| rec.pid.map(|p| (c.clone(), p)))
                    .collect();
                if let Some(h) = holder
                    && !pids.iter().any(|(_, p)| *p == h.pid)
                {
                    pids.push(("orchestrator".into(), h.pid));
                }
                Ok(pids
                    .into_iter()
                    .filter(|(_, p)| is_alive(*p))
                    .map(|(component, pid)| Running { component, handle: Handle::Pid(pid) })
                    .collect())
            }
            Self::Docker(rt) => Ok(rt
                .containers(None)
                .await?
                .into_iter()
                .filter(|c| c.running)
                .map(|c| Running { component: c.registered_as(), handle: Handle::Container(c.id) })
                .collect()),
        }
    }

    /// Stops the instance's components at once (SIGTERM or `docker stop`, `grace`, then a
    /// kill) and returns those that had to be killed. In Docker every container of the
    /// instance and its network are removed too.
    pub async fn stop(&self, running: &[Running], grace: Duration) -> Result<Vec<String>, RuntimeError> {
        match self {
            Self::Local { .. } => {
                let stops: Vec<_> = running
                    .iter()
                    .filter_map(|r| match r.handle {
                        Handle::Pid(p) => Some((r.component.clone(), p)),
                        Handle::Container(_) => None,
                    })
                    .map(|(c, p)| tokio::task::spawn_blocking(move || (c, terminate(p, grace))))
                    .collect();
                let mut forced = Vec::new();
                for s in stops {
                    if let Ok((c, graceful)) = s.await
                        && !graceful
                    {
                        forced.push(c);
                    }
                }
                Ok(forced)
            }
            Self::Docker(rt) => Ok(rt.down(grace).await?),
        }
    }
}

/// The orchestrator's worker launcher: containers when this orchestrator runs in the docker
/// runtime (its spec in `SETT_DOCKER_SPEC`, the Docker socket mounted), child processes
/// (`local`) otherwise, none without controller agents. Returns whether it runs in Docker too.
pub async fn worker_launcher(
    has_controllers: bool,
    local: impl FnOnce() -> WorkerCommand,
) -> Result<(Arc<dyn WorkerLauncher>, bool), RuntimeError> {
    let spec = sett_docker::spec_from_env()?;
    let in_docker = spec.is_some();
    let launcher: Arc<dyn WorkerLauncher> = match spec {
        Some(spec) if has_controllers && spec.socket.is_some() => {
            Arc::new(sett_docker::DockerWorkerLauncher::new(spec).await?)
        }
        _ if has_controllers => Arc::new(LocalWorkerLauncher::new(local())),
        _ => Arc::new(NoWorkers),
    };
    Ok((launcher, in_docker))
}
