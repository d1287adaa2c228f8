//! Cancelling a workflow: the one atomic write (`lua/cancel_workflow.lua`) that records the
//! cancellation, terminates the open claims, closes the questions and fences the workflow's
//! artifacts; the cancellation records; the fence lookups the orchestrator makes; and the
//! record of an output that arrived after the cancellation (`lua/record_late_output.lua`).

use std::collections::HashMap;

use fred::prelude::*;
use serde::{Deserialize, Serialize};
use sett_core::event::{ClaimEnded, EventData, OutputLate, WorkflowCancelled};
use sett_core::{ArtifactId, Claim, ClaimId, ledger};

use crate::codec::claim_rewrite;
use crate::scripts::{CANCEL_WORKFLOW, RECORD_LATE_OUTPUT};
use crate::{Result, Store, StoreError};

/// Who cancelled a workflow, why and when (`workflows:cancelled`, by goal id). `sett verify`
/// checks it against its `workflow_cancelled` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRecord {
    pub operator: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub at_ms: i64,
}

/// Everything one cancellation writes (see [`Store::cancel_workflow`]).
#[derive(Debug, Clone)]
pub struct WorkflowCancel {
    pub goal: ArtifactId,
    pub record: CancelRecord,
    /// Each open claim as it will be stored (terminated, revision + 1) with the revision read.
    pub claims: Vec<(Claim, u64)>,
    /// Every artifact and claim id of the workflow known to the caller.
    pub members: Vec<String>,
    /// The open questions to close.
    pub questions: Vec<ArtifactId>,
    /// The output ids of the open claims' grants (written or not yet).
    pub outputs: Vec<ArtifactId>,
}

/// How a cancellation went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Written; the id of the `workflow_cancelled` event.
    Cancelled { event_id: String },
    /// Cancelled before (nothing written).
    AlreadyCancelled(CancelRecord),
    /// A claim moved on since it was read, or a new claim exists: read again and retry.
    Stale,
    /// An output of an open claim already ended the workflow (a Terminal or a Failure).
    Ended { artifact: ArtifactId, structural_type: String },
}

/// Where an artifact or claim stands in the cancel fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    /// Part of the workflow when it was cancelled.
    Member(ArtifactId),
    /// An output a cancelled grant could still write (not written at the cancellation).
    Expected(ArtifactId),
    /// Such an output, written after the cancellation and recorded as late.
    Late(ArtifactId),
}

impl Fenced {
    /// A fence entry as stored (`member:<goal>`, `expected:<goal>`, `late:<goal>`).
    pub fn parse(raw: &str) -> Option<Self> {
        let (kind, goal) = raw.split_once(':')?;
        let goal = ArtifactId::parse(goal).ok()?;
        match kind {
            "member" => Some(Self::Member(goal)),
            "expected" => Some(Self::Expected(goal)),
            "late" => Some(Self::Late(goal)),
            _ => None,
        }
    }

    pub fn goal(self) -> ArtifactId {
        match self {
            Self::Member(g) | Self::Expected(g) | Self::Late(g) => g,
        }
    }
}

fn decode_record(raw: &str) -> Result<CancelRecord> {
    serde_json::from_str(raw).map_err(|e| StoreError::Decode(format!("cancellation record: {e}")))
}

impl Store {
    /// Cancels one workflow in one atomic step (`lua/cancel_workflow.lua`): refused, writing
    /// nothing, when it was cancelled before, when a claim moved on or appeared since the caller
    /// read them ([`CancelOutcome::Stale`]: read again) or when an output already ended it.
    pub async fn cancel_workflow(&self, c: &WorkflowCancel) -> Result<CancelOutcome> {
        let k = &self.keys;
        let ts = c.record.at_ms.to_string();
        let cancelled = EventData::WorkflowCancelled(WorkflowCancelled {
            claims: c.claims.iter().map(|(claim, _)| claim.id).collect(),
            goal_id: c.goal,
            operator: c.record.operator.clone(),
            questions: c.questions.clone(),
            reason: c.record.reason.clone(),
        });
        let data = cancelled.to_json();
        let digest = ledger::event_digest("workflow_cancelled", &ts, &data, None);
        let mut keys = vec![
            k.events(),
            k.ledger(),
            k.cancelled_workflows(),
            k.cancel_fence(),
            k.deadlines(),
            k.open_questions(),
            k.claim_by_artifact(),
        ];
        let mut claims = Vec::with_capacity(c.claims.len());
        for (claim, expected) in &c.claims {
            keys.push(k.claim(&claim.id));
            let ended = EventData::ClaimTerminated(ClaimEnded::new(claim));
            claims.push(serde_json::Value::Array(claim_rewrite(claim, *expected, &ended, &ts)));
        }
        keys.extend(c.outputs.iter().map(|o| k.artifact(o)));
        let record = serde_json::to_string(&c.record).expect("serialisable");
        let args = vec![
            c.goal.to_string(),
            ts,
            record,
            data,
            digest,
            serde_json::Value::Array(claims).to_string(),
            serde_json::to_string(&c.members).expect("serialisable"),
            serde_json::to_string(&c.questions).expect("serialisable"),
            serde_json::to_string(&c.outputs).expect("serialisable"),
        ];
        let (reply, rewritten): (Vec<String>, bool) = self
            .durable(|| async {
                Ok(CANCEL_WORKFLOW.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?)
            })
            .await?;
        if reply.first().map(String::as_str) == Some("ok") && !c.claims.is_empty() {
            // The cubs running its grants stop their tools when they read the event; a ring that
            // fails only delays that to their bell's fallback.
            if let Err(e) = self.ring_cubs().await {
                tracing::debug!(error = %e, "cannot ring the cubs' bell after a cancellation");
            }
        }
        Ok(match reply.first().map(String::as_str) {
            Some("ok") => CancelOutcome::Cancelled { event_id: reply.get(1).cloned().unwrap_or_default() },
            // The first write survived a failover and this is its repetition: ours.
            Some("already") if rewritten && decode_record(&reply[1])? == c.record => {
                CancelOutcome::Cancelled { event_id: String::new() }
            }
            Some("already") => CancelOutcome::AlreadyCancelled(decode_record(reply.get(1).map_or("", |s| s))?),
            Some("conflict" | "stale") => CancelOutcome::Stale,
            Some("ended") => CancelOutcome::Ended {
                artifact: ArtifactId::parse(reply.get(1).map_or("", |s| s))
                    .map_err(|e| StoreError::Decode(e.to_string()))?,
                structural_type: reply.get(2).cloned().unwrap_or_default(),
            },
            other => return Err(StoreError::Decode(format!("unexpected cancel_workflow reply {other:?}"))),
        })
    }

    /// The cancellation of the workflow of `goal`, if it was cancelled.
    pub async fn cancellation(&self, goal: &ArtifactId) -> Result<Option<CancelRecord>> {
        let raw: Option<String> = self.client().hget(self.keys.cancelled_workflows(), goal.to_string()).await?;
        raw.as_deref().map(decode_record).transpose()
    }

    /// Every cancellation record, by goal id as stored (`sett verify` reads them all).
    pub async fn cancellations(&self) -> Result<HashMap<String, String>> {
        Ok(self.client().hgetall(self.keys.cancelled_workflows()).await?)
    }

    /// Whether the cancel fence holds anything (a workflow of the instance was cancelled and its
    /// fence not lifted by a retry): while it does not, no artifact needs [`Store::fenced`].
    pub async fn any_cancel_fence(&self) -> Result<bool> {
        Ok(self.client().exists::<u64, _>(self.keys.cancel_fence()).await? > 0)
    }

    /// Where `id` (an artifact or claim id) stands in the cancel fence, if it is in it.
    pub async fn fenced(&self, id: &str) -> Result<Option<Fenced>> {
        let raw: Option<String> = self.client().hget(self.keys.cancel_fence(), id).await?;
        Ok(raw.as_deref().and_then(Fenced::parse))
    }

    /// Records `artifact` (an output of a cancelled grant, written after the cancellation of the
    /// workflow of `goal`) as late: its fence entry and an `output_late` event, once. Returns
    /// whether this call recorded it.
    pub async fn record_late_output(
        &self,
        artifact: &ArtifactId,
        claim: Option<ClaimId>,
        goal: &ArtifactId,
        now_ms: i64,
    ) -> Result<bool> {
        let ts = now_ms.to_string();
        let data =
            EventData::OutputLate(OutputLate { artifact_id: *artifact, claim_id: claim, goal_id: *goal }).to_json();
        let digest = ledger::event_digest("output_late", &ts, &data, None);
        let keys = vec![self.keys.cancel_fence(), self.keys.events(), self.keys.ledger()];
        let args = vec![artifact.to_string(), goal.to_string(), ts, data, digest];
        let (reply, _): (Vec<String>, bool) = self
            .durable(|| async {
                Ok(RECORD_LATE_OUTPUT.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?)
            })
            .await?;
        Ok(reply.first().map(String::as_str) == Some("ok"))
    }
}
