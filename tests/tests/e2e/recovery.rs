//! Restart resilience: the orchestrator is killed with SIGKILL at random moments while goals run,
//! then started again with `sett up`. Every goal must reach its Terminal, no agent may be granted
//! the same claim phase twice, and no tool may run twice for one grant.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sett_core::StructuralType;
use sett_core::event::{EventData, EventKind};
use sett_e2e::{Env, summary};

/// Records every run (claim and claim type) and ends the workflow. Controllers run it in workers.
const RECORDER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
echo "$(jq -r .claim_id <<<"$input") $(jq -r .claim_type <<<"$input") $SETT_AGENT" >>runs.log
jq -n --arg g "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}'
"#;

const REVIEW: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
echo "$(jq -r .claim_id <<<"$input") $(jq -r .claim_type <<<"$input") $SETT_AGENT" >>runs.log
jq -n '{artifact_type: "Review", artifact_payload: {}}'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn orchestrator_killed_at_random_moments_loses_and_duplicates_nothing() {
    let yml = r#"
version: "1.0"
orchestrator: {bid_timeout: 30s}
agents:
  Reviewer:
    command: ["./review.sh"]
    bidding_strategy: review
  Finisher:
    command: ["./record.sh"]
    bidding_strategy: exclusive
  Boss:
    command: ["./record.sh"]
    bidding_strategy: {type: exclusive, target_types: ["Delegated"]}
    mode: controller
    worker: {max_concurrent: 3}
"#;
    let mut env = Env::new(yml, &[("record.sh", RECORDER), ("review.sh", REVIEW)]).await;
    env.up();
    const ROUNDS: usize = 10;
    const GOALS: usize = 50;
    let mut expected = 0;
    for round in 0..ROUNDS {
        // Half the goals go to a cub (Finisher), half to controller workers (Boss).
        for i in 0..GOALS {
            let kind = if i % 2 == 0 { "GoalDefined" } else { "Delegated" };
            let a = sett_core::Artifact::new_root(
                sett_store::new_artifact_id(),
                StructuralType::Standard,
                kind,
                format!("r{round} g{i}"),
                "user",
                sett_store::now_ms(),
            );
            env.store.create_artifact(&a).await.unwrap();
        }
        expected += GOALS;
        let delay = rand_ms(round, 400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let pid = env.pid_of("orchestrator").await.expect("the orchestrator runs");
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
        assert!(sett_runtime::wait_gone(pid, Duration::from_secs(5)));
        env.up();
    }
    let artifacts = env.wait_terminals(expected, Duration::from_secs(240)).await;
    let terminals = artifacts.iter().filter(|a| a.structural_type == StructuralType::Terminal).count();
    assert_eq!(terminals, expected, "exactly one Terminal per goal");
    assert_eq!(
        artifacts.iter().filter(|a| a.structural_type == StructuralType::Failure).count(),
        0,
        "{:#?}",
        summary(&artifacts)
    );

    // No agent granted the same claim phase twice.
    let mut grants: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for g in env.events_of(EventKind::ClaimGranted).await {
        let EventData::ClaimGranted(g) = g.data else { panic!("not a grant: {g:?}") };
        let key = (g.claim_id.to_string(), g.agent.to_string(), g.claim_type.to_string());
        *grants.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = grants.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "granted twice: {twice:?}");
    // No tool ran twice for one grant (each grant here is the only one of its claim and type).
    let runs = std::fs::read_to_string(env.path().join("runs.log")).unwrap();
    let mut seen = BTreeSet::new();
    for line in runs.lines() {
        assert!(seen.insert(line.to_owned()), "a tool ran twice for one grant: {line}");
    }
    assert_eq!(seen.len(), grants.len(), "every grant ran exactly once");
    for c in env.claims().await {
        assert!(c.status.is_final(), "claim {} left in {}", c.id, c.status);
    }
    // Every cub stayed up, so no bid may be lost to a kill: no claim waited for its bid deadline
    // (cubs bid on the artifact's event while the orchestrator creates the claim).
    let missing = env.events_of(EventKind::BidsMissing).await;
    assert!(missing.is_empty(), "bids lost across orchestrator kills: {missing:#?}");
    env.down();
}

/// A pseudo-random delay below `max` ms, different per round and per run.
fn rand_ms(round: usize, max: u64) -> u64 {
    let seed = uuid::Uuid::new_v4().as_u128() as u64 ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    seed % max
}
