//! Where a verification reads the ledger from: the [`LedgerSource`] interface, and Redis (a
//! [`Store`]) as one. An export file is another (`file.rs`), the archive a third
//! (`crate::archive::ledger`).

use std::collections::HashMap;

use sett_core::ledger::Head;
use sett_store::{SourceState, Store};

use super::{Fields, VerifyError};

/// Where the records come from: Redis, or an export file.
#[allow(async_fn_in_trait)]
pub trait LedgerSource {
    async fn events_after(&mut self, after: Option<&str>, count: usize) -> Result<Vec<(String, Fields)>, VerifyError>;
    async fn artifacts(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError>;
    async fn source_states(&mut self, ids: &[String]) -> Result<Vec<SourceState>, VerifyError>;
    async fn answer_records(&mut self, question_ids: &[String]) -> Result<Vec<Option<String>>, VerifyError>;
    async fn head(&mut self) -> Result<Option<Head>, VerifyError>;
    async fn claim_ids(&mut self, start: usize, count: usize) -> Result<Vec<String>, VerifyError>;
    async fn claims(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError>;
    async fn events_by_id(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError>;
    async fn artifact_count(&mut self) -> Result<u64, VerifyError>;
    async fn artifact_ids(&mut self) -> Result<Vec<String>, VerifyError>;
    async fn answer_count(&mut self) -> Result<u64, VerifyError>;
    async fn answered_question_ids(&mut self) -> Result<Vec<String>, VerifyError>;
    /// Every cancellation record (`workflows:cancelled`): goal id → the JSON record.
    async fn cancellation_records(&mut self) -> Result<HashMap<String, String>, VerifyError>;
    /// Every operator action record (`actions`): action id → the JSON record.
    async fn action_records(&mut self) -> Result<HashMap<String, String>, VerifyError>;
}

impl LedgerSource for Store {
    async fn events_after(&mut self, after: Option<&str>, count: usize) -> Result<Vec<(String, Fields)>, VerifyError> {
        Ok(self.raw_events_after(after, count as u64).await?)
    }
    async fn artifacts(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        Ok(self.raw_artifacts(ids).await?)
    }
    async fn source_states(&mut self, ids: &[String]) -> Result<Vec<SourceState>, VerifyError> {
        Ok(self.artifact_hash_states(ids).await?)
    }
    async fn answer_records(&mut self, question_ids: &[String]) -> Result<Vec<Option<String>>, VerifyError> {
        Ok(self.raw_answer_records(question_ids).await?)
    }
    async fn head(&mut self) -> Result<Option<Head>, VerifyError> {
        Ok(self.ledger_head().await?)
    }
    async fn claim_ids(&mut self, start: usize, count: usize) -> Result<Vec<String>, VerifyError> {
        Ok(self.claim_id_page(start as i64, count as i64).await?)
    }
    async fn claims(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        Ok(self.raw_claims(ids).await?)
    }
    async fn events_by_id(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        Ok(self.raw_events_by_id(ids).await?)
    }
    async fn artifact_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.count_instance_keys().await?.get("artifact").copied().unwrap_or(0))
    }
    async fn artifact_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        Ok(self.scan_artifact_ids().await?)
    }
    async fn answer_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.answer_record_count().await?)
    }
    async fn answered_question_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        Ok(Store::answered_question_ids(self).await?)
    }
    async fn cancellation_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        Ok(self.cancellations().await?)
    }
    async fn action_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        Ok(self.actions().await?)
    }
}
