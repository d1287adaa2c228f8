//! The destroyer against a real Redis: a single node (lock lost mid-way, large instances, a
//! neighbour left byte-identical) and a local 3-node Redis Cluster from sett-testkit.

use std::collections::BTreeMap;

use fred::prelude::*;
use fred::types::Value;
use fred::types::scan::Scanner;
use sett_core::{Artifact, InstanceName, StructuralType};
use sett_ops::destroy::{self, DestroyError, Destroyer, Operator};
use sett_store::{InstanceRecord, InstanceStatus, Redis, now_ms};
use sett_testkit::RedisCluster;

fn record() -> InstanceRecord {
    InstanceRecord {
        run_id: "r".into(),
        workspace: "/tmp/ws".into(),
        runtime: sett_core::config::RuntimeKind::Local.into(),
        redis: "redis://x".into(),
        created_at: now_ms(),
        started_at: None,
        stopped_at: None,
        status: InstanceStatus::Stopped,
    }
}

/// Writes `n` artifact keys, one thread and the event stream of `name` through `client`.
async fn populate(client: &Client, redis: &Redis, name: &InstanceName, n: usize) {
    let p = format!("sett:{{{name}}}:");
    let mut pending = Vec::new();
    for i in 0..n {
        pending.push(client.set::<(), _, _>(format!("{p}artifact:{i:08}"), "x", None, None, false));
        if pending.len() == 500 {
            futures::future::try_join_all(pending.drain(..)).await.unwrap();
        }
    }
    futures::future::try_join_all(pending).await.unwrap();
    let _: () = client.zadd(format!("{p}thread:1"), None, None, false, false, (1.0, "a")).await.unwrap();
    let _: String = client.xadd(format!("{p}events"), false, None, "*", ("kind", "x")).await.unwrap();
    redis.put_instance_record(name, &record()).await.unwrap();
}

#[tokio::test]
async fn large_instance_is_deleted_with_the_counts_and_audit() {
    let redis = sett_testkit::redis().await;
    let url = sett_testkit::redis_url();
    let client = Builder::from_config(Config::from_url(&url).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let name = sett_testkit::instance_name();
    let neighbour = InstanceName::parse(&format!("{name}-1")).unwrap();
    populate(&client, &redis, &name, 25_000).await;
    populate(&client, &redis, &neighbour, 10).await;
    let store = redis.instance(&name);

    let d = Destroyer::begin(&store, Operator::current("tester")).await.unwrap();
    assert_eq!(d.plan().count("artifact"), 25_000);
    assert_eq!(d.plan().total_keys(), 25_002);
    assert!(d.plan().registered);
    let mut last = 0;
    let report = d.execute(None, |n| last = n).await.unwrap();
    assert_eq!(last, 25_002, "progress reaches the total");
    assert_eq!(report.count("artifact"), 25_000);
    assert!(report.registry_entry_removed);
    assert!(store.count_instance_keys().await.unwrap().is_empty());
    assert!(store.lock_holder().await.unwrap().is_none(), "lock released");
    assert_eq!(redis.instance(&neighbour).count_instance_keys().await.unwrap().values().sum::<u64>(), 12);
    let audit = redis.audit_records().await.unwrap();
    let (_, rec) = audit.iter().find(|(_, r)| r["instance"] == name.as_str()).unwrap();
    assert_eq!(rec["operator"], "tester");
    assert_eq!(rec["counts"]["artifact"], 25_000);
    // Nothing left to destroy.
    assert!(matches!(destroy::plan(&store).await, Err(DestroyError::NotFound { .. })));
}

/// Writes `n` artifacts of `name` the way Sett writes them (artifact hash, index, event; a first
/// version alone has no thread set).
async fn write_artifacts(redis: &Redis, name: &InstanceName, n: usize) {
    let store = redis.instance(name);
    let mut pending = Vec::new();
    for i in 0..n {
        let a =
            Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "Doc", i.to_string(), "u", 1);
        let s = store.clone();
        pending.push(async move { s.create_artifact(&a).await.unwrap() });
        if pending.len() == 200 {
            futures::future::join_all(pending.drain(..)).await;
        }
    }
    futures::future::join_all(pending).await;
}

/// `DUMP` and `PEXPIRETIME` of every key of `name`: its exact bytes and expiry.
async fn dump_instance(client: &Client, name: &InstanceName) -> BTreeMap<String, (Value, i64)> {
    let mut keys = Vec::new();
    let mut pages = client.scan(format!("sett:{{{name}}}:*"), Some(1000), None);
    while let Some(mut page) = futures::TryStreamExt::try_next(&mut pages).await.unwrap() {
        keys.extend(page.take_results().unwrap_or_default().into_iter().filter_map(|k| k.into_string()));
        page.next();
    }
    let mut out = BTreeMap::new();
    for k in keys {
        let bytes: Value = client.custom(fred::cmd!("DUMP"), vec![k.clone()]).await.unwrap();
        let expiry: i64 = client.custom(fred::cmd!("PEXPIRETIME"), vec![k.clone()]).await.unwrap();
        out.insert(k, (bytes, expiry));
    }
    out
}

#[tokio::test]
async fn a_small_destroy_leaves_a_large_neighbour_byte_identical() {
    let redis = sett_testkit::redis().await;
    let client = Builder::from_config(Config::from_url(&sett_testkit::redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let name = sett_testkit::instance_name();
    let named = |suffix: &str| InstanceName::parse(&format!("{name}{suffix}")).unwrap();
    // A large neighbour written the way Sett writes, one written raw (never indexed), and names
    // sharing a prefix with the victim's.
    let (large, raw) = (named("-1"), named("b"));
    write_artifacts(&redis, &large, 3_000).await;
    populate(&client, &redis, &raw, 2_000).await;
    write_artifacts(&redis, &name, 50).await;
    redis.put_instance_record(&name, &record()).await.unwrap();
    let store = redis.instance(&name);
    assert!(store.keys_indexed().await.unwrap());
    let before = [dump_instance(&client, &large).await, dump_instance(&client, &raw).await];
    assert!(before[0].len() > 3_000);

    let d = Destroyer::begin_uncounted(&store, Operator::current("tester")).await.unwrap();
    let report = d.execute(None, |_| {}).await.unwrap();
    assert_eq!(report.count("artifact"), 50);
    assert_eq!(report.count("thread"), 0, "first versions alone have no thread set");
    assert!(store.count_instance_keys().await.unwrap().is_empty(), "nothing of the instance is left");
    for (n, before) in [large, raw].iter().zip(before) {
        let after = dump_instance(&client, n).await;
        let changed: Vec<&String> =
            before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
        assert!(changed.is_empty(), "neighbour {n} changed: {changed:?}");
    }
}

#[tokio::test]
async fn a_destroy_that_loses_its_lock_stops() {
    let redis = sett_testkit::redis().await;
    let store = redis.instance(&sett_testkit::instance_name());
    redis.put_instance_record(store.instance(), &record()).await.unwrap();
    let d = Destroyer::begin(&store, Operator::current("tester")).await.unwrap();
    // Someone removed the lock (e.g. it lapsed while Redis was unreachable): the destroy must
    // not go on without it. The renewer notices within one renewal period.
    let holder = store.lock_holder().await.unwrap().unwrap();
    assert!(store.release_lock(&holder.run_id).await.unwrap());
    tokio::time::timeout(destroy::DESTROY_LOCK_TTL, d.lock_lost()).await.expect("the renewer notices the loss");
    let err = d.execute(None, |_| {}).await.unwrap_err();
    assert!(matches!(err, DestroyError::LockLost { .. }), "{err}");
    assert!(redis.instance_record(store.instance()).await.unwrap().is_some(), "nothing deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_on_a_redis_cluster() {
    let root = tempfile::tempdir().unwrap();
    let cluster = tokio::task::spawn_blocking({
        let root = root.path().to_owned();
        move || RedisCluster::start(&root, 3, 0)
    })
    .await
    .unwrap();
    let url = cluster.url();
    let redis = sett_testkit::redis_at(&url).await;
    let client = Builder::from_config(Config::from_url(&url).unwrap()).build().unwrap();
    client.init().await.unwrap();

    // Several instances: their slots spread over the three nodes.
    let name = sett_testkit::instance_name();
    let neighbours: Vec<InstanceName> =
        ["-1", "b", "-b", "x2", "y3"].iter().map(|s| InstanceName::parse(&format!("{name}{s}")).unwrap()).collect();
    // And one whose hash tag lands in the same slot: the slot sweep must leave it alone.
    let slot = fred::util::redis_keyslot(format!("sett:{{{name}}}:lock").as_bytes());
    let same_slot = (0..)
        .map(|i| InstanceName::parse(&format!("{name}c{i}")).unwrap())
        .find(|n| fred::util::redis_keyslot(format!("sett:{{{n}}}:lock").as_bytes()) == slot)
        .unwrap();
    let neighbours: Vec<InstanceName> = neighbours.into_iter().chain([same_slot]).collect();
    populate(&client, &redis, &name, 5_000).await;
    for n in &neighbours {
        populate(&client, &redis, n, 100).await;
    }
    let store = redis.instance(&name);
    let d = Destroyer::begin(&store, Operator::current("tester")).await.unwrap();
    assert_eq!(d.plan().count("artifact"), 5_000);
    let backup = root.path().join("backup.jsonl");
    assert_eq!(d.backup(&backup).await.unwrap(), 5_002);
    let report = d.execute(Some(&backup), |_| {}).await.unwrap();
    assert_eq!(report.count("artifact"), 5_000);
    assert!(report.registry_entry_removed);

    // Nothing of the instance is left on any node; every neighbour is intact.
    for n in &cluster.nodes {
        let left = n.cli(&["--scan", "--pattern", &format!("sett:{{{name}}}:*")]);
        assert!(left.trim().is_empty(), "node {} still has {left}", n.port);
    }
    for n in &neighbours {
        assert_eq!(redis.instance(n).count_instance_keys().await.unwrap().values().sum::<u64>(), 102);
        assert!(redis.instance_record(n).await.unwrap().is_some());
    }
    // The backup restores on the cluster too.
    for line in std::fs::read_to_string(&backup).unwrap().lines() {
        store.restore(&serde_json::from_str(line).unwrap()).await.unwrap();
    }
    assert_eq!(store.count_instance_keys().await.unwrap().get("artifact"), Some(&5_000));
    let _ = client.quit().await;
    redis.quit().await;
    drop(cluster);
}
