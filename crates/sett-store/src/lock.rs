//! The instance lock: held by the running orchestrator (or by a destroy in progress), with a TTL
//! renewed by compare-and-renew on `run_id`. Its presence means "running".

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use serde::{Deserialize, Serialize};

use crate::scripts::{LOCK_RELEASE, LOCK_RENEW};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LockPurpose {
    #[default]
    Run,
    /// `sett destroy` holds the lock while it deletes, so `sett up` cannot start mid-way.
    Destroy,
}

/// The lock's JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: i64,
    #[serde(default)]
    pub purpose: LockPurpose,
}

impl Store {
    /// Takes the lock if nobody holds it. Returns the current holder when refused.
    pub async fn acquire_lock(&self, holder: &LockHolder, ttl_ms: u64) -> Result<Result<(), LockHolder>> {
        let value = serde_json::to_string(holder).expect("serializable");
        let set: Option<String> = self
            .client()
            .set(self.keys.lock(), value, Some(Expiration::PX(ttl_ms as i64)), Some(SetOptions::NX), false)
            .await?;
        if set.is_some() {
            return Ok(Ok(()));
        }
        match self.lock_holder().await? {
            Some(h) => Ok(Err(h)),
            // It expired between the two calls: try once more.
            None => {
                let value = serde_json::to_string(holder).expect("serializable");
                let set: Option<String> = self
                    .client()
                    .set(self.keys.lock(), value, Some(Expiration::PX(ttl_ms as i64)), Some(SetOptions::NX), false)
                    .await?;
                match set {
                    Some(_) => Ok(Ok(())),
                    None => Err(StoreError::Conflict("the instance lock changed hands during acquisition".into())),
                }
            }
        }
    }

    /// Extends the lock if `run_id` still holds it.
    pub async fn renew_lock(&self, run_id: &str, ttl_ms: u64) -> Result<bool> {
        let n: i64 = LOCK_RENEW
            .evalsha_with_reload(self.client(), vec![self.keys.lock()], vec![run_id.to_owned(), ttl_ms.to_string()])
            .await?;
        Ok(n == 1)
    }

    /// Releases the lock if `run_id` holds it.
    pub async fn release_lock(&self, run_id: &str) -> Result<bool> {
        let n: i64 =
            LOCK_RELEASE.evalsha_with_reload(self.client(), vec![self.keys.lock()], vec![run_id.to_owned()]).await?;
        Ok(n == 1)
    }

    pub async fn lock_holder(&self) -> Result<Option<LockHolder>> {
        let v: Option<String> = self.client().get(self.keys.lock()).await?;
        v.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Decode(format!("lock: {e}")))).transpose()
    }

    /// Milliseconds until the lock expires (`None` when absent).
    pub async fn lock_ttl_ms(&self) -> Result<Option<i64>> {
        let ttl: i64 = self.client().pttl(self.keys.lock()).await?;
        Ok((ttl >= 0).then_some(ttl))
    }
}
