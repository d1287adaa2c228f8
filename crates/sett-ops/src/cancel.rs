//! Cancelling a workflow (`sett cancel`, the console's Cancel): finds the workflow an artifact
//! belongs to, reads its members from the ledger and its open claims from their records, and
//! writes the cancellation in one atomic step (`Store::cancel_workflow`), reading again when a
//! claim moved on in between. Running tools are stopped by their cubs, which see the
//! `workflow_cancelled` event.

use sett_core::{Artifact, ArtifactId, ClaimId, ClaimStatus};
use sett_store::{CancelOutcome, CancelRecord, Store, StoreError, WorkflowCancel, now_ms};

use crate::workflow::{Outcome, Workflow};
use sett_core::text::short;

/// How often a cancellation is recomputed when the workflow moved on while it was read.
const ATTEMPTS: usize = 20;
/// Events read per page while collecting a workflow's members.
const PAGE: u64 = 5_000;

/// A written cancellation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cancelled {
    pub goal_id: ArtifactId,
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    /// The claims it terminated.
    pub claims: Vec<ClaimId>,
    /// The questions it closed.
    pub questions: Vec<ArtifactId>,
}

/// Why nothing was cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no artifact {0} in instance '{1}'")]
    NotFound(ArtifactId, String),
    #[error("the workflow of goal {} was already cancelled by {} at {} ms{}", short(&.goal.to_string()), .record.operator, .record.at_ms, .record.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    AlreadyCancelled { goal: ArtifactId, record: CancelRecord },
    #[error("the workflow of goal {} has already ended: {}", short(&.goal.to_string()), describe(.outcome))]
    Ended { goal: ArtifactId, outcome: Outcome },
    #[error("the workflow of goal {} kept changing while it was being cancelled; run the command again", short(&.0.to_string()))]
    Busy(ArtifactId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How an ended workflow ended, in words.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Terminal { artifact_id } => format!("completed (Terminal {})", short(&artifact_id.to_string())),
        Outcome::Failure { artifact_id, failure_type } => {
            format!("failed ({failure_type} {})", short(&artifact_id.to_string()))
        }
        Outcome::Stopped { claim_id, status, .. } => {
            format!("stopped (the goal's claim {} is {status})", short(&claim_id.to_string()))
        }
        Outcome::Cancelled { operator, .. } => format!("cancelled by {operator}"),
    }
}

/// How the workflow ended, once it and every branch of it have: the outcome set last (the
/// original's, or a branch's). `None` while any of them still runs.
pub fn ended(wf: &Workflow) -> Option<Outcome> {
    if !wf.ended() {
        return None;
    }
    wf.last_outcome().or(wf.outcome()).cloned()
}

/// The goal of the workflow `artifact` belongs to (see [`Store::goal_of`]).
pub async fn goal_of(store: &Store, artifact: Artifact) -> Result<ArtifactId, StoreError> {
    store.goal_of(artifact).await
}

/// The workflow of `goal` as the ledger tells it (every event read once).
pub async fn read_workflow(store: &Store, goal: ArtifactId) -> Result<Workflow, StoreError> {
    let mut wf = Workflow::new(goal);
    let mut pages = store.entry_pages(PAGE);
    while let Some(page) = pages.next().await? {
        for e in page.iter().flatten() {
            wf.observe(e);
        }
    }
    Ok(wf)
}

/// Cancels the workflow `artifact` belongs to (its goal or any artifact in it) as `operator`.
pub async fn cancel_workflow(
    store: &Store,
    artifact: &ArtifactId,
    operator: &str,
    reason: Option<&str>,
) -> Result<Cancelled, CancelError> {
    let Some(a) = store.get_artifact(artifact).await? else {
        return Err(CancelError::NotFound(*artifact, store.instance().to_string()));
    };
    let goal = goal_of(store, a).await?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
    for _ in 0..ATTEMPTS {
        if let Some(record) = store.cancellation(&goal).await? {
            return Err(CancelError::AlreadyCancelled { goal, record });
        }
        let wf = read_workflow(store, goal).await?;
        // A fork branch still running is what is left to cancel, whatever the original's outcome.
        if let Some(outcome) = ended(&wf) {
            return Err(CancelError::Ended { goal, outcome });
        }
        let now = now_ms();
        let why = format!("cancelled by {operator}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default());
        let mut members: Vec<String> = wf.artifacts().map(ToString::to_string).collect();
        members.extend(wf.claims().map(ToString::to_string));
        members.sort();
        let mut claims = Vec::new();
        let mut questions = Vec::new();
        let mut outputs = Vec::new();
        for id in wf.claims() {
            let Some(claim) = store.get_claim(id).await? else { continue };
            if claim.status.is_final() {
                continue;
            }
            outputs.extend(claim.grants.values().map(|g| ArtifactId::grant_output(&claim.id, g.seq)));
            questions.extend(claim.open_questions.keys().copied());
            let mut next = claim.clone();
            next.status = ClaimStatus::Terminated;
            next.revision += 1;
            next.updated_at_ms = now;
            next.termination_reason = Some(why.clone());
            next.open_questions.clear();
            next.resume_status = None;
            claims.push((next, claim.revision));
        }
        claims.sort_by_key(|(c, _)| c.id);
        let record = CancelRecord { operator: operator.to_owned(), reason: reason.clone(), at_ms: now };
        let write = WorkflowCancel { goal, record, claims, members, questions, outputs };
        match store.cancel_workflow(&write).await? {
            CancelOutcome::Cancelled { .. } => {
                return Ok(Cancelled {
                    goal_id: goal,
                    operator: operator.to_owned(),
                    reason,
                    at_ms: now,
                    claims: write.claims.iter().map(|(c, _)| c.id).collect(),
                    questions: write.questions,
                });
            }
            CancelOutcome::AlreadyCancelled(record) => return Err(CancelError::AlreadyCancelled { goal, record }),
            CancelOutcome::Ended { .. } | CancelOutcome::Stale => continue,
        }
    }
    Err(CancelError::Busy(goal))
}
