//! `cargo xtask bench --only cluster`: lifecycles/s of the throughput scenario (three agents bid
//! on every claim, no-op tools) on a 3-primary / 3-replica Redis Cluster against a single node in
//! the same run, both with AOF as the end-to-end tests run them, and the cost of
//! `redis.durability: replicated` (every write confirmed by a replica with `WAIT`) against `fast`
//! on the same cluster. Two more deployments separate the cluster's code path from the
//! replication work (which on one 2-core machine competes with Sett for the same CPU): a cluster
//! without replicas against the single node, and the 3+3 cluster against a single node with one
//! replica. All instances are up at once and measured in turn, run after run, so a drift of the
//! machine's load affects all of them alike.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, ENGINE_YML, median, workspace};
use crate::redis::{TempCluster, TempRedis, TempReplicated, cli};

/// One Redis deployment with one `sett.yml` durability, and the instance measured on it.
struct Target {
    label: &'static str,
    url: String,
    durability: &'static str,
    /// Ports whose `INFO commandstats` count the lifecycle's commands (the primaries).
    primaries: Vec<u16>,
    ws: PathBuf,
    name: String,
}

pub(crate) fn cluster(b: &Bench, root: &Path, quick: bool) -> Result<Value> {
    let count: u64 = if quick { 1000 } else { 3000 };
    let dir = std::env::temp_dir().join(format!("sett-bench-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let single = TempRedis::start(&dir.join("single"), &["--appendonly", "yes"])?;
    let single_replicated = TempReplicated::start(&dir.join("single-replica"), &["--appendonly", "yes"])?;
    let cluster = TempCluster::start(&dir.join("cluster"), 3)?;
    let bare_cluster = TempCluster::start_with(&dir.join("cluster-bare"), 3, 0)?;
    let target = |label: &'static str, url: String, durability: &'static str, primaries: Vec<u16>| -> Result<Target> {
        let yml = ENGINE_YML.replace("orchestrator:", &format!("redis: {{durability: {durability}}}\norchestrator:"));
        let ws = workspace(root, &format!("cluster-{label}"), &yml)?;
        Ok(Target { label, url, durability, primaries, ws, name: format!("bench-{}", label.replace('_', "-")) })
    };
    let targets = [
        target("single_node", single.url(), "fast", vec![single.port])?,
        target(
            "single_node_with_replica",
            single_replicated.primary.url(),
            "fast",
            vec![single_replicated.primary.port],
        )?,
        target("cluster_without_replicas", bare_cluster.url(), "fast", bare_cluster.primaries())?,
        target("cluster_fast", cluster.url(), "fast", cluster.primaries())?,
        target("cluster_replicated", cluster.url(), "replicated", cluster.primaries())?,
    ];
    let measured = measure(b, &targets, count);
    let per_target = measured?;
    let lps = |label: &str| {
        per_target
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0.0, |(_, v)| v["lifecycles_per_second"].as_f64().unwrap_or(0.0))
    };
    let (single_lps, fast, replicated) = (lps("single_node"), lps("cluster_fast"), lps("cluster_replicated"));
    let (single_with_replica, bare) = (lps("single_node_with_replica"), lps("cluster_without_replicas"));
    let mut out = serde_json::Map::new();
    out.insert("claims_per_run".into(), json!(count));
    out.insert("agents_bidding".into(), json!(3));
    out.insert(
        "topology".into(),
        json!("cluster: 3 primaries + 3 replicas (redis-server processes on loopback, cluster-node-timeout 2 s); cluster without replicas: 3 primaries; single node: one redis-server; single node with replica: one primary + one replica; all with appendonly yes (appendfsync everysec)"),
    );
    for (label, v) in per_target {
        out.insert(label.into(), v);
    }
    out.insert("cluster_vs_single_node".into(), json!(fast / single_lps.max(1e-9)));
    // The cluster's code path alone (no replication on either side) and with the same
    // replication work on both sides.
    out.insert("cluster_without_replicas_vs_single_node".into(), json!(bare / single_lps.max(1e-9)));
    out.insert("cluster_vs_single_node_with_replica".into(), json!(fast / single_with_replica.max(1e-9)));
    out.insert("target_cluster_vs_single_node_at_least".into(), json!(0.9));
    out.insert("replicated_vs_fast".into(), json!(replicated / fast.max(1e-9)));
    out.insert("replicated_fewer_lifecycles".into(), json!(1.0 - replicated / fast.max(1e-9)));
    out.insert("target_replicated_fewer_lifecycles_at_most".into(), json!(0.25));
    Ok(Value::Object(out))
}

/// `b.runs` rounds; in each, every target runs the throughput scenario once, on an emptied
/// Redis with the instance freshly started: each run starts from the same state, so a
/// deployment's figure does not depend on how much earlier runs left in it (the two cluster
/// targets share one cluster, which would otherwise hold twice the data of the others).
fn measure(b: &Bench, targets: &[Target], count: u64) -> Result<Vec<(&'static str, Value)>> {
    let mut rates = vec![Vec::new(); targets.len()];
    let mut per = vec![Vec::new(); targets.len()];
    let mut by = vec![serde_json::Map::new(); targets.len()];
    for _ in 0..b.runs {
        for (i, t) in targets.iter().enumerate() {
            for &p in &t.primaries {
                cli(p, &["FLUSHALL"]);
            }
            let (code, err) = sett_at(b, t, &["up"])?;
            if code != 0 {
                bail!("sett up on {} failed: {err}", t.label);
            }
            for &p in &t.primaries {
                cli(p, &["CONFIG", "RESETSTAT"]);
            }
            let r = bench_at(b, t, &["throughput", "--count", &count.to_string()]);
            let _ = sett_at(b, t, &["down"]);
            let r = r?;
            if r["not_completed"].as_u64() != Some(0) {
                bail!("throughput on {}: claims did not complete: {r}", t.label);
            }
            let (total, commands) = command_stats(&t.primaries);
            // The load generator's stream reads and the INFO calls are not part of a lifecycle.
            let reads = r["bench_reads"].as_u64().unwrap_or(0) + t.primaries.len() as u64;
            rates[i].push(r["lifecycles_per_second"].as_f64().unwrap_or(0.0));
            per[i].push(total.saturating_sub(reads) as f64 / count as f64);
            by[i] = commands.into_iter().map(|(k, v)| (k, json!(v as f64 / count as f64))).collect();
        }
    }
    Ok(targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.label,
                json!({
                    "durability": t.durability,
                    "lifecycles_per_second": median(rates[i].clone()),
                    "lifecycles_per_second_runs": rates[i],
                    "redis_commands_per_lifecycle": median(per[i].clone()),
                    "commands_per_lifecycle_by_command": by[i],
                }),
            )
        })
        .collect())
}

/// The sum of `calls=` over `INFO commandstats` of every port, and the per-command sums.
fn command_stats(ports: &[u16]) -> (u64, std::collections::BTreeMap<String, u64>) {
    let mut total = 0;
    let mut by = std::collections::BTreeMap::new();
    for &p in ports {
        for line in cli(p, &["INFO", "commandstats"]).lines() {
            let Some((name, rest)) = line.trim().strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                continue;
            };
            // Replicas' acknowledgements (REPLCONF ACK, more of them under WAIT) are replication
            // traffic, not commands a lifecycle sends.
            if name.starts_with("replconf") {
                continue;
            }
            let calls: u64 =
                rest.split(',').find_map(|kv| kv.strip_prefix("calls=")).and_then(|n| n.parse().ok()).unwrap_or(0);
            total += calls;
            *by.entry(name.to_owned()).or_default() += calls;
        }
    }
    (total, by)
}

/// `sett <args> --name <instance>` in the target's workspace against its Redis.
fn sett_at(b: &Bench, t: &Target, args: &[&str]) -> Result<(i32, String)> {
    let out = Command::new(b.bin.join("sett"))
        .args(args)
        .args(["--redis-url", &t.url, "--name", &t.name])
        .current_dir(&t.ws)
        .env("SETT_BIN_DIR", &b.bin)
        .env("SETT_OPERATOR", "bench")
        .stdin(Stdio::null())
        .output()?;
    Ok((out.status.code().unwrap_or(1), String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// `sett-bench <args>` on the target's instance, writing with the target's durability.
fn bench_at(b: &Bench, t: &Target, args: &[&str]) -> Result<Value> {
    let out = Command::new(b.bin.join("sett-bench"))
        .args(["--redis-url", &t.url, "--instance", &t.name, "--durability", t.durability])
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("sett-bench {args:?} on {} failed", t.label);
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
