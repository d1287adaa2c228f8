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
    let field = |name: &str| fields.get(name).map(String::as_str);
    event_of(id, field("kind"), field("ts"), field("data"))
}

/// An event from its entry's `kind`, `ts` and `data` (the other fields are the ledger's).
fn event_of(id: String, kind: Option<&str>, ts: Option<&str>, data: Option<&str>) -> Result<Event> {
    let kind = kind
        .ok_or_else(|| StoreError::Decode(format!("event {id}: no kind")))?
        .parse::<EventKind>()
        .map_err(StoreError::Decode)?;
    let ts_ms = ts.and_then(|t| t.parse().ok()).unwrap_or(0);
    let data = data.ok_or_else(|| StoreError::Decode(format!("event {id}: no data")))?;
    let data = EventData::from_json(kind, data).map_err(|e| StoreError::Decode(format!("event {id} ({kind}): {e}")))?;
    Ok(Event { id, ts_ms, data })
}

/// One stream entry as an XREAD reply carries it: its id and its field/value pairs, unconverted.
pub(crate) type RawEntry = (String, Vec<Value>);

/// The entries of an XREAD or XREADGROUP reply, in stream order (RESP2:
/// `[[stream, [[id, [field, value, …]], …]], …]`; RESP3: `{stream: [[id, [field, value, …]], …]}`;
/// a nil for a timed-out block). Read as they come rather than through a map per entry (fred's
/// `XReadResponse`): every consumer reads every event, and needs three of its six fields, so
/// a dozen allocations per event and consumer were spent on names and values never looked at
/// (docs/benchmarks.md, issue 29). An entry deleted while pending has a nil for its fields: it
/// comes back with none, and decodes as malformed.
pub(crate) fn xread_entries(reply: Value) -> Result<Vec<RawEntry>> {
    let streams: Vec<Value> = match reply {
        Value::Null => return Ok(Vec::new()),
        Value::Map(map) => map.inner().into_values().collect(),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop().unwrap_or(Value::Null),
                other => other,
            })
            .collect(),
        other => return Err(StoreError::Decode(format!("unexpected stream read reply: {:?}", other.kind()))),
    };
    let mut entries = Vec::new();
    for stream in streams {
        let Value::Array(items) = stream else {
            return Err(StoreError::Decode(format!("unexpected stream read reply: {:?}", stream.kind())));
        };
        entries.reserve(items.len());
        for item in items {
            let Value::Array(mut pair) = item else {
                return Err(StoreError::Decode(format!("unexpected stream entry: {:?}", item.kind())));
            };
            let fields = match pair.pop() {
                Some(Value::Array(fields)) if pair.len() == 1 => fields,
                Some(Value::Null) if pair.len() == 1 => Vec::new(),
                _ => return Err(StoreError::Decode("a stream entry is not an id and its fields".into())),
            };
            let id = pair.pop().and_then(|id| id.as_str().map(|s| s.into_owned()));
            let id = id.ok_or_else(|| StoreError::Decode("a stream entry without an id".into()))?;
            entries.push((id, fields));
        }
    }
    Ok(entries)
}

/// The event of a [`RawEntry`]: its `kind`, `ts` and `data` found by name, nothing copied but
/// the data's decoding.
pub(crate) fn decode_raw(entry: &RawEntry) -> Result<Event> {
    let (id, fields) = entry;
    let (mut kind, mut ts, mut data) = (None, None, None);
    for pair in fields.chunks_exact(2) {
        let slot = match pair[0].as_bytes() {
            Some(b"kind") => &mut kind,
            Some(b"ts") => &mut ts,
            Some(b"data") => &mut data,
            _ => continue,
        };
        *slot = pair[1].as_bytes().and_then(|b| std::str::from_utf8(b).ok());
    }
    event_of(id.clone(), kind, ts, data)
}

type Entries = Vec<(String, HashMap<String, String>)>;

/// A blocking read that timed out answers nil; anything else is a stream → entries map.
fn decode_reply(reply: Value) -> Result<Vec<Event>> {
    if reply.is_null() {
        return Ok(Vec::new());
    }
    xread_entries(reply)?.iter().map(decode_raw).collect()
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
    Ok(xread_entries(reply)?
        .iter()
        .map(|entry| decode_raw(entry).map_err(|e| MalformedEvent { id: entry.0.clone(), error: e.to_string() }))
        .collect())
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

#[cfg(test)]
mod tests {
    use fred::types::{Key, Map};
    use sett_core::event::InstanceStopped;

    use super::*;

    fn stopped(run: &str) -> EventData {
        EventData::InstanceStopped(InstanceStopped { run_id: run.into() })
    }

    /// An entry's fields as the ledger writes them (ledger_chain.lua), values as Redis sends them.
    fn fields(data: &EventData) -> Value {
        let kind = data.kind().as_str();
        Value::Array(
            ["kind", kind, "ts", "1700", "data", &data.to_json(), "claim", "", "seq", "7", "hash", "ab"]
                .into_iter()
                .map(|s| Value::Bytes(s.as_bytes().to_vec().into()))
                .collect(),
        )
    }

    fn entry(id: &str, fields: Value) -> Value {
        Value::Array(vec![Value::from(id), fields])
    }

    #[test]
    fn a_resp2_reply_is_read_in_stream_order() {
        let (a, b) = (stopped("a"), stopped("b"));
        let reply = Value::Array(vec![Value::Array(vec![
            Value::from("sett:{i}:events"),
            Value::Array(vec![entry("1-0", fields(&a)), entry("2-0", fields(&b))]),
        ])]);
        let entries = xread_entries(reply).unwrap();
        let events: Vec<Event> = entries.iter().map(|e| decode_raw(e).unwrap()).collect();
        assert_eq!(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["1-0", "2-0"]);
        assert_eq!(events[0].data, a);
        assert_eq!(events[1].data, b);
        assert_eq!(events[0].ts_ms, 1700);
    }

    #[test]
    fn a_resp3_reply_is_read_too() {
        let a = stopped("a");
        let mut map = Map::new();
        map.insert(Key::from("sett:{i}:events"), Value::Array(vec![entry("5-1", fields(&a))]));
        let entries = xread_entries(Value::Map(map)).unwrap();
        assert_eq!(entries.len(), 1);
        let event = decode_raw(&entries[0]).unwrap();
        assert_eq!((event.id.as_str(), &event.data), ("5-1", &a));
    }

    #[test]
    fn a_timed_out_read_has_no_entries() {
        assert!(xread_entries(Value::Null).unwrap().is_empty());
    }

    #[test]
    fn an_entry_deleted_while_pending_decodes_as_malformed_with_its_id() {
        let reply =
            Value::Array(vec![Value::Array(vec![Value::from("k"), Value::Array(vec![entry("3-0", Value::Null)])])]);
        let entries = xread_entries(reply).unwrap();
        assert_eq!(entries[0].0, "3-0");
        let err = decode_raw(&entries[0]).unwrap_err().to_string();
        assert!(err.contains("3-0") && err.contains("no kind"), "{err}");
    }

    #[test]
    fn fields_are_found_by_name_whatever_their_order() {
        let a = stopped("a");
        let json = a.to_json();
        let shuffled = Value::Array(
            ["hash", "ab", "data", json.as_str(), "kind", "instance_stopped", "ts", "9"].map(Value::from).to_vec(),
        );
        let event = decode_raw(&(
            "1-1".to_owned(),
            match shuffled {
                Value::Array(v) => v,
                _ => unreachable!(),
            },
        ))
        .unwrap();
        assert_eq!((event.ts_ms, &event.data), (9, &a));
        // A bad kind or bad data is an error naming the entry, not a panic.
        let bad = ["kind", "no_such_kind", "ts", "1", "data", "{}"].map(Value::from).to_vec();
        assert!(decode_raw(&("2-2".to_owned(), bad)).is_err());
        let bad = ["kind", "instance_stopped", "ts", "1", "data", "not json"].map(Value::from).to_vec();
        assert!(decode_raw(&("2-3".to_owned(), bad)).unwrap_err().to_string().contains("2-3"));
    }

    #[test]
    fn a_reply_of_another_shape_is_an_error() {
        assert!(xread_entries(Value::Integer(3)).is_err());
        assert!(xread_entries(Value::Array(vec![Value::Array(vec![Value::from("k"), Value::from("x")])])).is_err());
        let not_a_pair =
            Value::Array(vec![Value::Array(vec![Value::from("k"), Value::Array(vec![Value::from("1-0")])])]);
        assert!(xread_entries(not_a_pair).is_err());
    }
}
