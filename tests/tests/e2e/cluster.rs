//! Scale-out end to end: every command on a real 3-primary / 3-replica Redis Cluster (no
//! CROSSSLOT on any path), also with ACLs on every node, the console's API and webhook
//! notifications on a cluster, the same pipeline through a Sentinel deployment, failovers under
//! load on both, and 300 instances spread over the shards.

use std::time::Duration;

use sett_core::StructuralType;
use sett_e2e::{Env, summary};
use sett_testkit::{RedisCluster, SentinelSet};

const MINUTE: Duration = Duration::from_secs(60);

/// Starts a cluster of `primaries` primaries with one replica each, off the async runtime.
pub(crate) async fn cluster(root: &std::path::Path, primaries: usize) -> RedisCluster {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || RedisCluster::start(&root, primaries, 1)).await.expect("cluster start")
}

pub(crate) async fn sentinels(root: &std::path::Path) -> SentinelSet {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || SentinelSet::start(&root)).await.expect("sentinel start")
}

/// The demo pipeline (question, answer, rejection, rework, parallel check, worker) and every
/// read and maintenance command, against the Redis at `env.redis_url`.
async fn pipeline_and_every_command(env: &mut Env) {
    env.up();
    // A deployment with replicas: writes are `replicated` without saying so, and the status
    // shows the synced replica holding the instance's slot.
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "-o", "json"])).unwrap();
    let replication = &status["replication"];
    assert_eq!(replication["durability"], "replicated", "{replication}");
    assert_eq!(replication["deployment_has_replicas"], true, "{replication}");
    assert!(replication["warning"].is_null(), "{replication}");
    let replicas = replication["state"]["replicas"].as_array().expect("the primary's replicas");
    assert!(replicas.iter().any(|r| r["state"] == "online"), "{replication}");
    let goal = env.forage("Build a to-do service");
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let qid = listed[0]["id"].as_str().expect("a question").to_owned();
    env.ok(&["answer", &qid, "Use port 8080"]);
    let artifacts = env.wait_terminals(1, 2 * MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.produced_by_role, "Publisher", "{:#?}", summary(&artifacts));
    assert!(artifacts.iter().any(|a| a.artifact_type == "CheckReport"), "the parallel phase ran");
    assert!(env.claims().await.iter().any(|c| c.artifact_id == goal));

    assert!(env.ok(&["status"]).contains("running"));
    env.ok(&["claims"]);
    env.ok(&["claims", "--stuck", "-o", "json"]);
    assert!(env.ok(&["list"]).contains(env.name.as_str()));
    env.ok(&["logs", "Writer"]);
    let trail = env.ok(&["watch", "--since", "1h", "--exit-on-completion", "-o", "jsonl", "--timeout", "10s"]);
    assert!(trail.contains("claim_completed"), "{trail}");
    let hoard = env.ok(&["hoard", "-o", "json"]);
    assert!(hoard.contains("Use port 8080"), "the answer is in the hoard");

    // Export, remove every key, import: the hoard is identical; then destroy.
    let dump = env.path().join("export.jsonl");
    env.down();
    env.ok(&["export", "--file", dump.to_str().unwrap()]);
    assert!(!env.store.scan_instance(true, |_| {}).await.unwrap().is_empty());
    assert_eq!(env.store.artifact_count().await.unwrap(), 0);
    env.ok(&["import", dump.to_str().unwrap()]);
    assert_eq!(env.ok(&["hoard", "-o", "json"]), hoard);
    env.ok(&["destroy", "--force"]);
    assert!(env.store.count_instance_keys().await.unwrap().is_empty(), "destroy left keys behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_on_a_redis_cluster_without_crossslot() {
    let root = tempfile::tempdir().unwrap();
    let cluster = cluster(root.path(), 3).await;
    let mut env = Env::examples_with_redis_url(&cluster.url(), true).await;
    pipeline_and_every_command(&mut env).await;
    // Redis counts every error reply it sends: not one multi-key command spanned two slots,
    // on any node, for any path above (the global keys hash to their own slots).
    assert_eq!(cluster.error_count("CROSSSLOT"), 0, "a command spanned two hash slots");
    let global: std::collections::BTreeSet<u16> =
        [sett_store::keys::INSTANCES, sett_store::keys::AUDIT, sett_store::keys::INSTANCE_COUNTER]
            .iter()
            .map(|k| cluster.keyslot(k))
            .collect();
    assert_eq!(global.len(), 3, "the global keys live in different slots, so the check above covers them");
    env.redis.quit().await;
}

/// ACLs on a cluster: every node requires the user `sett` (the `default` user is off, so an
/// anonymous client is refused, and replicas log in to their primaries as `sett`), and every
/// command works through `redis-cluster://sett:<password>@…`; the password is in no log.
#[tokio::test(flavor = "multi_thread")]
async fn every_command_on_a_redis_cluster_that_requires_a_login() {
    const PASSWORD: &str = "s3cret-cluster-pw";
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_owned();
    let cluster = tokio::task::spawn_blocking(move || RedisCluster::start_with_acl(&dir, 3, 1, "sett", PASSWORD))
        .await
        .expect("cluster start");
    for node in &cluster.nodes {
        let anonymous = sett_testkit::redis_cli(node.port, &["SET", "sett:probe", "1"]);
        assert!(anonymous.contains("NOAUTH"), "node {} served an anonymous client: {anonymous}", node.port);
    }
    let url = cluster.url();
    assert!(url.starts_with(&format!("redis-cluster://sett:{PASSWORD}@")), "{url}");
    let mut env = Env::examples_with_redis_url(&url, true).await;
    pipeline_and_every_command(&mut env).await;
    assert_eq!(cluster.error_count("CROSSSLOT"), 0, "a command spanned two hash slots");
    assert_eq!(cluster.error_count("WRONGPASS"), 0, "a component logged in with the wrong password");
    assert!(!env.logs_all().contains(PASSWORD), "the cluster password is in a component log");
    env.redis.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_through_sentinel() {
    let root = tempfile::tempdir().unwrap();
    let set = sentinels(root.path()).await;
    let mut env = Env::examples_with_redis_url(&set.url(), true).await;
    pipeline_and_every_command(&mut env).await;
    env.redis.quit().await;
}

/// Records every run (one line per claim) and ends the goal's workflow at once.
const RECORDER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
echo "$(jq -r .claim_id <<<"$input")" >>runs.log
# Hold the output until the test lets go (it does so as it kills the primary), so the outputs
# are written while the failover happens; give up waiting after 50 s.
for _ in $(seq 500); do [ -e go ] && break; sleep 0.1; done
jq -n --arg p "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $p}'
"#;

const GOALS: usize = 50;

fn failover_yml(durability: &str) -> String {
    format!(
        r#"
version: "1.0"
redis: {{durability: {durability}}}
orchestrator: {{bid_timeout: 30s}}
ledger: {{anchor_every: 1s}}
agents:
  Recorder:
    command: ["./recorder.sh"]
    bidding_strategy: exclusive
    timeout: 60s
"#
    )
}

/// Where the instance lives: a cluster (kill the primary of its slot) or a Sentinel set.
enum Topology {
    Cluster(RedisCluster),
    Sentinel(SentinelSet),
}

impl Topology {
    fn url(&self) -> String {
        match self {
            Self::Cluster(c) => c.url(),
            Self::Sentinel(s) => s.url(),
        }
    }

    /// SIGKILLs the primary holding `instance`'s keys and waits until its replica serves them
    /// and the killed node is back as a replica.
    async fn kill_primary_of(self, instance: &str) -> Self {
        tokio::task::spawn_blocking({
            let prefix = format!("sett:{{{instance}}}:");
            move || match self {
                Self::Cluster(mut c) => {
                    let slot = c.keyslot(&prefix);
                    let primary = c.primary_of_slot(slot).expect("a primary serves the instance's slot");
                    let promoted = c.fail_over_by_kill(primary, slot);
                    assert_ne!(promoted, primary);
                    Self::Cluster(c)
                }
                Self::Sentinel(mut s) => {
                    s.fail_over_by_kill();
                    Self::Sentinel(s)
                }
            }
        })
        .await
        .expect("failover")
    }
}

/// What one failover run measured (a soak run prints one line per run).
#[derive(Debug, Default, serde::Serialize)]
struct FailoverFigures {
    topology: &'static str,
    durability: &'static str,
    goals: usize,
    terminals: usize,
    goals_lost: usize,
    goals_without_terminal: usize,
    duplicate_runs: usize,
    claims_open: usize,
    unconfirmed_errors_logged: usize,
    seconds: f64,
}

/// 50 goals in flight, the primary holding the instance SIGKILLed and its replica promoted.
/// `replicated`: every goal reaches exactly one Terminal, each tool ran once per grant, no
/// artifact is duplicated and no claim is left open. `fast`: what was lost is measured and
/// nothing waits forever (every claim that exists ends).
async fn failover_run(topology: Topology, durability: &'static str) -> FailoverFigures {
    let started = std::time::Instant::now();
    let name = match &topology {
        Topology::Cluster(_) => "cluster",
        Topology::Sentinel(_) => "sentinel",
    };
    let mut env = Env::with_redis_url(&topology.url(), &failover_yml(durability), &[("recorder.sh", RECORDER)]).await;
    env.up();
    // Goals arrive from four operators at once while the first ones already run.
    let goals: Vec<sett_core::ArtifactId> = std::thread::scope(|s| {
        let env = &env;
        let handles: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || (t..GOALS).step_by(4).map(|i| env.forage(&format!("goal {i}"))).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("forage thread")).collect()
    });
    let runs = env.path().join("runs.log");
    let ran = |p: &std::path::Path| std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0);
    let until = std::time::Instant::now() + MINUTE;
    while ran(&runs) < 10 {
        assert!(std::time::Instant::now() < until, "no tool ran within a minute\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every goal is in flight (no tool has finished); they finish as the primary dies.
    std::fs::write(env.path().join("go"), "").unwrap();
    let topology = topology.kill_primary_of(env.name.as_str()).await;

    let mut figures = FailoverFigures { topology: name, durability, goals: GOALS, ..Default::default() };
    if durability == "replicated" {
        let watchdog = tokio::spawn(explain_if_stuck(env.store.clone(), goals.clone(), env.log_dir(), 3 * MINUTE));
        let artifacts = env.wait_terminals(GOALS, 3 * MINUTE).await;
        watchdog.abort();
        check_nothing_lost(&env, &goals, &artifacts, &std::fs::read_to_string(&runs).unwrap()).await;
        figures.terminals = GOALS;
        // Nothing lost, so nothing reported: no component remembered a head only the dead
        // primary held, and every head witnessed outside Redis (each second) is in the chain.
        assert!(!env.logs_all().contains("LEDGER REGRESSION"), "a false alarm\n{}", env.logs());
        assert_eq!(env.store.regressions().await.unwrap(), Vec::new(), "a regression was recorded");
        let out = env.run(&["verify", "--witness"]);
        assert!(out.status.success(), "{}{}", sett_e2e::text(&out.stdout), sett_e2e::text(&out.stderr));
        assert!(sett_e2e::text(&out.stdout).contains("Witnessed:"), "{}", sett_e2e::text(&out.stdout));
    } else {
        // Nothing waits forever: within the agent timeout plus slack every claim has ended
        // (a claim whose tool output vanished fails at its deadline).
        let until = std::time::Instant::now() + 2 * MINUTE;
        loop {
            let claims = env.claims().await;
            let open = claims.iter().filter(|c| !c.status.is_final()).count();
            if open == 0 && !claims.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "{open} claim(s) still open 2 minutes after the failover: something waits forever\n{}",
                env.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let artifacts = env.artifacts().await;
        let existing: std::collections::HashSet<_> = artifacts.iter().map(|a| a.id).collect();
        figures.goals_lost = goals.iter().filter(|g| !existing.contains(g)).count();
        let terminals: Vec<_> = artifacts.iter().filter(|a| a.structural_type == StructuralType::Terminal).collect();
        figures.terminals = terminals.len();
        figures.goals_without_terminal =
            goals.iter().filter(|g| !terminals.iter().any(|t| t.source_artifacts.contains(g))).count();
        let log = std::fs::read_to_string(&runs).unwrap_or_default();
        let mut per_claim = std::collections::HashMap::<&str, usize>::new();
        for l in log.lines() {
            *per_claim.entry(l).or_default() += 1;
        }
        figures.duplicate_runs = per_claim.values().map(|n| n - 1).sum();
    }
    figures.claims_open = env.claims().await.iter().filter(|c| !c.status.is_final()).count();
    figures.unconfirmed_errors_logged = env.logs_all().matches("not confirmed by a replica").count();
    figures.seconds = started.elapsed().as_secs_f64();
    env.down();
    env.redis.quit().await;
    drop(topology);
    figures
}

/// Shortly before `limit` runs out (the test is about to fail), prints what became of every goal
/// that has no Terminal yet (its claim's status, grants, executions) and keeps the component logs
/// under `$SETT_SOAK_REPORT.logs/` when a soak report is written: a soak failure is rare, and the
/// temporary workspace is gone by the time anyone looks.
async fn explain_if_stuck(
    store: sett_store::Store,
    goals: Vec<sett_core::ArtifactId>,
    logs: std::path::PathBuf,
    limit: Duration,
) {
    tokio::time::sleep(limit.saturating_sub(Duration::from_secs(5))).await;
    let artifacts = store.all_artifacts().await.unwrap_or_default();
    let mut lines = Vec::new();
    for g in &goals {
        if artifacts.iter().any(|a| a.structural_type == StructuralType::Terminal && a.source_artifacts.contains(g)) {
            continue;
        }
        let claim = match store.claim_for_artifact(g).await {
            Ok(Some(c)) => store.get_claim(&c).await.ok().flatten(),
            _ => None,
        };
        let outputs: Vec<String> = artifacts
            .iter()
            .filter(|a| a.source_artifacts.contains(g))
            .map(|a| {
                format!("{} {} {}", a.structural_type, a.artifact_type, a.payload.chars().take(200).collect::<String>())
            })
            .collect();
        lines.push(format!(
            "goal {g}: claim {:?} status {:?} bids {:?} missing {:?} grants {:?} received {:?}; outputs {outputs:?}",
            claim.as_ref().map(|c| c.id),
            claim.as_ref().map(|c| c.status),
            match &claim {
                Some(c) => store.bids(&c.id).await.ok(),
                None => None,
            },
            claim.as_ref().map(|c| c.missing_bids.clone()),
            claim.as_ref().map(|c| c.grants.clone()),
            claim.as_ref().map(|c| c.received.keys().cloned().collect::<Vec<_>>()),
        ));
    }
    if let Ok(report) = std::env::var("SETT_SOAK_REPORT") {
        let keep = std::path::PathBuf::from(format!("{report}.logs")).join(store.instance().as_str());
        let _ = std::fs::create_dir_all(&keep);
        for e in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
        }
        lines.push(format!("component logs kept in {}", keep.display()));
    }
    figure(&format!("STUCK goals without a Terminal:\n{}", lines.join("\n")));
}

async fn check_nothing_lost(env: &Env, goals: &[sett_core::ArtifactId], artifacts: &[sett_core::Artifact], runs: &str) {
    let all = env.artifacts().await;
    assert_eq!(all.len(), 2 * GOALS, "one goal and one Terminal each: {:#?}", summary(&all));
    for g in goals {
        let n = artifacts
            .iter()
            .filter(|a| a.structural_type == StructuralType::Terminal && a.source_artifacts.contains(g))
            .count();
        assert_eq!(n, 1, "goal {g} has {n} Terminals");
    }
    let ids: std::collections::HashSet<_> = all.iter().map(|a| (a.logical_id, a.version)).collect();
    assert_eq!(ids.len(), all.len(), "an artifact was duplicated");
    // A claim completes when the orchestrator handles its Terminal's `artifact_created`, a moment
    // after the Terminal exists (later while it reconnects to the new primary): wait for that, not
    // only for the Terminals. A completion that was lost never comes: the checks below name it.
    let _ = sett_testkit::wait::try_eventually(MINUTE, "every claim to end", async || {
        let claims = env.claims().await;
        claims.len() == GOALS && claims.iter().all(|c| c.status.is_final())
    })
    .await;
    let claims = env.claims().await;
    assert_eq!(claims.len(), GOALS);
    for c in &claims {
        assert!(c.status.is_final(), "claim {} left {:?}", c.id, c.status);
        let ran = runs.lines().filter(|l| *l == c.id.to_string()).count();
        assert_eq!(ran, 1, "the tool ran {ran} times for claim {} (one grant)", c.id);
    }
}

/// How many times each failover test runs: `SETT_SOAK` (a soak run), else once. With
/// `SETT_SOAK_REPORT=<file>` every run's figures are appended to that file as a JSON line.
fn soak_rounds() -> usize {
    std::env::var("SETT_SOAK").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

fn report(f: &FailoverFigures) {
    figure(&format!("FAILOVER {}", serde_json::to_string(f).unwrap()));
    if let Ok(path) = std::env::var("SETT_SOAK_REPORT") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("soak report file");
        writeln!(file, "{}", serde_json::to_string(f).unwrap()).expect("write soak report");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_failover_with_replicated_durability_loses_nothing() {
    for _ in 0..soak_rounds() {
        let root = tempfile::tempdir().unwrap();
        let f = failover_run(Topology::Cluster(cluster(root.path(), 3).await), "replicated").await;
        report(&f);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_failover_with_fast_durability_ends_every_claim() {
    for _ in 0..soak_rounds() {
        let root = tempfile::tempdir().unwrap();
        let f = failover_run(Topology::Cluster(cluster(root.path(), 3).await), "fast").await;
        report(&f);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sentinel_failover_with_replicated_durability_loses_nothing() {
    for _ in 0..soak_rounds() {
        let root = tempfile::tempdir().unwrap();
        let f = failover_run(Topology::Sentinel(sentinels(root.path()).await), "replicated").await;
        report(&f);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sentinel_failover_with_fast_durability_ends_every_claim() {
    for _ in 0..soak_rounds() {
        let root = tempfile::tempdir().unwrap();
        let f = failover_run(Topology::Sentinel(sentinels(root.path()).await), "fast").await;
        report(&f);
    }
}

/// 300 instances on a 3-shard cluster: their slots spread over every shard, `sett list` and
/// `sett status` answer for each, and destroying one leaves the other 299 intact.
#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_instances_spread_over_the_shards() {
    const N: usize = 300;
    let root = tempfile::tempdir().unwrap();
    let cluster = cluster(root.path(), 3).await;
    let url = cluster.url();
    let redis = sett_testkit::redis_at(&url).await;
    let base = sett_testkit::instance_name();
    let names: Vec<sett_core::InstanceName> =
        (0..N).map(|i| sett_core::InstanceName::parse(&format!("{base}-{i}")).unwrap()).collect();
    let record = sett_store::InstanceRecord {
        run_id: "r".into(),
        workspace: root.path().display().to_string(),
        runtime: sett_core::config::RuntimeKind::Local.into(),
        redis: "redis-cluster://x".into(),
        created_at: sett_store::now_ms(),
        started_at: None,
        stopped_at: Some(sett_store::now_ms()),
        status: sett_store::InstanceStatus::Stopped,
    };
    let writes = names.iter().cloned().map(|n| {
        let redis = redis.clone();
        let record = record.clone();
        async move {
            redis.put_instance_record(&n, &record).await.unwrap();
            let goal = sett_core::Artifact::new_root(
                sett_store::new_artifact_id(),
                StructuralType::Standard,
                "GoalDefined",
                format!("goal of {n}"),
                "user",
                sett_store::now_ms(),
            );
            redis.instance(&n).create_artifact(&goal).await.unwrap();
        }
    });
    futures_join_all(writes).await;

    // Slots over shards: every primary holds a fair share of the instances.
    let mut per_primary = std::collections::BTreeMap::<usize, usize>::new();
    for n in &names {
        let slot = cluster.keyslot(&format!("sett:{{{n}}}:"));
        *per_primary.entry(cluster.primary_of_slot(slot).expect("slot served")).or_default() += 1;
    }
    figure(&format!("CLUSTER 300 instances per primary (node index: count): {per_primary:?}"));
    assert_eq!(per_primary.len(), 3, "instances on every shard: {per_primary:?}");
    assert!(per_primary.values().all(|&c| c >= N / 6), "a shard holds too few: {per_primary:?}");

    let sett = |args: &[&str]| {
        std::process::Command::new(sett_e2e::bin_dir().join("sett"))
            .args(args)
            .env("SETT_REDIS_URL", &url)
            .env("SETT_OPERATOR", "test-operator")
            .current_dir(root.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let list = sett(&["list", "-o", "json"]);
    let list_time = started.elapsed();
    assert!(list.status.success(), "{}", sett_e2e::text(&list.stderr));
    let listed = sett_e2e::text(&list.stdout);
    assert!(names.iter().all(|n| listed.contains(&format!("\"{n}\""))), "sett list misses instances");
    let mut status_times = Vec::new();
    for n in names.iter().step_by(30) {
        let started = std::time::Instant::now();
        let out = sett(&["status", "--name", n.as_str()]);
        status_times.push(started.elapsed());
        assert!(sett_e2e::text(&out.stdout).contains("stopped"), "{}", sett_e2e::text(&out.stdout));
    }
    figure(&format!("CLUSTER sett list ({N} instances): {list_time:?}; sett status per instance: {status_times:?}"));

    // Destroy one: the other 299 keep their record and their keys.
    let victim = &names[N / 2];
    let out = sett(&["destroy", "--force", "--name", victim.as_str()]);
    assert!(out.status.success(), "{}", sett_e2e::text(&out.stderr));
    assert!(redis.instance_record(victim).await.unwrap().is_none());
    assert!(redis.instance(victim).count_instance_keys().await.unwrap().is_empty());
    let instances = redis.instances().await.unwrap();
    for n in names.iter().filter(|n| *n != victim) {
        assert!(instances.contains_key(n), "{n} lost its record");
        assert_eq!(redis.instance(n).artifact_count().await.unwrap(), 1, "{n} lost its goal");
    }
    assert_eq!(cluster.error_count("CROSSSLOT"), 0);
    redis.quit().await;
}

/// Runs every future concurrently (no extra dependency for a test helper).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(futs: impl Iterator<Item = F>) {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    for h in handles {
        h.await.expect("task");
    }
}

/// Prints one line of figures (kept by `--no-capture` runs for docs/reliability.md).
#[allow(clippy::print_stdout)]
fn figure(line: &str) {
    println!("{line}");
}

const CONSOLE_TOKEN: &str = "e2e-cluster-console-token-0123456789";

/// One HTTP/1.1 request to the console (`Connection: close`); the status code and the body.
async fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to the console");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {CONSOLE_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw)).await.expect("the console answers").unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // The console may answer with a chunked body: keep only the chunks' data.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_owned()
    };
    (status, body)
}

/// The console's JSON API and webhook notifications on a cluster whose nodes require a login:
/// `sett console` lists the instance and its open question and takes the answer; the notifier
/// (inside the orchestrator) delivers `question_asked` and `workflow_completed`.
#[tokio::test(flavor = "multi_thread")]
async fn console_api_and_notifications_on_a_redis_cluster() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_owned();
    let cluster = tokio::task::spawn_blocking(move || RedisCluster::start_with_acl(&dir, 3, 1, "sett", "console-pw"))
        .await
        .expect("cluster start");
    let mut hook = sett_e2e::receiver::Receiver::start().await;
    let yml = format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s, question_timeout: 1h}}
agents:
  Asker:
    command: ["./asker.sh"]
    bidding_strategy: exclusive
notifications:
  webhooks:
    - name: ops
      url: {}
"#,
        hook.url("/hook")
    );
    let mut env =
        Env::with_redis_url(&cluster.url(), &yml, &[("asker.sh", &sett_e2e::asker_script("Which port?"))]).await;
    env.up();
    let goal = env.forage("Build a service");
    let asked = env
        .wait_events(MINUTE, "question_asked", 1, |e| e.kind() == sett_core::event::EventKind::QuestionAsked)
        .await
        .remove(0);
    let qid = asked.data.artifact_id().expect("the question's id").to_string();

    let mut others = Vec::new();
    let r = hook.next_event("question_asked", MINUTE, &mut others).await;
    assert_eq!(r.json()["question"]["id"], qid.as_str(), "{}", r.body);

    let mut console = sett_e2e::KillOnDrop(
        env.sett(&["console", "--addr", "127.0.0.1:0", "--operator", "Ada Console"])
            .env("SETT_CONSOLE_TOKEN", CONSOLE_TOKEN)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start sett console"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(console.0.stdout.take().unwrap()), &mut line)
        .expect("the console prints its URL");
    let addr = line.trim().trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    let name = env.name.to_string();

    let (status, body) = http(&addr, "GET", "/api/v1/instances", None).await;
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(listed.to_string().contains(&format!("\"{name}\"")), "the instance is listed: {body}");
    let (status, body) = http(&addr, "GET", &format!("/api/v1/instances/{name}/questions"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&qid), "the open question is listed: {body}");
    let (status, body) = http(&addr, "GET", "/api/v1/questions", None).await;
    assert!(status == 200 && body.contains(&qid), "{status} {body}");
    let (status, body) = http(
        &addr,
        "POST",
        &format!("/api/v1/instances/{name}/questions/{qid}/answer"),
        Some(r#"{"answer": "Use port 8080"}"#),
    )
    .await;
    assert!((200..300).contains(&status), "the answer was refused: {status} {body}");

    let artifacts = env.wait_terminals(1, 2 * MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.payload, "Use port 8080");
    let done = hook.next_event("workflow_completed", MINUTE, &mut others).await;
    assert_eq!(done.json()["workflow"]["goal_id"], goal.to_string().as_str(), "{}", done.body);
    let answer = env.artifacts_of(StructuralType::Answer).await;
    assert_eq!(answer.first().and_then(|a| a.answered_by.as_deref()), Some("Ada Console"), "{answer:?}");

    drop(console);
    assert_eq!(cluster.error_count("CROSSSLOT"), 0, "a command spanned two hash slots");
    env.down();
    env.redis.quit().await;
}
