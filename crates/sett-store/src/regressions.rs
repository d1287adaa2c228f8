//! What a ledger-regression check reads (the head with its stream id, the entry at a stream id,
//! the audit records that say the ledger was replaced on purpose) and the records of the
//! regressions found (`ledger:regressions`), kept until an operator acknowledges them.

use std::collections::HashMap;

use fred::prelude::*;
use sett_core::ledger::Head;
use sett_core::regression::{RegressionRecord, SeenHead};

use crate::keys::AUDIT;
use crate::registry::AuditEntry;
use crate::{Result, Store, StoreError};

impl Store {
    /// The ledger head with the stream id of its entry (one HMGET); `None` before the first
    /// chained event (or when the ledger is gone).
    pub async fn ledger_seen_head(&self) -> Result<Option<SeenHead>> {
        let (seq, hash, id): (Option<u64>, Option<String>, Option<String>) =
            self.client().hmget(self.keys.ledger(), vec!["seq", "hash", "id"]).await?;
        Ok(match (seq, hash, id) {
            (Some(seq), Some(hash), Some(id)) => Some(SeenHead { seq, hash, id }),
            _ => None,
        })
    }

    /// The chain position (`seq`, `hash`) of the stream entry `id`, `None` when there is no such
    /// entry (or it is not chained).
    pub async fn ledger_link_at(&self, id: &str) -> Result<Option<Head>> {
        let entries: Vec<(String, HashMap<String, String>)> =
            self.client().xrange_values(self.keys.events(), id, id, Some(1)).await?;
        Ok(entries
            .into_iter()
            .next()
            .and_then(|(_, f)| Some(Head { seq: f.get("seq")?.parse().ok()?, hash: f.get("hash")?.clone() })))
    }

    /// Global audit records written strictly after the stream id `after` (a destroy, an import:
    /// the caller reads what they say), oldest first.
    pub async fn audit_records_after(&self, after: &str) -> Result<Vec<(String, AuditEntry)>> {
        let entries: Vec<(String, HashMap<String, String>)> =
            self.client().xrange_values(AUDIT, format!("({after}"), "+", None).await?;
        Ok(entries
            .into_iter()
            .map(|(id, f)| {
                let v = f.get("record").and_then(|r| serde_json::from_str(r).ok()).unwrap_or(serde_json::Value::Null);
                (id, AuditEntry(v))
            })
            .collect())
    }

    /// Records a regression unless one for the same lost head is recorded already; true when
    /// this call recorded it.
    pub async fn record_regression(&self, record: &RegressionRecord) -> Result<bool> {
        let json = serde_json::to_string(record).expect("serializable");
        Ok(self.client().hsetnx(self.keys.ledger_regressions(), record.key(), json).await?)
    }

    /// Every recorded regression, oldest first.
    pub async fn regressions(&self) -> Result<Vec<RegressionRecord>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.ledger_regressions()).await?;
        let mut out = raw
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_str(&v).map_err(|e| StoreError::Decode(format!("ledger regression {k}: {e}")))
            })
            .collect::<Result<Vec<RegressionRecord>>>()?;
        out.sort_by_key(|r| r.detected_at_ms);
        Ok(out)
    }

    /// Marks every unacknowledged regression acknowledged by `operator`; returns those it marked.
    pub async fn acknowledge_regressions(&self, operator: &str, now_ms: i64) -> Result<Vec<RegressionRecord>> {
        let mut done = Vec::new();
        for mut r in self.regressions().await? {
            if r.is_acknowledged() {
                continue;
            }
            r.acknowledged_by = Some(operator.to_owned());
            r.acknowledged_at_ms = Some(now_ms);
            let json = serde_json::to_string(&r).expect("serializable");
            let _: () = self.client().hset(self.keys.ledger_regressions(), (r.key(), json)).await?;
            done.push(r);
        }
        Ok(done)
    }
}
