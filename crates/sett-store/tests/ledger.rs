//! The ledger against a real Redis: the chain the Lua computes is the one the documented
//! encoding gives (recomputed here in Rust), concurrent writers never fork it, the head is the
//! newest event, and artifacts whose sources are missing or changed are refused.

use std::collections::HashMap;

use sett_core::event::{EventData, InstanceStopped};
use sett_core::ledger::{self, GENESIS};
use sett_core::{Artifact, ArtifactId, StructuralType};
use sett_store::{CreateOutcome, Store, StoreError, new_artifact_id, now_ms};

/// Recomputes the whole chain from the raw entries; returns (seq, hash) of the last one.
async fn recompute(store: &Store) -> (u64, String) {
    let entries = store.raw_events_after(None, 100_000).await.unwrap();
    let (mut seq, mut prev) = (0u64, GENESIS.to_owned());
    for (id, f) in &entries {
        let get = |k: &str| f.get(k).map(String::as_str);
        let digest = ledger::event_digest(get("kind").unwrap(), get("ts").unwrap(), get("data").unwrap(), get("claim"));
        seq += 1;
        assert_eq!(get("seq"), Some(seq.to_string().as_str()), "entry {id}");
        // `prev` is not stored (the link recomputes from the hash before), and every entry has
        // the same fields (an empty `claim` when none), so Redis stores the names once per node.
        let mut names: Vec<&str> = f.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["claim", "data", "hash", "kind", "seq", "ts"], "entry {id}");
        let link = ledger::chain_link(&prev, &digest, seq).unwrap();
        assert_eq!(get("hash"), Some(link.as_str()), "entry {id}: the Lua link differs from the documented one");
        prev = link;
    }
    (seq, prev)
}

fn fields(a: &HashMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    a.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

#[tokio::test]
async fn the_lua_chain_is_the_documented_one_and_concurrent_writers_do_not_fork_it() {
    let store = sett_testkit::store().await;
    assert_eq!(store.ledger_head().await.unwrap(), None);
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "build it", "user", now_ms());
    store.create_artifact(&goal).await.unwrap();
    // Many writers at once, through every appending path.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = store.clone();
        let goal = goal.id;
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let stopped = EventData::InstanceStopped(InstanceStopped { run_id: format!("r{i}") });
                s.append_event(&stopped, now_ms()).await.unwrap();
            } else {
                let mut a = Artifact::new_root(
                    new_artifact_id(),
                    StructuralType::Standard,
                    "Doc",
                    format!("p{i}"),
                    "A",
                    now_ms(),
                );
                a.source_artifacts = vec![goal];
                assert!(matches!(s.create_artifact(&a).await.unwrap(), CreateOutcome::Created { .. }));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (seq, hash) = recompute(&store).await;
    assert_eq!(seq, 41);
    assert_eq!(store.ledger_head().await.unwrap(), Some(ledger::Head { seq, hash }));
}

#[tokio::test]
async fn artifact_hashes_cover_their_sources() {
    let store = sett_testkit::store().await;
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "g", "user", now_ms());
    store.create_artifact(&goal).await.unwrap();
    let mut doc = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", "d", "A", now_ms());
    doc.source_artifacts = vec![goal.id];
    store.create_artifact(&doc).await.unwrap();
    let raw = |id: ArtifactId| {
        let store = store.clone();
        async move { store.raw_artifact(&id).await.unwrap().unwrap() }
    };
    let g = raw(goal.id).await;
    let d = raw(doc.id).await;
    assert_eq!(g["hash"], ledger::artifact_hash(fields(&g), &[]));
    assert_eq!(d["hash"], ledger::artifact_hash(fields(&d), &[g["hash"].as_str()]));
    // The artifact_created event carries the hash, so the chain covers the artifact.
    let events = store.events_after(None, 10).await.unwrap();
    let EventData::ArtifactCreated(created) = &events[1].data else { panic!("{:?}", events[1]) };
    assert_eq!(created.hash.as_deref(), Some(d["hash"].as_str()));

    // A source that does not exist is refused, and nothing is written.
    let mut orphan = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", "o", "A", now_ms());
    orphan.source_artifacts = vec![new_artifact_id()];
    let err = store.create_artifact(&orphan).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("does not exist")), "{err}");
    assert!(store.raw_artifact(&orphan.id).await.unwrap().is_none());
    assert_eq!(store.event_count().await.unwrap(), 2);
}

/// Standing bids (design.md §5) are recorded by the write that creates their claim and listed
/// by its `claim_created` (no `bid_submitted` each; issue 29), chained like any other event; a
/// bid the agent's cub recorded first stands with its own event and is not listed; a cub's bid
/// that differs, or a cub that is gone (no presence subscription), refuses the whole write.
#[tokio::test]
async fn standing_bids_are_recorded_and_chained_by_the_creating_write() {
    use std::collections::BTreeMap;

    use sett_core::event::EventKind;
    use sett_core::machine::{initial_claim_id, new_claim};
    use sett_core::{AgentName, BidType};
    use sett_store::WriteOutcome;

    let store = sett_testkit::store().await;
    let name = |s: &str| AgentName::parse(s).unwrap();
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", now_ms());
    store.create_artifact(&goal).await.unwrap();
    let claim = new_claim(initial_claim_id(&goal.id), &goal, &sett_testkit::policy(), now_ms());
    // Agent A's cub bid itself, on the artifact's event.
    assert!(store.submit_bid_before_claim(&claim.id, &name("A"), BidType::Exclusive, now_ms()).await.unwrap());
    // The cubs of A, B and C run (their presence subscriptions); D's does not.
    let mut present = Vec::new();
    for agent in ["A", "B", "C"] {
        present.push(store.announce_presence(&name(agent)).await.unwrap());
    }
    assert!(store.is_present(&name("C")).await.unwrap());
    assert!(!store.is_present(&name("D")).await.unwrap());
    let created = EventData::ClaimCreated(sett_core::event::ClaimCreated::new(&claim));

    // A standing bid of a cub that is gone: nothing is written.
    let gone = [(name("B"), BidType::Ignore), (name("D"), BidType::Review)];
    let outcome = store
        .create_claim_with_standing_bids(&claim, &[], std::slice::from_ref(&created), None::<&()>, &gone, now_ms())
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::OfferGone { agent: "D".into() });
    assert_eq!(store.get_claim(&claim.id).await.unwrap(), None);

    // A standing bid that differs from the cub's own: nothing is written.
    let differing = [(name("A"), BidType::Review), (name("B"), BidType::Ignore)];
    let outcome = store
        .create_claim_with_standing_bids(&claim, &[], std::slice::from_ref(&created), None::<&()>, &differing, now_ms())
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::BidsChanged { agent: "A".into(), held: "exclusive".into() });
    assert_eq!(store.get_claim(&claim.id).await.unwrap(), None);
    assert_eq!(store.bids(&claim.id).await.unwrap(), BTreeMap::from([(name("A"), BidType::Exclusive)]));
    assert_eq!(store.raw_events_after(None, 100).await.unwrap().len(), 2, "the goal and A's own bid only");

    // The same bid as the cub's stands; B's and C's are recorded with the claim.
    let standing = [(name("A"), BidType::Exclusive), (name("B"), BidType::Ignore), (name("C"), BidType::Review)];
    let outcome =
        store.create_claim_with_standing_bids(&claim, &[], &[created], None::<&()>, &standing, now_ms()).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    assert_eq!(store.bids(&claim.id).await.unwrap(), standing.iter().cloned().collect::<BTreeMap<_, _>>());
    let events = store.events_after(None, 100).await.unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, [EventKind::ArtifactCreated, EventKind::BidSubmitted, EventKind::ClaimCreated]);
    let EventData::BidSubmitted(own) = &events[1].data else { unreachable!() };
    assert_eq!((own.agent.as_str(), own.standing), ("A", false));
    let EventData::ClaimCreated(listed) = &events[2].data else { unreachable!() };
    assert_eq!(listed.standing_bids, standing[1..].iter().cloned().collect::<BTreeMap<_, _>>());
    let (seq, hash) = recompute(&store).await;
    assert_eq!(seq, 3);
    assert_eq!(store.ledger_head().await.unwrap(), Some(ledger::Head { seq, hash }));
    // The bids hash left the key registry (A's early bid put it there): the claims index
    // reaches it now.
    use fred::prelude::*;
    let c = Builder::from_config(Config::from_url(&sett_testkit::redis_url()).unwrap()).build().unwrap();
    c.init().await.unwrap();
    let registry: Vec<String> = c.smembers(store.keys().key_registry()).await.unwrap();
    assert!(!registry.iter().any(|k| k.ends_with(":bids")), "{registry:?}");
    // A withdrawn presence is gone at once.
    present.pop().unwrap().withdraw().await;
    assert!(!store.is_present(&name("C")).await.unwrap());
}
