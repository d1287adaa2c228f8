//! Retrying a workflow's failed step (`sett retry`, the console's Retry): `lua/retry.lua`
//! records, in one atomic step, which claim the failed one is retried by (`retries`), the action
//! record `sett verify` checks and the `workflow_retried` event; the orchestrator creates the new
//! attempt's claim when it reads that event.

use fred::prelude::*;
use sett_core::event::{EventData, WorkflowRetried};
use sett_core::{ArtifactId, ClaimId, ledger};

use crate::pause::ActionRecord;
use crate::scripts::RETRY;
use crate::{Result, Store, StoreError};

/// Everything one retry writes (see [`Store::retry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryWrite {
    pub action_id: String,
    pub goal_id: ArtifactId,
    /// The failed claim's artifact: the new attempt's target.
    pub artifact_id: ArtifactId,
    pub failed_claim: ClaimId,
    /// The Failure that ended it (none when nobody bid).
    pub failure: Option<ArtifactId>,
    /// The new attempt's claim id.
    pub claim_id: ClaimId,
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
}

impl RetryWrite {
    /// The `workflow_retried` event this retry appends.
    pub fn event(&self) -> WorkflowRetried {
        WorkflowRetried {
            action_id: self.action_id.clone(),
            artifact_id: self.artifact_id,
            claim_id: self.claim_id,
            failed_claim: self.failed_claim,
            failure: self.failure,
            goal_id: self.goal_id,
            operator: self.operator.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// How a retry went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    Retried,
    /// The failed claim was retried before, by this claim (nothing written).
    AlreadyRetried(ClaimId),
    /// The claim has not ended (its status, empty when it does not exist): nothing to retry.
    Open(String),
    /// Its workflow was cancelled (the fence entry).
    Cancelled(String),
}

impl Store {
    /// Records a retry of `r.failed_claim` in one atomic step (`lua/retry.lua`): the retry
    /// entry, the action record and the `workflow_retried` event. Refused, writing nothing,
    /// while the claim is open, when its workflow was cancelled or when it was retried already.
    pub async fn retry(&self, r: &RetryWrite) -> Result<RetryOutcome> {
        let k = &self.keys;
        let ts = r.at_ms.to_string();
        let data = EventData::WorkflowRetried(r.event()).to_json();
        let digest = ledger::event_digest("workflow_retried", &ts, &data, None);
        let action = ActionRecord {
            kind: "workflow_retried".into(),
            target: r.failed_claim.to_string(),
            operator: r.operator.clone(),
            reason: r.reason.clone(),
            at_ms: r.at_ms,
        };
        let keys = vec![k.events(), k.ledger(), k.retries(), k.actions(), k.claim(&r.failed_claim), k.cancel_fence()];
        let args = vec![
            r.failed_claim.to_string(),
            ts,
            data,
            digest,
            r.action_id.clone(),
            action.encode(),
            r.claim_id.to_string(),
            r.goal_id.to_string(),
        ];
        let (reply, rewritten): (Vec<String>, bool) = self
            .durable(|| async { Ok(RETRY.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?) })
            .await?;
        let second = || reply.get(1).cloned().unwrap_or_default();
        Ok(match reply.first().map(String::as_str) {
            Some("ok") => RetryOutcome::Retried,
            // The first write survived a failover and this is its repetition: ours.
            Some("already") if rewritten && second() == r.claim_id.to_string() => RetryOutcome::Retried,
            Some("already") => RetryOutcome::AlreadyRetried(
                ClaimId::parse(&second()).map_err(|e| StoreError::Decode(format!("retry entry: {e}")))?,
            ),
            Some("open") => RetryOutcome::Open(second()),
            Some("cancelled") => RetryOutcome::Cancelled(second()),
            other => return Err(StoreError::Decode(format!("unexpected retry reply {other:?}"))),
        })
    }

    /// The claim that retries `failed`, if an operator retried it.
    pub async fn retried_by(&self, failed: &ClaimId) -> Result<Option<ClaimId>> {
        let raw: Option<String> = self.client().hget(self.keys.retries(), failed.to_string()).await?;
        raw.map(|c| ClaimId::parse(&c).map_err(|e| StoreError::Decode(format!("retry entry: {e}")))).transpose()
    }
}
