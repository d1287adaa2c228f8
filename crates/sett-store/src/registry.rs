//! Global records: the `sett:instances` registry, the `default-N` counter, the `sett:audit`
//! stream, and each instance's component health records.

use std::collections::{BTreeMap, HashMap};

use fred::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sett_core::InstanceName;
use sett_core::config::RuntimeKind;
use sett_core::record::ComponentRecord;

use crate::keys::{AUDIT, INSTANCE_COUNTER, INSTANCES};
use crate::{Redis, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    Running,
    Stopped,
    Destroying,
}

/// The runtime an instance was registered with. A name this version does not know (written by
/// a newer Sett) is kept as it is, so the registry still reads; commands that must act through
/// the runtime refuse it with [`RegisteredRuntime::kind`]'s error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisteredRuntime {
    Known(RuntimeKind),
    Unknown(String),
}

impl RegisteredRuntime {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(k) => k.as_str(),
            Self::Unknown(name) => name,
        }
    }

    /// The runtime to act through; an error naming the runtime when this version does not
    /// know it.
    pub fn kind(&self) -> Result<RuntimeKind> {
        match self {
            Self::Known(k) => Ok(*k),
            Self::Unknown(name) => Err(StoreError::Decode(format!(
                "the instance is registered with runtime '{name}', which this version of Sett does not know \
                 (it knows local and docker): use the Sett that started it"
            ))),
        }
    }
}

impl From<RuntimeKind> for RegisteredRuntime {
    fn from(k: RuntimeKind) -> Self {
        Self::Known(k)
    }
}

impl Serialize for RegisteredRuntime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RegisteredRuntime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.as_str() {
            "local" => Self::Known(RuntimeKind::Local),
            "docker" => Self::Known(RuntimeKind::Docker),
            _ => Self::Unknown(name),
        })
    }
}

/// One entry of `sett:instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub run_id: String,
    pub workspace: String,
    pub runtime: RegisteredRuntime,
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

    /// `sett up`: registers the instance for a workspace, runtime and Redis (password
    /// redacted), keeping its run id, times and status.
    pub async fn register_instance(
        &self,
        name: &InstanceName,
        workspace: &str,
        runtime: RuntimeKind,
        redis_url: &str,
        now: i64,
    ) -> Result<()> {
        let previous = self.instance_record(name).await?;
        let rec = InstanceRecord {
            run_id: previous.as_ref().map(|r| r.run_id.clone()).unwrap_or_default(),
            workspace: workspace.to_owned(),
            runtime: runtime.into(),
            redis: crate::redact_url(redis_url),
            created_at: previous.as_ref().map_or(now, |r| r.created_at),
            started_at: previous.as_ref().and_then(|r| r.started_at),
            stopped_at: previous.as_ref().and_then(|r| r.stopped_at),
            status: previous.map_or(InstanceStatus::Stopped, |r| r.status),
        };
        self.put_instance_record(name, &rec).await
    }

    /// The orchestrator of run `run_id` took the instance over: it is running. An instance
    /// started without `sett up` gets a record of its own (`runtime` as configured).
    pub async fn mark_instance_running(
        &self,
        name: &InstanceName,
        runtime: RuntimeKind,
        run_id: &str,
        now: i64,
    ) -> Result<()> {
        let mut rec = self.instance_record(name).await?.unwrap_or(InstanceRecord {
            run_id: String::new(),
            workspace: String::new(),
            runtime: runtime.into(),
            redis: crate::redact_url(&self.options().url),
            created_at: now,
            started_at: None,
            stopped_at: None,
            status: InstanceStatus::Stopped,
        });
        rec.run_id = run_id.to_owned();
        rec.status = InstanceStatus::Running;
        rec.started_at = Some(now);
        rec.stopped_at = None;
        self.put_instance_record(name, &rec).await
    }

    /// The instance stopped. With `run_id`, only if that run is the registered one (an
    /// orchestrator stopping must not mark a successor's run stopped); without, whatever ran
    /// (`sett down` after killing a component that could not say so itself).
    pub async fn mark_instance_stopped(&self, name: &InstanceName, run_id: Option<&str>, now: i64) -> Result<()> {
        if let Some(mut rec) = self.instance_record(name).await?
            && run_id.is_none_or(|id| rec.run_id == id)
            && (run_id.is_some() || rec.status != InstanceStatus::Stopped)
        {
            rec.status = InstanceStatus::Stopped;
            rec.stopped_at = Some(now);
            self.put_instance_record(name, &rec).await?;
        }
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

    /// Appends a record to the global audit stream `sett:audit` (stored as JSON with sorted
    /// keys).
    pub async fn append_audit(&self, record: &impl Serialize) -> Result<String> {
        let text = serde_json::to_value(record).expect("serialisable").to_string();
        let id: String = self.client().xadd(AUDIT, false, None, "*", vec![("record", text)]).await?;
        Ok(id)
    }

    /// Every audit record, oldest first.
    pub async fn audit_records(&self) -> Result<Vec<(String, AuditEntry)>> {
        let entries: Vec<(String, HashMap<String, String>)> =
            self.client().xrange_values(AUDIT, "-", "+", None).await?;
        Ok(entries
            .into_iter()
            .map(|(id, f)| {
                let v = f.get("record").and_then(|r| serde_json::from_str(r).ok()).unwrap_or(serde_json::Value::Null);
                (id, AuditEntry(v))
            })
            .collect())
    }
}

/// One record of the global audit stream as written: JSON whose shape depends on what it
/// records (a destroy's intent and completion, a ledger anchor: its `event` field says which),
/// `null` when the entry holds no readable record. Read it like a `serde_json::Value`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry(pub serde_json::Value);

impl std::ops::Deref for AuditEntry {
    type Target = serde_json::Value;
    fn deref(&self) -> &serde_json::Value {
        &self.0
    }
}

impl Store {
    /// Publishes a component's health record (address, pid, heartbeat).
    pub async fn put_component(&self, name: &str, record: &ComponentRecord) -> Result<()> {
        let text = serde_json::to_string(record).expect("serialisable");
        let _: () = self.client().hset(self.keys.components(), (name, text)).await?;
        Ok(())
    }

    pub async fn remove_component(&self, name: &str) -> Result<()> {
        let _: u64 = self.client().hdel(self.keys.components(), name).await?;
        Ok(())
    }

    /// One component's health record, if it has one (read as empty when it does not parse).
    pub async fn component(&self, name: &str) -> Result<Option<ComponentRecord>> {
        let raw: Option<String> = self.client().hget(self.keys.components(), name).await?;
        Ok(raw.map(|v| serde_json::from_str(&v).unwrap_or_default()))
    }

    /// Every component's health record by name; a record that does not read as one counts as
    /// empty (nothing known about it).
    pub async fn components(&self) -> Result<BTreeMap<String, ComponentRecord>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.components()).await?;
        Ok(raw.into_iter().map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or_default())).collect())
    }
}
