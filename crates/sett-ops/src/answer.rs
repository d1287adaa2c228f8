//! Answering an agent's question, shared by `sett answer` and the web console so both write
//! exactly the same Answer. The Answer artifact and the closing of the question are one atomic
//! write, so of two concurrent answers exactly one wins; the loser learns who answered and when.

use sett_core::{Artifact, ArtifactId, ClaimId, ClaimStatus, StructuralType};
use sett_store::{AnswerRecord, CreateOutcome, Store, StoreError, now_ms};

use crate::feed::short;

/// A written answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Answered {
    pub id: ArtifactId,
    pub question_id: ArtifactId,
    pub claim_id: Option<ClaimId>,
    pub answered_by: String,
}

/// Why an answer was not written.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer is empty: an agent cannot act on an empty answer")]
    Empty,
    #[error("no question {0} in instance '{1}'")]
    NotFound(ArtifactId, String),
    #[error("artifact {} is a {structural_type} ({artifact_type}), not a Question", short(&.id.to_string()))]
    NotAQuestion { id: ArtifactId, structural_type: StructuralType, artifact_type: String },
    /// The question's claim ended unanswered (it timed out, or the claim failed): nobody is
    /// waiting for it, and an answer would be recorded and never read.
    #[error(
        "question {} can no longer be answered: its claim {} is {status}{}",
        short(&.question.to_string()),
        short(&.claim.to_string()),
        .reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Closed { question: ArtifactId, claim: ClaimId, status: ClaimStatus, reason: Option<String> },
    /// Someone answered first (or the orchestrator, on timeout).
    #[error("question {} was already answered by {} at {} ms", short(&.question.to_string()), .record.answered_by, .record.answered_at_ms)]
    AlreadyAnswered { question: ArtifactId, record: AnswerRecord },
    #[error("the answer was not written ({0}); retry")]
    Unexpected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Answers question `qid` with `text` as `operator`: checks it is an open Question whose claim
/// still waits, then writes the Answer (`produced_by_role` = `human:<operator>`, `answered_by` =
/// `operator`) and closes the question atomically.
pub async fn answer_question(
    store: &Store,
    qid: &ArtifactId,
    text: &str,
    operator: &str,
) -> Result<Answered, AnswerError> {
    if text.trim().is_empty() {
        return Err(AnswerError::Empty);
    }
    let Some(question) = store.get_artifact(qid).await? else {
        return Err(AnswerError::NotFound(*qid, store.instance().to_string()));
    };
    if question.structural_type != StructuralType::Question {
        return Err(AnswerError::NotAQuestion {
            id: *qid,
            structural_type: question.structural_type,
            artifact_type: question.artifact_type,
        });
    }
    if let Some(record) = store.answer_record(qid).await? {
        return Err(AnswerError::AlreadyAnswered { question: *qid, record });
    }
    if let Some(cid) = question.claim_id
        && let Some(claim) = store.get_claim(&cid).await?
        && claim.status.is_final()
    {
        return Err(AnswerError::Closed {
            question: *qid,
            claim: cid,
            status: claim.status,
            reason: claim.termination_reason,
        });
    }
    let now = now_ms();
    let answer =
        Artifact::answer(sett_store::new_artifact_id(), &question, text, format!("human:{operator}"), operator, now);
    let record = AnswerRecord::by_operator(answer.id, operator, now);
    match store.create_answer(&answer, qid, &record).await? {
        CreateOutcome::Created { .. } => Ok(Answered {
            id: answer.id,
            question_id: *qid,
            claim_id: question.claim_id,
            answered_by: operator.to_owned(),
        }),
        CreateOutcome::AlreadyAnswered(record) => Err(AnswerError::AlreadyAnswered { question: *qid, record }),
        other => Err(AnswerError::Unexpected(format!("{other:?}"))),
    }
}
