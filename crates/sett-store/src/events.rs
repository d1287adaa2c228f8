//! The durable event stream (the audit ledger): appends, range reads for replay and blocking
//! reads for followers. Consumer groups (a daemon that restarts receives every event it missed)
//! are in [`crate::consumer`].

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;
use fred::types::Value;
use sett_core::event::{Event, EventData, EventKind};
use sett_core::ledger;

use crate::scripts::APPEND_EVENT;
use crate::{Result, Store, StoreError};

pub(crate) fn decode_event(id: String, fields: HashMap<String, String>) -> Result<Event> {
    let kind = fields
        .get("kind")
        .ok_or_else(|| StoreError::Decode(format!("event {id}: no kind")))?
        .parse::<EventKind>()
        .map_err(StoreError::Decode)?;
    let ts_ms = fields.get("ts").and_then(|t| t.parse().ok()).unwrap_or(0);
    let data = fields.get("data").ok_or_else(|| StoreError::Decode(format!("event {id}: no data")))?;
    let data = EventData::from_json(kind, data).map_err(|e| StoreError::Decode(format!("event {id} ({kind}): {e}")))?;
    Ok(Event { id, ts_ms, data })
}

type Entries = Vec<(String, HashMap<String, String>)>;

/// A blocking read that timed out answers nil; anything else is a stream → entries map.
fn decode_reply(reply: Value) -> Result<Vec<Event>> {
    if reply.is_null() {
        return Ok(Vec::new());
    }
    let map: fred::types::streams::XReadResponse<String, String, String, String> = reply.into_xread_response()?;
    decode_all(map.into_values().flatten().collect())
}

fn decode_all(entries: Entries) -> Result<Vec<Event>> {
    entries.into_iter().map(|(id, f)| decode_event(id, f)).collect()
}

/// A ledger entry that is not a valid event (written by anyone with `XADD` on the stream, or by
/// a newer Sett): its stream id, so a reader can step past it, and why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedEvent {
    pub id: String,
    pub error: String,
}

/// One entry of the ledger as read by a follower that must not stop at a bad entry.
pub type LedgerEntry = std::result::Result<Event, MalformedEvent>;

fn decode_lenient(entries: Entries) -> Vec<LedgerEntry> {
    entries.into_iter().map(|(id, f)| ledger_entry(id, f)).collect()
}

/// One stream entry as stored (its id and fields; e.g. read back from an archive segment) as a
/// follower reads it.
pub fn ledger_entry(id: String, fields: HashMap<String, String>) -> LedgerEntry {
    decode_event(id.clone(), fields).map_err(|e| MalformedEvent { id, error: e.to_string() })
}

fn decode_reply_lenient(reply: Value) -> Result<Vec<LedgerEntry>> {
    if reply.is_null() {
        return Ok(Vec::new());
    }
    let map: fred::types::streams::XReadResponse<String, String, String, String> = reply.into_xread_response()?;
    Ok(decode_lenient(map.into_values().flatten().collect()))
}

impl Store {
    /// Appends one event (for events not tied to an atomic write), extending the ledger chain.
    pub async fn append_event(&self, data: &EventData, ts_ms: i64) -> Result<String> {
        let epoch = self.write_epoch();
        let kind = data.kind();
        let (ts, data) = (ts_ms.to_string(), data.to_json());
        let digest = ledger::event_digest(kind.as_str(), &ts, &data, None);
        let id: String = APPEND_EVENT
            .evalsha_with_reload(
                self.client(),
                vec![self.keys.events(), self.keys.ledger()],
                vec![kind.as_str().to_owned(), ts, data, digest],
            )
            .await?;
        self.confirm(epoch).await?;
        Ok(id)
    }

    /// The ledger chain's head (the newest chained event's `seq` and `hash`), one HMGET; `None`
    /// before the first chained event.
    pub async fn ledger_head(&self) -> Result<Option<ledger::Head>> {
        let (seq, hash): (Option<u64>, Option<String>) =
            self.client().hmget(self.keys.ledger(), vec!["seq", "hash"]).await?;
        Ok(match (seq, hash) {
            (Some(seq), Some(hash)) => Some(ledger::Head { seq, hash }),
            _ => None,
        })
    }

    /// Up to `count` raw stream entries (every field as stored) strictly after `after`
    /// (`None` = from the beginning): what `sett verify` recomputes the chain from.
    pub async fn raw_events_after(
        &self,
        after: Option<&str>,
        count: u64,
    ) -> Result<Vec<(String, HashMap<String, String>)>> {
        let start = match after {
            None => "-".to_owned(),
            Some(id) => format!("({id}"),
        };
        Ok(self.client().xrange_values(self.keys.events(), start, "+", Some(count)).await?)
    }

    /// Up to `count` events strictly after `after` (`None` = from the beginning).
    pub async fn events_after(&self, after: Option<&str>, count: u64) -> Result<Vec<Event>> {
        let start = match after {
            None => "-".to_owned(),
            Some(id) => format!("({id}"),
        };
        let entries: Entries = self.client().xrange_values(self.keys.events(), start, "+", Some(count)).await?;
        decode_all(entries)
    }

    /// Like [`Store::events_after`], but a malformed entry comes back as a [`MalformedEvent`]
    /// in its place instead of failing the whole page (followers such as `sett watch` report it
    /// and go on).
    pub async fn entries_after(&self, after: Option<&str>, count: u64) -> Result<Vec<LedgerEntry>> {
        let start = match after {
            None => "-".to_owned(),
            Some(id) => format!("({id}"),
        };
        let entries: Entries = self.client().xrange_values(self.keys.events(), start, "+", Some(count)).await?;
        Ok(decode_lenient(entries))
    }

    /// The whole event stream, oldest first, a page of `page` entries at a time (see
    /// [`EntryPages::next`]); entries appended while it reads are read too.
    pub fn entry_pages(&self, page: u64) -> EntryPages<'_> {
        EntryPages { store: self, after: None, page }
    }

    /// The id of the newest event, if any.
    pub async fn last_event_id(&self) -> Result<Option<String>> {
        let entries: Entries = self.client().xrevrange_values(self.keys.events(), "+", "-", Some(1)).await?;
        Ok(entries.into_iter().next().map(|(id, _)| id))
    }

    /// Each consumer group of the event stream as `XINFO GROUPS` reports it: name, last
    /// delivered id, entries pending (delivered, not acknowledged) and lag, as text (for
    /// diagnostics: where a consumer stands).
    pub async fn event_group_summaries(&self) -> Result<Vec<String>> {
        let groups: Vec<HashMap<String, Value>> = self.client().xinfo_groups(self.keys.events()).await?;
        let field = |g: &HashMap<String, Value>, k: &str| g.get(k).and_then(Value::as_string).unwrap_or_default();
        Ok(groups
            .iter()
            .map(|g| {
                format!(
                    "group {} last-delivered-id {} pending {} lag {} consumers {}",
                    field(g, "name"),
                    field(g, "last-delivered-id"),
                    field(g, "pending"),
                    field(g, "lag"),
                    field(g, "consumers")
                )
            })
            .collect())
    }

    pub async fn event_count(&self) -> Result<u64> {
        Ok(self.client().xlen(self.keys.events()).await?)
    }

    /// A reader on its own connection, for blocking reads (followers; consumer groups read
    /// through [`Store::group_consumer`]).
    pub async fn event_reader(&self) -> Result<EventReader> {
        let client = self.redis.dedicated().await?;
        Ok(EventReader { client, key: self.keys.events() })
    }
}

/// Blocking reads of the event stream on a dedicated connection.
pub struct EventReader {
    client: Client,
    key: String,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader").field("key", &self.key).finish()
    }
}

impl EventReader {
    /// Events strictly after `after` (`"0"` = from the start, `"$"` = only new), blocking up to
    /// `block` when there are none.
    pub async fn read_after(&self, after: &str, count: u64, block: Duration) -> Result<Vec<Event>> {
        let call = self.client.xread::<Value, _, _>(Some(count), Some(block.as_millis() as u64), &self.key, after);
        decode_reply(bounded(call, block).await?)
    }

    /// Like [`EventReader::read_after`], but a malformed entry comes back as a
    /// [`MalformedEvent`] in its place instead of failing the read.
    pub async fn read_entries_after(&self, after: &str, count: u64, block: Duration) -> Result<Vec<LedgerEntry>> {
        let call = self.client.xread::<Value, _, _>(Some(count), Some(block.as_millis() as u64), &self.key, after);
        decode_reply_lenient(bounded(call, block).await?)
    }

    pub async fn quit(&self) {
        let _ = self.client.quit().await;
    }
}

/// A blocking call may not outlive its block time by much: a half-dead connection must not
/// hang a follower forever.
pub(crate) async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, fred::error::Error>>,
    block: Duration,
) -> Result<T> {
    let limit = block + Duration::from_secs(5);
    match tokio::time::timeout(limit, call).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(StoreError::Timeout(limit)),
    }
}

/// The event stream read a page at a time ([`Store::entry_pages`]).
#[derive(Debug)]
pub struct EntryPages<'s> {
    store: &'s Store,
    after: Option<String>,
    page: u64,
}

impl EntryPages<'_> {
    /// The next page (never empty), `None` once a read finds nothing after the last entry.
    pub async fn next(&mut self) -> Result<Option<Vec<LedgerEntry>>> {
        let page = self.store.entries_after(self.after.as_deref(), self.page).await?;
        let Some(last) = page.last() else { return Ok(None) };
        self.after = Some(match last {
            Ok(e) => e.id.clone(),
            Err(m) => m.id.clone(),
        });
        Ok(Some(page))
    }
}
