//! Global records: the `sett:instances` registry, the `default-N` counter, the `sett:audit`
//! stream, and each instance's component health records.

use std::collections::{BTreeMap, HashMap};

use fred::prelude::*;
use serde::{Deserialize, Serialize};
use sett_core::InstanceName;

use crate::keys::{AUDIT, INSTANCE_COUNTER, INSTANCES};
use crate::{Redis, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    Running,
    Stopped,
    Destroying,
}

/// One entry of `sett:instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub run_id: String,
    pub workspace: String,
    pub runtime: String,
    /// The Redis URL with any password redacted.
    pub redis: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub status: InstanceStatus,
}

impl Redis {
    pub async fn instances(&self) -> Result<BTreeMap<InstanceName, InstanceRecord>> {
        let raw: HashMap<String, String> = self.client().hgetall(INSTANCES).await?;
        let mut out = BTreeMap::new();
        for (name, json) in raw {
            let Ok(name) = InstanceName::parse(&name) else { continue };
            let rec = serde_json::from_str(&json).map_err(|e| StoreError::Decode(format!("instance {name}: {e}")))?;
            out.insert(name, rec);
        }
        Ok(out)
    }

    pub async fn instance_record(&self, name: &InstanceName) -> Result<Option<InstanceRecord>> {
        let raw: Option<String> = self.client().hget(INSTANCES, name.as_str()).await?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Decode(format!("instance {name}: {e}"))))
            .transpose()
    }

    pub async fn put_instance_record(&self, name: &InstanceName, rec: &InstanceRecord) -> Result<()> {
        let _: () =
            self.client().hset(INSTANCES, (name.as_str(), serde_json::to_string(rec).expect("serializable"))).await?;
        Ok(())
    }

    pub async fn remove_instance_record(&self, name: &InstanceName) -> Result<bool> {
        let n: u64 = self.client().hdel(INSTANCES, name.as_str()).await?;
        Ok(n == 1)
    }

    /// The next `default-N` number.
    pub async fn next_instance_number(&self) -> Result<u64> {
        Ok(self.client().incr(INSTANCE_COUNTER).await?)
    }

    /// Appends a record to the global audit stream `sett:audit`.
    pub async fn append_audit(&self, record: &serde_json::Value) -> Result<String> {
        let id: String = self.client().xadd(AUDIT, false, None, "*", vec![("record", record.to_string())]).await?;
        Ok(id)
    }

    /// Every audit record, oldest first.
    pub async fn audit_records(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let entries: Vec<(String, HashMap<String, String>)> =
            self.client().xrange_values(AUDIT, "-", "+", None).await?;
        Ok(entries
            .into_iter()
            .map(|(id, f)| {
                let v = f.get("record").and_then(|r| serde_json::from_str(r).ok()).unwrap_or(serde_json::Value::Null);
                (id, v)
            })
            .collect())
    }
}

impl Store {
    /// Publishes a component's health record (address, pid, heartbeat).
    pub async fn put_component(&self, name: &str, record: &serde_json::Value) -> Result<()> {
        let _: () = self.client().hset(self.keys.components(), (name, record.to_string())).await?;
        Ok(())
    }

    pub async fn remove_component(&self, name: &str) -> Result<()> {
        let _: u64 = self.client().hdel(self.keys.components(), name).await?;
        Ok(())
    }

    pub async fn components(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.components()).await?;
        Ok(raw.into_iter().map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or(serde_json::Value::Null))).collect())
    }
}
