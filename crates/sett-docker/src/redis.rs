//! The workspace's own Redis for `runtime: docker` when no Redis URL is configured: one
//! `sett-redis` container per workspace (`sett-redis-<hash of the workspace path>`), its data in
//! a named volume with AOF on, its port published on the host's loopback only (for the CLI) and
//! attached to each instance network (the daemons reach it by its container name). It outlives
//! instances: `sett down` stops it, `sett destroy` removes it with its volume.
//!
//! It carries no `sett.instance` label on purpose: the instance's own cleanup (`down`) lists
//! containers by that label and must not remove the workspace's data with them.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};

use crate::{DockerError, LABEL_COMPONENT, REDIS_IMAGE, Result};

/// The label naming the workspace a `sett-redis` container and its volume belong to.
pub const LABEL_WORKSPACE: &str = "sett.workspace";
/// The port Redis listens on inside its container.
pub const REDIS_PORT: u16 = 6379;
const PORT_KEY: &str = "6379/tcp";

/// The `sett-redis` container of one workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceRedis {
    docker: Docker,
    /// The container name (also its host name on the instance networks).
    pub name: String,
    /// The named volume holding `/data` (the AOF).
    pub volume: String,
}

/// What Docker knows of a workspace's Redis container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisState {
    Missing,
    Stopped,
    /// Running, its port published on the host's loopback at this port.
    Running(Option<u16>),
}

/// The container name of `workspace`'s Redis: `sett-redis-<12 hex digits>`, a hash of the path
/// (stable across runs, distinct per workspace, a valid container and host name).
pub fn container_name(workspace: &Path) -> String {
    // FNV-1a: stable across Rust releases (the std hasher is not), no dependency needed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in workspace.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("sett-redis-{:012x}", h & 0xffff_ffff_ffff)
}

impl WorkspaceRedis {
    /// The Redis of the container named `name` (see [`container_name`]).
    pub async fn connect(name: &str) -> Result<Self> {
        Ok(Self { docker: crate::connect().await?, name: name.to_owned(), volume: format!("{name}-data") })
    }

    /// The URL the instance's containers use: the container's name on the instance network.
    pub fn container_url(&self) -> String {
        format!("redis://{}:{REDIS_PORT}", self.name)
    }

    pub async fn state(&self) -> Result<RedisState> {
        match self.docker.inspect_container(&self.name, None).await {
            Ok(c) => {
                if !c.state.and_then(|s| s.running).unwrap_or(false) {
                    return Ok(RedisState::Stopped);
                }
                let port = c
                    .network_settings
                    .and_then(|n| n.ports)
                    .and_then(|mut p| p.remove(PORT_KEY).flatten())
                    .and_then(|b| b.into_iter().find_map(|b| b.host_port?.parse::<u16>().ok()));
                Ok(RedisState::Running(port))
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(RedisState::Missing),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts the container (creating it and its volume, for `workspace`, when missing) and
    /// returns the host port its Redis is published on (`127.0.0.1:<port>`; Docker picks a free
    /// one at each start, so callers record it again).
    pub async fn ensure(&self, workspace: &Path) -> Result<u16> {
        match self.state().await? {
            RedisState::Running(Some(port)) => return Ok(port),
            RedisState::Running(None) => {
                return Err(DockerError::Redis(format!(
                    "container {} runs without a published port: remove it (`docker rm -f {}`) and run `sett up` again",
                    self.name, self.name
                )));
            }
            RedisState::Stopped => self.detach_all().await?,
            RedisState::Missing => self.create(workspace).await?,
        }
        match self.docker.start_container(&self.name, None).await {
            // 304: started meanwhile by a concurrent command.
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        match self.state().await? {
            RedisState::Running(Some(port)) => Ok(port),
            _ => Err(DockerError::Redis(format!(
                "container {} stopped right after its start: see `docker logs {}`",
                self.name, self.name
            ))),
        }
    }

    async fn create(&self, workspace: &Path) -> Result<()> {
        match self.docker.inspect_image(REDIS_IMAGE).await {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                return Err(DockerError::NoImage(REDIS_IMAGE.to_owned()));
            }
            Err(e) => return Err(e.into()),
        }
        let labels = HashMap::from([
            (LABEL_COMPONENT.to_owned(), "redis".to_owned()),
            (LABEL_WORKSPACE.to_owned(), workspace.display().to_string()),
        ]);
        // Creating a volume that exists returns it: its data (a previous container's) is kept.
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(self.volume.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await?;
        let body = ContainerCreateBody {
            image: Some(REDIS_IMAGE.to_owned()),
            hostname: Some(self.name.clone()),
            // The image's entry point is redis-server (the registry variant's entry point adds
            // it to arguments that start with `-`). AOF on, fsync every second, as locally.
            cmd: Some(
                [
                    "--bind",
                    "0.0.0.0",
                    "--protected-mode",
                    "no",
                    "--dir",
                    "/data",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--save",
                    "",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            labels: Some(labels),
            exposed_ports: Some(vec![PORT_KEY.to_owned()]),
            stop_timeout: Some(10),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:/data:rw", self.volume)]),
                // Loopback only: no password, so nothing beyond this host may reach it. Port 0
                // (empty): Docker picks a free port at each start.
                port_bindings: Some(HashMap::from([(
                    PORT_KEY.to_owned(),
                    Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }]),
                )])),
                cap_drop: Some(vec!["ALL".to_owned()]),
                security_opt: Some(vec!["no-new-privileges".to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self
            .docker
            .create_container(Some(CreateContainerOptionsBuilder::new().name(&self.name).build()), body)
            .await
        {
            Ok(_) => Ok(()),
            // Created concurrently by another command: use it.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Disconnects a stopped container from every network but the default bridge: an instance
    /// network it was attached to may be gone (a crash, a `docker network prune`), and Docker
    /// refuses to start a container attached to a missing network. `sett up` attaches it again.
    async fn detach_all(&self) -> Result<()> {
        let c = self.docker.inspect_container(&self.name, None).await?;
        let networks = c.network_settings.and_then(|n| n.networks).unwrap_or_default();
        for net in networks.keys().filter(|n| n.as_str() != "bridge") {
            let req = bollard::models::NetworkDisconnectRequest { container: self.name.clone(), force: Some(true) };
            // A network that no longer exists cannot be disconnected from: nothing to do then.
            let _ = self.docker.disconnect_network(net, req).await;
        }
        Ok(())
    }

    /// Attaches the container to an instance network (no-op when it is attached already).
    pub async fn attach(&self, network: &str) -> Result<()> {
        let c = self.docker.inspect_container(&self.name, None).await?;
        if c.network_settings.and_then(|n| n.networks).is_some_and(|n| n.contains_key(network)) {
            return Ok(());
        }
        let req =
            NetworkConnectRequest { container: self.name.clone(), endpoint_config: Some(EndpointSettings::default()) };
        self.docker.connect_network(network, req).await?;
        Ok(())
    }

    /// Stops the container (Redis writes its AOF on SIGTERM); its data stays in the volume.
    pub async fn stop(&self, grace: Duration) -> Result<()> {
        let t = grace.as_secs().max(1) as i32;
        match self.docker.stop_container(&self.name, Some(StopContainerOptionsBuilder::new().t(t).build())).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304 | 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the container and its volume, with every instance's data in it.
    pub async fn remove(&self) -> Result<()> {
        crate::remove(&self.docker, &self.name).await?;
        match self.docker.remove_volume(&self.volume, Some(RemoveVolumeOptionsBuilder::new().force(true).build())).await
        {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the volume exists (tests, and a `destroy` checking it removed it).
    pub async fn volume_exists(&self) -> Result<bool> {
        match self.docker.inspect_volume(&self.volume).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_name_is_stable_and_distinct_per_workspace() {
        let a = container_name(Path::new("/home/ana/repo"));
        assert_eq!(a, container_name(Path::new("/home/ana/repo")));
        assert_ne!(a, container_name(Path::new("/home/ana/repo2")));
        assert!(a.starts_with("sett-redis-") && a.len() == "sett-redis-".len() + 12, "{a}");
    }
}
