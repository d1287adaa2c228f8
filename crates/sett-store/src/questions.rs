//! The open-question index and answer records.

use std::collections::HashMap;

use fred::prelude::*;
use sett_core::ArtifactId;

use crate::artifacts::AnswerRecord;
use crate::{Result, Store, StoreError};

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

    /// When the oldest open question was asked (ms), if any is open.
    pub async fn oldest_open_question_ms(&self) -> Result<Option<i64>> {
        let first: Vec<(String, f64)> =
            self.client().zrange(self.keys.open_questions(), 0, 0, None, false, None, true).await?;
        Ok(first.first().map(|(_, s)| *s as i64))
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
