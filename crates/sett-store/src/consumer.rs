//! A consumer group on the event stream, as every daemon reads it: attach (create the group,
//! retrying while Redis is not ready), the entries delivered to this consumer before and never
//! acknowledged first, then new ones; the pending entries again after a reconnection or a failed
//! read; acknowledge what was handled. The orchestrator, each cub and the notifier read through
//! it, driven by [`crate::driver::ConsumerDriver`], so delivery is at-least-once in one way
//! everywhere (every handler is idempotent).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::Retryable;
use fred::prelude::*;
use fred::types::Value;
use sett_core::event::Event;
use sett_core::metrics::REDIS_ERRORS;

use crate::events::{bounded, decode_raw, xread_entries};
use crate::{Result, Store, StoreError};

/// Pending entries re-read after a reconnection or a failed read come in pages of at least this
/// many, whatever the caller's batch size (a backlog is read at once, not 100 at a time).
const REREAD_PAGE: u64 = 1000;
/// The bound of one attempt to create the group: the reading connection has no command timeout
/// (it serves blocking reads), and a caller recovering from a network cut must not hang on a
/// half-dead connection.
const ATTACH_BOUND: Duration = Duration::from_secs(5);

/// Where a group created now starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// At the beginning of the stream: a component that joins late still sees all history.
    Beginning,
    /// After the newest entry: only events written from now on (a consumer that must not act on
    /// history).
    End,
}

impl GroupStart {
    fn id(self) -> &'static str {
        match self {
            Self::Beginning => "0",
            Self::End => "$",
        }
    }
}

/// What the next read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    /// Pending entries after `after` (`"0"`: from the first): a read cursor, so a consumer that
    /// acknowledges asynchronously is not handed the same entry twice in one pass.
    Pending { after: String },
    /// Entries never delivered to the group.
    New,
}

/// One consumer of one group, reading on a dedicated connection.
pub struct GroupConsumer {
    client: Client,
    key: String,
    group: String,
    consumer: String,
    start: GroupStart,
    acks: GroupAcks,
    next: Next,
    /// The last read failed: the stream (and with it the group) may have been deleted, so the
    /// group is created again before the next read.
    recreate_group: bool,
    /// Set on every reconnection of `client`: a group read cut off by a dropped connection may
    /// have been served by Redis (its entries now pending for the consumer) while the client
    /// retried it and returned later entries, so after a reconnection the pending entries are
    /// read again first. Found by the Redis-restart fault test (a claim nobody saw).
    reconnected: Arc<AtomicBool>,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("key", &self.key)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

/// Acknowledges entries of one group; cheap to clone, so handlers running in their own tasks
/// acknowledge while the consumer's connection is blocked in a read.
#[derive(Clone)]
pub struct GroupAcks {
    client: Client,
    key: String,
    group: String,
}

impl std::fmt::Debug for GroupAcks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAcks").field("key", &self.key).field("group", &self.group).finish_non_exhaustive()
    }
}

impl GroupAcks {
    /// Acknowledges handled entries: they are not delivered to this group again.
    pub async fn ack(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _: u64 = self.client.xack(&self.key, self.group.as_str(), ids.to_vec()).await?;
        Ok(())
    }

    /// A [`BatchedAcks`] handle and the task that sends its acknowledgements; the task ends,
    /// having sent everything queued, once every handle is dropped. A failed acknowledgement
    /// counts as a Redis error of `component` (`sett_redis_errors_total`).
    pub fn batched(&self, component: &'static str) -> (BatchedAcks, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let acks = self.clone();
        let task = tokio::spawn(async move {
            let mut ids = Vec::new();
            // Waits for one, then takes every id queued within `ACK_LINGER` of it.
            while rx.recv_many(&mut ids, ACK_BATCH).await > 0 {
                let until = tokio::time::Instant::now() + ACK_LINGER;
                while ids.len() < ACK_BATCH {
                    let room = ACK_BATCH - ids.len();
                    let more = tokio::time::timeout_at(until, rx.recv_many(&mut ids, room)).await;
                    // Time is up, or every handle is gone (then this batch is the last).
                    if !matches!(more, Ok(n) if n > 0) {
                        break;
                    }
                }
                if let Err(e) = acks.ack(&ids).await {
                    metrics::counter!(REDIS_ERRORS, "component" => component).increment(1);
                    tracing::warn!(group = %acks.group, error = %e, count = ids.len(), "cannot acknowledge events; they will be re-read");
                }
                ids.clear();
            }
        });
        (BatchedAcks { tx }, task)
    }
}

/// The most entry ids one background acknowledgement carries.
const ACK_BATCH: usize = 1000;
/// How long an acknowledgement waits for others to go with it: a cub handles most events of a
/// claim within a few milliseconds of each other (a bid, a grant, the output's events), so they
/// leave in one command instead of one each. An event whose acknowledgement was still waiting
/// when the process died is read again after its restart (every handler is idempotent).
const ACK_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// Acknowledgements sent in the background, as many in one XACK as arrived within
/// `ACK_LINGER` of the first: a
/// consumer whose handlers finish one event at a time in tasks of their own (the cub) sends one
/// command per burst instead of one per event. Cheap to clone. An acknowledgement that fails is
/// logged and dropped: its entries stay pending and are re-read (every handler is idempotent).
#[derive(Debug, Clone)]
pub struct BatchedAcks {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
}

impl BatchedAcks {
    /// Queues `ids` for acknowledgement.
    pub fn ack(&self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            // The sending task ends only once every handle is dropped.
            let _ = self.tx.send(id);
        }
    }
}

impl Store {
    /// Consumer `consumer` of group `group` on this instance's event stream, on a connection of
    /// its own. It reads nothing until [`GroupConsumer::attach`] (or
    /// [`GroupConsumer::ensure_group`]) created the group.
    pub async fn group_consumer(&self, group: &str, consumer: &str, start: GroupStart) -> Result<GroupConsumer> {
        let client = self.redis.dedicated().await?;
        let reconnected = Arc::new(AtomicBool::new(false));
        let mut rx = client.reconnect_rx();
        let flag = reconnected.clone();
        // Ends when the client is dropped (the channel closes).
        tokio::spawn(async move {
            while !matches!(rx.recv().await, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                flag.store(true, Ordering::SeqCst);
            }
        });
        let key = self.keys.events();
        Ok(GroupConsumer {
            acks: GroupAcks { client: self.client().clone(), key: key.clone(), group: group.to_owned() },
            client,
            key,
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            start,
            next: Next::Pending { after: "0".into() },
            recreate_group: false,
            reconnected,
        })
    }
}

impl GroupConsumer {
    /// Creates the group if it does not exist, retrying with backoff (up to 2 s apart) while
    /// Redis does not answer in time (down, loading, writes paused). Returns once attached; a
    /// caller that may stop meanwhile races it against its shutdown (it is cancel-safe: creating
    /// a group is idempotent).
    pub async fn attach(&self) {
        // No limit on attempts: this returns only once attached.
        let _attached = (|| self.ensure_group())
            .retry(crate::driver::backoff(Duration::from_secs(2)))
            .notify(|e, pause| {
                tracing::warn!(group = %self.group, error = %e, retry_in = ?pause, "cannot attach to the event stream yet; retrying");
            })
            .await;
    }

    /// Creates the group if it does not exist (one attempt).
    pub async fn ensure_group(&self) -> Result<()> {
        let call = self.client.xgroup_create::<(), _, _, _>(&self.key, self.group.as_str(), self.start.id(), true);
        match tokio::time::timeout(ATTACH_BOUND, call).await.map_err(|_| StoreError::Timeout(ATTACH_BOUND))? {
            Ok(()) => Ok(()),
            Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The next page of up to `count` entries delivered to this consumer earlier and never
    /// acknowledged, after those this pass returned already. Empty once all were returned: the
    /// consumer then reads new entries.
    pub async fn read_pending(&mut self, count: u64) -> Result<Vec<Event>> {
        let after = match &self.next {
            Next::Pending { after } => after.clone(),
            Next::New => return Ok(Vec::new()),
        };
        let (events, last) = self.read_once(&after, count, None).await?;
        self.next = match last {
            Some(after) => Next::Pending { after },
            None => Next::New,
        };
        Ok(events)
    }

    /// Makes the next reads return this consumer's pending entries again, from the first (after
    /// a handler failed, so its entry is retried before anything later).
    pub fn reread_pending(&mut self) {
        self.next = Next::Pending { after: "0".into() };
    }

    /// Up to `count` entries: while pending entries are due (after the start, a reconnection, a
    /// failed read or [`GroupConsumer::reread_pending`]) a page of those, otherwise new entries,
    /// blocking up to `block` for them. Cancel-safe in the sense of at-least-once: entries a
    /// cancelled read was served stay pending for this consumer and are re-read at its next
    /// start.
    pub async fn read(&mut self, count: u64, block: Duration) -> Result<Vec<Event>> {
        self.read_or_wait(count, Some(block)).await
    }

    /// [`GroupConsumer::read`] without waiting: the entries there are now, maybe none (a
    /// consumer woken by its bell, [`crate::Bell`]).
    pub async fn read_now(&mut self, count: u64) -> Result<Vec<Event>> {
        self.read_or_wait(count, None).await
    }

    async fn read_or_wait(&mut self, count: u64, block: Option<Duration>) -> Result<Vec<Event>> {
        match self.read_inner(count, block).await {
            Ok(events) => Ok(events),
            Err(e) => {
                // A read cut off by the network may have been served by Redis without the reply
                // reaching us: take the pending entries again (handlers are idempotent).
                self.recreate_group = true;
                self.reread_pending();
                Err(e)
            }
        }
    }

    async fn read_inner(&mut self, count: u64, block: Option<Duration>) -> Result<Vec<Event>> {
        if self.recreate_group {
            self.ensure_group().await?;
            self.recreate_group = false;
        }
        if self.reconnected.swap(false, Ordering::SeqCst) {
            self.reread_pending();
        }
        if matches!(self.next, Next::Pending { .. }) {
            let pending = self.read_pending(count.max(REREAD_PAGE)).await?;
            if !pending.is_empty() {
                tracing::info!(group = %self.group, count = pending.len(), "re-reading the events pending for this consumer");
                return Ok(pending);
            }
        }
        Ok(self.read_once(">", count, block).await?.0)
    }

    /// One XREADGROUP from `id` (`">"`: new entries, blocking up to `block` when given; a
    /// pending pass never blocks): the events, and the id of the last entry read (malformed ones
    /// included, so a pending pass steps past them).
    async fn read_once(&self, id: &str, count: u64, block: Option<Duration>) -> Result<(Vec<Event>, Option<String>)> {
        // `BLOCK 0` would wait forever: a read that must not wait sends no BLOCK at all.
        let block_ms = block.filter(|_| id == ">").map(|b| b.as_millis() as u64);
        let block = block.unwrap_or(Duration::ZERO);
        let call = self.client.xreadgroup::<Value, _, _, _, _>(
            self.group.as_str(),
            self.consumer.as_str(),
            Some(count),
            block_ms,
            false,
            &self.key,
            id,
        );
        let reply = bounded(call, block).await?;
        if reply.is_null() {
            return Ok((Vec::new(), None));
        }
        // One malformed entry (written by anyone with XADD on the stream) must not fail the
        // batch: the good entries would then never be handled, and a restart re-reading the
        // pending entries would fail again, forever. It is logged, acknowledged and skipped; the
        // ledger keeps it for `sett export`.
        let entries = xread_entries(reply)?;
        let mut events = Vec::with_capacity(entries.len());
        let mut bad = Vec::new();
        for entry in &entries {
            match decode_raw(entry) {
                Ok(e) => events.push(e),
                Err(e) => {
                    tracing::warn!(event_id = %entry.0, error = %e, "skipping a malformed event in the stream");
                    bad.push(entry.0.clone());
                }
            }
        }
        let last = entries.last().map(|(id, _)| id.clone());
        self.acks.ack(&bad).await?;
        Ok((events, last))
    }

    /// Acknowledges handled entries.
    pub async fn ack(&self, ids: &[String]) -> Result<()> {
        self.acks.ack(ids).await
    }

    /// A handle that acknowledges for this consumer from other tasks.
    pub fn acks(&self) -> GroupAcks {
        self.acks.clone()
    }

    /// Closes the reading connection.
    pub async fn quit(&self) {
        let _ = self.client.quit().await;
    }
}
