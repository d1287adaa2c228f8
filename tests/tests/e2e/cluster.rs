//! Scale-out end to end: every command on a real 3-primary / 3-replica Redis Cluster (no
//! CROSSSLOT on any path), and the same pipeline through a Sentinel deployment.

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

#[tokio::test(flavor = "multi_thread")]
async fn every_command_through_sentinel() {
    let root = tempfile::tempdir().unwrap();
    let set = sentinels(root.path()).await;
    let mut env = Env::examples_with_redis_url(&set.url(), true).await;
    pipeline_and_every_command(&mut env).await;
    env.redis.quit().await;
}
