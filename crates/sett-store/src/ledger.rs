//! Batched raw reads for `sett verify`: records exactly as stored (no decoding, so a verifier
//! recomputes hashes over the stored strings), fetched in pipelines so a page of 1,000 records
//! costs one round trip and memory stays flat.

use std::collections::HashMap;

use fred::prelude::*;
use fred::types::scan::Scanner;
use futures::TryStreamExt;

use crate::{Result, Store};

/// What a source reference finds: used to recompute an artifact's hash from its sources'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    Missing,
    /// The source exists but has no hash (written before the ledger).
    Unhashed,
    Hash(String),
}

type Fields = HashMap<String, String>;

impl Store {
    /// Stored fields of each artifact id (`None` when the artifact does not exist).
    pub async fn raw_artifacts(&self, ids: &[String]) -> Result<Vec<Option<Fields>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = self.client().pipeline();
        for id in ids {
            let _: () = pipe.hgetall(self.keys.artifact_raw(id)).await?;
        }
        let all: Vec<Fields> = pipe.all().await?;
        Ok(all.into_iter().map(|f| (!f.is_empty()).then_some(f)).collect())
    }

    /// The hash of each artifact id, telling a missing artifact from one without a hash.
    pub async fn artifact_hash_states(&self, ids: &[String]) -> Result<Vec<SourceState>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = self.client().pipeline();
        for id in ids {
            let key = self.keys.artifact_raw(id);
            let _: () = pipe.hget(&key, "hash").await?;
            let _: () = pipe.exists(&key).await?;
        }
        let all: Vec<fred::types::Value> = pipe.all().await?;
        Ok(all
            .chunks(2)
            .map(|pair| match (pair[0].as_string(), pair[1].as_u64()) {
                (Some(h), _) => SourceState::Hash(h),
                (None, Some(1)) => SourceState::Unhashed,
                _ => SourceState::Missing,
            })
            .collect())
    }

    /// The stored answer record (JSON text) of each question id.
    pub async fn raw_answer_records(&self, question_ids: &[String]) -> Result<Vec<Option<String>>> {
        if question_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.client().hmget(self.keys.question_answers(), question_ids.to_vec()).await?)
    }

    /// Every question id with an answer record, and how many there are.
    pub async fn answered_question_ids(&self) -> Result<Vec<String>> {
        Ok(self.client().hkeys(self.keys.question_answers()).await?)
    }

    pub async fn answer_record_count(&self) -> Result<u64> {
        Ok(self.client().hlen(self.keys.question_answers()).await?)
    }

    /// A page of claim ids from the claims index (`start` is a rank, 0 = oldest).
    pub async fn claim_id_page(&self, start: i64, count: i64) -> Result<Vec<String>> {
        Ok(self.client().zrange(self.keys.claims_index(), start, start + count - 1, None, false, None, false).await?)
    }

    /// Stored fields of each claim id (`None` when it does not exist).
    pub async fn raw_claims(&self, ids: &[String]) -> Result<Vec<Option<Fields>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = self.client().pipeline();
        for id in ids {
            let _: () = pipe.hgetall(self.keys.claim_raw(id)).await?;
        }
        let all: Vec<Fields> = pipe.all().await?;
        Ok(all.into_iter().map(|f| (!f.is_empty()).then_some(f)).collect())
    }

    /// Raw stream entries by id (`None` when an entry does not exist).
    pub async fn raw_events_by_id(&self, ids: &[String]) -> Result<Vec<Option<Fields>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = self.client().pipeline();
        for id in ids {
            let _: () = pipe.xrange(self.keys.events(), id.as_str(), id.as_str(), Some(1)).await?;
        }
        let all: Vec<fred::types::Value> = pipe.all().await?;
        let mut out = Vec::with_capacity(all.len());
        for v in all {
            let entries: Vec<(String, Fields)> = v.convert()?;
            out.push(entries.into_iter().next().map(|(_, f)| f));
        }
        Ok(out)
    }

    /// The id of every stored artifact, by SCAN (not the index: a record inserted behind the
    /// store's back is found too). Used by verify only once it knows something is wrong.
    pub async fn scan_artifact_ids(&self) -> Result<Vec<String>> {
        let prefix = self.keys.artifact_raw("");
        let pattern = format!("{}*", crate::keys::escape_glob(&prefix));
        let mut out = Vec::new();
        let mut pages = self.client().scan(pattern, Some(2_000), None);
        while let Some(mut page) = pages.try_next().await? {
            for k in page.take_results().unwrap_or_default() {
                if let Some(id) = k.as_str().and_then(|s| s.strip_prefix(prefix.as_str())) {
                    out.push(id.to_owned());
                }
            }
            page.next();
        }
        Ok(out)
    }
}
