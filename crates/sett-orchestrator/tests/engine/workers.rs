//! The controller queue: grants of a `mode: controller` agent run in workers, at most
//! `max_concurrent` at once, launched in the order they were granted; a slot taken by an offer
//! whose reply was lost still launches its grant.

use std::collections::VecDeque;

use sett_core::event::{EventData, EventKind};
use sett_core::machine::initial_claim_id;
use sett_core::{Artifact, BidType, ClaimId, ClaimStatus, StructuralType};
use sett_store::{WorkerOffer, WorkerRecord, new_artifact_id, now_ms, worker_grant_key};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::harness::{Harness, Launched, next_launch, pool_team};

/// Plays the worker of `launched`: takes its grant, writes a Terminal, exits successfully.
async fn work(h: &Harness, launched: Launched) {
    let boss = h.cub("Boss");
    let grant = boss.grant_in(&launched.req.claim).await;
    assert!(grant.via_worker && grant.seq == launched.req.seq, "{grant:?}");
    boss.complete(&grant, StructuralType::Terminal, "Done", "worked").await;
    launched.exit(true);
}

/// Moved from the end-to-end suite (`controller_workers_respect_max_concurrent_and_fifo`).
///
/// The order is the durable queue's: grants are offered to the pool in the order they are made,
/// and every freed slot goes to the queue's head. So that "the order they are made" is one order,
/// the goals come one at a time (a grant's offer is carried out in the batch that grants it, and
/// the next goal exists only after that grant); and so that "launched" is one order, slots are
/// freed one at a time: two slots freed at once start two workers side by side, and their
/// launches may be recorded either way round (the earlier version of this test, which freed two
/// slots at once, failed 6 runs in 150 over it).
#[tokio::test(flavor = "multi_thread")]
async fn controller_workers_respect_max_concurrent_and_fifo() {
    let (h, mut launches) = Harness::with_workers(&pool_team()).await;
    let boss = h.cub("Boss");
    let mut claims = Vec::new();
    let mut running = VecDeque::new();
    for i in 0..5 {
        let goal = h.forage(&format!("goal {i}")).await;
        let claim = boss.bid_on(&goal, BidType::Exclusive).await;
        assert!(boss.granted(&claim, 1).await.via_worker);
        if running.len() < 2 {
            // A free slot: the worker starts at once (and is recorded before the next goal).
            running.push_back(launched(&h, &mut launches, &claim).await);
        }
        claims.push(claim);
    }
    // Two workers run and hold their slots until the test lets them go; three grants wait.
    for waiting in &claims[2..] {
        work(&h, running.pop_front().expect("a running worker")).await;
        running.push_back(launched(&h, &mut launches, waiting).await);
    }
    while let Some(worker) = running.pop_front() {
        work(&h, worker).await;
    }
    for claim in &claims {
        assert_eq!(h.ended(claim).await.status, ClaimStatus::Complete);
    }
    h.events("five worker exits", 5, |e| e.kind() == EventKind::WorkerExited).await;
    // From the ledger: never more than two at once, and launched in the order granted.
    let events = h.all_events().await;
    let (mut running, mut peak) = (0i32, 0);
    let mut launch_order = Vec::new();
    for e in &events {
        match &e.data {
            EventData::WorkerLaunched(w) => {
                running += 1;
                peak = peak.max(running);
                launch_order.push(w.claim_id);
            }
            EventData::WorkerExited(_) => running -= 1,
            _ => {}
        }
    }
    assert_eq!(peak, 2, "the pool is used, never beyond max_concurrent");
    let grant_order: Vec<_> =
        events.iter().filter(|e| e.kind() == EventKind::ClaimGranted).filter_map(|e| e.data.claim_id()).collect();
    assert_eq!(grant_order, claims);
    assert_eq!(launch_order, grant_order);
    assert!(launches.try_recv().is_err(), "no grant was launched twice");
    h.stop().await.expect("a clean stop");
}

/// Waits for the next worker launch, which must be `claim`'s, and for its `worker_launched`.
async fn launched(h: &Harness, launches: &mut UnboundedReceiver<Launched>, claim: &ClaimId) -> Launched {
    let next = next_launch(launches).await;
    assert_eq!(next.req.claim, *claim, "the slot goes to the grant that waited longest");
    h.events("the worker's launch", 1, |e| matches!(&e.data, EventData::WorkerLaunched(w) if w.claim_id == *claim))
        .await;
    next
}

/// Moved from the end-to-end suite: a Redis connection that dropped after the orchestrator's
/// offer of a grant to a worker pool ran but before its reply arrived. The client sends the
/// offer again, which finds the slot taken; the slot is the orchestrator's own run's, so it
/// launches the worker (before, the claim waited forever: a queued grant has no deadline).
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_slot_taken_by_an_offer_whose_reply_was_lost_still_launches() {
    let (h, mut launches) = Harness::with_workers(&pool_team()).await;
    let run_id = h.store.lock_holder().await.unwrap().expect("the orchestrator holds the lock").run_id;
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "lost reply", "user", now_ms());
    // The first run of the offer, whose reply never arrived: the claim's first grant holds a
    // slot recorded under the orchestrator's run.
    let claim = initial_claim_id(&goal.id);
    let boss = h.cub("Boss");
    let record = WorkerRecord { run_id, pid: None, container: None, launched_at_ms: now_ms() };
    let offer = h.store.offer_worker(&boss.agent, 2, &worker_grant_key(&claim, 1), &record).await.unwrap();
    assert_eq!(offer, WorkerOffer::Launch);
    h.store.create_artifact(&goal).await.unwrap();
    boss.bid_on(&goal, BidType::Exclusive).await;
    let launched = next_launch(&mut launches).await;
    assert_eq!((launched.req.claim, launched.req.seq), (claim, 1));
    work(&h, launched).await;
    assert_eq!(h.ended(&claim).await.status, ClaimStatus::Complete);
    h.events("the worker's exit", 1, |e| e.kind() == EventKind::WorkerExited).await;
    assert_eq!(h.events_of(EventKind::WorkerLaunched).await.len(), 1, "one worker, launched once");
    assert!(launches.try_recv().is_err(), "no second launch");
    h.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_exits_without_output_fails_its_claim() {
    let (h, mut launches) = Harness::with_workers(&pool_team()).await;
    let goal = h.forage("crash").await;
    let claim = h.cub("Boss").bid_on(&goal, BidType::Exclusive).await;
    next_launch(&mut launches).await.exit(false);
    let failure = h.outcome(&claim).await;
    assert_eq!((failure.structural_type, failure.artifact_type.as_str()), (StructuralType::Failure, "WorkerFailure"));
    assert_eq!(h.claim(&claim).await.status, ClaimStatus::Terminated);
    h.stop().await.expect("a clean stop");
}
