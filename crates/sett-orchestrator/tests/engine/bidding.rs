//! Consensus: a claim is granted as soon as every agent has bid, or at its bid deadline
//! without the agents that did not bid.

use sett_core::event::{EventData, EventKind};
use sett_core::{BidType, ClaimStatus, ClaimType, StructuralType};

use crate::harness::{Harness, team};

fn two(bid_timeout: &str) -> String {
    team(&format!("bid_timeout: {bid_timeout}"), &[("Scribe", ""), ("Other", "")])
}

#[tokio::test(flavor = "multi_thread")]
async fn bids_from_every_agent_grant_the_claim_at_once() {
    let h = Harness::start(&two("1h")).await;
    let (scribe, other) = (h.cub("Scribe"), h.cub("Other"));
    let goal = h.forage("write it down").await;
    let claim = scribe.bid_on(&goal, BidType::Exclusive).await;
    other.bid_on(&goal, BidType::Ignore).await;
    // The bid deadline is an hour away: only the bids can have decided the claim.
    let grant = scribe.granted(&claim, 1).await;
    assert_eq!((grant.claim_type, grant.seq, grant.via_worker), (ClaimType::Exclusive, 1, false));
    let done = scribe.complete(&grant, StructuralType::Terminal, "Done", "written").await;
    let ended = h.ended(&claim).await;
    assert_eq!(ended.status, ClaimStatus::Complete);
    assert_eq!(ended.outcome_artifact, Some(done.id));
    assert!(ended.missing_bids.is_empty(), "{ended:?}");
    assert!(h.events_of(EventKind::BidsMissing).await.is_empty());
    // The ledger tells the story in order.
    let kinds: Vec<EventKind> =
        h.all_events().await.into_iter().filter(|e| e.data.claim_id() == Some(claim)).map(|e| e.kind()).collect();
    let pos = |k: EventKind| kinds.iter().position(|x| *x == k).unwrap_or_else(|| panic!("{k:?} missing: {kinds:?}"));
    assert!(pos(EventKind::BidSubmitted) < pos(EventKind::ClaimGranted), "{kinds:?}");
    assert!(pos(EventKind::ClaimCreated) < pos(EventKind::ClaimGranted), "{kinds:?}");
    assert!(pos(EventKind::ClaimGranted) < pos(EventKind::ClaimCompleted), "{kinds:?}");
    h.stop().await.expect("a clean stop");
}

/// Moved from the end-to-end suite (`a_cub_that_never_bids_delays_the_claim_only_until_bid_timeout`).
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_never_bids_delays_the_claim_only_until_the_bid_deadline() {
    let h = Harness::start(&two("1s")).await;
    let scribe = h.cub("Scribe");
    let goal = h.forage("proceed without Other").await;
    let claim = scribe.bid_on(&goal, BidType::Exclusive).await;
    let grant = scribe.granted(&claim, 1).await;
    let missing = h.event("bids_missing", |e| e.kind() == EventKind::BidsMissing).await;
    let EventData::BidsMissing(m) = &missing.data else { unreachable!("matched") };
    assert_eq!(m.claim_id, claim);
    assert_eq!(m.agents.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["Other"]);
    // By the ledger's own clock: the missing bid was declared at the claim's bid deadline, not
    // before, and the grant came with it.
    let created = h.claim(&claim).await.created_at_ms;
    assert!(missing.ts_ms >= created + 1_000, "declared {} ms after the claim was created", missing.ts_ms - created);
    assert_eq!(h.claim(&claim).await.missing_bids.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["Other"]);
    scribe.complete(&grant, StructuralType::Terminal, "Done", "alone").await;
    assert_eq!(h.ended(&claim).await.status, ClaimStatus::Complete);
    h.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_nobody_wants_goes_dormant() {
    let h = Harness::start(&two("1h")).await;
    let goal = h.forage("nobody's job").await;
    let claim = h.cub("Scribe").bid_on(&goal, BidType::Ignore).await;
    h.cub("Other").bid_on(&goal, BidType::Ignore).await;
    let ended = h.ended(&claim).await;
    assert_eq!(ended.status, ClaimStatus::Dormant);
    assert!(h.events_of(EventKind::ClaimGranted).await.is_empty());
    assert_eq!(h.events_of(EventKind::ClaimDormant).await.len(), 1);
    h.stop().await.expect("a clean stop");
}
