//! Forking (`sett fork`, the console's "Fork from here"): a branch of a workflow that starts at
//! an earlier artifact. The branch's first artifact is a new version of it (the next version of
//! its thread, same sources) produced by `human:<operator>`, marked `forked_from`; it gets its
//! claim like every new artifact, so everything downstream runs again on the branch as the
//! workflow did. For a Question (or its Answer) the branch's first artifact is a different
//! Answer, and a branch claim resumes the asking agent with it. The artifact, its
//! `artifact_forked` event and the action record are one atomic write
//! (`Store::create_forked`); the original branch is untouched and keeps its outcome.

use sett_core::{Artifact, ArtifactId, ClaimId, StructuralType};
use sett_store::{CreateOutcome, Store, StoreError, now_ms};

use crate::cancel::goal_of;
use sett_core::text::short;

/// How often the next version is recomputed when another version of the thread was written
/// meanwhile.
const ATTEMPTS: usize = 5;

/// A written fork.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Forked {
    pub goal_id: ArtifactId,
    /// The artifact the branch starts at.
    pub forked_from: ArtifactId,
    /// The branch's first artifact: the new version, or the different Answer.
    pub artifact_id: ArtifactId,
    pub version: u32,
    /// For a forked Question: the branch claim that resumes the asking agent.
    pub claim_id: Option<ClaimId>,
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    pub action_id: String,
}

/// What the branch's first artifact says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkInput<'a> {
    /// A new payload (none: the same payload, run again).
    Payload(Option<&'a str>),
    /// A different answer to a Question.
    Answer(&'a str),
}

/// Why nothing was forked.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    #[error("no artifact {0} in instance '{1}'")]
    NotFound(ArtifactId, String),
    #[error("{} is the workflow's goal: a different goal is a new workflow ('sett forage --goal')", short(&.0.to_string()))]
    Goal(ArtifactId),
    #[error("{} is a Question: give the branch a different answer with --answer (--payload is for work products)", short(&.0.to_string()))]
    QuestionNeedsAnswer(ArtifactId),
    #[error("{} is a {kind} artifact, not a Question: give the branch a new payload with --payload (--answer is for Questions)", short(&.0.to_string()), kind = .1)]
    AnswerNeedsQuestion(ArtifactId, StructuralType),
    #[error("{} is a {kind} artifact: fork the artifact it was made from (a work product or a Question) instead", short(&.0.to_string()), kind = .1)]
    NotForkable(ArtifactId, StructuralType),
    #[error("the workflow of goal {} was cancelled: a cancelled workflow is not forked", short(&.0.to_string()))]
    Cancelled(ArtifactId),
    #[error("the thread of {} kept getting new versions while it was being forked; run the command again", short(&.0.to_string()))]
    Busy(ArtifactId),
    #[error("the fork of {} was refused: {why}", short(&.0.to_string()), why = .1)]
    Refused(ArtifactId, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Forks the workflow at `target` as `operator`.
pub async fn fork(
    store: &Store,
    target: &ArtifactId,
    input: ForkInput<'_>,
    operator: &str,
    reason: Option<&str>,
) -> Result<Forked, ForkError> {
    let Some(mut from) = store.get_artifact(target).await? else {
        return Err(ForkError::NotFound(*target, store.instance().to_string()));
    };
    if from.structural_type == StructuralType::Answer {
        // A different answer forks the question it answers.
        if let Some(q) = from.source_artifacts.first() {
            from = store.get_artifact(q).await?.ok_or(ForkError::NotFound(*q, store.instance().to_string()))?;
        }
    }
    let goal = goal_of(store, from.clone()).await?;
    if from.id == goal {
        return Err(ForkError::Goal(from.id));
    }
    if store.cancellation(&goal).await?.is_some() {
        return Err(ForkError::Cancelled(goal));
    }
    match (from.structural_type, input) {
        (StructuralType::Question, ForkInput::Payload(_)) => return Err(ForkError::QuestionNeedsAnswer(from.id)),
        (StructuralType::Question, ForkInput::Answer(_)) => {}
        (StructuralType::Standard, ForkInput::Answer(_)) => {
            return Err(ForkError::AnswerNeedsQuestion(from.id, from.structural_type));
        }
        (StructuralType::Standard, ForkInput::Payload(_)) => {}
        (other, _) => return Err(ForkError::NotForkable(from.id, other)),
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
    let role = format!("human:{operator}");
    for _ in 0..ATTEMPTS {
        let at_ms = now_ms();
        let id = sett_store::new_artifact_id();
        let (artifact, claim_id) = match input {
            ForkInput::Answer(text) => {
                let mut a = Artifact::answer(id, &from, text, role.clone(), operator, at_ms);
                // It answers for the branch claim, not for the claim that asked.
                a.claim_id = None;
                (a, Some(sett_store::new_claim_id()))
            }
            ForkInput::Payload(payload) => {
                let latest = store.latest_in_thread(&from.logical_id).await?.map_or(from.version, |a| a.version);
                let mut a = Artifact::new_root(
                    id,
                    from.structural_type,
                    from.artifact_type.clone(),
                    payload.unwrap_or(&from.payload),
                    role.clone(),
                    at_ms,
                );
                a.logical_id = from.logical_id;
                a.version = latest.max(from.version) + 1;
                a.source_artifacts.clone_from(&from.source_artifacts);
                (a, None)
            }
        };
        let mut artifact = artifact;
        artifact.forked_from = Some(from.id);
        let event = sett_core::event::ArtifactForked {
            action_id: sett_store::new_artifact_id().to_string(),
            artifact_id: artifact.id,
            claim_id,
            forked_from: from.id,
            goal_id: goal,
            operator: operator.to_owned(),
            reason: reason.clone(),
        };
        match store.create_forked(&artifact, &event).await? {
            CreateOutcome::Created { .. } => {
                return Ok(Forked {
                    goal_id: goal,
                    forked_from: from.id,
                    artifact_id: artifact.id,
                    version: artifact.version,
                    claim_id,
                    operator: operator.to_owned(),
                    reason,
                    at_ms,
                    action_id: event.action_id,
                });
            }
            CreateOutcome::VersionTaken { .. } => continue,
            other => return Err(ForkError::Refused(from.id, format!("{other:?}"))),
        }
    }
    Err(ForkError::Busy(from.id))
}
