//! The open-question index and answer records.

use std::collections::{BTreeSet, HashMap};

use fred::prelude::*;
use sett_core::answer_spec::QuestionKind;
use sett_core::{ArtifactId, ClaimId};

use crate::artifacts::AnswerRecord;
use crate::{Result, Store, StoreError};

/// An open question, its claim and its deadline: enough to order and page an inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenQuestionRef {
    pub id: ArtifactId,
    pub asked_at_ms: i64,
    pub claim_id: Option<ClaimId>,
    /// `None` when it never times out.
    pub deadline_ms: Option<i64>,
    /// What it asks for, as its claim records it: an approval, a human review, or an agent's
    /// question.
    pub kind: QuestionKind,
}

/// The kind of an open question as its claim's `open_questions` entry records it.
fn recorded_kind(open: &serde_json::Value) -> QuestionKind {
    if open.get("approval").is_some_and(|a| !a.is_null()) {
        QuestionKind::Approval
    } else if open.get("review").and_then(serde_json::Value::as_bool) == Some(true) {
        QuestionKind::Review
    } else {
        QuestionKind::Question
    }
}

impl Store {
    /// Open questions, oldest first, with the time each was asked. Cost depends only on the
    /// number of open questions, never on the number of artifacts.
    pub async fn open_questions(&self) -> Result<Vec<(ArtifactId, i64)>> {
        let rows: Vec<(String, f64)> =
            self.client().zrange(self.keys.open_questions(), 0, -1, None, false, None, true).await?;
        rows.into_iter()
            .map(|(id, score)| {
                Ok((ArtifactId::parse(&id).map_err(|e| StoreError::Decode(e.to_string()))?, score as i64))
            })
            .collect()
    }

    /// Every open question with its claim and deadline, oldest first, for ordering an inbox by
    /// time left. Reads one field per question (its claim) and one per claim (its open
    /// questions), never whole artifacts or claims: two pipelined rounds for any number.
    pub async fn open_question_deadlines(&self) -> Result<Vec<OpenQuestionRef>> {
        let open = self.open_questions().await?;
        let mut claim_of: Vec<Option<ClaimId>> = Vec::with_capacity(open.len());
        for chunk in open.chunks(500) {
            let got = futures::future::try_join_all(chunk.iter().map(|(id, _)| async move {
                let v: Option<String> = self.client().hget(self.keys.artifact(id), "claim_id").await?;
                Ok::<_, StoreError>(v.and_then(|c| ClaimId::parse(&c).ok()))
            }))
            .await?;
            claim_of.extend(got);
        }
        let claims: Vec<ClaimId> = claim_of.iter().flatten().copied().collect::<BTreeSet<_>>().into_iter().collect();
        let mut deadlines: HashMap<(ClaimId, String), (Option<i64>, QuestionKind)> = HashMap::new();
        for chunk in claims.chunks(500) {
            let got = futures::future::try_join_all(chunk.iter().map(|c| async move {
                let v: Option<String> = self.client().hget(self.keys.claim(c), "open_questions").await?;
                Ok::<_, StoreError>((*c, v))
            }))
            .await?;
            for (c, raw) in got {
                let map: HashMap<String, serde_json::Value> =
                    raw.and_then(|r| serde_json::from_str(&r).ok()).unwrap_or_default();
                for (q, v) in map {
                    deadlines
                        .insert((c, q), (v.get("deadline_ms").and_then(serde_json::Value::as_i64), recorded_kind(&v)));
                }
            }
        }
        Ok(open
            .into_iter()
            .zip(claim_of)
            .map(|((id, asked_at_ms), claim_id)| {
                let (deadline_ms, kind) =
                    claim_id.and_then(|c| deadlines.get(&(c, id.to_string())).copied()).unwrap_or_default();
                OpenQuestionRef { deadline_ms, kind, id, asked_at_ms, claim_id }
            })
            .collect())
    }

    /// When the oldest open question was asked (ms), if any is open.
    pub async fn oldest_open_question_ms(&self) -> Result<Option<i64>> {
        let first: Vec<(String, f64)> =
            self.client().zrange(self.keys.open_questions(), 0, 0, None, false, None, true).await?;
        Ok(first.first().map(|(_, s)| *s as i64))
    }

    /// Whether `question` is in the open-question index (an approval can be decided only
    /// then: the transition that opens it has been written, and nothing has closed it since).
    pub async fn is_question_open(&self, question: &ArtifactId) -> Result<bool> {
        let score: Option<f64> = self.client().zscore(self.keys.open_questions(), question.to_string()).await?;
        Ok(score.is_some())
    }

    pub async fn open_question_count(&self) -> Result<u64> {
        Ok(self.client().zcard(self.keys.open_questions()).await?)
    }

    /// The answer record of a question, if it was answered.
    pub async fn answer_record(&self, question: &ArtifactId) -> Result<Option<AnswerRecord>> {
        let raw: Option<String> = self.client().hget(self.keys.question_answers(), question.to_string()).await?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Decode(format!("answer record: {e}")))).transpose()
    }

    /// Every answered question id with its record.
    pub async fn answer_records(&self) -> Result<Vec<(ArtifactId, AnswerRecord)>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.question_answers()).await?;
        raw.into_iter()
            .map(|(k, v)| {
                Ok((
                    ArtifactId::parse(&k).map_err(|e| StoreError::Decode(e.to_string()))?,
                    serde_json::from_str(&v).map_err(|e| StoreError::Decode(format!("answer record: {e}")))?,
                ))
            })
            .collect()
    }
}
