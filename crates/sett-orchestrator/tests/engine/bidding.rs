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

/// `Scribe` bids `exclusive` on anything, `Other` only on reports (so `ignore` on a goal).
const STANDING_TEAM: &str = "version: \"1.0\"\norchestrator: {bid_timeout: 1h}\nagents:\n  Scribe:\n    command: [\"true\"]\n    bidding_strategy: exclusive\n  Other:\n    command: [\"true\"]\n    bidding_strategy: {type: exclusive, target_types: [Report]}\n";

/// Publishes the component record of `agent`'s cub, offering `terms` (its configured ones when
/// `None`), with a heartbeat `age_ms` old, and announces the cub's presence (kept while the
/// returned handle lives).
async fn offer(
    store: &sett_store::Store,
    config: &sett_core::config::SettConfig,
    agent: &str,
    terms: Option<&str>,
    age_ms: i64,
) -> sett_store::Presence {
    let name = crate::harness::agent(agent);
    let record = sett_core::record::ComponentRecord {
        agent: Some(name.clone()),
        heartbeat_ms: Some(sett_store::now_ms() - age_ms),
        pid: Some(1),
        standing_bid: Some(terms.map_or_else(|| config.agents[&name].standing_bid_terms().unwrap(), str::to_owned)),
        ..Default::default()
    };
    store.put_component(&sett_core::record::cub_component(&name), &record).await.unwrap();
    store.announce_presence(&name).await.unwrap()
}

/// Live cubs offering standing bids (design.md §5): the claim is created, its bids recorded and
/// the grant made by one write, with no bid from the cubs themselves.
#[tokio::test(flavor = "multi_thread")]
async fn standing_bids_of_live_cubs_grant_the_claim_in_the_write_that_creates_it() {
    let store = sett_testkit::store().await;
    let config = sett_core::config::SettConfig::parse("sett.yml", STANDING_TEAM).unwrap();
    let _scribe_runs = offer(&store, &config, "Scribe", None, 0).await;
    let _other_runs = offer(&store, &config, "Other", None, 0).await;
    let h = Harness::start_with(store, STANDING_TEAM, std::sync::Arc::new(sett_orchestrator::NoWorkers)).await;
    let scribe = h.cub("Scribe");
    let goal = h.forage("write it down").await;
    let claim = sett_core::machine::initial_claim_id(&goal.id);
    let grant = scribe.granted(&claim, 1).await;
    assert_eq!((grant.claim_type, grant.seq), (ClaimType::Exclusive, 1));
    // One write: the claim's creation, listing the standing bids, and its grant, in a row; no
    // `bid_submitted` (issue 29: one stream entry for the bids instead of one each).
    let events: Vec<_> = h.all_events().await.into_iter().filter(|e| e.data.claim_id() == Some(claim)).collect();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds[..2], [EventKind::ClaimCreated, EventKind::ClaimGranted], "{kinds:?}");
    assert!(events[..2].iter().all(|e| e.ts_ms == events[0].ts_ms), "written together: {events:#?}");
    assert!(!kinds.contains(&EventKind::BidSubmitted), "{kinds:?}");
    let EventData::ClaimCreated(created) = &events[0].data else { unreachable!() };
    let standing: Vec<(String, BidType)> = created.standing_bids.iter().map(|(a, b)| (a.to_string(), *b)).collect();
    assert_eq!(standing, [("Other".to_owned(), BidType::Ignore), ("Scribe".to_owned(), BidType::Exclusive)]);
    assert_eq!(h.store.bids(&claim).await.unwrap().len(), 2);
    scribe.complete(&grant, StructuralType::Terminal, "Done", "written").await;
    assert_eq!(h.ended(&claim).await.status, ClaimStatus::Complete);
    h.stop().await.expect("a clean stop");
}

/// An offer counts only while its cub's heartbeat is fresh, its terms are the orchestrator's
/// configuration of the agent and the cub is present (a killed cub's subscription is gone at
/// once, whatever its last heartbeat): otherwise the claim waits for that agent's own bid.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_mismatched_or_absent_offer_is_not_recorded_and_the_cub_bids_itself() {
    for (terms, age_ms, present) in
        [(None, 20_000, true), (Some("v1 review [] own_output=false"), 0, true), (None, 0, false)]
    {
        let store = sett_testkit::store().await;
        let config = sett_core::config::SettConfig::parse("sett.yml", STANDING_TEAM).unwrap();
        let _scribe_runs = offer(&store, &config, "Scribe", None, 0).await;
        let other = offer(&store, &config, "Other", terms, age_ms).await;
        // Gone as a killed cub is: its record and its fresh heartbeat are still there.
        let _other_runs = if present {
            Some(other)
        } else {
            other.withdraw().await;
            None
        };
        let h = Harness::start_with(store, STANDING_TEAM, std::sync::Arc::new(sett_orchestrator::NoWorkers)).await;
        let goal = h.forage("wait for Other").await;
        let claim = sett_core::machine::initial_claim_id(&goal.id);
        let waiting =
            h.claim_until(&claim, "the claim is created", |c| c.status == ClaimStatus::PendingConsensus).await;
        assert_eq!(waiting.grant_seq, 0);
        let bids = h.store.bids(&claim).await.unwrap();
        assert_eq!(
            bids.keys().map(|a| a.as_str()).collect::<Vec<_>>(),
            ["Scribe"],
            "offer {terms:?}, {age_ms} ms old, present: {present}"
        );
        h.cub("Other").bid_on(&goal, BidType::Ignore).await;
        let grant = h.cub("Scribe").granted(&claim, 1).await;
        assert_eq!(grant.claim_type, ClaimType::Exclusive);
        h.stop().await.expect("a clean stop");
    }
}
