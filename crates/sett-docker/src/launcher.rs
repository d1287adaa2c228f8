//! Controller workers as ephemeral containers: one container per grant, labelled with its
//! instance, agent, claim and seq, removed once it has exited. At start the launcher removes the
//! exited worker containers of its instance (and only those: the label filter names the instance
//! and the `worker` component) and remembers the running ones for adoption.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{CreateContainerOptionsBuilder, StopContainerOptionsBuilder};
use futures::StreamExt;
use futures::future::BoxFuture;
use sett_orchestrator::{LaunchedWorker, WorkerLauncher, WorkerRequest};
use sett_store::WorkerRecord;
use tracing::warn;

use crate::{Result, Spec, list, remove};

/// Launches workers as containers of the runtime image.
#[derive(Debug, Clone)]
pub struct DockerWorkerLauncher {
    docker: Docker,
    spec: Arc<Spec>,
    /// Containers this launcher started and that still run.
    running: Arc<Mutex<HashSet<String>>>,
    /// Running workers found at start: (claim, seq) → container id.
    found: Arc<Mutex<HashMap<(String, u64), String>>>,
}

impl DockerWorkerLauncher {
    /// Connects to the engine, removes the instance's exited worker containers and records the
    /// running ones for [`WorkerLauncher::adopt`].
    pub async fn new(spec: Spec) -> Result<Self> {
        let docker = crate::connect().await?;
        let mut found = HashMap::new();
        for c in list(&docker, &spec.instance, Some("worker")).await? {
            match (c.running, crate::worker_key(&c)) {
                (true, Some(key)) => {
                    found.insert(key, c.id);
                }
                _ => remove(&docker, &c.id).await?,
            }
        }
        Ok(Self { docker, spec: Arc::new(spec), running: Arc::default(), found: Arc::new(Mutex::new(found)) })
    }
}

/// Resolves when the container exits: `true` for exit code 0. Removes it afterwards.
async fn wait_and_remove(docker: Docker, id: String) -> bool {
    let ok = match docker.wait_container(&id, None).next().await {
        Some(Ok(r)) => r.status_code == 0,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code == 0,
        Some(Err(e)) => {
            warn!(container = %id, error = %e, "cannot wait for the worker container");
            false
        }
        None => false,
    };
    if let Err(e) = remove(&docker, &id).await {
        warn!(container = %id, error = %e, "cannot remove the worker container");
    }
    ok
}

impl WorkerLauncher for DockerWorkerLauncher {
    fn launch(&self, req: WorkerRequest) -> BoxFuture<'static, std::result::Result<LaunchedWorker, String>> {
        let docker = self.docker.clone();
        let spec = self.spec.clone();
        let running = self.running.clone();
        Box::pin(async move {
            let claim = req.claim.to_string();
            let name = spec.container_name(&format!("worker-{}-{}", claim, req.seq));
            // The orchestrator's own OTEL_* (passed into its container) go on to the worker.
            let body =
                crate::with_otel_env(spec.worker_container(req.agent.as_str(), &claim, req.seq), std::env::vars());
            // A container of the same name is a leftover of an earlier attempt of this grant.
            remove(&docker, &name).await.map_err(|e| e.to_string())?;
            let created = docker
                .create_container(Some(CreateContainerOptionsBuilder::new().name(&name).build()), body)
                .await
                .map_err(|e| format!("cannot create worker container {name}: {e}"))?;
            if let Err(e) = docker.start_container(&created.id, None).await {
                let _ = remove(&docker, &created.id).await;
                return Err(format!("cannot start worker container {name}: {e}"));
            }
            running.lock().expect("not poisoned").insert(created.id.clone());
            let id = created.id.clone();
            let exit = Box::pin(async move {
                let ok = wait_and_remove(docker, id.clone()).await;
                running.lock().expect("not poisoned").remove(&id);
                ok
            });
            Ok(LaunchedWorker { pid: None, container: Some(created.id), exit })
        })
    }

    fn adopt(&self, req: &WorkerRequest, record: &WorkerRecord) -> Option<BoxFuture<'static, ()>> {
        let key = (req.claim.to_string(), req.seq);
        let mut found = self.found.lock().expect("not poisoned");
        let id = found.remove(&key).or_else(|| {
            // Found by label at start, or recorded by the previous orchestrator.
            record.container.clone().filter(|c| found.values().any(|v| v == c))
        })?;
        let docker = self.docker.clone();
        let running = self.running.clone();
        running.lock().expect("not poisoned").insert(id.clone());
        Some(Box::pin(async move {
            wait_and_remove(docker, id.clone()).await;
            running.lock().expect("not poisoned").remove(&id);
        }))
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()> {
        let ids: Vec<String> = self.running.lock().expect("not poisoned").iter().cloned().collect();
        let docker = self.docker.clone();
        Box::pin(async move {
            let t = grace.as_secs().max(1) as i32;
            let stops = ids.iter().map(|id| {
                let docker = docker.clone();
                async move {
                    let _ = docker.stop_container(id, Some(StopContainerOptionsBuilder::new().t(t).build())).await;
                    let _ = remove(&docker, id).await;
                }
            });
            futures::future::join_all(stops).await;
        })
    }
}
