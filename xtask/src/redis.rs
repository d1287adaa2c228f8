//! A throwaway `redis-server` (or a whole Redis Cluster of them) for CI runs and benchmarks,
//! killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub struct TempRedis {
    pub port: u16,
    /// Its Unix socket (`<dir>/redis.sock`), when the path is short enough for one.
    pub socket: Option<std::path::PathBuf>,
    child: Child,
}

impl TempRedis {
    pub fn start(dir: &Path, extra: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let socket = Some(dir.join("redis.sock")).filter(|p| p.is_absolute() && p.as_os_str().len() < 100);
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(path) = &socket {
            cmd.arg("--unixsocket").arg(path).args(["--unixsocketperm", "700"]);
        }
        let child = cmd.spawn().context("cannot start redis-server: install it with `apt-get install redis-server`")?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("redis-server did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { port, socket, child })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The same server by its Unix socket (`redis+unix://`), if it has one.
    pub fn unix_url(&self) -> Option<String> {
        self.socket.as_ref().map(|p| format!("redis+unix://{}", p.display()))
    }
}

/// A primary with one replica (`--replicaof`), both with the same extra arguments: a single
/// node doing the replication work one shard of the cluster does.
pub struct TempReplicated {
    pub primary: TempRedis,
    _replica: TempRedis,
}

impl TempReplicated {
    pub fn start(dir: &Path, extra: &[&str]) -> Result<Self> {
        let primary = TempRedis::start(&dir.join("primary"), extra)?;
        let port = primary.port.to_string();
        let mut args = extra.to_vec();
        args.extend(["--replicaof", "127.0.0.1", port.as_str()]);
        let replica = TempRedis::start(&dir.join("replica"), &args)?;
        let started = Instant::now();
        while !cli(replica.port, &["INFO", "replication"]).contains("master_link_status:up") {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the benchmark's replica did not sync within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { primary, _replica: replica })
    }
}

impl Drop for TempRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of `primaries` primaries with one replica each (or none), every node with AOF
/// and a 2 s node timeout, as the end-to-end tests start it (sett-testkit is for tests only).
pub struct TempCluster {
    pub nodes: Vec<TempRedis>,
}

impl TempCluster {
    /// `primaries` primaries, each with one replica.
    pub fn start(dir: &Path, primaries: usize) -> Result<Self> {
        Self::start_with(dir, primaries, 1)
    }

    /// `primaries` primaries with `replicas` replicas each (0 or 1 here).
    pub fn start_with(dir: &Path, primaries: usize, replicas: usize) -> Result<Self> {
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--appendonly",
            "yes",
        ];
        let total = primaries * (1 + replicas);
        let nodes =
            (0..total).map(|i| TempRedis::start(&dir.join(format!("node{i}")), &args)).collect::<Result<Vec<_>>>()?;
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        create.args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .context("redis-cli --cluster create")?;
        if !out.status.success() {
            bail!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        }
        let cluster = Self { nodes };
        let started = Instant::now();
        // Gossip and replica syncs converge on their own; there is nothing to await but the state.
        while !cluster.ready(total) {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the benchmark's Redis Cluster did not become ready within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(cluster)
    }

    fn ready(&self, expected: usize) -> bool {
        self.nodes.iter().all(|n| {
            let info = cli(n.port, &["CLUSTER", "INFO"]);
            let repl = cli(n.port, &["INFO", "replication"]);
            info.contains("cluster_state:ok")
                && info.contains(&format!("cluster_known_nodes:{expected}"))
                && (!repl.contains("role:slave") || repl.contains("master_link_status:up"))
        })
    }

    /// `redis-cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let rest: Vec<String> = self.nodes[1..].iter().map(|n| format!("node=127.0.0.1:{}", n.port)).collect();
        format!("redis-cluster://127.0.0.1:{}?{}", self.nodes[0].port, rest.join("&"))
    }

    /// Ports of the nodes that are primaries now.
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).filter(|&p| cli(p, &["ROLE"]).starts_with("master")).collect()
    }
}

/// `redis-cli -p <port> args…`, its standard output (empty when the server does not answer).
pub fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
