//! Approvals as an operator sees and decides them (`sett approve`/`sett reject`, `sett
//! questions`, the console, MCP): what an approval shows — the agent, the claim type, the target
//! artifact with its payload and its context chain, with the hashes the decision binds — and the
//! decision, written through [`crate::answer::answer_question`] so every path binds the same
//! hashes and is refused for the same reasons.

use serde::Serialize;
use sett_core::approval::{ApprovalSubject, Decision};
use sett_core::{Artifact, ArtifactId, StructuralType};
use sett_store::{Store, StoreError};

use crate::answer::{AnswerError, AnswerInput, Answered, answer_question};

/// An approval as the approver is shown it.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub question_id: ArtifactId,
    pub subject: ApprovalSubject,
    /// The target as stored now (`None` if it is gone).
    pub target: Option<Artifact>,
    /// The context chain's artifacts, in the order the approval lists them.
    pub context: Vec<Artifact>,
    /// Whether the target's stored hash is still the one shown (a decision is refused otherwise).
    pub target_unchanged: bool,
}

impl ApprovalView {
    /// The target's payload cut to `max` characters, for a one-line listing.
    pub fn payload_excerpt(&self, max: usize) -> String {
        let payload = self.target.as_ref().map(|t| t.payload.as_str()).unwrap_or("");
        let flat: String = payload.split_whitespace().collect::<Vec<_>>().join(" ");
        if flat.chars().count() <= max {
            flat
        } else {
            format!("{}…", flat.chars().take(max.saturating_sub(1)).collect::<String>())
        }
    }
}

/// The approval `question` is, if it is one (`None` for any other artifact).
pub async fn approval_view(store: &Store, question: &ArtifactId) -> Result<Option<ApprovalView>, StoreError> {
    let Some(q) = store.get_artifact(question).await? else {
        return Ok(None);
    };
    if q.structural_type != StructuralType::Question {
        return Ok(None);
    }
    let Some(subject) = ApprovalSubject::of_payload(&q.payload) else {
        return Ok(None);
    };
    let shown: Vec<ArtifactId> = subject.shown().map(|a| a.id).collect();
    let (artifacts, hashes) = tokio::try_join!(store.get_artifacts(&shown), store.artifact_hashes(&shown[..1]))?;
    let target = artifacts.iter().find(|a| a.id == subject.target.id).cloned();
    let context = artifacts.into_iter().filter(|a| a.id != subject.target.id).collect();
    let target_unchanged = hashes.first().cloned().flatten().as_deref() == Some(subject.target.hash.as_str());
    Ok(Some(ApprovalView { question_id: *question, subject, target, context, target_unchanged }))
}

/// Approves or rejects approval `question` as `operator` (a rejection needs a `reason`).
pub async fn decide(
    store: &Store,
    question: &ArtifactId,
    decision: Decision,
    reason: Option<&str>,
    operator: &str,
) -> Result<Answered, AnswerError> {
    let Some(q) = store.get_artifact(question).await? else {
        return Err(AnswerError::NotFound(*question, store.instance().to_string()));
    };
    if q.structural_type == StructuralType::Question && ApprovalSubject::of_payload(&q.payload).is_none() {
        return Err(AnswerError::NotAnApproval(*question));
    }
    let mut answer = serde_json::Map::new();
    answer.insert("decision".into(), decision.as_str().into());
    if let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) {
        answer.insert("reason".into(), r.into());
    }
    answer_question(store, question, &AnswerInput::Json(serde_json::Value::Object(answer)), operator).await
}
