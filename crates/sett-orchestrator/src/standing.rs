//! Standing bids (design.md §5): a cub whose agent bids without a script offers its static bid
//! in its component record, and the orchestrator records that bid for it when it creates a claim
//! (the claim is then decided, and granted, by the write that creates it, instead of after each
//! cub's own bid). The offers are read from the components hash in the background, so creating
//! a claim reads nothing more; an offer counts only while its cub's heartbeat is fresh and its
//! terms are the orchestrator's own configuration of the agent.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use sett_core::config::SettConfig;
use sett_core::record::{ComponentRecord, cub_agent};
use sett_core::{AgentName, BidType};

/// How often the offers are read again.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// How soon the offers are read again, on a claim's creation, while an agent that could offer
/// one has none (cubs starting with the instance): at most ten reads a second, only then.
const MISSING_REFRESH_MS: i64 = 100;

/// How old a cub's heartbeat (written every 5 s) may be for its offer to count: two missed
/// heartbeats and some slack. A cub that stops withdraws its offer first; one killed keeps it
/// this long at most, and a claim granted to it meanwhile waits for the cub's restart or for the
/// grant's deadline, as a grant taken just before a kill does.
pub(crate) const OFFER_LEASE_MS: i64 = 12_000;

/// The live offers: agent → the heartbeat of the cub that offers its standing bid.
#[derive(Default)]
pub(crate) struct StandingOffers {
    live: RwLock<BTreeMap<AgentName, i64>>,
    /// When the offers were last read (ms).
    read_at_ms: AtomicI64,
    /// How many configured agents bid without a script (could offer a standing bid).
    could_offer: AtomicUsize,
}

impl StandingOffers {
    /// Replaces the offers with those of `components` whose terms match `config` (the agents
    /// this orchestrator decides for; an agent configured differently bids for itself).
    pub(crate) fn refresh(&self, config: &SettConfig, components: &BTreeMap<String, ComponentRecord>, now_ms: i64) {
        let live = offers(config, components);
        *self.live.write().expect("not poisoned") = live;
        self.read_at_ms.store(now_ms, Ordering::Relaxed);
        let could_offer = config.agents.values().filter(|a| a.standing_bid_terms().is_some()).count();
        self.could_offer.store(could_offer, Ordering::Relaxed);
    }

    /// Whether to read the offers again before creating a claim at `now_ms`: an agent that bids
    /// without a script has no live offer, and they were not read in the last 100 ms.
    pub(crate) fn wants_refresh(&self, now_ms: i64) -> bool {
        let read_at = self.read_at_ms.load(Ordering::Relaxed);
        if read_at == 0 {
            return true;
        }
        if now_ms - read_at < MISSING_REFRESH_MS {
            return false;
        }
        let live = self.live.read().expect("not poisoned");
        live.len() < self.could_offer.load(Ordering::Relaxed)
            || live.values().any(|heartbeat| now_ms - heartbeat > OFFER_LEASE_MS)
    }

    /// The standing bids on an artifact of `artifact_type` written by `produced_by_role`, at
    /// `now_ms`: one per agent whose offer is live.
    pub(crate) fn bids_for(
        &self,
        config: &SettConfig,
        artifact_type: &str,
        produced_by_role: &str,
        now_ms: i64,
    ) -> Vec<(AgentName, BidType)> {
        let live = self.live.read().expect("not poisoned");
        live.iter()
            .filter(|(_, heartbeat)| now_ms - **heartbeat <= OFFER_LEASE_MS)
            .filter_map(|(agent, _)| {
                Some((agent.clone(), config.agents.get(agent)?.static_bid(artifact_type, produced_by_role)))
            })
            .collect()
    }
}

/// The agents of `components` with an offer that matches their configuration in `config`, with
/// their cub's heartbeat.
fn offers(config: &SettConfig, components: &BTreeMap<String, ComponentRecord>) -> BTreeMap<AgentName, i64> {
    components
        .iter()
        .filter_map(|(name, record)| {
            let agent = AgentName::parse(cub_agent(name)?).ok()?;
            let terms = config.agents.get(&agent)?.standing_bid_terms()?;
            (record.standing_bid.as_deref() == Some(terms.as_str())).then_some((agent, record.heartbeat_ms?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SettConfig {
        let text = "version: \"1.0\"\nagents:\n  Coder:\n    command: [x]\n    bidding_strategy: {type: exclusive, target_types: [\"Goal*\"]}\n  Reviewer:\n    command: [x]\n    bidding_strategy: review\n  Scripted:\n    command: [x]\n    bid_script: [x]\n";
        SettConfig::parse("t.yml", text).unwrap()
    }

    fn offering(config: &SettConfig, agent: &str, heartbeat_ms: i64) -> ComponentRecord {
        let a = AgentName::parse(agent).unwrap();
        ComponentRecord {
            agent: Some(a.clone()),
            heartbeat_ms: Some(heartbeat_ms),
            standing_bid: config.agents.get(&a).and_then(|c| c.standing_bid_terms()),
            ..ComponentRecord::default()
        }
    }

    #[test]
    fn live_offers_with_matching_terms_bid_as_their_strategy() {
        let config = config();
        let mut components = BTreeMap::new();
        components.insert("cub:Coder".to_owned(), offering(&config, "Coder", 10_000));
        components.insert("cub:Reviewer".to_owned(), offering(&config, "Reviewer", 10_000));
        let offers = StandingOffers::default();
        assert!(offers.wants_refresh(10_000), "never read");
        offers.refresh(&config, &components, 10_000);
        assert!(!offers.wants_refresh(10_050), "every agent that can offer does");
        assert!(offers.wants_refresh(10_001 + OFFER_LEASE_MS), "an offer lapsed");
        let bids = offers.bids_for(&config, "GoalDefined", "user", 10_000 + OFFER_LEASE_MS);
        let name = |s: &str| AgentName::parse(s).unwrap();
        assert_eq!(bids, vec![(name("Coder"), BidType::Exclusive), (name("Reviewer"), BidType::Review)]);
        // The loop guard and the type filter apply as in the cub.
        let bids = offers.bids_for(&config, "Report", "Coder", 10_000);
        assert_eq!(bids, vec![(name("Coder"), BidType::Ignore), (name("Reviewer"), BidType::Review)]);
        // A heartbeat older than the lease: no standing bid.
        assert!(offers.bids_for(&config, "GoalDefined", "user", 10_001 + OFFER_LEASE_MS).is_empty());
    }

    #[test]
    fn offers_that_do_not_match_the_configuration_are_not_recorded() {
        let config = config();
        let mut components = BTreeMap::new();
        let mut other_terms = offering(&config, "Coder", 10);
        other_terms.standing_bid = Some("v1 claim [] own_output=false".into());
        components.insert("cub:Coder".to_owned(), other_terms);
        // A bid script's agent offers nothing; an unconfigured agent is not decided for.
        let mut scripted = offering(&config, "Scripted", 10);
        scripted.standing_bid = Some("v1 ignore own_output=false".into());
        components.insert("cub:Scripted".to_owned(), scripted);
        let mut stranger = offering(&config, "Reviewer", 10);
        stranger.agent = Some(AgentName::parse("Stranger").unwrap());
        components.insert("cub:Stranger".to_owned(), stranger);
        // No offer at all (an older cub), and the orchestrator's own record.
        let mut silent = offering(&config, "Reviewer", 10);
        silent.standing_bid = None;
        components.insert("cub:Reviewer".to_owned(), silent);
        components.insert("orchestrator".to_owned(), ComponentRecord { heartbeat_ms: Some(10), ..Default::default() });
        let offers = StandingOffers::default();
        offers.refresh(&config, &components, 10);
        assert!(offers.bids_for(&config, "GoalDefined", "user", 10).is_empty());
        // Read again on a claim's creation, but not more than every 100 ms.
        assert!(!offers.wants_refresh(109));
        assert!(offers.wants_refresh(110));
    }
}
