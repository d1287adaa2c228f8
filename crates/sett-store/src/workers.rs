//! Worker slots for controller agents: at most `max_concurrent` running per agent, the rest in a
//! durable FIFO. Offer and release are atomic, so two exits can never launch one grant twice.

use std::collections::HashMap;

use fred::prelude::*;
use serde::{Deserialize, Serialize};
use sett_core::{AgentName, ClaimId};

use crate::scripts::{WORKER_OFFER, WORKER_RELEASE, WORKER_UPDATE};
use crate::{Result, Store, StoreError};

/// How a grant is named in its agent's worker pool (the queue and the running slots).
pub fn worker_grant_key(claim: &ClaimId, seq: u64) -> String {
    format!("{claim}:{seq}")
}

/// The grant a worker pool entry names; `None` for an entry that is not a grant key.
pub fn parse_worker_grant_key(key: &str) -> Option<(ClaimId, u64)> {
    let (c, s) = key.rsplit_once(':')?;
    Some((ClaimId::parse(c).ok()?, s.parse().ok()?))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerOffer {
    /// A slot was taken: launch the worker now.
    Launch,
    /// Every slot is busy (or others wait): the grant waits in the FIFO.
    Queued,
    /// This grant already holds a slot, taken by the run `holder` names.
    AlreadyRunning { holder: WorkerRecord },
}

/// What `workers:<agent>:running` records for a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WorkerRecord {
    pub run_id: String,
    pub pid: Option<u32>,
    pub container: Option<String>,
    pub launched_at_ms: i64,
}

impl Store {
    pub async fn offer_worker(
        &self,
        agent: &AgentName,
        max: u32,
        grant: &str,
        record: &WorkerRecord,
    ) -> Result<WorkerOffer> {
        let keys = vec![self.keys.worker_queue(agent), self.keys.workers_running(agent), self.keys.key_registry()];
        let args = vec![max.to_string(), grant.to_owned(), serde_json::to_string(record).expect("serializable")];
        let epoch = self.write_epoch();
        let reply: Vec<String> = WORKER_OFFER.evalsha_with_reload(self.client(), keys, args).await?;
        self.confirm(epoch).await?;
        match reply.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["launch"] => Ok(WorkerOffer::Launch),
            ["queued"] => Ok(WorkerOffer::Queued),
            ["running", holder] => {
                Ok(WorkerOffer::AlreadyRunning { holder: serde_json::from_str(holder).unwrap_or_default() })
            }
            other => Err(StoreError::Decode(format!("unexpected worker_offer reply {other:?}"))),
        }
    }

    /// Frees `grant`'s slot (if given) and returns the queued grants that now hold slots.
    pub async fn release_worker(
        &self,
        agent: &AgentName,
        max: u32,
        grant: Option<&str>,
        record: &WorkerRecord,
    ) -> Result<Vec<String>> {
        let keys = vec![self.keys.worker_queue(agent), self.keys.workers_running(agent)];
        let args =
            vec![max.to_string(), grant.unwrap_or("").to_owned(), serde_json::to_string(record).expect("serializable")];
        let epoch = self.write_epoch();
        let started: Vec<String> = WORKER_RELEASE.evalsha_with_reload(self.client(), keys, args).await?;
        self.confirm(epoch).await?;
        Ok(started)
    }

    /// Updates the record of a running slot (e.g. with the launched pid).
    pub async fn update_worker(&self, agent: &AgentName, grant: &str, record: &WorkerRecord) -> Result<()> {
        let epoch = self.write_epoch();
        let keys = vec![self.keys.workers_running(agent), self.keys.key_registry()];
        let args = vec![grant.to_owned(), serde_json::to_string(record).expect("serializable")];
        let _: i64 = WORKER_UPDATE.evalsha_with_reload(self.client(), keys, args).await?;
        self.confirm(epoch).await
    }

    pub async fn running_workers(&self, agent: &AgentName) -> Result<HashMap<String, WorkerRecord>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.workers_running(agent)).await?;
        Ok(raw.into_iter().map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or_default())).collect())
    }
}
