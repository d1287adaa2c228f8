//! Destroy's deletion by enumeration against a real Redis: every key family written through its
//! real writers is reached without a sweep, and an instance whose keys are not all indexed
//! (written raw, or imported) is swept. (A neighbour left byte-identical: sett-ops
//! tests/destroy.rs.)

use fred::prelude::*;
use sett_core::machine::{initial_claim_id, new_claim};
use sett_core::{AgentName, Artifact, ArtifactId, BidType, InstanceName, StructuralType};
use sett_store::{
    DeliveryRecord, DeliveryStatus, KeyIndexing, LockHolder, LockPurpose, NewDelivery, Redis, Store, WorkerRecord,
    new_artifact_id, new_claim_id, now_ms,
};

async fn client() -> Client {
    let client = Builder::from_config(Config::from_url(&sett_testkit::redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    client
}

/// Every key of `name`, from a SCAN of the whole keyspace.
async fn scan_keys(c: &Client, name: &InstanceName) -> Vec<String> {
    let pattern = format!("sett:{{{name}}}:*");
    let mut cursor = "0".to_owned();
    let mut keys = Vec::new();
    loop {
        let (next, page): (String, Vec<String>) = c
            .custom(
                fred::cmd!("SCAN"),
                vec![cursor.clone(), "MATCH".into(), pattern.clone(), "COUNT".into(), "1000".into()],
            )
            .await
            .unwrap();
        keys.extend(page);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Writes one of each key family through the writers Sett uses: artifacts (a first version and
/// a later one of the same thread), claims with bids, a bid on a claim never created, worker
/// slots and a queue, a notification delivery, the lock; and every other fixed key (their
/// writers need running workflows; destroy reaches them by name). `artifacts` more first
/// versions make it larger.
async fn populate(store: &Store, c: &Client, artifacts: usize) {
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", 1);
    store.create_artifact(&goal).await.unwrap();
    let mut v2 = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "y", "user", 2);
    v2.logical_id = goal.id;
    v2.version = 2;
    store.create_artifact(&v2).await.unwrap();
    for i in 0..artifacts {
        let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", format!("{i}"), "user", 3);
        store.create_artifact(&a).await.unwrap();
    }
    let agent = AgentName::parse("A").unwrap();
    // A claim created with the bids that came before it, and one created before its bids.
    let first = new_claim(initial_claim_id(&goal.id), &goal, &sett_testkit::policy(), 5);
    assert!(store.submit_bid_before_claim(&first.id, &agent, BidType::Claim, 4).await.unwrap());
    store.create_claim_reading_bids(&first, &[], &[], 5).await.unwrap();
    let second = new_claim(new_claim_id(), &v2, &sett_testkit::policy(), 5);
    store.write_claim(&second, None, false, &[], &[], 5).await.unwrap();
    store.submit_bid(&second.id, &agent, BidType::Review, 6).await.unwrap();
    // Bids on a claim the orchestrator never creates (e.g. its workflow was cancelled).
    let orphan: ArtifactId = new_artifact_id();
    assert!(store.submit_bid_before_claim(&initial_claim_id(&orphan), &agent, BidType::Ignore, 7).await.unwrap());
    let record = WorkerRecord { run_id: "r".into(), pid: Some(1), container: None, launched_at_ms: 8 };
    store.offer_worker(&agent, 1, "g1", &record).await.unwrap();
    store.offer_worker(&agent, 1, "g2", &record).await.unwrap();
    store.update_worker(&AgentName::parse("B").unwrap(), "g3", &record).await.unwrap();
    let delivery = NewDelivery {
        id: "1-0:ops".into(),
        record: DeliveryRecord {
            webhook: "ops".into(),
            event: "claim_completed".into(),
            event_id: "1-0".into(),
            event_ts_ms: 9,
            created_ms: 9,
            status: DeliveryStatus::Pending,
            attempts: 0,
            body: None,
            next_attempt_ms: Some(9),
            last_error: None,
            finished_ms: None,
        },
    };
    assert_eq!(store.notify_enqueue(None, &[delivery], 9).await.unwrap(), 1);
    let holder =
        LockHolder { run_id: "x".into(), host: "h".into(), pid: 1, started_at: now_ms(), purpose: LockPurpose::Run };
    store.acquire_lock(&holder, 60_000).await.unwrap().unwrap();
    for k in store.keys().fixed() {
        if c.exists::<u64, _>(&k).await.unwrap() == 0 {
            let _: () = c.set(&k, "x", None, None, false).await.unwrap();
        }
    }
}

#[tokio::test]
async fn every_key_family_is_enumerated() {
    let redis = sett_testkit::redis().await;
    let c = client().await;
    let name = sett_testkit::instance_name();
    let store = redis.instance(&name);
    populate(&store, &c, 3).await;
    assert_eq!(
        store.key_indexing().await.unwrap(),
        KeyIndexing::ThreadsRegistered,
        "the first event marks the instance"
    );
    let before = scan_keys(&c, &name).await;
    let families: std::collections::BTreeSet<&str> = before.iter().map(|k| store.keys().family_of(k)).collect();
    for f in ["artifact", "thread", "claim", "bids", "workers", "notify", "events", "ledger", "index", "archive"] {
        assert!(families.contains(f), "the test writes family {f}");
    }

    // Indexed, on a single node: the enumeration alone (no sweep) must leave nothing.
    let counts = store.purge_instance_keys(|_| {}).await.unwrap();
    assert_eq!(scan_keys(&c, &name).await, vec![store.keys().lock()], "only the lock is left");
    assert_eq!(counts.values().sum::<u64>(), before.len() as u64 - 1, "every key counted once");
    assert_eq!(counts["artifact"], 5);
    // The goal's thread (made by its second version); the other first versions have none.
    assert_eq!(counts["thread"], 1);
    assert_eq!(counts["bids"], 3);
    assert_eq!(counts["workers"], 3);
}

#[tokio::test]
async fn an_instance_not_indexed_is_swept() {
    let redis: Redis = sett_testkit::redis().await;
    let c = client().await;
    let name = sett_testkit::instance_name();
    let store = redis.instance(&name);
    populate(&store, &c, 2).await;
    // A family no index reaches, written raw (as an older Sett might have): the mark is taken
    // away as an import does, so the destroy sweeps.
    let stray = format!("sett:{{{name}}}:stray:1");
    let _: () = c.set(&stray, "x", None, None, false).await.unwrap();
    let mut exported = Vec::new();
    store
        .export(|d| -> Result<(), sett_store::StoreError> {
            exported.push(d);
            Ok(())
        })
        .await
        .unwrap();
    store.purge_instance_keys(|_| {}).await.unwrap();
    store.restore_batch(&exported).await.unwrap();
    assert!(!store.keys_indexed().await.unwrap(), "an imported instance is not marked indexed");
    let counts = store.purge_instance_keys(|_| {}).await.unwrap();
    assert_eq!(counts.get("stray"), Some(&1));
    assert_eq!(scan_keys(&c, &name).await, vec![store.keys().lock()]);
}

#[tokio::test]
async fn artifacts_past_several_index_chunks_are_all_enumerated() {
    let redis = sett_testkit::redis().await;
    let c = client().await;
    let name = sett_testkit::instance_name();
    let store = redis.instance(&name);
    // Two full chunks of the index (purge.rs reads it 5,000 ids at a time, the next chunk
    // asked for while this one's keys are unlinked) and one id more.
    let n = 2 * 5_000 + 1;
    let mut pending = Vec::new();
    for i in 0..n {
        let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", format!("{i}"), "user", 1);
        let s = store.clone();
        pending.push(async move { s.create_artifact(&a).await.unwrap() });
        if pending.len() == 200 {
            futures::future::join_all(pending.drain(..)).await;
        }
    }
    futures::future::join_all(pending).await;
    assert!(store.keys_indexed().await.unwrap());

    let counts = store.purge_instance_keys(|_| {}).await.unwrap();
    assert_eq!(counts["artifact"], n as u64);
    assert_eq!(counts.get("thread"), None, "a first version alone has no thread set");
    assert!(scan_keys(&c, &name).await.is_empty(), "nothing is left");
}

/// An instance whose first event was written by a Sett that gave every first version its own
/// `thread:<id>` (mark `indexed`) still loses every thread set to destroy, without a sweep.
#[tokio::test]
async fn an_instance_marked_by_an_older_sett_loses_its_first_versions_threads() {
    let redis = sett_testkit::redis().await;
    let c = client().await;
    let name = sett_testkit::instance_name();
    let store = redis.instance(&name);
    populate(&store, &c, 3).await;
    // What the older writers left: the mark, and a thread set per first version.
    let _: () = c.hset(store.keys().ledger(), ("keys", "indexed")).await.unwrap();
    let ids: Vec<String> = c.zrange(store.keys().artifacts_index(), 0, -1, None, false, None, false).await.unwrap();
    for id in &ids {
        let _: () = c
            .zadd(format!("{}thread:{id}", store.keys().prefix()), None, None, false, false, (1.0, id.as_str()))
            .await
            .unwrap();
    }
    assert_eq!(store.key_indexing().await.unwrap(), KeyIndexing::Indexed);
    let counts = store.purge_instance_keys(|_| {}).await.unwrap();
    assert_eq!(scan_keys(&c, &name).await, vec![store.keys().lock()], "only the lock is left");
    // One per artifact; the goal's id names the set its second version made.
    assert_eq!(counts["thread"], ids.len() as u64);
}
