//! Execution deadlines: a grant that yields nothing (its cub died, lost Redis) ends its claim
//! with an `ExecutionTimeout` Failure at the grant's deadline (the agent's `timeout` plus the
//! grace the cub gets to report its own timeout).

use sett_core::event::EventKind;
use sett_core::{BidType, ClaimStatus, StructuralType};

use std::sync::Arc;

use sett_orchestrator::NoWorkers;
use sett_store::now_ms;
use sett_testkit::{WAIT, eventually};

use crate::harness::{Harness, team};

/// Moved from the end-to-end suite (`a_cub_killed_mid_run_ends_its_claim_at_the_deadline`): a
/// cub that took its grant and was never heard of again.
#[tokio::test(flavor = "multi_thread")]
async fn a_taken_grant_without_output_ends_its_claim_at_the_deadline() {
    let h = Harness::start(&team("bid_timeout: 1h", &[("Sleeper", "timeout: 1s")])).await;
    let sleeper = h.cub("Sleeper");
    let goal = h.forage("sleep").await;
    let claim = sleeper.bid_on(&goal, BidType::Exclusive).await;
    let grant = sleeper.granted(&claim, 1).await;
    assert!(sleeper.take(&grant).await, "the grant is taken");
    let deadline = h.claim(&claim).await.grants[&sleeper.agent].deadline_ms.expect("a running grant has a deadline");

    let failure = h.outcome(&claim).await;
    assert_eq!(
        (failure.structural_type, failure.artifact_type.as_str()),
        (StructuralType::Failure, "ExecutionTimeout")
    );
    assert_eq!(failure.claim_id, Some(claim));
    assert_eq!(h.claim(&claim).await.status, ClaimStatus::Terminated);
    // By the ledger's clock: terminated at the deadline, not before.
    let ended = h.event("claim_terminated", |e| e.kind() == EventKind::ClaimTerminated).await;
    assert!(ended.ts_ms >= deadline, "terminated {} ms before the deadline", deadline - ended.ts_ms);
    assert_eq!(h.events_of(EventKind::ArtifactCreated).await.len(), 2, "the goal and the Failure, nothing else");
    h.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_failure_ends_its_claim_with_the_cubs_failure() {
    let h = Harness::start(&team("bid_timeout: 1h", &[("Flaky", "")])).await;
    let flaky = h.cub("Flaky");
    let goal = h.forage("break").await;
    let claim = flaky.bid_on(&goal, BidType::Exclusive).await;
    let grant = flaky.granted(&claim, 1).await;
    let failure = flaky.fail(&grant, "exited with status 3").await;
    let ended = h.ended(&claim).await;
    assert_eq!((ended.status, ended.outcome_artifact), (ClaimStatus::Terminated, Some(failure.id)));
    // The engine wrote no Failure of its own: the cub's is the outcome.
    let failures = h.events_of(EventKind::ArtifactCreated).await.len();
    assert_eq!(failures, 2, "the goal and the cub's Failure");
    h.stop().await.expect("a clean stop");
}

/// Moved from the end-to-end suite (`an_output_written_before_its_deadline_wins_over_the_deadline_after_a_restart`):
/// the tool finishes while the orchestrator is down, and when it comes back the grant's deadline
/// has passed too. The output, written in time, completes the claim: no Failure.
#[tokio::test(flavor = "multi_thread")]
async fn an_output_written_before_its_deadline_wins_over_the_deadline_after_a_restart() {
    let yml = team("bid_timeout: 1h", &[("Slow", "timeout: 1s")]);
    let h = Harness::start(&yml).await;
    let store = h.store.clone();
    let slow = h.cub("Slow");
    let goal = h.forage("finish while nobody watches").await;
    let claim = slow.bid_on(&goal, BidType::Exclusive).await;
    let grant = slow.granted(&claim, 1).await;
    let deadline = h.claim(&claim).await.grants[&slow.agent].deadline_ms.expect("a deadline");
    h.stop().await.expect("a clean stop");

    let done = slow.complete(&grant, StructuralType::Terminal, "Done", "ok").await;
    assert!(done.created_at_ms < deadline, "written in time");
    // The deadline passes while nobody runs (waiting on the clock, not on the engine).
    eventually(WAIT, "the grant's deadline has passed", async || now_ms() > deadline).await;
    let h = Harness::start_with(store, &yml, Arc::new(NoWorkers)).await;
    let ended = h.ended(&claim).await;
    assert_eq!((ended.status, ended.outcome_artifact), (ClaimStatus::Complete, Some(done.id)));
    assert!(h.events_of(EventKind::ClaimTerminated).await.is_empty());
    assert_eq!(h.events_of(EventKind::ArtifactCreated).await.len(), 2, "the goal and the output: no Failure");
    h.stop().await.expect("a clean stop");
}
