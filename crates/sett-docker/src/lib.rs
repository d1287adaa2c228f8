//! The docker runtime (`runtime: docker`): an instance's orchestrator and cubs as containers of
//! the locally built runtime image on the instance network `sett-<instance>`, controller workers
//! as ephemeral containers ([`DockerWorkerLauncher`]), the workspace's own Redis container when
//! no Redis URL is configured ([`WorkspaceRedis`]), and the discovery and cleanup of all of
//! them through labels (`sett.instance`, `sett.component`, `sett.agent`, `sett.claim`). It
//! prints nothing.
//!
//! Every container runs the image's entry script, which records the container's own address as
//! the health address (reachable from the host over the bridge) and appends the daemon's output
//! to its log file under the workspace's `.sett/logs/<instance>/` (bind-mounted read-write even
//! for read-only agents), so `sett status` and `sett logs` work as with the local runtime.

mod access;
mod launcher;
mod redis;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, EndpointSettings, HostConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use serde::{Deserialize, Serialize};

pub use access::{check_workspace_access, numeric_user};
pub use launcher::DockerWorkerLauncher;
pub use redis::{LABEL_WORKSPACE, REDIS_PORT, RedisState, WorkspaceRedis, container_name as redis_container_name};

/// The runtime image built by `cargo xtask images`.
pub const DEFAULT_IMAGE: &str = "sett-runtime:dev";
/// The Redis image built by `cargo xtask images`.
pub const REDIS_IMAGE: &str = "sett-redis:dev";
/// The environment variable carrying a [`Spec`] (JSON) into the orchestrator container.
pub const SPEC_ENV: &str = "SETT_DOCKER_SPEC";
/// The host name containers use to reach the Docker host (mapped to the bridge gateway).
pub const HOST_GATEWAY: &str = "host.docker.internal";

pub const LABEL_INSTANCE: &str = "sett.instance";
pub const LABEL_COMPONENT: &str = "sett.component";
pub const LABEL_AGENT: &str = "sett.agent";
pub const LABEL_CLAIM: &str = "sett.claim";
pub const LABEL_SEQ: &str = "sett.seq";

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine ({0}): start Docker (or set DOCKER_HOST), or use `runtime: local` in sett.yml"
    )]
    Unavailable(String),
    #[error("the image {0} is missing: build it with `cargo xtask images` (no registry pull is needed)")]
    NoImage(String),
    #[error("the workspace's Redis container: {0}")]
    Redis(String),
    #[error("docker: {0}")]
    Api(#[from] bollard::errors::Error),
}

pub type Result<T> = std::result::Result<T, DockerError>;

/// Everything needed to run one instance's containers. The host paths are mounted at the same
/// paths inside the containers, so paths in logs, records and the config mean the same on both
/// sides.
#[derive(Clone, Serialize, Deserialize)]
pub struct Spec {
    pub instance: String,
    pub image: String,
    /// The workspace (host path).
    pub workspace: PathBuf,
    /// The sett.yml (host path, inside the workspace).
    pub config: PathBuf,
    /// `<workspace>/.sett/logs/<instance>`.
    pub log_dir: PathBuf,
    /// `uid:gid` the containers run as (never root).
    pub user: String,
    /// The Redis URL of the orchestrator, as seen from the containers.
    pub redis_url: String,
    /// The Redis URL of cubs and workers (a less privileged ACL user, docs/security.md);
    /// `None`: `redis_url`.
    #[serde(default)]
    pub cub_redis_url: Option<String>,
    /// The Docker socket (host path) mounted into the orchestrator so it can launch workers;
    /// `None` when the configuration has no controller agents.
    pub socket: Option<PathBuf>,
    /// The socket's group, added to the orchestrator's user so it may use the socket.
    pub socket_gid: Option<u32>,
    /// Agents whose workspace is mounted read-write (the others get it read-only).
    pub rw_agents: Vec<String>,
    /// Names of environment variables passed from the launching process into the orchestrator
    /// container: the webhooks' `secret_env` (locally the orchestrator inherits them; a container
    /// starts with an empty environment). Only the names are part of the spec.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// The workspace's own Redis container ([`WorkspaceRedis`]), attached to the instance
    /// network when it is created; `None` with a configured Redis URL.
    #[serde(default)]
    pub redis_container: Option<String>,
}

impl std::fmt::Debug for Spec {
    // Redis URLs may carry ACL passwords: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("instance", &self.instance)
            .field("image", &self.image)
            .field("workspace", &self.workspace)
            .field("user", &self.user)
            .field("redis_url", &sett_store::redact_url(&self.redis_url))
            .field("cub_redis_url", &self.cub_redis_url.as_deref().map(sett_store::redact_url))
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Spec {
    pub fn network(&self) -> String {
        network_name(&self.instance)
    }

    pub fn container_name(&self, component: &str) -> String {
        format!("sett-{}-{}", self.instance, component.replace(':', "-"))
    }

    fn cub_url(&self) -> &str {
        self.cub_redis_url.as_deref().unwrap_or(&self.redis_url)
    }

    fn labels(&self, component: &str, agent: Option<&str>) -> HashMap<String, String> {
        let mut l = HashMap::from([
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            (LABEL_COMPONENT.to_owned(), component.to_owned()),
        ]);
        if let Some(a) = agent {
            l.insert(LABEL_AGENT.to_owned(), a.to_owned());
        }
        l
    }

    fn base_env(&self, log_file: &str, redis_url: &str) -> Vec<String> {
        vec![
            format!("SETT_INSTANCE={}", self.instance),
            format!("SETT_REDIS_URL={redis_url}"),
            format!("SETT_CONFIG={}", self.config.display()),
            format!("SETT_WORKSPACE={}", self.workspace.display()),
            format!("SETT_LOG_FILE={}", self.log_dir.join(log_file).display()),
            "SETT_RUNTIME=docker".to_owned(),
        ]
    }

    /// `<workspace>/.sett/ledger`: where the orchestrator keeps the highest ledger head it saw
    /// and the witness file (mounted `rw` into its container, over the read-only workspace).
    pub fn ledger_dir(&self) -> PathBuf {
        self.workspace.join(".sett").join("ledger")
    }

    /// The workspace mounted `ro` or `rw`, and the log directory always `rw` on top of it.
    fn binds(&self, rw: bool) -> Vec<String> {
        let ws = self.workspace.display();
        let logs = self.log_dir.display();
        vec![format!("{ws}:{ws}:{}", if rw { "rw" } else { "ro" }), format!("{logs}:{logs}:rw")]
    }

    /// The container of one component (`orchestrator`, `cub:<agent>` or a worker).
    fn container(
        &self,
        labels: HashMap<String, String>,
        hostname: Option<String>,
        cmd: Vec<String>,
        env: Vec<String>,
        binds: Vec<String>,
        group_add: Option<Vec<String>>,
    ) -> ContainerCreateBody {
        ContainerCreateBody {
            image: Some(self.image.clone()),
            hostname,
            user: Some(self.user.clone()),
            cmd: Some(cmd),
            env: Some(env),
            working_dir: Some(self.workspace.display().to_string()),
            labels: Some(labels),
            // The daemons handle SIGTERM; give running tools the same grace as locally.
            stop_timeout: Some(15),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some(self.network()),
                extra_hosts: Some(vec![format!("{HOST_GATEWAY}:host-gateway")]),
                group_add,
                // A tiny init reaps the tools' orphans; the daemon is its only child.
                init: Some(true),
                cap_drop: Some(vec!["ALL".to_owned()]),
                security_opt: Some(vec!["no-new-privileges".to_owned()]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(self.network(), EndpointSettings::default())])),
            }),
            ..Default::default()
        }
    }

    fn orchestrator_container(&self, host_env: impl Fn(&str) -> Option<String>) -> ContainerCreateBody {
        let mut env = self.base_env("orchestrator.log", &self.redis_url);
        // An unset variable is left out: the orchestrator then names it in its start-up error.
        env.extend(self.pass_env.iter().filter_map(|k| host_env(k).map(|v| format!("{k}={v}"))));
        env.push(format!("SETT_LOG_DIR={}", self.log_dir.display()));
        env.push(format!("{SPEC_ENV}={}", serde_json::to_string(self).expect("serializable")));
        let mut binds = self.binds(false);
        let ledger = self.ledger_dir();
        binds.push(format!("{}:{}:rw", ledger.display(), ledger.display()));
        if let Some(s) = &self.socket {
            binds.push(format!("{}:/var/run/docker.sock:rw", s.display()));
            env.push("DOCKER_HOST=unix:///var/run/docker.sock".to_owned());
        }
        // A stable host name: a new orchestrator container recognises the lock of the killed
        // one as its own predecessor's (only one container can have this name).
        self.container(
            self.labels("orchestrator", None),
            Some(self.container_name("orchestrator")),
            vec!["sett-orchestrator".to_owned()],
            env,
            binds,
            self.socket_gid.map(|g| vec![g.to_string()]),
        )
    }

    fn cub_container(&self, agent: &str) -> ContainerCreateBody {
        let mut env = self.base_env(&format!("{agent}.log"), self.cub_url());
        env.push(format!("SETT_AGENT={agent}"));
        self.container(
            self.labels("cub", Some(agent)),
            None,
            vec!["sett-cub".to_owned()],
            env,
            self.binds(self.rw_agents.iter().any(|a| a == agent)),
            None,
        )
    }

    fn worker_container(&self, agent: &str, claim: &str, seq: u64) -> ContainerCreateBody {
        let mut env = self.base_env(&format!("{agent}-workers.log"), self.cub_url());
        env.push(format!("SETT_AGENT={agent}"));
        let mut labels = self.labels("worker", Some(agent));
        labels.insert(LABEL_CLAIM.to_owned(), claim.to_owned());
        labels.insert(LABEL_SEQ.to_owned(), seq.to_string());
        // Workers have no health server: SETT_HEALTH_ADDR is set so the entry script skips it.
        env.push("SETT_HEALTH_ADDR=127.0.0.1:0".to_owned());
        self.container(
            labels,
            None,
            vec![
                "sett-cub".to_owned(),
                "--execute-claim".to_owned(),
                claim.to_owned(),
                "--seq".to_owned(),
                seq.to_string(),
            ],
            env,
            self.binds(self.rw_agents.iter().any(|a| a == agent)),
            None,
        )
    }
}

pub fn network_name(instance: &str) -> String {
    format!("sett-{instance}")
}

/// The Redis URL (or any URL) as containers on the instance network see it: a loopback host
/// becomes the Docker host's gateway (the server must listen on an address the bridge reaches).
pub fn container_redis_url(url: &str) -> String {
    for local in ["127.0.0.1", "localhost", "[::1]"] {
        for sep in ["@", "//"] {
            let from = format!("{sep}{local}");
            if let Some(i) = url.find(&from) {
                let end = i + from.len();
                if url[end..].starts_with(':') || url[end..].starts_with('/') || end == url.len() {
                    return format!("{}{sep}{HOST_GATEWAY}{}", &url[..i], &url[end..]);
                }
            }
        }
    }
    url.to_owned()
}

/// The OpenTelemetry variables (`OTEL_*`) of `vars`, the launching process's environment, as
/// a container gets them: locally the daemons inherit them, a container starts with an empty
/// environment. With them a containerised orchestrator and its cubs export traces as local ones
/// do, and each tool run gets its `TRACEPARENT`. A loopback endpoint (a collector on the host)
/// points at the Docker host instead, as Redis URLs do ([`container_redis_url`]). Sorted; empty
/// values are left out.
pub fn otel_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut env: Vec<String> = vars
        .into_iter()
        .filter(|(k, v)| k.starts_with("OTEL_") && !v.trim().is_empty())
        .map(|(k, v)| {
            let v = if k.ends_with("_ENDPOINT") { container_redis_url(&v) } else { v };
            format!("{k}={v}")
        })
        .collect();
    env.sort();
    env
}

/// `body` with the OpenTelemetry variables of `vars` added to its environment ([`otel_env`]).
pub(crate) fn with_otel_env(
    mut body: ContainerCreateBody,
    vars: impl IntoIterator<Item = (String, String)>,
) -> ContainerCreateBody {
    body.env.get_or_insert_with(Vec::new).extend(otel_env(vars));
    body
}

/// The user the containers run as: the workspace owner when that is not root (so `rw` agents
/// can write it), else the image's `sett` user (uid 10001).
pub fn default_user(workspace: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(workspace) {
        Ok(m) if m.uid() != 0 => format!("{}:{}", m.uid(), m.gid()),
        _ => "10001:10001".to_owned(),
    }
}

/// The Docker socket on this host and its group.
pub fn local_socket() -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    let path = match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(h.trim_start_matches("unix://")),
        Ok(h) if !h.is_empty() => return None,
        _ => PathBuf::from("/var/run/docker.sock"),
    };
    let gid = std::fs::metadata(&path).ok()?.gid();
    Some((path, gid))
}

/// A connection to the Docker engine, API version negotiated (the engine may be older than
/// bollard's default version).
pub async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults().map_err(|e| DockerError::Unavailable(e.to_string()))?;
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| DockerError::Unavailable("no answer within 10s".into()))?
        .map_err(|e| DockerError::Unavailable(e.to_string()))?;
    Ok(docker)
}

/// One component container of an instance.
#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    pub name: String,
    /// `orchestrator`, `cub` or `worker`.
    pub component: String,
    pub agent: Option<String>,
    pub claim: Option<String>,
    pub seq: Option<u64>,
    pub running: bool,
}

impl Component {
    /// The name the component registers under in the instance's components hash.
    pub fn registered_as(&self) -> String {
        match (&*self.component, &self.agent) {
            ("cub", Some(a)) => sett_core::record::cub_component(a),
            (c, _) => c.to_owned(),
        }
    }

    fn from_summary(s: ContainerSummary) -> Self {
        let labels = s.labels.unwrap_or_default();
        Self {
            id: s.id.unwrap_or_default(),
            name: s.names.and_then(|n| n.first().cloned()).unwrap_or_default().trim_start_matches('/').to_owned(),
            component: labels.get(LABEL_COMPONENT).cloned().unwrap_or_default(),
            agent: labels.get(LABEL_AGENT).cloned(),
            claim: labels.get(LABEL_CLAIM).cloned(),
            seq: labels.get(LABEL_SEQ).and_then(|s| s.parse().ok()),
            running: matches!(
                s.state,
                Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING)
            ),
        }
    }
}

/// The docker runtime of one instance.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    instance: String,
}

impl DockerRuntime {
    pub async fn connect(instance: &str) -> Result<Self> {
        Ok(Self { docker: connect().await?, instance: instance.to_owned() })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Every container of the instance (running or not), optionally of one component kind.
    pub async fn containers(&self, component: Option<&str>) -> Result<Vec<Component>> {
        list(&self.docker, &self.instance, component).await
    }

    /// Creates the instance network unless it exists, and attaches the workspace's Redis
    /// container (`redis`) to it so the daemons reach it by name.
    pub async fn ensure_network(&self, redis: Option<&str>) -> Result<()> {
        self.create_network().await?;
        if let Some(r) = redis {
            WorkspaceRedis::connect(r).await?.attach(&network_name(&self.instance)).await?;
        }
        Ok(())
    }

    async fn create_network(&self) -> Result<()> {
        let name = network_name(&self.instance);
        if self.network_exists(&name).await? {
            return Ok(());
        }
        let req = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(LABEL_INSTANCE.to_owned(), self.instance.clone())])),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            // Created concurrently: fine.
            Err(_) if self.network_exists(&name).await? => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn network_exists(&self, name: &str) -> Result<bool> {
        let filters = HashMap::from([("name", vec![name])]);
        let nets = self.docker.list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build())).await?;
        Ok(nets.iter().any(|n| n.name.as_deref() == Some(name)))
    }

    /// Fails with what to do when the image is not on this machine.
    pub async fn require_image(&self, image: &str) -> Result<()> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                Err(DockerError::NoImage(image.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Starts the orchestrator container (replacing a stopped one of the same name).
    pub async fn start_orchestrator(&self, spec: &Spec) -> Result<String> {
        let body = spec.orchestrator_container(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        self.create_and_start(&spec.container_name("orchestrator"), with_otel_env(body, std::env::vars())).await
    }

    /// Starts the cub container of `agent` (replacing a stopped one of the same name).
    pub async fn start_cub(&self, spec: &Spec, agent: &str) -> Result<String> {
        let body = with_otel_env(spec.cub_container(agent), std::env::vars());
        self.create_and_start(&spec.container_name(&format!("cub-{agent}")), body).await
    }

    async fn create_and_start(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        self.remove(name).await?;
        let created =
            self.docker.create_container(Some(CreateContainerOptionsBuilder::new().name(name).build()), body).await?;
        self.docker.start_container(&created.id, None).await?;
        Ok(created.id)
    }

    /// Removes a container (stopped or not); a missing one is fine.
    pub async fn remove(&self, name_or_id: &str) -> Result<()> {
        remove(&self.docker, name_or_id).await
    }

    /// Stops every container of the instance (SIGTERM, then SIGKILL after `grace`), removes
    /// them and the instance network. Returns the components that had to be killed.
    pub async fn down(&self, grace: Duration) -> Result<Vec<String>> {
        let all = self.containers(None).await?;
        let stops = all.iter().filter(|c| c.running).map(|c| {
            let docker = self.docker.clone();
            let c = c.clone();
            async move {
                let t = grace.as_secs().max(1) as i32;
                let started = tokio::time::Instant::now();
                let _ = docker.stop_container(&c.id, Some(StopContainerOptionsBuilder::new().t(t).build())).await;
                // `docker stop` returns after the kill too; a stop that took the whole grace
                // period was a kill.
                (c.registered_as(), started.elapsed() >= grace)
            }
        });
        let forced: Vec<String> =
            futures::future::join_all(stops).await.into_iter().filter(|(_, killed)| *killed).map(|(c, _)| c).collect();
        for c in self.containers(None).await? {
            self.remove(&c.id).await?;
        }
        self.remove_network().await?;
        Ok(forced)
    }

    /// Removes the instance network when no container of the instance is left (what a failed
    /// `sett up` created before it discarded its containers). Returns whether it is gone.
    pub async fn remove_network_if_unused(&self) -> Result<bool> {
        if !self.containers(None).await?.is_empty() {
            return Ok(false);
        }
        self.remove_network().await?;
        Ok(true)
    }

    async fn remove_network(&self) -> Result<()> {
        let name = network_name(&self.instance);
        if !self.network_exists(&name).await? {
            return Ok(());
        }
        // What is still attached is not the instance's (the workspace's Redis, which outlives
        // it): detach it, or Docker refuses to remove the network.
        if let Ok(net) = self.docker.inspect_network(&name, None).await {
            for (id, _) in net.containers.unwrap_or_default() {
                let req = NetworkDisconnectRequest { container: id, force: Some(true) };
                let _ = self.docker.disconnect_network(&name, req).await;
            }
        }
        match self.docker.remove_network(&name).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Disconnects a container from the instance network (fault injection, maintenance).
    pub async fn disconnect(&self, container: &str) -> Result<()> {
        let req = NetworkDisconnectRequest { container: container.to_owned(), force: Some(true) };
        self.docker.disconnect_network(&network_name(&self.instance), req).await?;
        Ok(())
    }

    /// Connects a container to the instance network again.
    pub async fn connect_network(&self, container: &str) -> Result<()> {
        let req = NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: Some(EndpointSettings::default()),
        };
        self.docker.connect_network(&network_name(&self.instance), req).await?;
        Ok(())
    }

    /// How a stopped container ended: its exit code and the last `lines` of its own output
    /// (stdout and stderr, as `docker logs` shows them) — what is left to read when the daemon
    /// died before it wrote its log file.
    pub async fn exit_report(&self, container: &str, lines: usize) -> Result<(Option<i64>, String)> {
        let code = self.docker.inspect_container(container, None).await?.state.and_then(|s| s.exit_code);
        let opts = bollard::query_parameters::LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(container, Some(opts));
        let mut out = String::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            match chunk {
                Ok(c) => out.push_str(&String::from_utf8_lossy(&c.into_bytes())),
                Err(_) => break,
            }
        }
        Ok((code, out))
    }

    /// Kills a container at once (SIGKILL), as a crash would.
    pub async fn kill(&self, container: &str) -> Result<()> {
        self.docker.kill_container(container, None).await?;
        Ok(())
    }
}

pub(crate) async fn list(docker: &Docker, instance: &str, component: Option<&str>) -> Result<Vec<Component>> {
    let mut labels = vec![format!("{LABEL_INSTANCE}={instance}")];
    if let Some(c) = component {
        labels.push(format!("{LABEL_COMPONENT}={c}"));
    }
    let filters: HashMap<&str, Vec<String>> = HashMap::from([("label", labels)]);
    let found =
        docker.list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build())).await?;
    Ok(found.into_iter().map(Component::from_summary).collect())
}

pub(crate) async fn remove(docker: &Docker, name_or_id: &str) -> Result<()> {
    match docker.remove_container(name_or_id, Some(RemoveContainerOptionsBuilder::new().force(true).build())).await {
        Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        // Already being removed.
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The [`Spec`] handed to a daemon running in the orchestrator container (`SETT_DOCKER_SPEC`),
/// `None` outside the docker runtime.
pub fn spec_from_env() -> std::result::Result<Option<Spec>, serde_json::Error> {
    match std::env::var(SPEC_ENV) {
        Ok(s) if !s.is_empty() => serde_json::from_str(&s).map(Some),
        _ => Ok(None),
    }
}

/// Which agents get the workspace read-write, from the parsed configuration.
pub fn rw_agents(config: &sett_core::config::SettConfig) -> Vec<String> {
    config
        .agents
        .iter()
        .filter(|(_, a)| a.workspace_mode == sett_core::config::WorkspaceMode::Rw)
        .map(|(n, _)| n.to_string())
        .collect()
}

/// The environment variables the orchestrator container needs from the launching process: the
/// webhooks' `secret_env` names.
pub fn pass_env(config: &sett_core::config::SettConfig) -> Vec<String> {
    let mut names: Vec<String> = config
        .notifications
        .webhooks
        .iter()
        .filter_map(|w| match &w.secret {
            Some(sett_core::config::WebhookSecret::Env(var)) => Some(var.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Labels of a worker container, for callers matching workers to claims.
pub fn worker_key(c: &Component) -> Option<(String, u64)> {
    Some((c.claim.clone()?, c.seq?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redis_urls_point_at_the_docker_host() {
        assert_eq!(container_redis_url("redis://127.0.0.1:6379"), "redis://host.docker.internal:6379");
        assert_eq!(
            container_redis_url("redis://user:pw@localhost:7000/0"),
            "redis://user:pw@host.docker.internal:7000/0"
        );
        assert_eq!(container_redis_url("rediss://redis.example.com:6380"), "rediss://redis.example.com:6380");
    }

    /// A spec of instance `i1` in `/ws` with no agent-specific settings.
    fn plain_spec() -> Spec {
        Spec {
            instance: "i1".into(),
            image: DEFAULT_IMAGE.into(),
            workspace: "/ws".into(),
            config: "/ws/sett.yml".into(),
            log_dir: "/ws/.sett/logs/i1".into(),
            user: "10001:10001".into(),
            redis_url: "redis://h:1".into(),
            cub_redis_url: None,
            socket: None,
            socket_gid: None,
            rw_agents: vec![],
            pass_env: vec![],
            redis_container: None,
        }
    }

    #[test]
    fn read_only_agents_get_a_read_only_workspace_and_writable_logs() {
        let spec =
            Spec { cub_redis_url: Some("redis://cub@h:1".into()), rw_agents: vec!["Writer".into()], ..plain_spec() };
        let binds = |agent: &str| spec.cub_container(agent).host_config.unwrap().binds.unwrap();
        assert_eq!(binds("Reviewer"), ["/ws:/ws:ro", "/ws/.sett/logs/i1:/ws/.sett/logs/i1:rw"]);
        assert_eq!(binds("Writer")[0], "/ws:/ws:rw");
        let w = spec.worker_container("Writer", "c1", 2);
        let labels = w.labels.unwrap();
        assert_eq!(labels[LABEL_CLAIM], "c1");
        assert_eq!(labels[LABEL_COMPONENT], "worker");
        assert_eq!(w.user.as_deref(), Some("10001:10001"));
        assert!(w.env.unwrap().contains(&"SETT_REDIS_URL=redis://cub@h:1".to_owned()));
        let o = spec.orchestrator_container(|_| None);
        assert!(o.env.unwrap().contains(&"SETT_REDIS_URL=redis://h:1".to_owned()));
        // The orchestrator keeps its ledger head and the witness file outside Redis.
        assert!(o.host_config.unwrap().binds.unwrap().contains(&"/ws/.sett/ledger:/ws/.sett/ledger:rw".to_owned()));
        let secret = Spec { redis_url: "redis://u:hunter2@h:1".into(), ..spec.clone() };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn opentelemetry_variables_reach_every_container_with_loopback_endpoints_on_the_docker_host() {
        let host = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://localhost:4318/v1/traces"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k"),
            ("OTEL_SERVICE_NAME", " "),
            ("PATH", "/usr/bin"),
            ("MY_OTEL_THING", "x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let want = [
            "OTEL_EXPORTER_OTLP_ENDPOINT=http://host.docker.internal:4318",
            "OTEL_EXPORTER_OTLP_HEADERS=x-api-key=k",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://host.docker.internal:4318/v1/traces",
        ];
        assert_eq!(otel_env(host.clone()), want);
        assert_eq!(
            otel_env([("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), "https://otel.example.com:4318".to_owned())]),
            ["OTEL_EXPORTER_OTLP_ENDPOINT=https://otel.example.com:4318"]
        );
        let spec = plain_spec();
        for body in [
            spec.orchestrator_container(|_| None),
            spec.cub_container("Writer"),
            spec.worker_container("Writer", "c1", 1),
        ] {
            let env = with_otel_env(body, host.clone()).env.unwrap();
            for w in want {
                assert!(env.contains(&w.to_owned()), "{env:?}");
            }
            assert!(env.contains(&"SETT_RUNTIME=docker".to_owned()) && !env.iter().any(|e| e.starts_with("PATH=")));
        }
        // A worker launched from inside the orchestrator container gets what it was given.
        let inside = otel_env(want.map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap()));
        assert_eq!(inside, want);
    }

    #[test]
    fn webhook_secret_env_reaches_the_orchestrator_container_only() {
        let yml = r#"
version: "1.0"
agents:
  Writer:
    command: ["./write.sh"]
    bidding_strategy: exclusive
notifications:
  webhooks:
    - name: team
      url: https://hooks.example.com/a
      events: [question_asked]
      secret_env: TEAM_HOOK_SECRET
    - name: ops
      url: https://hooks.example.com/b
      events: [workflow_failed]
      secret_env: OPS_HOOK_SECRET
    - name: plain
      url: https://hooks.example.com/c
      events: [workflow_failed]
"#;
        let config = sett_core::config::SettConfig::parse("sett.yml", yml).unwrap();
        let names = pass_env(&config);
        assert_eq!(names, ["OPS_HOOK_SECRET", "TEAM_HOOK_SECRET"]);
        let spec = Spec { pass_env: names, ..plain_spec() };
        let host = |k: &str| match k {
            "TEAM_HOOK_SECRET" => Some("s3cr3t-team".to_owned()),
            "OPS_HOOK_SECRET" => Some("s3cr3t-ops".to_owned()),
            _ => None,
        };
        let env = spec.orchestrator_container(host).env.unwrap();
        assert!(env.contains(&"TEAM_HOOK_SECRET=s3cr3t-team".to_owned()), "{env:?}");
        assert!(env.contains(&"OPS_HOOK_SECRET=s3cr3t-ops".to_owned()));
        // The spec handed to the container names the variables, never their values.
        let spec_env = env.iter().find(|e| e.starts_with(SPEC_ENV)).unwrap();
        assert!(spec_env.contains("TEAM_HOOK_SECRET") && !spec_env.contains("s3cr3t"));
        // A variable unset on the host is left out (the orchestrator then says which one).
        let partial = spec.orchestrator_container(|k| (k == "OPS_HOOK_SECRET").then(|| "x".to_owned())).env.unwrap();
        assert!(!partial.iter().any(|e| e.starts_with("TEAM_HOOK_SECRET=")));
        // Cubs and workers never get the secrets.
        for env in [spec.cub_container("Writer").env.unwrap(), spec.worker_container("Writer", "c1", 1).env.unwrap()] {
            assert!(!env.iter().any(|e| e.contains("HOOK_SECRET=")), "{env:?}");
        }
    }
}
