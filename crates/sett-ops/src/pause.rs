//! Pausing and resuming (`sett pause` / `sett resume`, the console's Pause/Resume): the whole
//! instance, or the workflow an artifact belongs to. A pause is one atomic write
//! (`Store::pause`): from then on nothing of its scope is granted (bids are still collected,
//! running tools finish) and its deadlines stand still. A resume is one atomic write too
//! (`Store::resume`): it moves every open claim's deadlines later by the time they stood still
//! and lifts the pause; the orchestrator then applies what the pause held.

use sett_core::{ArtifactId, ClaimId};
use sett_store::{
    PauseOutcome, PauseRecord, PauseScope, PauseWrite, ResumeOutcome, ResumeWrite, Store, StoreError, now_ms,
};

use crate::cancel::{describe, ended, goal_of, read_workflow};
use crate::workflow::Outcome;
use sett_core::text::short;

/// How often a pause or resume is recomputed when the workflow moved on while it was read.
const ATTEMPTS: usize = 20;

/// A written pause.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PauseDone {
    /// `instance` or `workflow`.
    pub scope: &'static str,
    /// The workflow's goal (none for the instance).
    pub goal_id: Option<ArtifactId>,
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    pub action_id: String,
}

/// A written resume.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResumeDone {
    pub scope: &'static str,
    pub goal_id: Option<ArtifactId>,
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    /// Who paused it, and how long it stood still.
    pub paused_by: String,
    pub paused_ms: i64,
    /// The claims whose deadlines moved later.
    pub claims: Vec<ClaimId>,
    pub action_id: String,
}

/// Why nothing was paused or resumed.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("no artifact {0} in instance '{1}'")]
    NotFound(ArtifactId, String),
    #[error("{} was already paused by {} at {} ms{}", what(.scope), .record.operator, .record.at_ms, .record.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    AlreadyPaused { scope: PauseScope, record: PauseRecord },
    #[error("{} is not paused", what(.0))]
    NotPaused(PauseScope),
    #[error("the workflow of goal {} has already ended: {}", short(&.goal.to_string()), describe(.outcome))]
    Ended { goal: ArtifactId, outcome: Outcome },
    #[error("{} kept changing while it was being paused or resumed; run the command again", what(.0))]
    Busy(PauseScope),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A scope in words, with a short goal id.
pub fn what(scope: &PauseScope) -> String {
    match scope {
        PauseScope::Instance => "the instance".to_owned(),
        PauseScope::Workflow(goal) => format!("the workflow of goal {}", short(&goal.to_string())),
    }
}

fn scope_name(scope: &PauseScope) -> &'static str {
    match scope {
        PauseScope::Instance => "instance",
        PauseScope::Workflow(_) => "workflow",
    }
}

/// The scope `target` names: the instance (`None`) or the workflow of the artifact.
pub async fn scope_of(store: &Store, target: Option<&ArtifactId>) -> Result<PauseScope, PauseError> {
    let Some(id) = target else { return Ok(PauseScope::Instance) };
    let Some(a) = store.get_artifact(id).await? else {
        return Err(PauseError::NotFound(*id, store.instance().to_string()));
    };
    Ok(PauseScope::Workflow(goal_of(store, a).await?))
}

fn clean(reason: Option<&str>) -> Option<String> {
    reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned)
}

/// Pauses the instance (`target` none) or the workflow `target` belongs to, as `operator`.
pub async fn pause(
    store: &Store,
    target: Option<&ArtifactId>,
    operator: &str,
    reason: Option<&str>,
) -> Result<PauseDone, PauseError> {
    let scope = scope_of(store, target).await?;
    let reason = clean(reason);
    for _ in 0..ATTEMPTS {
        if let Some(record) = store.pause_of(&scope).await? {
            return Err(PauseError::AlreadyPaused { scope, record });
        }
        let (mut claims, mut members, mut outputs) = (Vec::new(), Vec::new(), Vec::new());
        if let PauseScope::Workflow(goal) = scope {
            let wf = read_workflow(store, goal).await?;
            if let Some(outcome) = ended(&wf) {
                return Err(PauseError::Ended { goal, outcome });
            }
            members = wf.artifacts().map(ToString::to_string).collect();
            members.extend(wf.claims().map(ToString::to_string));
            members.sort();
            for id in wf.claims() {
                let Some(claim) = store.get_claim(id).await? else { continue };
                if claim.status.is_final() {
                    continue;
                }
                outputs.extend(claim.grants.values().map(|g| ArtifactId::grant_output(&claim.id, g.seq)));
                claims.push((claim.id, claim.revision));
            }
            claims.sort();
            outputs.sort();
        }
        let at_ms = now_ms();
        let record = PauseRecord {
            action_id: sett_store::new_artifact_id().to_string(),
            operator: operator.to_owned(),
            reason: reason.clone(),
            at_ms,
        };
        let write = PauseWrite { scope, record: record.clone(), claims, members, outputs };
        match store.pause(&write).await? {
            PauseOutcome::Paused => {
                return Ok(PauseDone {
                    scope: scope_name(&scope),
                    goal_id: scope.goal(),
                    operator: operator.to_owned(),
                    reason,
                    at_ms,
                    action_id: record.action_id,
                });
            }
            PauseOutcome::AlreadyPaused(record) => return Err(PauseError::AlreadyPaused { scope, record }),
            PauseOutcome::Stale => continue,
        }
    }
    Err(PauseError::Busy(scope))
}

/// Resumes the instance (`target` none) or the workflow `target` belongs to, as `operator`:
/// every open claim of the scope that has a deadline gets it moved later by the time it stood
/// still, in the same atomic step that lifts the pause.
pub async fn resume(
    store: &Store,
    target: Option<&ArtifactId>,
    operator: &str,
    reason: Option<&str>,
) -> Result<ResumeDone, PauseError> {
    let scope = scope_of(store, target).await?;
    let reason = clean(reason);
    for _ in 0..ATTEMPTS {
        let Some(pause) = store.pause_of(&scope).await? else {
            return Err(PauseError::NotPaused(scope));
        };
        let open = match scope {
            PauseScope::Instance => store.all_claims().await?,
            PauseScope::Workflow(goal) => {
                let wf = read_workflow(store, goal).await?;
                let mut out = Vec::new();
                for id in wf.claims() {
                    out.extend(store.get_claim(id).await?);
                }
                out
            }
        };
        let at_ms = now_ms();
        let mut claims = Vec::new();
        for claim in open.into_iter().filter(|c| !c.status.is_final()) {
            let mut next = claim.clone();
            next.shift_deadlines(pause.at_ms, at_ms);
            // Also a claim whose deadline did not move: a deadline due during the pause took it
            // out of the index, and this write puts it back.
            if next.next_deadline_ms().is_none() {
                continue;
            }
            next.revision += 1;
            next.updated_at_ms = at_ms;
            claims.push((next, claim.revision));
        }
        claims.sort_by_key(|(c, _)| c.id);
        let action_id = sett_store::new_artifact_id().to_string();
        let write = ResumeWrite {
            scope,
            pause: pause.clone(),
            action_id: action_id.clone(),
            operator: operator.to_owned(),
            reason: reason.clone(),
            at_ms,
            claims,
        };
        match store.resume(&write).await? {
            ResumeOutcome::Resumed => {
                return Ok(ResumeDone {
                    scope: scope_name(&scope),
                    goal_id: scope.goal(),
                    operator: operator.to_owned(),
                    reason,
                    at_ms,
                    paused_by: pause.operator,
                    paused_ms: (at_ms - pause.at_ms).max(0),
                    claims: write.claims.iter().map(|(c, _)| c.id).collect(),
                    action_id,
                });
            }
            ResumeOutcome::NotPaused => return Err(PauseError::NotPaused(scope)),
            ResumeOutcome::Stale => continue,
        }
    }
    Err(PauseError::Busy(scope))
}
