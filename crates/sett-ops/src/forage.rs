//! Starting a workflow, shared by `sett forage` and the MCP server's `forage` tool: the root
//! GoalDefined artifact, written with its `artifact_created` event in one call.

use sett_core::{Artifact, ArtifactId, StructuralType};
use sett_store::{CreateOutcome, Store, StoreError, now_ms};

/// A goal that was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Started {
    /// The goal artifact: the workflow's id.
    pub id: ArtifactId,
    /// The ledger event that recorded it.
    pub event_id: String,
}

/// Why no goal was written.
#[derive(Debug, thiserror::Error)]
pub enum ForageError {
    #[error("the goal is empty: pass --goal \"what the agents should achieve\"")]
    Empty,
    #[error("the goal was not written ({0}); retry 'sett forage'")]
    Unexpected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes `goal` as a new root GoalDefined artifact produced by `user`: the orchestrator claims
/// it and the agents bid, as for every Standard artifact.
pub async fn start_workflow(store: &Store, goal: &str) -> Result<Started, ForageError> {
    if goal.trim().is_empty() {
        return Err(ForageError::Empty);
    }
    let artifact = Artifact::new_root(
        sett_store::new_artifact_id(),
        StructuralType::Standard,
        "GoalDefined",
        goal.to_owned(),
        "user",
        now_ms(),
    );
    match store.create_artifact(&artifact).await? {
        CreateOutcome::Created { event_id } => Ok(Started { id: artifact.id, event_id }),
        other => Err(ForageError::Unexpected(format!("{other:?}"))),
    }
}
