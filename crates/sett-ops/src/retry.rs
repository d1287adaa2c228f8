//! Retrying a failed workflow (`sett retry`, the console's Retry): finds the workflow an artifact
//! belongs to, checks that it ended in a failure (a Failure artifact: a tool or worker failure,
//! an execution or question timeout, a rejected approval, too many review rounds; or its goal's
//! claim ending without one, e.g. nobody bid), and records the retry of the failed claim in one
//! atomic step (`Store::retry`). The orchestrator then gives the failed step a new attempt: a new
//! claim on the same artifact, with the Failure in its context. The first attempt's claim and
//! Failure stay; the workflow is open again until its next outcome.

use sett_core::{ArtifactId, ClaimId};
use sett_store::{RetryOutcome, RetryWrite, Store, StoreError, now_ms};

use crate::cancel::{describe, goal_of, read_workflow};
use crate::workflow::Outcome;
use sett_core::text::short;

/// A written retry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Retried {
    pub goal_id: ArtifactId,
    /// The claim that failed, and the Failure that ended it (none when nobody bid).
    pub failed_claim: ClaimId,
    pub failure: Option<ArtifactId>,
    /// What the failure was (`ToolExecutionFailure`, …, or the failed claim's status).
    pub failure_type: String,
    /// The artifact the new attempt works on, and its claim.
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    pub action_id: String,
}

/// Why nothing was retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("no artifact {0} in instance '{1}'")]
    NotFound(ArtifactId, String),
    #[error("the workflow of goal {} has not failed: it {}", short(&.goal.to_string()), .outcome.as_ref().map_or_else(|| "is still running".to_owned(), |o| format!("has {}", describe(o))))]
    NotFailed { goal: ArtifactId, outcome: Option<Outcome> },
    #[error("the failed claim {} of the workflow of goal {} is still being ended; run the command again in a moment", short(&.claim.to_string()), short(&.goal.to_string()))]
    NotEndedYet { goal: ArtifactId, claim: ClaimId },
    #[error("the failed step (claim {}) of the workflow of goal {} was already retried by claim {}", short(&.failed.to_string()), short(&.goal.to_string()), short(&.by.to_string()))]
    AlreadyRetried { goal: ArtifactId, failed: ClaimId, by: ClaimId },
    #[error("the workflow of goal {} was cancelled ({0}): a cancelled workflow is not retried", short(&.goal.to_string()))]
    Cancelled { goal: ArtifactId, fence: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Retries the failed step of the workflow `target` belongs to (its goal, its Failure or any
/// artifact in it) as `operator`.
pub async fn retry(
    store: &Store,
    target: &ArtifactId,
    operator: &str,
    reason: Option<&str>,
) -> Result<Retried, RetryError> {
    let Some(artifact) = store.get_artifact(target).await? else {
        return Err(RetryError::NotFound(*target, store.instance().to_string()));
    };
    let goal = goal_of(store, artifact).await?;
    let wf = read_workflow(store, goal).await?;
    let (failed_claim, failure, failure_type) = match wf.outcome() {
        Some(Outcome::Failure { artifact_id, failure_type }) => {
            let claim = store.get_artifact(artifact_id).await?.and_then(|f| f.claim_id);
            let Some(claim) = claim else {
                return Err(RetryError::NotFailed { goal, outcome: wf.outcome().cloned() });
            };
            (claim, Some(*artifact_id), failure_type.clone())
        }
        Some(Outcome::Stopped { claim_id, status, .. }) => (*claim_id, None, status.to_string()),
        other => return Err(RetryError::NotFailed { goal, outcome: other.cloned() }),
    };
    let Some(failed) = store.get_claim(&failed_claim).await? else {
        return Err(RetryError::NotFailed { goal, outcome: wf.outcome().cloned() });
    };
    let failure = failure.or(failed.outcome_artifact);
    let write = RetryWrite {
        action_id: sett_store::new_artifact_id().to_string(),
        goal_id: goal,
        artifact_id: failed.artifact_id,
        failed_claim,
        failure,
        claim_id: sett_store::new_claim_id(),
        operator: operator.to_owned(),
        reason: reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned),
        at_ms: now_ms(),
    };
    match store.retry(&write).await? {
        RetryOutcome::Retried => Ok(Retried {
            goal_id: goal,
            failed_claim,
            failure,
            failure_type,
            artifact_id: write.artifact_id,
            claim_id: write.claim_id,
            operator: write.operator,
            reason: write.reason,
            at_ms: write.at_ms,
            action_id: write.action_id,
        }),
        RetryOutcome::AlreadyRetried(by) => Err(RetryError::AlreadyRetried { goal, failed: failed_claim, by }),
        RetryOutcome::Open(_) => Err(RetryError::NotEndedYet { goal, claim: failed_claim }),
        RetryOutcome::Cancelled(fence) => Err(RetryError::Cancelled { goal, fence }),
    }
}
