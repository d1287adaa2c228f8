//! The cubs' bells (presence.rs): which claim writes ring whom, that a ring reaches a cub's
//! [`sett_store::Bell`], and that a Redis user without `spublish` loses nothing but the ring.

use std::time::Duration;

use fred::prelude::*;
use sett_core::event::{ClaimCreated, ClaimGranted, EventData};
use sett_core::machine::{initial_claim_id, new_claim};
use sett_core::{AgentName, Artifact, Claim, ClaimStatus, ClaimType, StructuralType};
use sett_store::{Store, WriteOutcome, new_artifact_id, now_ms};

/// The bound of every wait below: a ring that never comes fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(30);

fn agent(name: &str) -> AgentName {
    AgentName::parse(name).unwrap()
}

async fn admin() -> Client {
    let c = Builder::from_config(Config::from_url(&sett_testkit::redis_url()).unwrap()).build().unwrap();
    c.init().await.unwrap();
    c
}

/// A new goal artifact and its claim, created waiting for bids.
async fn goal_and_claim(store: &Store) -> Claim {
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", now_ms());
    store.create_artifact(&goal).await.unwrap();
    let claim = new_claim(initial_claim_id(&goal.id), &goal, &sett_testkit::policy(), now_ms());
    assert_eq!(claim.status, ClaimStatus::PendingConsensus);
    let created = EventData::ClaimCreated(ClaimCreated::new(&claim));
    let outcome = store.write_claim(&claim, None, true, &[], &[created], now_ms()).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    claim
}

/// The next revision of `claim`, granted to `to` (as a transition of the orchestrator writes it).
async fn grant(store: &Store, claim: &Claim, to: &str, via_worker: bool) -> Claim {
    let mut next = claim.clone();
    next.revision += 1;
    next.status = ClaimStatus::PendingExclusive;
    let granted = EventData::ClaimGranted(ClaimGranted {
        agent: agent(to),
        approval: None,
        artifact_id: claim.artifact_id,
        claim_id: claim.id,
        claim_type: ClaimType::Exclusive,
        seq: 1,
        via_worker,
    });
    let outcome = store.write_claim(&next, Some(claim.revision), false, &[], &[granted], now_ms()).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    next
}

/// Who is rung, in order: a subscriber to agent A's presence channel and the cubs' bell sees a
/// ring for a claim that waits for bids and for a grant to A, and nothing for a new artifact, a
/// grant to B, a worker's grant to A or a claim created and granted in one write.
#[tokio::test]
async fn claim_writes_ring_the_cubs_they_concern_and_no_other() {
    let store = sett_testkit::store().await;
    let keys = store.keys().clone();
    let subscriber =
        Builder::from_config(Config::from_url(&sett_testkit::redis_url()).unwrap()).build_subscriber_client().unwrap();
    subscriber.init().await.unwrap();
    let mut messages = subscriber.message_rx();
    subscriber.ssubscribe(vec![keys.presence_channel(&agent("A")), keys.cubs_bell_channel()]).await.unwrap();

    let waiting = goal_and_claim(&store).await;
    let to_b = grant(&store, &waiting, "B", false).await;
    let other = goal_and_claim(&store).await;
    grant(&store, &other, "A", true).await;
    let to_a = goal_and_claim(&store).await;
    grant(&store, &to_a, "A", false).await;
    // Created and granted in one write (the standing bids decided it): only the grantee.
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", now_ms());
    store.create_artifact(&goal).await.unwrap();
    let decided = new_claim(initial_claim_id(&goal.id), &goal, &sett_testkit::policy(), now_ms());
    let created = EventData::ClaimCreated(ClaimCreated::new(&decided));
    let granted = EventData::ClaimGranted(ClaimGranted {
        agent: agent("B"),
        approval: None,
        artifact_id: decided.artifact_id,
        claim_id: decided.id,
        claim_type: ClaimType::Exclusive,
        seq: 1,
        via_worker: false,
    });
    let mut decided_record = decided.clone();
    decided_record.status = ClaimStatus::PendingExclusive;
    let outcome = store.write_claim(&decided_record, None, true, &[], &[created, granted], now_ms()).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    // The last ring: everything rung before it has arrived (one connection, in order).
    assert!(store.ring_cubs().await.unwrap(), "the test's user may publish");

    let mut rung = Vec::new();
    loop {
        let m = tokio::time::timeout(LIMIT, messages.recv()).await.expect("a ring within the limit").unwrap();
        let what = (m.channel.to_string(), m.value.as_string().unwrap_or_default());
        let last = what.1 == "ring";
        rung.push(what);
        if last {
            break;
        }
    }
    let bell = keys.cubs_bell_channel();
    let a = keys.presence_channel(&agent("A"));
    assert_eq!(
        rung,
        [
            (bell.clone(), format!("claim {}", waiting.id)),
            (bell.clone(), format!("claim {}", other.id)),
            (bell.clone(), format!("claim {}", to_a.id)),
            (a, format!("grant {} 1 {}", to_a.id, to_a.artifact_id)),
            (bell, "ring".to_owned()),
        ],
        "the grant to B ({}), the worker's grant and the decided claim rang nobody here",
        to_b.id
    );
    let _ = subscriber.quit().await;
}

/// A cub's presence is its bell: a grant to its agent rings it, with the grant, and a ring that
/// came while nobody waited is kept for the next wait.
#[tokio::test]
async fn a_grant_rings_the_bell_of_its_agents_cub_with_the_grant() {
    let store = sett_testkit::store().await;
    let mut presence = store.announce_presence(&agent("A")).await.unwrap();
    let bell = presence.bell();
    let mut grants = presence.take_rung_grants().unwrap();
    assert!(presence.take_rung_grants().is_none(), "taken once");
    let claim = goal_and_claim(&store).await;
    grant(&store, &claim, "A", false).await;
    // Nobody was waiting while it was rung: the ring is kept.
    tokio::time::timeout(LIMIT, bell.rung()).await.expect("rung by the grant");
    let rung = tokio::time::timeout(LIMIT, grants.recv()).await.expect("the grant rung").unwrap();
    assert_eq!(rung, sett_store::RungGrant { claim: claim.id, seq: 1, artifact: claim.artifact_id });
    presence.withdraw().await;
}

/// A Redis user that may not publish to the instance's channels: `ring_cubs` says so without an
/// error, and a claim write that would ring still writes everything (the ring is a hint).
#[tokio::test]
async fn a_user_without_spublish_writes_claims_and_rings_nobody() {
    let admin = admin().await;
    let user = format!("nospublish{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let _: () = admin
        .custom(
            fred::cmd!("ACL"),
            vec!["SETUSER", user.as_str(), "on", ">pw", "~*", "resetchannels", "+@all", "-spublish"],
        )
        .await
        .unwrap();
    let url = sett_testkit::redis_url().replacen("redis://", &format!("redis://{user}:pw@"), 1);
    let store = sett_testkit::redis_at(&url).await.instance(&sett_testkit::instance_name());
    assert!(!store.ring_cubs().await.unwrap(), "refused, and said so without an error");
    let claim = goal_and_claim(&store).await;
    let granted = grant(&store, &claim, "A", false).await;
    assert_eq!(store.get_claim(&claim.id).await.unwrap().map(|c| c.revision), Some(granted.revision));
    let kinds: Vec<_> = store.events_after(None, 100).await.unwrap().iter().map(|e| e.kind().as_str()).collect();
    assert_eq!(kinds, ["artifact_created", "claim_created", "claim_granted"]);
    let _: () = admin.custom(fred::cmd!("ACL"), vec!["DELUSER", user.as_str()]).await.unwrap();
}
