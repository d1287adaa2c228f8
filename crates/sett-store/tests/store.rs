//! Store tests against a real Redis: atomic artifact writes, claim compare-and-set under
//! contention, the lock, scan-delete isolation and durable event consumption.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use sett_core::event::{ClaimEnded, EventData, EventKind, InstanceStarted, InstanceStopped};
use sett_core::machine::new_claim;
use sett_core::record::ExecutionRecord;
use sett_core::{AgentName, Artifact, BidType, ClaimStatus, InstanceName, StructuralType};
use sett_store::{CreateOutcome, GroupStart, LockHolder, LockPurpose, Store, WriteOutcome, now_ms};
use sett_store::{new_artifact_id, new_claim_id};

fn full_artifact() -> Artifact {
    let mut a = Artifact::new_root(
        new_artifact_id(),
        StructuralType::Answer,
        "Answer",
        "multi\nline \"payload\" {}",
        "human:alice",
        now_ms(),
    );
    a.source_artifacts = vec![new_artifact_id()];
    a.claim_id = Some(new_claim_id());
    a.summary = Some("a summary".into());
    a.answered_by = Some("alice".into());
    a.timed_out = true;
    a.usage = Some(
        sett_core::usage::Usage::from_tool_json(&serde_json::json!({
            "model": "m", "input_tokens": 7, "cost": {"amount": "0.5", "currency": "EUR"}, "counters": {"calls": 2}
        }))
        .unwrap()
        .unwrap(),
    );
    a
}

#[tokio::test]
async fn artifacts_round_trip_and_are_immutable() {
    let store = sett_testkit::store().await;
    let a = full_artifact();
    // Its source must exist first (the store refuses an artifact whose sources are missing).
    let mut question = Artifact::new_root(new_artifact_id(), StructuralType::Question, "Question", "?", "A", now_ms());
    question.id = a.source_artifacts[0];
    question.logical_id = question.id;
    assert!(matches!(store.create_artifact(&question).await.unwrap(), CreateOutcome::Created { .. }));
    assert!(matches!(store.create_artifact(&a).await.unwrap(), CreateOutcome::Created { .. }));
    assert_eq!(store.get_artifact(&a.id).await.unwrap().unwrap(), a);
    // The same id again is refused, whatever the content.
    let mut twin = a.clone();
    twin.payload = "changed".into();
    assert_eq!(store.create_artifact(&twin).await.unwrap(), CreateOutcome::IdExists);
    assert_eq!(store.get_artifact(&a.id).await.unwrap().unwrap().payload, a.payload);
    // A second artifact at the same thread version is refused too.
    let mut same_version = a.clone();
    same_version.id = new_artifact_id();
    assert_eq!(store.create_artifact(&same_version).await.unwrap(), CreateOutcome::VersionTaken { existing: a.id });
    // Each write appended exactly one event, atomically with the hash and the thread entry.
    let events = store.events_after(None, 100).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind(), EventKind::ArtifactCreated);
    assert_eq!(events[1].data.artifact_id(), Some(a.id));
    assert_eq!(store.latest_in_thread(&a.logical_id).await.unwrap().unwrap().id, a.id);
}

/// A first version alone has no thread set (it is its thread's only version); the second version
/// makes the set with both, and a set an older Sett wrote for a first version is used as it is.
#[tokio::test]
async fn a_thread_set_is_made_by_its_second_version() {
    let redis = sett_testkit::redis().await;
    let store = redis.instance(&sett_testkit::instance_name());
    let c = Builder::from_config(Config::from_url(&sett_testkit::redis_url()).unwrap()).build().unwrap();
    c.init().await.unwrap();
    let v1 = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", "one", "user", 1);
    assert!(matches!(store.create_artifact(&v1).await.unwrap(), CreateOutcome::Created { .. }));
    let thread = store.keys().thread(&v1.logical_id);
    assert_eq!(c.exists::<u32, _>(&thread).await.unwrap(), 0, "no set for a first version alone");
    assert_eq!(store.latest_in_thread(&v1.logical_id).await.unwrap().unwrap().id, v1.id);
    // A later version at the first's version is refused without a set.
    let mut clash = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", "clash", "user", 2);
    clash.logical_id = v1.id;
    assert_eq!(store.create_artifact(&clash).await.unwrap(), CreateOutcome::VersionTaken { existing: v1.id });
    assert_eq!(c.exists::<u32, _>(&thread).await.unwrap(), 0, "a refused write makes no set");
    let mut v2 = clash.clone();
    v2.id = new_artifact_id();
    v2.version = 2;
    assert!(matches!(store.create_artifact(&v2).await.unwrap(), CreateOutcome::Created { .. }));
    let members: Vec<(String, f64)> = c.zrange(&thread, 0, -1, None, false, None, true).await.unwrap();
    assert_eq!(members, vec![(v1.id.to_string(), 1.0), (v2.id.to_string(), 2.0)]);
    assert_eq!(store.latest_in_thread(&v1.logical_id).await.unwrap().unwrap().id, v2.id);
    let registry: Vec<String> = c.smembers(store.keys().key_registry()).await.unwrap();
    assert!(registry.iter().any(|k| thread.ends_with(k.as_str())), "the set is in the key registry: {registry:?}");

    // A first version whose set an older Sett wrote: the next version joins that set.
    let old = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", "old", "user", 3);
    store.create_artifact(&old).await.unwrap();
    let old_thread = store.keys().thread(&old.logical_id);
    let _: () = c.zadd(&old_thread, None, None, false, false, (1.0, old.id.to_string())).await.unwrap();
    let mut next = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", "next", "user", 4);
    next.logical_id = old.id;
    next.version = 2;
    store.create_artifact(&next).await.unwrap();
    let members: Vec<(String, f64)> = c.zrange(&old_thread, 0, -1, None, false, None, true).await.unwrap();
    assert_eq!(members, vec![(old.id.to_string(), 1.0), (next.id.to_string(), 2.0)]);
    assert_eq!(store.latest_in_thread(&old.logical_id).await.unwrap().unwrap().id, next.id);
}

/// A source's hash that the store remembers (it read the source) is not read again before an
/// artifact citing it is written; the Lua still compares it with the stored one, and when that
/// changed meanwhile the write is made again with the hash read, as it was before remembering.
#[tokio::test]
async fn a_remembered_source_hash_that_changed_is_read_again() {
    let store = sett_testkit::store().await;
    let source = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "g", "user", now_ms());
    assert!(matches!(store.create_artifact(&source).await.unwrap(), CreateOutcome::Created { .. }));
    assert!(store.get_artifact(&source.id).await.unwrap().is_some());
    let port: u16 = store.redis().options().url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    let key = store.keys().artifact(&source.id);
    let edited = "e".repeat(64);
    sett_testkit::redis_cli(port, &["HSET", &key, "hash", &edited]);
    let mut output = Artifact::new_root(new_artifact_id(), StructuralType::Terminal, "Done", "ok", "A", now_ms());
    output.source_artifacts = vec![source.id];
    assert!(matches!(store.create_artifact(&output).await.unwrap(), CreateOutcome::Created { .. }));
    // The output's hash covers the source's hash as stored when it was written.
    let hashes = store.artifact_hashes(&[output.id]).await.unwrap();
    let fields = sett_store::codec::encode_artifact(&output);
    let expected =
        sett_core::ledger::artifact_hash(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())), &[edited.as_str()]);
    assert_eq!(hashes[0].as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn claims_round_trip_every_field() {
    let store = sett_testkit::store().await;
    let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", 1);
    let mut c = new_claim(new_claim_id(), &a, &sett_testkit::policy(), 5);
    c.granted_review_agents = vec![AgentName::parse("A").unwrap()];
    c.termination_reason = Some("because".into());
    c.additional_context_ids = vec![new_artifact_id()];
    assert_eq!(store.write_claim(&c, None, true, &[], &[], 5).await.unwrap(), WriteOutcome::Written);
    assert_eq!(store.get_claim(&c.id).await.unwrap().unwrap(), c);
    assert_eq!(store.claim_for_artifact(&a.id).await.unwrap(), Some(c.id));
    // A second claim for the same artifact is refused (idempotent creation).
    let other = new_claim(new_claim_id(), &a, &sett_testkit::policy(), 6);
    assert_eq!(
        store.write_claim(&other, None, true, &[], &[], 6).await.unwrap(),
        WriteOutcome::Exists(c.id.to_string())
    );
    assert_eq!(store.due_claims(i64::MAX).await.unwrap(), vec![c.id]);
}

/// A compare-and-set over the record as the writer wrote it overwrites it in place when the new
/// record keeps every field, and replaces it whole when it drops one (an emptied list, a cleared
/// reason): either way nothing of the old record survives that the new one lacks.
#[tokio::test]
async fn a_transition_over_its_own_write_leaves_exactly_the_new_record() {
    let store = sett_testkit::store().await;
    let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", 1);
    let mut c = new_claim(new_claim_id(), &a, &sett_testkit::policy(), 5);
    c.granted_review_agents = vec![AgentName::parse("A").unwrap()];
    c.termination_reason = Some("because".into());
    c.additional_context_ids = vec![new_artifact_id()];
    assert_eq!(store.write_claim(&c, None, true, &[], &[], 5).await.unwrap(), WriteOutcome::Written);
    // Fields dropped: the stored hash goes first.
    let mut next = c.clone();
    next.revision = c.revision + 1;
    next.granted_review_agents.clear();
    next.termination_reason = None;
    next.additional_context_ids.clear();
    next.status = ClaimStatus::Dormant;
    let events = [EventData::ClaimDormant(ClaimEnded::new(&next))];
    let written = store.replace_claim_with_outbox(&next, &c, &[], &events, None::<&()>, 6).await.unwrap();
    assert_eq!(written, WriteOutcome::Written);
    assert_eq!(store.get_claim(&c.id).await.unwrap().unwrap(), next);
    // Every field kept and one added: overwritten in place.
    let mut last = next.clone();
    last.revision = next.revision + 1;
    last.termination_reason = Some("again".into());
    let events = [EventData::ClaimDormant(ClaimEnded::new(&last))];
    let written = store.replace_claim_with_outbox(&last, &next, &[], &events, None::<&()>, 7).await.unwrap();
    assert_eq!(written, WriteOutcome::Written);
    assert_eq!(store.get_claim(&c.id).await.unwrap().unwrap(), last);
    // A stale revision is refused and changes nothing.
    assert_eq!(
        store.replace_claim_with_outbox(&last, &next, &[], &events, None::<&()>, 8).await.unwrap(),
        WriteOutcome::Conflict { current: last.revision.to_string() }
    );
    // A plain compare-and-set that drops a field (the record read back) replaces it whole.
    let mut end = last.clone();
    end.revision = last.revision + 1;
    end.termination_reason = None;
    let events = [EventData::ClaimDormant(ClaimEnded::new(&end))];
    assert_eq!(
        store.write_claim(&end, Some(last.revision), false, &[], &events, 9).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(store.get_claim(&c.id).await.unwrap().unwrap(), end);
}

/// The orchestrator's sweep for artifacts whose event was never handled pages the index by
/// creation time and asks which artifacts have no claim.
#[tokio::test]
async fn artifacts_are_listed_by_creation_time_with_those_not_claimed() {
    let store = sett_testkit::store().await;
    let mut made = Vec::new();
    for ms in [100, 200, 200, 300] {
        let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", ms);
        store.create_artifact(&a).await.unwrap();
        made.push(a);
    }
    let page = store.artifacts_created_between(150, 300, 10).await.unwrap();
    let times: Vec<i64> = page.iter().map(|(_, ms)| *ms).collect();
    assert_eq!(times, vec![200, 200, 300], "inclusive bounds, oldest first");
    assert_eq!(store.artifacts_created_between(0, 1_000, 2).await.unwrap().len(), 2, "a page holds `limit`");
    assert!(store.artifacts_created_between(301, 1_000, 10).await.unwrap().is_empty());
    let claim = new_claim(new_claim_id(), &made[1], &sett_testkit::policy(), 5);
    assert_eq!(store.write_claim(&claim, None, true, &[], &[], 5).await.unwrap(), WriteOutcome::Written);
    let ids: Vec<_> = made.iter().map(|a| a.id).collect();
    let unclaimed = store.artifacts_without_claim(&ids).await.unwrap();
    assert_eq!(unclaimed, vec![ids[0], ids[2], ids[3]]);
    assert_eq!(store.artifacts_without_claim(&ids[1..2]).await.unwrap(), vec![], "one claimed artifact");
    assert_eq!(store.artifacts_without_claim(&ids[..1]).await.unwrap(), vec![ids[0]], "one unclaimed artifact");
    assert!(store.artifacts_without_claim(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn twenty_racing_transitions_apply_exactly_once() {
    let store = sett_testkit::store().await;
    let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", 1);
    let c = new_claim(new_claim_id(), &a, &sett_testkit::policy(), 5);
    store.write_claim(&c, None, true, &[], &[], 5).await.unwrap();
    let c = Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, c) = (store.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut next = (*c).clone();
            next.status = ClaimStatus::Dormant;
            next.revision = c.revision + 1;
            next.termination_reason = Some(format!("task {i}"));
            let events = [EventData::ClaimDormant(ClaimEnded::new(&next))];
            store.write_claim(&next, Some(c.revision), false, &[], &events, 6).await.unwrap()
        }));
    }
    let mut written = 0;
    for t in tasks {
        match t.await.unwrap() {
            WriteOutcome::Written => written += 1,
            WriteOutcome::Conflict { current } => assert_eq!(current, "2"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(written, 1);
    let events = store.events_after(None, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind() == EventKind::ClaimDormant).count(), 1);
    assert_eq!(store.get_claim(&c.id).await.unwrap().unwrap().revision, 2);
}

#[tokio::test]
async fn bids_are_recorded_once() {
    let store = sett_testkit::store().await;
    let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", 1);
    let c = new_claim(new_claim_id(), &a, &sett_testkit::policy(), 5);
    let agent = AgentName::parse("A").unwrap();
    assert!(!store.submit_bid(&c.id, &agent, BidType::Review, 1).await.unwrap(), "no claim yet");
    store.write_claim(&c, None, true, &[], &[], 5).await.unwrap();
    assert!(store.submit_bid(&c.id, &agent, BidType::Review, 1).await.unwrap());
    assert!(!store.submit_bid(&c.id, &agent, BidType::Exclusive, 2).await.unwrap());
    assert_eq!(store.bids(&c.id).await.unwrap().get(&agent), Some(&BidType::Review));
    let taken_by = |pid| ExecutionRecord { pid: Some(pid), ..ExecutionRecord::default() };
    assert!(store.take_grant(&c.id, 1, &taken_by(1)).await.unwrap());
    assert!(!store.take_grant(&c.id, 1, &taken_by(2)).await.unwrap());
    // A retried take by the same attempt (same record) finds it already its own.
    assert!(store.take_grant(&c.id, 1, &taken_by(1)).await.unwrap());
    assert_eq!(store.execution_record(&c.id, 1).await.unwrap(), Some(taken_by(1)));
}

#[tokio::test]
async fn a_bid_may_precede_its_claim_but_not_outlive_its_consensus() {
    let store = sett_testkit::store().await;
    let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", 1);
    let c = new_claim(new_claim_id(), &a, &sett_testkit::policy(), 5);
    let (first, second, late) =
        (AgentName::parse("A").unwrap(), AgentName::parse("B").unwrap(), AgentName::parse("C").unwrap());
    // Before the orchestrator created the claim: recorded, once, with its event.
    assert!(store.submit_bid_before_claim(&c.id, &first, BidType::Exclusive, 1).await.unwrap());
    assert!(!store.submit_bid_before_claim(&c.id, &first, BidType::Review, 2).await.unwrap());
    // The creating write reads back the bids recorded before it, in the same atomic step...
    let (outcome, early) = store.create_claim_reading_bids(&c, &[], &[], 5).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    assert_eq!(early, BTreeMap::from([(first.clone(), BidType::Exclusive)]));
    // ...and a second create is refused, with no bids.
    let (outcome, none) = store.create_claim_reading_bids(&c, &[], &[], 5).await.unwrap();
    assert!(matches!(outcome, WriteOutcome::Exists(_)), "{outcome:?}");
    assert!(none.is_empty());
    // The claim waits for bids: still accepted.
    assert!(store.submit_bid_before_claim(&c.id, &second, BidType::Ignore, 6).await.unwrap());
    let bids = store.bids(&c.id).await.unwrap();
    assert_eq!((bids.get(&first), bids.get(&second)), (Some(&BidType::Exclusive), Some(&BidType::Ignore)));
    let events = store.events_after(None, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind() == EventKind::BidSubmitted).count(), 2);
    // Once the claim moved on (an old artifact re-read by a cub that joined late), no bid.
    let mut granted = c.clone();
    granted.status = ClaimStatus::PendingExclusive;
    granted.revision = 2;
    store.write_claim(&granted, Some(1), false, &[], &[], 7).await.unwrap();
    assert!(!store.submit_bid_before_claim(&c.id, &late, BidType::Exclusive, 8).await.unwrap());
    assert_eq!(store.bids(&c.id).await.unwrap().get(&late), None);
}

fn holder(run_id: &str) -> LockHolder {
    LockHolder { run_id: run_id.into(), host: "h".into(), pid: 1, started_at: now_ms(), purpose: LockPurpose::Run }
}

#[tokio::test]
async fn the_lock_is_owned_by_its_run_id_and_expires() {
    let store = sett_testkit::store().await;
    assert_eq!(store.acquire_lock(&holder("r1"), 300).await.unwrap(), Ok(()));
    let refused = store.acquire_lock(&holder("r2"), 300).await.unwrap().unwrap_err();
    assert_eq!(refused.run_id, "r1");
    assert!(!store.renew_lock("r2", 10_000).await.unwrap());
    assert!(!store.release_lock("r2").await.unwrap());
    assert!(store.renew_lock("r1", 300).await.unwrap());
    // Not renewed: it expires by itself (Redis TTL; wait on the key, bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.lock_holder().await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "lock did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!store.renew_lock("r1", 300).await.unwrap());
    assert_eq!(store.acquire_lock(&holder("r2"), 10_000).await.unwrap(), Ok(()));
    assert!(store.release_lock("r2").await.unwrap());
    assert_eq!(store.lock_holder().await.unwrap(), None);
}

async fn seed(store: &Store) {
    let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", 1);
    store.create_artifact(&a).await.unwrap();
    let c = new_claim(new_claim_id(), &a, &sett_testkit::policy(), 5);
    store.write_claim(&c, None, true, &[], &[], 5).await.unwrap();
    store.submit_bid(&c.id, &AgentName::parse("A").unwrap(), BidType::Claim, 6).await.unwrap();
    store.acquire_lock(&holder("x"), 60_000).await.unwrap().unwrap();
}

#[tokio::test]
async fn scan_delete_touches_only_its_instance() {
    let redis = sett_testkit::redis().await;
    let base = sett_testkit::instance_name();
    let name = |suffix: &str| InstanceName::parse(&format!("{}{suffix}", base.as_str())).unwrap();
    let target = redis.instance(&base);
    let neighbours = [name("-1"), name("b"), name("-b")];
    seed(&target).await;
    for n in &neighbours {
        seed(&redis.instance(n)).await;
    }
    let counter_before = redis.next_instance_number().await.unwrap();
    redis.append_audit(&serde_json::json!({"test": base.as_str()})).await.unwrap();

    let counts = target.scan_instance(false, |_| {}).await.unwrap();
    assert_eq!(counts["artifact"], 1);
    assert_eq!(counts["claim"], 1);
    assert_eq!(counts["bids"], 1);
    assert_eq!(counts.get("thread"), None, "a first version alone has no thread set");
    assert_eq!(counts["lock"], 1);
    let deleted = target.scan_instance(true, |_| {}).await.unwrap();
    assert_eq!(deleted, counts);
    assert!(target.scan_instance(false, |_| {}).await.unwrap().is_empty(), "every key of the instance is gone");
    for n in &neighbours {
        let left = redis.instance(n).scan_instance(false, |_| {}).await.unwrap();
        assert_eq!(left, counts, "neighbour {n} was touched");
    }
    assert_eq!(redis.next_instance_number().await.unwrap(), counter_before + 1);
    assert!(redis.audit_records().await.unwrap().iter().any(|(_, r)| r["test"] == base.as_str()));
}

/// An event with no subject (its time tells events apart).
fn started() -> EventData {
    EventData::InstanceStarted(InstanceStarted { host: "h".into(), pid: 1, run_id: "r".into() })
}

#[tokio::test]
async fn a_restarted_consumer_receives_every_event_exactly_once() {
    let store = sett_testkit::store().await;
    let group = "g";
    let mut consumer = store.group_consumer(group, "c1", GroupStart::Beginning).await.unwrap();
    consumer.ensure_group().await.unwrap();
    for i in 0..10 {
        store.append_event(&started(), i).await.unwrap();
    }
    let mut seen = Vec::new();
    // First run: reads 4, acknowledges only 3, then "crashes".
    let first = consumer.read(4, Duration::from_millis(100)).await.unwrap();
    assert_eq!(first.len(), 4);
    consumer.ack(&first[..3].iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await.unwrap();
    seen.extend(first[..3].iter().map(|e| e.ts_ms));
    consumer.quit().await;
    drop(consumer);
    for i in 10..15 {
        store.append_event(&started(), i).await.unwrap();
    }
    // Restart: pending first (the unacknowledged one), then everything new.
    let mut consumer = store.group_consumer(group, "c1", GroupStart::Beginning).await.unwrap();
    consumer.ensure_group().await.unwrap();
    loop {
        let batch = consumer.read_pending(100).await.unwrap();
        if batch.is_empty() {
            break;
        }
        consumer.ack(&batch.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await.unwrap();
        seen.extend(batch.iter().map(|e| e.ts_ms));
    }
    loop {
        let batch = consumer.read(100, Duration::from_millis(50)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        consumer.ack(&batch.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await.unwrap();
        seen.extend(batch.iter().map(|e| e.ts_ms));
    }
    assert_eq!(seen, (0..15).collect::<Vec<_>>());
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 15);
}

/// Pending entries are paged with a cursor, so a consumer that acknowledges later (handlers in
/// their own tasks) is not handed the same entry twice in one pass; a handler failure asks for
/// them again from the first.
#[tokio::test]
async fn pending_entries_are_paged_once_per_pass_and_reread_on_request() {
    let store = sett_testkit::store().await;
    let mut consumer = store.group_consumer("g", "c", GroupStart::Beginning).await.unwrap();
    consumer.attach().await;
    for i in 0..3 {
        store.append_event(&started(), i).await.unwrap();
    }
    let delivered = consumer.read(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(delivered.len(), 3);
    consumer.quit().await;

    let mut consumer = store.group_consumer("g", "c", GroupStart::Beginning).await.unwrap();
    consumer.attach().await;
    let n = |events: &[sett_core::event::Event]| events.iter().map(|e| e.ts_ms).collect::<Vec<_>>();
    assert_eq!(n(&consumer.read_pending(2).await.unwrap()), vec![0, 1]);
    assert_eq!(n(&consumer.read_pending(2).await.unwrap()), vec![2]);
    assert!(consumer.read_pending(2).await.unwrap().is_empty(), "one pass hands each entry out once");
    assert!(consumer.read(10, Duration::from_millis(50)).await.unwrap().is_empty(), "nothing new");
    consumer.reread_pending();
    assert_eq!(n(&consumer.read(10, Duration::from_millis(50)).await.unwrap()), vec![0, 1, 2]);
    consumer.ack(&delivered.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await.unwrap();
    consumer.reread_pending();
    assert!(consumer.read(10, Duration::from_millis(50)).await.unwrap().is_empty(), "acknowledged entries are done");
    consumer.quit().await;
}

/// A group created at the end of the stream sees only what is written after it.
#[tokio::test]
async fn a_group_started_at_the_end_skips_history() {
    let store = sett_testkit::store().await;
    store.append_event(&started(), 0).await.unwrap();
    let mut consumer = store.group_consumer("late", "c", GroupStart::End).await.unwrap();
    consumer.ensure_group().await.unwrap();
    store.append_event(&started(), 1).await.unwrap();
    let got = consumer.read(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(got.iter().map(|e| e.ts_ms).collect::<Vec<_>>(), vec![1]);
    consumer.quit().await;
}

#[tokio::test]
async fn blocking_reads_wake_on_new_events() {
    let store = sett_testkit::store().await;
    store.append_event(&started(), 0).await.unwrap();
    // Follow from the newest id seen, so an event appended before the read blocks is not lost.
    let cursor = store.last_event_id().await.unwrap().unwrap();
    let reader = store.event_reader().await.unwrap();
    let writer = store.clone();
    let wait = tokio::spawn(async move { reader.read_after(&cursor, 10, Duration::from_secs(5)).await.unwrap() });
    writer.append_event(&EventData::InstanceStopped(InstanceStopped { run_id: "r".into() }), 1).await.unwrap();
    let got = wait.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind(), EventKind::InstanceStopped);
}

#[tokio::test]
async fn export_restore_is_exact() {
    let redis = sett_testkit::redis().await;
    let src = redis.instance(&sett_testkit::instance_name());
    seed(&src).await;
    let consumer = src.group_consumer("orchestrator", "orchestrator", GroupStart::Beginning).await.unwrap();
    consumer.ensure_group().await.unwrap();
    let mut dumps = Vec::new();
    src.export(|d| {
        dumps.push(d);
        Ok::<_, sett_store::StoreError>(())
    })
    .await
    .unwrap();
    src.scan_instance(true, |_| {}).await.unwrap();
    for d in &dumps {
        src.restore(d).await.unwrap();
    }
    let mut again = Vec::new();
    src.export(|d| {
        again.push(d);
        Ok::<_, sett_store::StoreError>(())
    })
    .await
    .unwrap();
    // TTLs tick down between the exports; compare everything else exactly.
    let strip = |v: &mut Vec<sett_store::Dump>| v.iter_mut().for_each(|d| d.ttl_ms = d.ttl_ms.map(|_| 0));
    strip(&mut dumps);
    strip(&mut again);
    assert_eq!(dumps, again);
}

#[tokio::test]
async fn large_keys_export_in_chunks_and_restore_exactly() {
    let redis = sett_testkit::redis().await;
    let src = redis.instance(&sett_testkit::instance_name());
    // 2,500 artifacts: the creation index (a sorted set) and the event stream each span three
    // records of at most 1,000 items.
    for i in 0..2_500 {
        let a =
            Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Bulk", format!("p{i}"), "user", 1_000 + i);
        src.create_artifact(&a).await.unwrap();
    }
    let consumer = src.group_consumer("orchestrator", "orchestrator", GroupStart::Beginning).await.unwrap();
    consumer.ensure_group().await.unwrap();
    let mut dumps = Vec::new();
    src.export(|d| {
        dumps.push(d);
        Ok::<_, sett_store::StoreError>(())
    })
    .await
    .unwrap();
    let records = |key: &str| dumps.iter().filter(|d| d.key == key).count();
    assert_eq!(records("events"), 3);
    assert_eq!(records("index:artifacts"), 3, "{:?}", dumps.iter().map(|d| &d.key).collect::<BTreeSet<_>>());
    let names: Vec<&String> = dumps.iter().map(|d| &d.key).collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted by key");
    src.scan_instance(true, |_| {}).await.unwrap();
    // Restored in batches, as `sett import` does.
    for batch in dumps.chunks(7) {
        src.restore_batch(batch).await.unwrap();
    }
    assert_eq!(src.artifact_count().await.unwrap(), 2_500);
    assert_eq!(src.event_count().await.unwrap(), 2_500);
    let mut again = Vec::new();
    src.export(|d| {
        again.push(d);
        Ok::<_, sett_store::StoreError>(())
    })
    .await
    .unwrap();
    assert_eq!(dumps, again);
}

/// A controller's worker slots: a free slot is taken at once, the rest queue in order (once), an
/// offer repeated for a grant holding a slot names the run that took it (so an orchestrator whose
/// first reply was lost recognises its own slot), and a release hands the slot to the queue's head.
#[tokio::test]
async fn worker_slots_queue_in_order_and_name_their_holder() {
    use sett_store::{WorkerOffer, WorkerRecord};
    let store = sett_testkit::store().await;
    let boss = AgentName::parse("Boss").unwrap();
    let ours = WorkerRecord { run_id: "run-1".into(), pid: None, container: None, launched_at_ms: now_ms() };
    assert_eq!(store.offer_worker(&boss, 1, "c1:1", &ours).await.unwrap(), WorkerOffer::Launch);
    assert_eq!(store.offer_worker(&boss, 1, "c2:1", &ours).await.unwrap(), WorkerOffer::Queued);
    assert_eq!(store.offer_worker(&boss, 1, "c2:1", &ours).await.unwrap(), WorkerOffer::Queued);
    assert_eq!(store.offer_worker(&boss, 1, "c3:1", &ours).await.unwrap(), WorkerOffer::Queued);
    // The same offer again, as a client re-sends it after a dropped connection.
    let later = WorkerRecord { run_id: "run-2".into(), ..ours.clone() };
    assert_eq!(
        store.offer_worker(&boss, 1, "c1:1", &later).await.unwrap(),
        WorkerOffer::AlreadyRunning { holder: ours.clone() }
    );
    assert_eq!(store.release_worker(&boss, 1, Some("c1:1"), &ours).await.unwrap(), vec!["c2:1".to_owned()]);
    let held = store.running_workers(&boss).await.unwrap();
    assert_eq!(held.keys().collect::<Vec<_>>(), vec!["c2:1"], "c2 holds the slot, c3 still waits");
    // A release repeated after its reply was lost frees nothing more and starts nobody else.
    assert_eq!(store.release_worker(&boss, 1, Some("c1:1"), &ours).await.unwrap(), Vec::<String>::new());
    assert_eq!(store.release_worker(&boss, 1, Some("c2:1"), &ours).await.unwrap(), vec!["c3:1".to_owned()]);
}
