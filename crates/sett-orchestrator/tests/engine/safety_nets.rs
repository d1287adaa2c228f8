//! The safety nets for steps a lost reply or a lost event left undone: the outbox (follow-ups
//! recorded with their transition, carried out after a crash and swept by the deadline loop)
//! and the sweep that claims a Standard artifact whose event the engine never received.

use sett_core::config::SettConfig;
use sett_core::machine::{Effect, Input, StepContext, initial_claim_id, new_claim, step};
use sett_core::{Artifact, BidType, ClaimStatus, StructuralType};
use sett_orchestrator::NoWorkers;
use sett_store::{GroupStart, WriteOutcome, new_artifact_id, now_ms};
use std::sync::Arc;

use crate::harness::{Harness, TestWorkers, next_launch, pool_team, team};

/// Writes, as the engine would have, the claim of `goal` granted to Boss's worker pool with its
/// launch in the outbox, and nothing else: the engine that wrote it never saw the reply.
async fn granted_with_launch_in_outbox(h_store: &sett_store::Store, goal: &Artifact) -> sett_core::ClaimId {
    let policy = SettConfig::parse("sett.yml", &pool_team()).unwrap().policy();
    let boss = crate::harness::agent("Boss");
    let claim = new_claim(initial_claim_id(&goal.id), goal, &policy, now_ms());
    let bids = [(boss, BidType::Exclusive)].into();
    let t = step(&claim, &Input::Bids, StepContext { bids: &bids, now_ms: now_ms() }, &policy).expect("granted");
    let launch: Vec<Effect> = t.effects.into_iter().filter(|e| matches!(e, Effect::Grant(g) if g.via_worker)).collect();
    assert_eq!(launch.len(), 1, "one worker launch to carry out");
    let written = h_store.write_claim_with_outbox(&t.claim, None, true, &[], &[], Some(&launch), now_ms()).await;
    assert_eq!(written.unwrap(), WriteOutcome::Written);
    claim.id
}

/// Moved from the end-to-end suite (`an_outbox_entry_whose_write_reply_was_lost_is_still_carried_out`):
/// a transition written without its reply (the client's re-sent copy lost the compare-and-set)
/// leaves its outbox entry, here a worker launch, to nobody; the deadline loop's sweep of the
/// outbox carries it out (before, the claim waited forever).
#[tokio::test(flavor = "multi_thread")]
async fn an_outbox_entry_whose_write_reply_was_lost_is_swept() {
    let (h, mut launches) = Harness::with_workers(&pool_team()).await;
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "lost reply", "user", now_ms());
    let claim = granted_with_launch_in_outbox(&h.store, &goal).await;
    h.store.create_artifact(&goal).await.unwrap();
    let launched = next_launch(&mut launches).await;
    assert_eq!((launched.req.claim, launched.req.seq), (claim, 1));
    let boss = h.cub("Boss");
    let grant = boss.grant_in(&claim).await;
    assert_eq!(grant.seq, 1);
    boss.complete(&grant, StructuralType::Terminal, "Done", "launched by the sweep").await;
    launched.exit(true);
    assert_eq!(h.ended(&claim).await.status, ClaimStatus::Complete);
    sett_testkit::eventually(sett_testkit::WAIT, "the outbox is empty", async || {
        h.store.outbox::<serde_json::Value>().await.map(|o| o.is_empty()).unwrap_or(false)
    })
    .await;
    h.stop().await.expect("a clean stop");
}

/// The same entry left by an engine that crashed: the next start carries it out before it reads
/// any event (`recover_outbox`).
#[tokio::test(flavor = "multi_thread")]
async fn an_outbox_entry_left_by_a_crash_is_carried_out_at_the_next_start() {
    let store = sett_testkit::store().await;
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "crashed", "user", now_ms());
    store.create_artifact(&goal).await.unwrap();
    let claim = granted_with_launch_in_outbox(&store, &goal).await;
    let (workers, mut launches) = TestWorkers::new();
    let h = Harness::start_with(store, &pool_team(), workers).await;
    let launched = next_launch(&mut launches).await;
    assert_eq!((launched.req.claim, launched.req.seq), (claim, 1));
    launched.exit(false);
    assert_eq!(h.ended(&claim).await.status, ClaimStatus::Terminated, "a worker that failed fails its claim");
    h.stop().await.expect("a clean stop");
}

/// Moved from the end-to-end suite (`an_artifact_whose_event_the_orchestrator_never_received_is_still_claimed`):
/// the orchestrator's consumer group already stands past the artifact's event (as after a
/// restart that reloaded the group's bookkeeping without it); the deadline loop's sweep finds
/// the artifact without a claim and claims it (before, the goal waited forever).
#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_whose_event_the_orchestrator_never_received_is_still_claimed() {
    let store = sett_testkit::store().await;
    // Written a minute ago (older than the sweep's margin), before anything runs.
    let goal =
        Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "missed", "user", now_ms() - 60_000);
    store.create_artifact(&goal).await.unwrap();
    let group = store.group_consumer("orchestrator", "orchestrator", GroupStart::End).await.unwrap();
    group.ensure_group().await.unwrap();
    group.quit().await;
    let h = Harness::start_with(store, &team("bid_timeout: 1h", &[("Scribe", "")]), Arc::new(NoWorkers)).await;
    let scribe = h.cub("Scribe");
    let claim = scribe.bid_on(&goal, BidType::Exclusive).await;
    let grant = scribe.granted(&claim, 1).await;
    let done = scribe.complete(&grant, StructuralType::Terminal, "Done", "claimed by the sweep").await;
    let ended = h.ended(&claim).await;
    assert_eq!((ended.status, ended.outcome_artifact), (ClaimStatus::Complete, Some(done.id)));
    assert_eq!(done.source_artifacts, vec![goal.id]);
    h.stop().await.expect("a clean stop");
}

/// A stop while Redis is gone ends the engine: no loop or closing write waits for a Redis that
/// may never come back (each would otherwise wait out the command timeout, one after another).
#[tokio::test(flavor = "multi_thread")]
async fn the_engine_stops_while_redis_is_gone() {
    let data = tempfile::tempdir().unwrap();
    let mut server = sett_testkit::RedisServer::start(data.path(), &[]);
    let store = sett_testkit::redis_at(&server.url()).await.instance(&sett_testkit::instance_name());
    let h = Harness::start_with(store.clone(), &pool_team(), Arc::new(NoWorkers)).await;
    server.stop();
    // The clients know it is gone (this read waits out the command timeout).
    assert!(store.artifact_count().await.is_err());
    // Within the harness's bound (the engine's ends with its closing writes abandoned).
    let _ = h.stop().await;
}
