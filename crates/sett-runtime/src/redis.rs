//! The managed Redis: when no Redis URL is configured, `sett up` runs a `redis-server` from PATH
//! on a free loopback port, with AOF persistence under the workspace's `.sett/redis/`, and records
//! its URL and pid there. Any later command restarts it on demand with its data.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
}

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

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// True when this workspace has (or had) a managed Redis.
    pub fn exists(&self) -> bool {
        self.url_file().exists()
    }

    pub fn url(&self) -> Option<String> {
        std::fs::read_to_string(self.url_file()).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    }

    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file()).ok().and_then(|s| s.trim().parse().ok())
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(is_alive)
    }

    /// Returns the URL of the running managed Redis, starting it (on its previous port when
    /// free, with its data) when it is not running.
    pub async fn ensure(&self) -> Result<String, RedisStartError> {
        if let (Some(url), true) = (self.url(), self.is_running())
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
        let limit = Duration::from_secs(15);
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
    pub fn stop(&self, grace: Duration) -> bool {
        match self.pid() {
            Some(pid) => terminate(pid, grace),
            None => true,
        }
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
