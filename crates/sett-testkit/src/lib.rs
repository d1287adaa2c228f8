//! Test support for a real Redis: `SETT_TEST_REDIS_URL` when set, otherwise a `redis-server`
//! from PATH started on a free port for this test process (and stopped when the process exits).
//! Every test gets its own random instance name, so tests never see each other's keys.
//! [`RedisCluster`] and [`SentinelSet`] start whole topologies (cluster, sentinel) from
//! `redis-server` processes for the scale-out and failover tests. [`wait`] is how tests wait:
//! [`eventually`] and the event-stream waits, never a sleep. [`promtool`] lints metrics text.

pub mod promtool;
pub mod wait;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sett_core::InstanceName;
use sett_store::{Redis, RedisOptions, Store};
pub use wait::{Probe, TimedOut, WAIT, eventually, try_eventually, wait_for_event, wait_for_events};

/// A free TCP port on loopback (bind to port 0 and release it), for a server that is started
/// once (a restarted server needs [`lease_port`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind 127.0.0.1:0")
}

/// How many ports [`RedisServer::start`] tries before it gives up.
const START_ATTEMPTS: usize = 5;

/// The lowest port a test server is given.
const LEASED_LOW: u16 = 10_000;
/// A cluster node's bus port is its port plus this.
const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// A loopback port held by this test process until the lease is dropped.
///
/// A test server's port must stay its own while the server is down, or a restart finds it taken
/// and the test's clients reconnect to whatever took it. A port from the kernel's ephemeral
/// range (what `bind(0)` returns) cannot promise that: any outgoing connection on the machine
/// may get it as its local port, and then the server cannot bind it again; another test may get
/// it from `bind(0)` and start its own server there. So leased ports come from below the
/// ephemeral range, where the kernel never hands a port out by itself, and a lock file per port
/// (released by the kernel when the process exits) keeps two test processes from taking the
/// same one.
#[derive(Debug)]
pub struct PortLease {
    pub port: u16,
    _locks: Vec<std::fs::File>,
}

/// The first port of the kernel's ephemeral range (`ip_local_port_range`).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next().and_then(|low| low.parse().ok()))
        .unwrap_or(32_768)
}

/// Locks `port` for this process: `None` when another test process holds it or anything
/// listens on it.
fn lock_port(port: u16) -> Option<std::fs::File> {
    let dir = std::env::temp_dir().join("sett-test-ports");
    std::fs::create_dir_all(&dir).ok()?;
    let file = std::fs::File::create(dir.join(format!("{port}.lock"))).ok()?;
    file.try_lock().ok()?;
    TcpListener::bind(("127.0.0.1", port)).ok()?;
    Some(file)
}

/// Leases a port below the ephemeral range (see [`PortLease`]); for a cluster node, its bus
/// port too (also below the range, and Redis refuses a cluster port above 55535).
pub fn lease_port(cluster: bool) -> PortLease {
    let span = if cluster { CLUSTER_BUS_OFFSET } else { 0 };
    let high = ephemeral_low().saturating_sub(span);
    assert!(
        high > LEASED_LOW + 1_000,
        "the ephemeral port range starts at {}: too low to lease test ports below it",
        ephemeral_low()
    );
    let width = u64::from(high - LEASED_LOW);
    let start = (uuid::Uuid::new_v4().as_u128() as u64) % width;
    for step in 0..width {
        let port = LEASED_LOW + ((start + step) % width) as u16;
        let Some(lock) = lock_port(port) else { continue };
        if !cluster {
            return PortLease { port, _locks: vec![lock] };
        }
        if let Some(bus) = lock_port(port + CLUSTER_BUS_OFFSET) {
            return PortLease { port, _locks: vec![lock, bus] };
        }
    }
    panic!("no free port between {LEASED_LOW} and {high} to lease");
}

/// Starts a watched `redis-server` on a leased port ([`lease_port`]; with its bus port for a
/// `cluster` node), and on another when it cannot bind that one (up to [`START_ATTEMPTS`]);
/// `prepare(port)` runs before each start (a sentinel's configuration file names its port).
fn start_watched(
    dir: &Path,
    extra: &[String],
    config_file: Option<&Path>,
    cluster: bool,
    mut prepare: impl FnMut(u16),
) -> (PortLease, Child) {
    let mut tried = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let lease = lease_port(cluster);
        let port = lease.port;
        prepare(port);
        let mut child = watched_redis(port, dir, extra, config_file);
        if wait_listening(port, &mut child, Duration::from_secs(10)) {
            return (lease, child);
        }
        let _ = child.kill();
        let _ = child.wait();
        tried.push(port);
    }
    panic!(
        "redis-server {extra:?} did not start on any of the ports {tried:?} (is the redis-server package installed?)"
    );
}

/// Polls until `child` (a `redis-server` starting up) accepts TCP connections on `port`; false
/// when it exits first (it could not bind) or `limit` passes.
fn wait_listening(port: u16, child: &mut Child, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if child.try_wait().is_ok_and(|status| status.is_some()) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
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
    /// Keeps `port` this server's while it is stopped, so [`RedisServer::restart`] can bind it.
    _lease: PortLease,
    pub dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    /// `(user, password)` the test's own `redis-cli` calls log in with (ACL-protected nodes).
    pub auth: Option<(String, String)>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port with its data in `dir` and `extra` arguments.
    ///
    /// The port is leased ([`PortLease`]: below the ephemeral range, locked for this process)
    /// and stays the server's after [`RedisServer::stop`]; a cluster node's bus port
    /// (`port + 10000`) is leased with it. A server that exits or never listens (something
    /// outside the tests holds the port) is started again on another port.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let cluster = extra.iter().any(|a| a == "--cluster-enabled");
        let (lease, child) = start_watched(dir, &extra, None, cluster, |_| {});
        Self { port: lease.port, _lease: lease, dir: dir.to_owned(), child: Some(child), extra, auth: None }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and data directory. Panics unless this
    /// server's own process listens on the port: a test whose clients reconnected to another
    /// process there would otherwise fail later, far from the cause.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut child = watched_redis(self.port, &self.dir, &self.extra, None);
        if !wait_listening(self.port, &mut child, Duration::from_secs(10)) {
            let _ = child.kill();
            let _ = child.wait();
            let holders = Command::new("ss")
                .args(["-tanp"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let port = format!(":{} ", self.port);
            panic!(
                "redis-server could not listen on port {} again; what holds it:\n{}",
                self.port,
                holders.lines().filter(|l| l.contains(&port)).collect::<Vec<_>>().join("\n")
            );
        }
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

impl RedisServer {
    /// Starts a sentinel (`redis-server <conf> --sentinel`) on a leased port whose configuration
    /// file `dir/sentinel.conf` holds `conf` (sentinels rewrite it, so it must be writable).
    /// Like [`RedisServer::start`], another port is tried when the first cannot be bound.
    pub fn start_sentinel(dir: &Path, conf: &str) -> Self {
        std::fs::create_dir_all(dir).expect("create sentinel dir");
        let file = dir.join("sentinel.conf");
        let extra = vec!["--sentinel".to_owned()];
        let (lease, child) = start_watched(dir, &extra, Some(&file), false, |port| {
            std::fs::write(&file, format!("port {port}\n{conf}")).expect("write sentinel.conf")
        });
        Self { port: lease.port, _lease: lease, dir: dir.to_owned(), child: Some(child), extra, auth: None }
    }

    /// Whether the process is running (not stopped by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `redis-cli -p <port> args…`, its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli_as(self.port, self.auth.as_ref(), args)
    }
}

/// `redis-cli -p <port> args…`, its standard output (empty when the server does not answer).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    redis_cli_as(port, None, args)
}

/// [`redis_cli`] logged in as `auth` (`(user, password)`), when given.
pub fn redis_cli_as(port: u16, auth: Option<&(String, String)>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    if let Some((user, password)) = auth {
        // The password travels in the environment, not on the command line (and no warning).
        cmd.args(["--user", user]).env("REDISCLI_AUTH", password);
    }
    let out = cmd
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli (Debian package redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `cond` every 50 ms for up to `limit` (external processes converging: cluster gossip,
/// sentinel elections; there is no event to await from outside them).
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Settings every cluster node gets: cluster mode, AOF (so a killed node restarts with its
/// data and rejoins as a replica), and a 2 s node timeout so a failover takes seconds.
const CLUSTER_NODE_ARGS: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "2000",
    "--appendonly",
    "yes",
    // Replicas take over even if they lost touch with their primary a while ago (a test kills
    // primaries on purpose), and a shard without a primary does not stop the others.
    "--cluster-replica-validity-factor",
    "0",
    "--cluster-require-full-coverage",
    "no",
];

/// A Redis Cluster of `redis-server` processes on free ports, owned by a test.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    pub root: PathBuf,
    /// `(user, password)` every node requires, when started with [`RedisCluster::start_with_acl`].
    pub auth: Option<(String, String)>,
}

impl RedisCluster {
    /// `primaries` primaries with `replicas` replicas each (`redis-cli --cluster create`);
    /// panics unless every node reports `cluster_state:ok` within 30 s.
    pub fn start(root: &Path, primaries: usize, replicas: usize) -> Self {
        Self::start_as(root, primaries, replicas, None)
    }

    /// Like [`RedisCluster::start`], but every node requires `user`/`password`: the ACL user
    /// `user on >password ~* &* +@all` exists, the `default` user is off (an anonymous client
    /// gets NOAUTH), and replicas log in to their primary as that user.
    pub fn start_with_acl(root: &Path, primaries: usize, replicas: usize, user: &str, password: &str) -> Self {
        Self::start_as(root, primaries, replicas, Some((user.to_owned(), password.to_owned())))
    }

    fn start_as(root: &Path, primaries: usize, replicas: usize, auth: Option<(String, String)>) -> Self {
        let mut node_args: Vec<String> = CLUSTER_NODE_ARGS.iter().map(|s| (*s).to_owned()).collect();
        if let Some((user, password)) = &auth {
            for a in ["--user", user, "on", &format!(">{password}"), "~*", "&*", "+@all"] {
                node_args.push(a.to_owned());
            }
            for a in ["--user", "default", "off", "--masteruser", user, "--masterauth", password] {
                node_args.push(a.to_owned());
            }
        }
        let node_args: Vec<&str> = node_args.iter().map(String::as_str).collect();
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|i| {
                let mut n = RedisServer::start(&root.join(format!("node{i}")), &node_args);
                n.auth = auth.clone();
                n
            })
            .collect();
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend(["--cluster-replicas".into(), replicas.to_string(), "--cluster-yes".into()]);
        let mut create = Command::new("redis-cli");
        if let Some((user, password)) = &auth {
            create.args(["--user", user]).env("REDISCLI_AUTH", password);
        }
        let out = create.args(&args).output().expect("redis-cli --cluster create");
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        let cluster = Self { nodes, root: root.to_owned(), auth };
        let expected = primaries * (1 + replicas);
        assert!(
            poll_until(Duration::from_secs(30), || cluster.nodes.iter().all(|n| {
                let info = n.cli(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains(&format!("cluster_known_nodes:{expected}"))
            }) && cluster.replicas_in_sync()),
            "the local Redis Cluster did not reach cluster_state:ok within 30 s"
        );
        cluster
    }

    /// `redis-cluster://` URL naming every node as a seed (with `user:password@` when the
    /// nodes require a login).
    pub fn url(&self) -> String {
        let mut nodes = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port));
        let first = nodes.next().expect("a node");
        let login = self.auth.as_ref().map(|(u, p)| format!("{u}:{p}@")).unwrap_or_default();
        let rest: Vec<String> = nodes.map(|n| format!("node={n}")).collect();
        if rest.is_empty() {
            format!("redis-cluster://{login}{first}")
        } else {
            format!("redis-cluster://{login}{first}?{}", rest.join("&"))
        }
    }

    /// A running node to ask about the cluster.
    fn any(&self) -> &RedisServer {
        self.nodes.iter().find(|n| n.is_running()).expect("a running cluster node")
    }

    /// The hash slot of `key`.
    pub fn keyslot(&self, key: &str) -> u16 {
        self.any().cli(&["CLUSTER", "KEYSLOT", key]).trim().parse().expect("CLUSTER KEYSLOT answers a number")
    }

    /// The index in `nodes` of the primary serving `slot`, as a running node sees it.
    pub fn primary_of_slot(&self, slot: u16) -> Option<usize> {
        let node = self.nodes.iter().find(|n| n.is_running())?;
        for line in node.cli(&["CLUSTER", "NODES"]).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let serves = f[8..].iter().any(|r| match r.split_once('-') {
                Some((a, b)) => a.parse::<u16>().is_ok_and(|a| a <= slot) && b.parse::<u16>().is_ok_and(|b| slot <= b),
                None => r.parse::<u16>().is_ok_and(|s| s == slot),
            });
            if serves {
                let port: u16 = f[1].split(['@', ':']).nth(1).and_then(|p| p.parse().ok())?;
                return self.nodes.iter().position(|n| n.port == port);
            }
        }
        None
    }

    /// Indices of the nodes that are primaries now.
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running() && self.nodes[i].cli(&["ROLE"]).starts_with("master"))
            .collect()
    }

    /// Whether every running replica is connected to its primary with the link up.
    pub fn replicas_in_sync(&self) -> bool {
        self.nodes.iter().filter(|n| n.is_running()).all(|n| {
            let info = n.cli(&["INFO", "replication"]);
            !info.contains("role:slave") || info.contains("master_link_status:up")
        })
    }

    /// SIGKILLs node `i`, waits until another node serves its slots (a replica promoted),
    /// restarts it (it rejoins as a replica of the new primary, from its AOF) and waits until
    /// the cluster is healthy again. Returns the index of the promoted node for `slot`.
    pub fn fail_over_by_kill(&mut self, i: usize, slot: u16) -> usize {
        self.nodes[i].stop();
        let mut promoted = None;
        assert!(
            poll_until(Duration::from_secs(30), || {
                promoted = self.primary_of_slot(slot).filter(|&p| p != i);
                promoted.is_some()
            }),
            "no replica took over slot {slot} within 30 s of killing its primary"
        );
        self.nodes[i].restart();
        assert!(
            poll_until(Duration::from_secs(30), || self.healthy()),
            "the cluster did not heal within 30 s after the killed node restarted"
        );
        promoted.expect("promoted")
    }

    /// Every node answers, `cluster_state:ok`, every replica in sync.
    pub fn healthy(&self) -> bool {
        self.nodes.iter().all(|n| n.is_running() && n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
            && self.replicas_in_sync()
    }

    /// The sum over all nodes of `errorstat_<kind>` in INFO errorstats (e.g. `CROSSSLOT`), so a
    /// test proves an error never happened on any path.
    pub fn error_count(&self, kind: &str) -> u64 {
        let prefix = format!("errorstat_{kind}:count=");
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .flat_map(|n| n.cli(&["INFO", "errorstats"]).lines().map(str::to_owned).collect::<Vec<_>>())
            .filter_map(|l| {
                l.strip_prefix(&prefix).and_then(|c| c.split(',').next()).and_then(|c| c.trim().parse::<u64>().ok())
            })
            .sum()
    }
}

/// A Sentinel deployment: one primary, one replica, three sentinels watching service
/// [`SentinelSet::SERVICE`] (quorum 2, a primary is down after 2 s).
#[derive(Debug)]
pub struct SentinelSet {
    /// `[primary, replica]` as started; after a failover the roles are swapped.
    pub servers: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
}

impl SentinelSet {
    pub const SERVICE: &'static str = "settmaster";

    pub fn start(root: &Path) -> Self {
        let primary = RedisServer::start(&root.join("primary"), &["--appendonly", "yes"]);
        let replica_of = primary.port.to_string();
        let replica = RedisServer::start(
            &root.join("replica"),
            &["--appendonly", "yes", "--replicaof", "127.0.0.1", &replica_of],
        );
        let conf = format!(
            "sentinel monitor {s} 127.0.0.1 {p} 2\nsentinel down-after-milliseconds {s} 2000\nsentinel failover-timeout {s} 10000\nsentinel parallel-syncs {s} 1\n",
            s = Self::SERVICE,
            p = primary.port
        );
        let sentinels: Vec<RedisServer> =
            (0..3).map(|i| RedisServer::start_sentinel(&root.join(format!("sentinel{i}")), &conf)).collect();
        let set = Self { servers: vec![primary, replica], sentinels };
        assert!(
            poll_until(Duration::from_secs(30), || {
                set.replicas_in_sync()
                    && set.sentinels.iter().all(|s| {
                        let info = s.cli(&["SENTINEL", "MASTER", Self::SERVICE]);
                        let lines: Vec<&str> = info.lines().collect();
                        let field =
                            |k: &str| lines.iter().position(|l| *l == k).and_then(|i| lines.get(i + 1)).copied();
                        field("num-slaves") == Some("1") && field("num-other-sentinels") == Some("2")
                    })
            }),
            "the sentinels did not see the primary, its replica and each other within 30 s"
        );
        set
    }

    /// `redis-sentinel://` URL naming all three sentinels.
    pub fn url(&self) -> String {
        let others: Vec<String> = self.sentinels[1..].iter().map(|s| format!("&node=127.0.0.1:{}", s.port)).collect();
        format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName={}{}",
            self.sentinels[0].port,
            Self::SERVICE,
            others.concat()
        )
    }

    /// Index in `servers` of the primary the sentinels name now.
    pub fn primary(&self) -> Option<usize> {
        let s = self.sentinels.iter().find(|s| s.is_running())?;
        let out = s.cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::SERVICE]);
        let port: u16 = out.lines().nth(1)?.trim().parse().ok()?;
        self.servers.iter().position(|n| n.port == port)
    }

    fn replicas_in_sync(&self) -> bool {
        self.servers.iter().filter(|n| n.is_running()).all(|n| {
            let info = n.cli(&["INFO", "replication"]);
            !info.contains("role:slave") || info.contains("master_link_status:up")
        })
    }

    /// SIGKILLs the current primary, waits for the sentinels to promote the replica, restarts
    /// the old primary (the sentinels turn it into a replica) and waits until it is in sync.
    pub fn fail_over_by_kill(&mut self) -> usize {
        let old = self.primary().expect("the sentinels name a primary");
        self.servers[old].stop();
        let mut promoted = None;
        assert!(
            poll_until(Duration::from_secs(30), || {
                promoted = self.primary().filter(|&p| p != old);
                promoted.is_some()
            }),
            "the sentinels did not promote the replica within 30 s"
        );
        let new = promoted.expect("promoted");
        self.servers[old].restart();
        assert!(
            poll_until(Duration::from_secs(30), || {
                self.servers[old].cli(&["ROLE"]).starts_with("slave")
                    && self.servers[new].cli(&["INFO", "replication"]).contains("connected_slaves:1")
                    && self.replicas_in_sync()
            }),
            "the old primary did not rejoin as a replica within 30 s"
        );
        new
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs redis-server in the foreground of a child process so killing the child kills Redis.
/// `exec` replaces the shell; a background watchdog kills it if this test process dies first.
/// `config_file`, when given, comes first (sentinels need a writable configuration file).
fn watched_redis(port: u16, dir: &Path, extra: &[String], config_file: Option<&Path>) -> Child {
    std::fs::create_dir_all(dir).expect("create redis dir");
    let mut args: Vec<String> = config_file.iter().map(|f| f.display().to_string()).collect();
    args.extend([
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
    ]);
    args.extend(extra.iter().cloned());
    let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
    let script = format!(
        // The watchdog ends with the server: a server the test stopped leaves no watchdog that
        // would later SIGKILL whatever process reused its pid.
        "parent=$PPID; (while kill -0 $parent 2>/dev/null; do kill -0 $$ 2>/dev/null || exit; sleep 1; done; kill -9 $$ 2>/dev/null) & exec redis-server {}",
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

/// An orchestrator policy with one agent `A` (1 s timeouts, no worker, no approval).
pub fn policy() -> sett_core::policy::Policy {
    use sett_core::AgentName;
    use sett_core::policy::{AgentPolicy, Policy};
    Policy {
        agents: [(
            AgentName::parse("A").expect("valid name"),
            AgentPolicy { timeout_ms: 1000, question_timeout_ms: None, via_worker: false, approval: None },
        )]
        .into(),
        max_review_iterations: 3,
        bid_timeout_ms: 1000,
        on_question_timeout: Default::default(),
        routing: Default::default(),
    }
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
