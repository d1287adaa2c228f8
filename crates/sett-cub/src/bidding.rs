//! One agent's bid on one claim (design.md §5): the `bid_script` when configured (falling back
//! to the static strategy on any failure), else the static `bidding_strategy`, else `ignore`;
//! then the self-output guard. A bid is recorded once per (claim, agent) by the store.

use std::time::Duration;

use sett_core::config::AgentConfig;
use sett_core::machine::initial_claim_id;
use sett_core::tool::parse_bid;
use sett_core::{Artifact, ArtifactId, BidType, ClaimId, ClaimStatus};
use sett_store::Store;
use tokio_util::sync::CancellationToken;

use crate::process::{self, Ended, EnvIdentity};
use crate::{CubError, CubSettings};

/// How long a bid script may run (design.md §5).
pub const BID_SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bid script prints one word; anything beyond this is not a bid.
const BID_SCRIPT_CAP: usize = 64 * 1024;

/// The static strategy's bid for an artifact type (`ignore` without a strategy).
pub fn static_bid(agent: &AgentConfig, artifact_type: &str) -> BidType {
    agent.strategy_bid(artifact_type)
}

/// The loop guard: an agent does not bid `claim`/`exclusive` on its own output unless it is
/// configured with `bid_on_own_output: true` ([`AgentConfig::guard_own_output`]).
pub fn guard_own_output(agent: &AgentConfig, artifact: &Artifact, bid: BidType) -> BidType {
    agent.guard_own_output(&artifact.produced_by_role, bid)
}

/// Decides `cub`'s bid on `artifact` (the target of `claim`). Never fails: a broken bid script
/// falls back to the static strategy. `kill` ends a running bid script (shutdown).
pub async fn decide_bid(
    cub: &CubSettings,
    instance: &sett_core::InstanceName,
    claim: &ClaimId,
    artifact: &Artifact,
    kill: &CancellationToken,
) -> BidType {
    let agent = &cub.agent;
    let bid = match &agent.bid_script {
        None => static_bid(agent, &artifact.artifact_type),
        Some(argv) => match run_bid_script(cub, instance, claim, argv, artifact, kill).await {
            Ok(bid) => bid,
            Err(reason) => {
                let fallback = static_bid(agent, &artifact.artifact_type);
                tracing::warn!(%reason, fallback = %fallback, "the bid script failed; using the static bidding strategy");
                fallback
            }
        },
    };
    guard_own_output(agent, artifact, bid)
}

async fn run_bid_script(
    cub: &CubSettings,
    instance: &sett_core::InstanceName,
    claim: &ClaimId,
    argv: &[String],
    artifact: &Artifact,
    kill: &CancellationToken,
) -> Result<BidType, String> {
    let env = process::tool_environment(
        &EnvIdentity {
            instance,
            agent: &cub.agent,
            workspace: &cub.workspace,
            claim: Some((claim, None)),
            redis_url: cub.redis_url.as_deref(),
        },
        |name| std::env::var(name).ok(),
    );
    let stdin = serde_json::to_vec(artifact).map_err(|e| format!("cannot encode the artifact: {e}"))?;
    let spec = process::RunSpec {
        argv,
        cwd: &cub.workspace,
        env,
        stdin,
        timeout: BID_SCRIPT_TIMEOUT,
        cap: BID_SCRIPT_CAP,
        spawner: process::Spawner::Auto,
    };
    let result = process::run(spec, kill).await;
    if !result.stderr.data.is_empty() {
        tracing::info!(stderr = %result.stderr.tail(4096), "bid script stderr");
    }
    match result.ended {
        Ended::Exited(Some(0)) => parse_bid(&result.stdout.text()),
        Ended::Exited(code) => Err(format!("the bid script exited with {}", process::describe_exit(code))),
        Ended::TimedOut => Err(format!("the bid script did not answer within {BID_SCRIPT_TIMEOUT:?}")),
        Ended::Killed | Ended::Stopped => Err("the bid script was stopped (shutdown)".into()),
        Ended::SpawnFailed(e) => Err(e),
    }
}

/// Bids on `claim` once: nothing happens when the claim is unknown, no longer waiting for bids,
/// or when this agent has bid already. Returns the bid submitted.
pub async fn bid_on_claim(
    store: &Store,
    cub: &CubSettings,
    claim: &ClaimId,
    kill: &CancellationToken,
) -> Result<Option<BidType>, CubError> {
    bid_on_claim_of(store, cub, claim, None, kill).await
}

/// [`bid_on_claim`] with the claim's artifact id as announced by its `claim_created` event: the
/// claim and its artifact are then read in one pipelined round trip (the artifact is read again
/// if the claim names another one).
pub async fn bid_on_claim_of(
    store: &Store,
    cub: &CubSettings,
    claim: &ClaimId,
    artifact_hint: Option<ArtifactId>,
    kill: &CancellationToken,
) -> Result<Option<BidType>, CubError> {
    let agent = &cub.agent.name;
    // Reading the bids is worth it only to avoid running a bid script again on a redelivered
    // event; a static decision is cheaper than the read, and the store keeps one bid per agent.
    let check_bids = cub.agent.bid_script.is_some();
    let artifact_read = async {
        match artifact_hint {
            Some(id) => store.get_artifact(&id).await.map(Some),
            None => Ok(None),
        }
    };
    let bids_read = async { if check_bids { store.bids(claim).await.map(Some) } else { Ok(None) } };
    let (record, prefetched, bids) = tokio::try_join!(store.get_claim(claim), artifact_read, bids_read)?;
    let Some(record) = record else {
        tracing::warn!("the claim does not exist; not bidding");
        return Ok(None);
    };
    if record.status != ClaimStatus::PendingConsensus {
        tracing::debug!(status = %record.status, "the claim no longer waits for bids");
        return Ok(None);
    }
    if bids.is_some_and(|b| b.contains_key(agent)) {
        tracing::debug!("already bid on this claim");
        return Ok(None);
    }
    let artifact = match prefetched {
        Some(a) if artifact_hint == Some(record.artifact_id) => a,
        _ => store.get_artifact(&record.artifact_id).await?,
    };
    let bid = match artifact {
        Some(artifact) => decide_bid(cub, store.instance(), claim, &artifact, kill).await,
        None => {
            tracing::warn!(missing_artifact_id = %record.artifact_id, "the claim's artifact does not exist; bidding ignore");
            BidType::Ignore
        }
    };
    if store.submit_bid(claim, agent, bid, sett_store::now_ms()).await? {
        tracing::info!(bid = %bid, "bid submitted");
        Ok(Some(bid))
    } else {
        Ok(None)
    }
}

/// What a bid depends on of a new artifact, as its `artifact_created` event announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtifact {
    pub id: ArtifactId,
    pub artifact_type: String,
    pub produced_by_role: String,
}

/// Bids on the claim the orchestrator creates for a new artifact as soon as the artifact's
/// `artifact_created` event arrives, while the orchestrator creates the claim: bidding and claim
/// creation overlap instead of following each other (one hop less from artifact to grant). A
/// static strategy needs no read at all; a bid script gets the stored artifact. The store
/// refuses the bid when the claim exists and no longer waits for bids (an artifact from the
/// history read by a cub that joined late).
pub async fn bid_on_new_artifact(
    store: &Store,
    cub: &CubSettings,
    artifact: &NewArtifact,
    kill: &CancellationToken,
) -> Result<Option<BidType>, CubError> {
    let claim = initial_claim_id(&artifact.id);
    let bid = if cub.agent.bid_script.is_some() {
        if store.bids(&claim).await?.contains_key(&cub.agent.name) {
            tracing::debug!("already bid on this claim");
            return Ok(None);
        }
        match store.get_artifact(&artifact.id).await? {
            Some(stored) => decide_bid(cub, store.instance(), &claim, &stored, kill).await,
            None => {
                tracing::warn!(missing_artifact_id = %artifact.id, "the new artifact does not exist; bidding ignore");
                BidType::Ignore
            }
        }
    } else {
        cub.agent.static_bid(&artifact.artifact_type, &artifact.produced_by_role)
    };
    if store.submit_bid_before_claim(&claim, &cub.agent.name, bid, sett_store::now_ms()).await? {
        tracing::info!(bid = %bid, "bid submitted");
        Ok(Some(bid))
    } else {
        tracing::debug!("not bidding: already bid, or the claim no longer waits for bids");
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use sett_core::config::SettConfig;

    use super::*;

    fn agent(yaml: &str) -> AgentConfig {
        let text = format!("version: \"1.0\"\nagents:\n  Coder:\n    command: [x]\n{yaml}");
        SettConfig::parse("t.yml", &text).unwrap().agents.into_values().next().unwrap()
    }

    #[test]
    fn static_bids_follow_target_types() {
        let a = agent("    bidding_strategy: {type: exclusive, target_types: [\"Goal*\"]}\n");
        assert_eq!(static_bid(&a, "GoalDefined"), BidType::Exclusive);
        assert_eq!(static_bid(&a, "CodeCommit"), BidType::Ignore);
        let a = agent("    bid_script: [x]\n");
        assert_eq!(static_bid(&a, "GoalDefined"), BidType::Ignore);
    }

    #[test]
    fn own_output_is_guarded() {
        let a = agent("    bidding_strategy: claim\n");
        let own =
            Artifact::new_root(sett_store::new_artifact_id(), sett_core::StructuralType::Standard, "T", "", "Coder", 1);
        let other =
            Artifact::new_root(sett_store::new_artifact_id(), sett_core::StructuralType::Standard, "T", "", "Other", 1);
        assert_eq!(guard_own_output(&a, &own, BidType::Claim), BidType::Ignore);
        assert_eq!(guard_own_output(&a, &own, BidType::Exclusive), BidType::Ignore);
        assert_eq!(guard_own_output(&a, &own, BidType::Review), BidType::Review);
        assert_eq!(guard_own_output(&a, &other, BidType::Claim), BidType::Claim);
        let a = agent("    bidding_strategy: claim\n    bid_on_own_output: true\n");
        assert_eq!(guard_own_output(&a, &own, BidType::Claim), BidType::Claim);
    }
}
