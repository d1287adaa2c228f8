//! The managed Redis: when no Redis URL is configured, `sett up` runs the workspace's own Redis
//! and records its URL under the workspace's `.sett/redis/`; any later command restarts it on
//! demand with its data. `runtime: local`: a `redis-server` from PATH on a free loopback port,
//! AOF under `.sett/redis/`, its pid recorded there. `runtime: docker`: a `sett-redis` container
//! (`sett_docker::WorkspaceRedis`: a named volume with AOF, its port published on loopback, the
//! daemons reaching it by name on the instance network), its name recorded in
//! `.sett/redis/container`. Whichever a workspace started first stays its Redis.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sett_core::config::RuntimeKind;
use sett_store::{Redis, RedisOptions};

use crate::process::{DaemonSpec, is_alive, spawn_daemon, terminate};

#[derive(Debug, thiserror::Error)]
pub enum RedisStartError {
    #[error(
        "no Redis is configured and `redis-server` is not on PATH: install it (Debian/Ubuntu: apt-get install -y redis-server) or pass --redis-url / set SETT_REDIS_URL"
    )]
    NotInstalled,
    #[error("cannot start the managed redis-server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the managed redis-server did not answer within {limit:?}; see its log: {log}")]
    NotReady { limit: Duration, log: String },
    #[error(transparent)]
    Docker(#[from] sett_docker::DockerError),
    #[error(
        "the workspace's Redis container {name} did not answer on {url} within {limit:?}; see `docker logs {name}`"
    )]
    ContainerNotReady { name: String, url: String, limit: Duration },
    #[error(
        "this workspace's Redis is the local runtime's redis-server ({dir}), which containers cannot reach (it listens on loopback only): \
         pass --redis-url / set SETT_REDIS_URL to a Redis the containers reach, or — to have `sett up` start a sett-redis container instead — \
         stop its instances with `sett down` and remove {dir} (their data goes with it; `sett export` keeps a copy)"
    )]
    LocalForDocker { dir: String },
}

/// Wait this long for a managed Redis to answer after starting it.
const READY_LIMIT: Duration = Duration::from_secs(15);

/// The managed Redis of one workspace (state in `dir`, normally `<workspace>/.sett/redis`).
#[derive(Debug, Clone)]
pub struct ManagedRedis {
    pub dir: PathBuf,
}

impl ManagedRedis {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn url_file(&self) -> PathBuf {
        self.dir.join("url")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }

    fn container_file(&self) -> PathBuf {
        self.dir.join("container")
    }

    /// The workspace (`dir` is `<workspace>/.sett/redis`).
    fn workspace(&self) -> &Path {
        self.dir.parent().and_then(Path::parent).unwrap_or(&self.dir)
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// True when this workspace has (or had) a managed Redis.
    pub fn exists(&self) -> bool {
        self.url_file().exists() || self.container_file().exists()
    }

    /// The runtime whose Redis this workspace has: a `redis-server` process or a container.
    pub fn kind(&self) -> Option<RuntimeKind> {
        if self.container().is_some() {
            Some(RuntimeKind::Docker)
        } else if self.exists() {
            Some(RuntimeKind::Local)
        } else {
            None
        }
    }

    /// The name of the workspace's Redis container (docker runtime).
    pub fn container(&self) -> Option<String> {
        std::fs::read_to_string(self.container_file()).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// The URL the instance's containers use for the workspace's Redis container (its name on
    /// the instance network); `None` for a `redis-server` process.
    pub fn container_url(&self) -> Option<String> {
        self.container().map(|name| format!("redis://{name}:{}", sett_docker::REDIS_PORT))
    }

    pub fn url(&self) -> Option<String> {
        std::fs::read_to_string(self.url_file()).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    }

    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file()).ok().and_then(|s| s.trim().parse().ok())
    }

    /// Whether the managed Redis runs (its process, or its container).
    pub async fn is_running(&self) -> bool {
        match self.container() {
            Some(name) => match sett_docker::WorkspaceRedis::connect(&name).await {
                Ok(r) => matches!(r.state().await, Ok(sett_docker::RedisState::Running(_))),
                Err(_) => false,
            },
            None => self.pid().is_some_and(is_alive),
        }
    }

    /// Returns the URL of the running managed Redis, starting it (with its data) when it is not
    /// running; the runtime is the one that started it first.
    pub async fn ensure(&self) -> Result<String, RedisStartError> {
        match self.container() {
            Some(name) => self.ensure_container(&name).await,
            None => self.ensure_local().await,
        }
    }

    /// Like [`ManagedRedis::ensure`], for `sett up` of an instance of `runtime`: a workspace
    /// without a managed Redis gets one of that runtime. A docker instance cannot use the local
    /// runtime's Redis (it listens on loopback only); a local instance may use a container's.
    pub async fn ensure_for(&self, runtime: RuntimeKind) -> Result<String, RedisStartError> {
        match (self.kind(), runtime) {
            (Some(RuntimeKind::Docker), _) => self.ensure().await,
            (Some(RuntimeKind::Local), RuntimeKind::Docker) => {
                Err(RedisStartError::LocalForDocker { dir: self.dir.display().to_string() })
            }
            (None, RuntimeKind::Docker) => {
                self.ensure_container(&sett_docker::redis_container_name(self.workspace())).await
            }
            (_, RuntimeKind::Local) => self.ensure_local().await,
        }
    }

    /// Starts (creating it when missing) the workspace's Redis container and records its name
    /// and its URL on the host (the published port changes at each start).
    async fn ensure_container(&self, name: &str) -> Result<String, RedisStartError> {
        let redis = sett_docker::WorkspaceRedis::connect(name).await?;
        let port = redis.ensure(self.workspace()).await?;
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.container_file(), name)?;
        let url = format!("redis://127.0.0.1:{port}");
        let started = Instant::now();
        while started.elapsed() < READY_LIMIT {
            if ping(&url).await {
                std::fs::write(self.url_file(), &url)?;
                return Ok(url);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(RedisStartError::ContainerNotReady { name: name.to_owned(), url, limit: READY_LIMIT })
    }

    /// What [`ManagedRedis::remove`] removes, for a destroy's dry run and audit record: the
    /// container and its volume; `None` for a `redis-server` process (it stays).
    pub fn removal(&self) -> Option<String> {
        let name = self.container()?;
        Some(format!("container {name} and volume {name}-data"))
    }

    /// Removes the workspace's Redis container with its volume (all its data) and forgets it;
    /// a `redis-server` process is left as it is. Returns what was removed.
    pub async fn remove(&self) -> Result<Option<String>, RedisStartError> {
        let (Some(name), Some(what)) = (self.container(), self.removal()) else { return Ok(None) };
        sett_docker::WorkspaceRedis::connect(&name).await?.remove().await?;
        for f in [self.container_file(), self.url_file()] {
            match std::fs::remove_file(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(Some(what))
    }

    async fn ensure_local(&self) -> Result<String, RedisStartError> {
        if let (Some(url), true) = (self.url(), self.pid().is_some_and(is_alive))
            && ping(&url).await
        {
            return Ok(url);
        }
        if which("redis-server").is_none() {
            return Err(RedisStartError::NotInstalled);
        }
        std::fs::create_dir_all(&self.dir)?;
        let port = self
            .url()
            .and_then(|u| u.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse::<u16>().ok()))
            .filter(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .map_or_else(free_port, Ok)?;
        let spec = DaemonSpec {
            program: "redis-server".into(),
            args: vec![
                "--port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--dir".into(),
                self.dir.display().to_string(),
                "--appendonly".into(),
                "yes".into(),
                "--appendfsync".into(),
                "everysec".into(),
                "--save".into(),
                "".into(),
                "--protected-mode".into(),
                "yes".into(),
            ],
            env: BTreeMap::new(),
            cwd: self.dir.clone(),
            log_file: self.log_file(),
        };
        let pid = spawn_daemon(&spec)?;
        std::fs::write(self.pid_file(), pid.to_string())?;
        let url = format!("redis://127.0.0.1:{port}");
        let limit = READY_LIMIT;
        let started = Instant::now();
        while started.elapsed() < limit {
            if ping(&url).await {
                std::fs::write(self.url_file(), &url)?;
                return Ok(url);
            }
            if !is_alive(pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(RedisStartError::NotReady { limit, log: self.log_file().display().to_string() })
    }

    /// Stops the managed Redis (it writes its AOF on the way out); the data stays.
    pub async fn stop(&self, grace: Duration) -> Result<(), RedisStartError> {
        if let Some(name) = self.container() {
            sett_docker::WorkspaceRedis::connect(&name).await?.stop(grace).await?;
        } else if let Some(pid) = self.pid() {
            tokio::task::spawn_blocking(move || terminate(pid, grace)).await.map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

async fn ping(url: &str) -> bool {
    let mut opts = RedisOptions::new(url);
    opts.command_timeout = Duration::from_secs(1);
    match tokio::time::timeout(Duration::from_secs(2), Redis::connect(opts)).await {
        Ok(Ok(r)) => {
            let ok = r.ping(Duration::from_secs(1)).await.is_ok();
            r.quit().await;
            ok
        }
        _ => false,
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The path of `program` on PATH.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_docker_instance_refuses_the_local_runtimes_redis_with_the_fix() {
        let ws = tempfile::tempdir().unwrap();
        let managed = ManagedRedis::new(ws.path().join(".sett/redis"));
        assert_eq!(managed.kind(), None);
        std::fs::create_dir_all(&managed.dir).unwrap();
        std::fs::write(managed.dir.join("url"), "redis://127.0.0.1:1").unwrap();
        assert_eq!(managed.kind(), Some(RuntimeKind::Local));
        assert_eq!(managed.container_url(), None);
        assert_eq!(managed.removal(), None, "destroy leaves a redis-server process alone");
        let e = managed.ensure_for(RuntimeKind::Docker).await.unwrap_err().to_string();
        assert!(e.contains("--redis-url") && e.contains(&managed.dir.display().to_string()), "{e}");
        // A recorded container is the workspace's Redis whatever the runtime asks.
        std::fs::write(managed.dir.join("container"), "sett-redis-0123456789ab").unwrap();
        assert_eq!(managed.kind(), Some(RuntimeKind::Docker));
        assert_eq!(managed.container_url().as_deref(), Some("redis://sett-redis-0123456789ab:6379"));
        assert!(managed.removal().unwrap().contains("volume sett-redis-0123456789ab-data"));
    }
}
