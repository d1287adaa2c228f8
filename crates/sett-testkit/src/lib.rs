//! Test support for a real Redis: `SETT_TEST_REDIS_URL` when set, otherwise a `redis-server`
//! from PATH started on a free port for this test process (and stopped when the process exits).
//! Every test gets its own random instance name, so tests never see each other's keys.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sett_core::InstanceName;
use sett_store::{Redis, RedisOptions, Store};

/// A free TCP port on loopback (bind to port 0 and release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind 127.0.0.1:0")
}

/// Polls until something accepts TCP connections on `port` (an external process starting up).
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A `redis-server` owned by a test: stopped (SIGKILL) on drop, or explicitly with `stop`.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port with its data in `dir` and `extra` arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let mut s =
            Self { port, dir: dir.to_owned(), child: None, extra: extra.iter().map(|s| s.to_string()).collect() };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let child = watched_redis(self.port, &self.dir, &self.extra);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server did not start on port {} (is the redis-server package installed?)",
            self.port
        );
        self.child = Some(child);
    }

    /// Stops the server abruptly (SIGKILL of the watchdog's redis).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Wait until the port is closed so a restart can bind it.
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs redis-server in the foreground of a child process so killing the child kills Redis.
/// `exec` replaces the shell; a background watchdog kills it if this test process dies first.
fn watched_redis(port: u16, dir: &Path, extra: &[String]) -> Child {
    std::fs::create_dir_all(dir).expect("create redis dir");
    let mut args = vec![
        "--port".to_owned(),
        port.to_string(),
        "--bind".to_owned(),
        "127.0.0.1".to_owned(),
        "--dir".to_owned(),
        dir.display().to_string(),
        "--save".to_owned(),
        String::new(),
        "--appendonly".to_owned(),
        "no".to_owned(),
    ];
    args.extend(extra.iter().cloned());
    let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
    let script = format!(
        "parent=$PPID; (while kill -0 $parent 2>/dev/null; do sleep 1; done; kill -9 $$ 2>/dev/null) & exec redis-server {}",
        quoted.join(" ")
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("failed to run redis-server: install it (apt-get install redis-server) or set SETT_TEST_REDIS_URL")
}

/// The Redis URL shared by this test process.
pub fn redis_url() -> String {
    static SHARED: OnceLock<(String, Option<RedisServer>)> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("SETT_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let dir = std::env::temp_dir().join(format!("sett-test-redis-{}", std::process::id()));
                let server = RedisServer::start(&dir, &[]);
                (server.url(), Some(server))
            }
        })
        .0
        .clone()
}

/// A fresh, random instance name.
pub fn instance_name() -> InstanceName {
    let id = uuid::Uuid::new_v4().simple().to_string();
    InstanceName::parse(&format!("t{}", &id[..16])).expect("valid name")
}

/// A strict-decoding connection to the shared test Redis.
pub async fn redis() -> Redis {
    redis_at(&redis_url()).await
}

pub async fn redis_at(url: &str) -> Redis {
    let mut o = RedisOptions::new(url);
    o.strict_decoding = true;
    Redis::connect(o).await.unwrap_or_else(|e| panic!("{e}"))
}

/// A store for a fresh random instance on the shared test Redis.
pub async fn store() -> Store {
    redis().await.instance(&instance_name())
}
