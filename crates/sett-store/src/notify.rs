//! Durable state of webhook notifications: one delivery record per (ledger event, webhook), a
//! queue per webhook ordered by next attempt time, each endpoint's last outcome (for
//! `sett status`), and the outcome already notified per workflow. Enqueueing and finishing are
//! single Lua calls, so a crash at any point neither loses a notification nor queues it twice.

use std::collections::HashMap;

use fred::prelude::*;
use serde::{Deserialize, Serialize};

use crate::scripts::{NOTIFY_ENQUEUE, NOTIFY_FINISH};
use crate::{Result, Store, StoreError};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Queued: waiting for its (next) attempt.
    Pending,
    /// The endpoint answered 2xx; never sent again.
    Delivered,
    /// Every attempt failed for longer than the retry period (or the webhook was removed).
    GivenUp,
}

/// One notification to one webhook (`notify:deliveries`, id `<event id>:<webhook>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub webhook: String,
    /// The notification event (`question_asked`, …).
    pub event: String,
    /// The ledger entry it comes from.
    pub event_id: String,
    /// When the ledger event was written (ms).
    pub event_ts_ms: i64,
    pub created_ms: i64,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The exact body sent on every attempt; dropped once the delivery is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub next_attempt_ms: Option<i64>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub finished_ms: Option<i64>,
}

/// The last known state of one webhook endpoint (`notify:webhooks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EndpointState {
    pub last_attempt_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    /// The last failure, while the endpoint is failing (cleared by a success).
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    pub delivered: u64,
    pub given_up: u64,
}

/// One delivery to queue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub record: DeliveryRecord,
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, raw: &str) -> Result<T> {
    serde_json::from_str(raw).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
}

impl Store {
    /// Queues `deliveries` (due at `due_ms`) unless they already exist. With `outcome =
    /// Some((goal, artifact))`, nothing is queued when the workflow of `goal` already had another
    /// outcome notified. Returns how many were queued.
    pub async fn notify_enqueue(
        &self,
        outcome: Option<(&str, &str)>,
        deliveries: &[NewDelivery],
        due_ms: i64,
    ) -> Result<u64> {
        let mut keys = vec![self.keys.notify_deliveries(), self.keys.notify_workflows(), self.keys.key_registry()];
        let (goal, artifact) = outcome.unwrap_or(("", ""));
        let mut args = vec![goal.to_owned(), artifact.to_owned(), due_ms.to_string()];
        for d in deliveries {
            keys.push(self.keys.notify_queue(&d.record.webhook));
            args.push(d.id.clone());
            args.push(serde_json::to_string(&d.record).expect("serializable"));
        }
        Ok(NOTIFY_ENQUEUE.evalsha_with_reload(self.client(), keys, args).await?)
    }

    /// Up to `limit` delivery ids of `webhook` due at `now_ms`, earliest first.
    pub async fn notify_due(&self, webhook: &str, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        Ok(self
            .client()
            .zrangebyscore(self.keys.notify_queue(webhook), "-inf", now_ms as f64, false, Some((0, limit)))
            .await?)
    }

    /// When the earliest queued delivery of `webhook` is due, if any is queued.
    pub async fn notify_next_due(&self, webhook: &str) -> Result<Option<i64>> {
        let rows: Vec<(String, f64)> =
            self.client().zrange(self.keys.notify_queue(webhook), 0, 0, None, false, None, true).await?;
        Ok(rows.first().map(|(_, s)| *s as i64))
    }

    /// How many deliveries of `webhook` are waiting.
    pub async fn notify_pending(&self, webhook: &str) -> Result<u64> {
        Ok(self.client().zcard(self.keys.notify_queue(webhook)).await?)
    }

    pub async fn notify_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        let raw: Option<String> = self.client().hget(self.keys.notify_deliveries(), id).await?;
        raw.map(|r| decode("notification delivery", &r)).transpose()
    }

    /// Every delivery record, by id (for tests and diagnostics; the hash holds one small entry per
    /// notification sent).
    pub async fn notify_deliveries(&self) -> Result<HashMap<String, DeliveryRecord>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.notify_deliveries()).await?;
        raw.into_iter().map(|(k, v)| Ok((k, decode("notification delivery", &v)?))).collect()
    }

    /// Stores an attempt's outcome: the record, its place in the queue (`next_attempt_ms`, or out
    /// of it when `None`) and the endpoint's state, in one atomic write.
    pub async fn notify_finish(
        &self,
        id: &str,
        record: &DeliveryRecord,
        next_attempt_ms: Option<i64>,
        endpoint: &EndpointState,
    ) -> Result<()> {
        let keys =
            vec![self.keys.notify_deliveries(), self.keys.notify_queue(&record.webhook), self.keys.notify_webhooks()];
        let args = vec![
            id.to_owned(),
            serde_json::to_string(record).expect("serializable"),
            next_attempt_ms.map(|n| n.to_string()).unwrap_or_default(),
            record.webhook.clone(),
            serde_json::to_string(endpoint).expect("serializable"),
        ];
        let _: i64 = NOTIFY_FINISH.evalsha_with_reload(self.client(), keys, args).await?;
        Ok(())
    }

    /// Takes `id` out of `webhook`'s queue (a delivery already final, or whose record is gone).
    pub async fn notify_dequeue(&self, webhook: &str, id: &str) -> Result<()> {
        let _: i64 = self.client().zrem(self.keys.notify_queue(webhook), id).await?;
        Ok(())
    }

    /// Every webhook's endpoint state, by name.
    pub async fn notify_endpoints(&self) -> Result<HashMap<String, EndpointState>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.notify_webhooks()).await?;
        raw.into_iter().map(|(k, v)| Ok((k, decode("webhook endpoint state", &v)?))).collect()
    }
}
