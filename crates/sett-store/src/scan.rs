//! Whole-instance operations driven by SCAN over `sett:{<instance>}:*`: counting keys per family
//! (destroy's confirmation), the delete-by-scan sweep (destroy of an instance not known to be
//! indexed, see purge.rs), and the exact export / import of every key (its records: dump.rs).
//!
//! SCAN is used in pages with a bounded number of UNLINKs in flight, so memory stays flat
//! whatever the number of keys. The pattern carries the instance's hash tag, so on a cluster the
//! scan goes to the one node owning that slot and each UNLINK batch stays within one slot.

use std::collections::{BTreeMap, HashMap};

use fred::prelude::*;
use fred::types::Value;
use fred::types::scan::Scanner;
use futures::TryStreamExt;
use tokio::task::JoinSet;

use crate::dump::{Dump, DumpValue, StreamChunk, StreamGroup};
use crate::{Result, Store, StoreError};

/// Number of keys per family (`artifact`, `claim`, `bids`, `thread`, …).
pub type FamilyCounts = BTreeMap<String, u64>;

const SCAN_COUNT: u32 = 2_000;

/// One more key of `family` (no allocation once the family is known: a destroy counts millions).
fn count_family(counts: &mut FamilyCounts, family: &str) {
    match counts.get_mut(family) {
        Some(n) => *n += 1,
        None => {
            counts.insert(family.to_owned(), 1);
        }
    }
}
pub(crate) const MAX_UNLINKS_IN_FLIGHT: usize = 4;

impl Store {
    /// Counts this instance's keys per family, or deletes them when `delete` is true (returning
    /// the counts of what was deleted). `progress` is called with the running total.
    pub async fn scan_instance(&self, delete: bool, mut progress: impl FnMut(u64)) -> Result<FamilyCounts> {
        let mut counts = FamilyCounts::new();
        let mut total = 0u64;
        let mut inflight: JoinSet<Result<u64, fred::error::Error>> = JoinSet::new();
        let mut pages = self.client().scan(self.keys.scan_pattern(), Some(SCAN_COUNT), None);
        while let Some(mut page) = pages.try_next().await? {
            let keys = page.take_results().unwrap_or_default();
            // Ask for the next page first so the scan and the deletes overlap.
            page.next();
            if keys.is_empty() {
                continue;
            }
            for k in &keys {
                if let Some(s) = k.as_str() {
                    *counts.entry(self.keys.family_of(s).to_owned()).or_default() += 1;
                }
            }
            total += keys.len() as u64;
            if delete {
                while inflight.len() >= MAX_UNLINKS_IN_FLIGHT {
                    if let Some(r) = inflight.join_next().await {
                        r.map_err(|e| StoreError::Conflict(format!("unlink task failed: {e}")))??;
                    }
                }
                let client = self.client().clone();
                inflight.spawn(async move { client.unlink::<u64, _>(keys).await });
            }
            progress(total);
        }
        while let Some(r) = inflight.join_next().await {
            r.map_err(|e| StoreError::Conflict(format!("unlink task failed: {e}")))??;
        }
        Ok(counts)
    }
}

fn as_string(v: &Value) -> String {
    v.as_string().unwrap_or_default()
}

/// Keys whose type, TTL and small values are read in one pipelined burst during an export.
const EXPORT_BATCH: usize = 500;
/// Members / entries per record of a sorted set, list or stream: a large one (the artifacts
/// index, the event stream) becomes several consecutive records, so neither the export nor the
/// import ever holds it whole.
const CHUNK: usize = 1_000;
/// Key names sorted in memory at a time; more are sorted in runs on disk and merged.
const SORT_RUN: usize = 50_000;

/// Every key name of an instance in sorted order, without duplicates, with memory bounded by
/// [`SORT_RUN`] names whatever the number of keys: SCAN pages are sorted in runs written to
/// anonymous temporary files (length-prefixed, as names may hold any byte) and merged.
struct SortedNames {
    runs: Vec<std::io::BufReader<std::fs::File>>,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Vec<u8>, usize)>>,
    /// The names of a single run, when everything fitted in memory.
    memory: std::vec::IntoIter<Vec<u8>>,
    last: Option<Vec<u8>>,
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Conflict(format!("export: temporary file for sorting key names: {e} (check the space in $TMPDIR)"))
}

fn read_name(r: &mut impl std::io::Read) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io_err(e)),
    }
    let mut name = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut name).map_err(io_err)?;
    Ok(Some(name))
}

/// Collects names into sorted runs of at most `run` names, spilling each full run to disk.
struct Sorter {
    run: usize,
    batch: Vec<Vec<u8>>,
    files: Vec<std::fs::File>,
}

impl Sorter {
    fn new(run: usize) -> Self {
        Self { run, batch: Vec::new(), files: Vec::new() }
    }

    fn push(&mut self, name: Vec<u8>) -> Result<()> {
        self.batch.push(name);
        if self.batch.len() >= self.run {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        use std::io::{Seek, Write};
        self.batch.sort_unstable();
        self.batch.dedup();
        let mut f = std::io::BufWriter::new(tempfile::tempfile().map_err(io_err)?);
        for n in self.batch.drain(..) {
            f.write_all(&(n.len() as u32).to_le_bytes()).map_err(io_err)?;
            f.write_all(&n).map_err(io_err)?;
        }
        let mut f = f.into_inner().map_err(|e| io_err(e.into_error()))?;
        f.rewind().map_err(io_err)?;
        self.files.push(f);
        Ok(())
    }

    fn finish(mut self) -> Result<SortedNames> {
        if self.files.is_empty() {
            self.batch.sort_unstable();
            self.batch.dedup();
            return Ok(SortedNames {
                runs: Vec::new(),
                heap: Default::default(),
                memory: self.batch.into_iter(),
                last: None,
            });
        }
        if !self.batch.is_empty() {
            self.spill()?;
        }
        let mut runs: Vec<_> = self.files.into_iter().map(std::io::BufReader::new).collect();
        let mut heap = std::collections::BinaryHeap::new();
        for (i, r) in runs.iter_mut().enumerate() {
            if let Some(n) = read_name(r)? {
                heap.push(std::cmp::Reverse((n, i)));
            }
        }
        Ok(SortedNames { runs, heap, memory: Vec::new().into_iter(), last: None })
    }
}

impl SortedNames {
    async fn collect(
        pages: &mut (impl futures::Stream<Item = Result<fred::types::scan::ScanResult, fred::error::Error>> + Unpin),
    ) -> Result<Self> {
        let mut sorter = Sorter::new(SORT_RUN);
        while let Some(mut page) = pages.try_next().await? {
            for k in page.take_results().unwrap_or_default() {
                sorter.push(k.as_bytes().to_vec())?;
            }
            page.next();
        }
        sorter.finish()
    }

    fn next_name(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let next = if self.runs.is_empty() {
                self.memory.next()
            } else {
                let Some(std::cmp::Reverse((n, i))) = self.heap.pop() else { return Ok(None) };
                if let Some(more) = read_name(&mut self.runs[i])? {
                    self.heap.push(std::cmp::Reverse((more, i)));
                }
                Some(n)
            };
            let Some(n) = next else { return Ok(None) };
            // SCAN may return a key twice; runs are deduplicated each on their own.
            if self.last.as_ref() != Some(&n) {
                self.last = Some(n.clone());
                return Ok(Some(n));
            }
        }
    }
}

/// What an export reads of one key before its value.
struct Head {
    key: String,
    kind: String,
    ttl_ms: Option<i64>,
}

impl Store {
    /// Calls `sink` with every key of this instance, in sorted key order (so two exports of the
    /// same data are identical). Streams: memory stays flat whatever the number of keys — names
    /// are sorted in runs on disk, values are read [`EXPORT_BATCH`] keys at a time in pipelined
    /// bursts, and a large sorted set, list or stream is cut into records of [`CHUNK`] items
    /// (the later ones marked `"continues": true`), which [`Store::restore`] appends. The first
    /// error of `sink` (e.g. the caller's output failing) stops the export and is returned.
    pub async fn export<E: From<StoreError>>(&self, mut sink: impl FnMut(Dump) -> Result<(), E>) -> Result<u64, E> {
        let mut pages = self.client().scan(self.keys.scan_pattern(), Some(SCAN_COUNT), None);
        let mut names = SortedNames::collect(&mut pages).await?;
        let mut n = 0;
        loop {
            let mut batch = Vec::with_capacity(EXPORT_BATCH);
            while batch.len() < EXPORT_BATCH {
                match names.next_name()? {
                    Some(name) => batch.push(String::from_utf8_lossy(&name).into_owned()),
                    None => break,
                }
            }
            if batch.is_empty() {
                return Ok(n);
            }
            let heads = futures::future::try_join_all(batch.into_iter().map(|k| self.head(k))).await?;
            let values = futures::future::try_join_all(heads.iter().map(|h| self.small_value(h))).await?;
            for (h, value) in heads.into_iter().zip(values) {
                if h.kind == "none" {
                    continue;
                }
                n += 1;
                match value {
                    Some(value) => sink(self.dump(&h, value))?,
                    None => self.dump_chunked(&h, &mut sink).await?,
                }
            }
        }
    }

    async fn head(&self, key: String) -> Result<Head> {
        let c = self.client();
        let (kind, ttl): (String, i64) = futures::future::try_join(c.r#type(&key), c.pttl(&key)).await?;
        Ok(Head { key, kind, ttl_ms: (ttl >= 0).then_some(ttl) })
    }

    fn dump(&self, h: &Head, value: DumpValue) -> Dump {
        let rel = h.key.strip_prefix(self.keys.prefix()).unwrap_or(&h.key).to_owned();
        Dump { key: rel, ttl_ms: h.ttl_ms, value }
    }

    /// The whole value of a string, hash or set; `None` for the types exported in chunks.
    async fn small_value(&self, h: &Head) -> Result<Option<DumpValue>> {
        let c = self.client();
        let key = &h.key;
        Ok(Some(match h.kind.as_str() {
            "none" | "zset" | "list" | "stream" => return Ok(None),
            "string" => DumpValue::String(c.get::<String, _>(key).await?),
            "hash" => {
                let mut m: HashMap<String, String> = c.hgetall(key).await?;
                if *key == self.keys.ledger() {
                    // The mark that every key was written by writers keeping the indexes is not
                    // data: it does not survive a copy (an import sweeps; see purge.rs).
                    m.remove("keys");
                }
                DumpValue::Hash(m.into_iter().collect())
            }
            "set" => {
                let mut m: Vec<String> = c.smembers(key).await?;
                m.sort();
                DumpValue::Set(m)
            }
            other => return Err(StoreError::Decode(format!("key {key} has unsupported type {other}"))),
        }))
    }

    /// A sorted set, list or stream as records of at most [`CHUNK`] items, in order. The first
    /// record has the layout of an unchunked one (a small key exports as before); the later ones
    /// carry `"continues": true` (a list's or sorted set's items then under `"items"`).
    async fn dump_chunked<E: From<StoreError>>(
        &self,
        h: &Head,
        sink: &mut impl FnMut(Dump) -> Result<(), E>,
    ) -> Result<(), E> {
        let c = self.client();
        let key = &h.key;
        match h.kind.as_str() {
            "zset" | "list" => {
                let mut start = 0i64;
                loop {
                    let stop = start + CHUNK as i64 - 1;
                    let first = start == 0;
                    let value = if h.kind == "zset" {
                        let members: Vec<(String, f64)> =
                            c.zrange(key, start, stop, None, false, None, true).await.map_err(StoreError::from)?;
                        DumpValue::Zset { members, continues: !first }
                    } else {
                        let items: Vec<String> = c.lrange(key, start, stop).await.map_err(StoreError::from)?;
                        DumpValue::List { items, continues: !first }
                    };
                    let len = value.items();
                    // An empty key does not exist, so only a later chunk can be empty.
                    if len == 0 && !first {
                        return Ok(());
                    }
                    sink(self.dump(h, value))?;
                    if len < CHUNK {
                        return Ok(());
                    }
                    start += CHUNK as i64;
                }
            }
            "stream" => {
                let groups: Vec<HashMap<String, Value>> = c.xinfo_groups(key).await.map_err(StoreError::from)?;
                let mut groups: Vec<StreamGroup> = groups
                    .iter()
                    .map(|g| StreamGroup {
                        name: g.get("name").map(as_string).unwrap_or_default(),
                        last_delivered_id: g.get("last-delivered-id").map(as_string).unwrap_or_default(),
                    })
                    .collect();
                groups.sort_by(|a, b| a.name.cmp(&b.name));
                let mut after: Option<String> = None;
                loop {
                    let first = after.is_none();
                    let start = after.as_ref().map_or_else(|| "-".to_owned(), |id| format!("({id}"));
                    let entries: Vec<(String, HashMap<String, String>)> =
                        c.xrange_values(key, start, "+", Some(CHUNK as u64)).await.map_err(StoreError::from)?;
                    let len = entries.len();
                    if len == 0 && !first {
                        // The previous record was full and the last: its groups follow alone.
                        let groups = std::mem::take(&mut groups);
                        let value = DumpValue::Stream(StreamChunk { entries: Vec::new(), groups, continues: true });
                        return sink(self.dump(h, value));
                    }
                    after = entries.last().map(|(id, _)| id.clone());
                    let entries: Vec<(String, BTreeMap<String, String>)> =
                        entries.into_iter().map(|(id, f)| (id, f.into_iter().collect())).collect();
                    // Groups go with the last record, once every entry is restored.
                    let last = len < CHUNK;
                    let groups = if last { std::mem::take(&mut groups) } else { Vec::new() };
                    sink(self.dump(h, DumpValue::Stream(StreamChunk { entries, groups, continues: !first })))?;
                    if last {
                        return Ok(());
                    }
                }
            }
            other => Err(StoreError::Decode(format!("key {key} has unsupported type {other}")).into()),
        }
    }

    /// Writes one exported record back (see [`Store::restore_batch`]).
    pub async fn restore(&self, d: &Dump) -> Result<()> {
        self.restore_batch(std::slice::from_ref(d)).await
    }

    /// Writes exported records back in one pipelined round trip, in order. A record replaces
    /// any key of that name, except a record marked `"continues": true` (the next chunk of a
    /// large sorted set, list or stream), which appends to what the records before it wrote.
    /// A record's content is typed when it is read ([`Dump`]), so a malformed one is refused
    /// before anything is sent and never removes a key it cannot restore; a key name with a
    /// glob character is refused here.
    pub async fn restore_batch(&self, dumps: &[Dump]) -> Result<()> {
        if dumps.is_empty() {
            return Ok(());
        }
        let c = self.client();
        let p = c.pipeline();
        for d in dumps {
            self.queue_restore(&p, d).await?;
        }
        let _: Vec<Value> = p.all().await?;
        Ok(())
    }

    async fn queue_restore(&self, p: &fred::clients::Pipeline<Client>, d: &Dump) -> Result<()> {
        if d.key.contains(['*', '?', '[', ']', '{', '}']) {
            return Err(StoreError::Decode(format!("refusing to import key name {:?}", d.key)));
        }
        let key = format!("{}{}", self.keys.prefix(), d.key);
        // A record replaces the key, unless it continues the records before it.
        if !d.value.continues() {
            let _: () = p.del(&key).await?;
        }
        match &d.value {
            DumpValue::String(v) => {
                let _: () = p.set(&key, v.as_str(), None, None, false).await?;
            }
            DumpValue::Hash(m) => {
                // Imported keys were not written by this instance's writers (and an export
                // leaves the mark out): its destroy sweeps rather than trusting the indexes
                // alone (see purge.rs).
                let fields: Vec<(&str, &str)> = m
                    .iter()
                    .filter(|(f, _)| !(d.key == "ledger" && f.as_str() == "keys"))
                    .map(|(f, v)| (f.as_str(), v.as_str()))
                    .collect();
                if !fields.is_empty() {
                    let _: () = p.hset(&key, fields).await?;
                }
            }
            DumpValue::Zset { members, .. } => {
                if !members.is_empty() {
                    let _: () = p
                        .zadd(
                            &key,
                            None,
                            None,
                            false,
                            false,
                            members.iter().map(|(m, s)| (*s, m.as_str())).collect::<Vec<_>>(),
                        )
                        .await?;
                }
            }
            DumpValue::List { items, .. } => {
                if !items.is_empty() {
                    let _: () = p.rpush(&key, items.clone()).await?;
                }
            }
            DumpValue::Set(items) => {
                if !items.is_empty() {
                    let _: () = p.sadd(&key, items.clone()).await?;
                }
            }
            DumpValue::Stream(chunk) => {
                for (id, fields) in &chunk.entries {
                    let fields: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (f.as_str(), v.as_str())).collect();
                    let _: () = p.xadd(&key, false, None, id.as_str(), fields).await?;
                }
                for g in &chunk.groups {
                    let _: () = p.xgroup_create(&key, g.name.as_str(), g.last_delivered_id.as_str(), true).await?;
                }
            }
        }
        if let Some(ttl) = d.ttl_ms {
            let _: () = p.pexpire(&key, ttl.max(1), None).await?;
        }
        Ok(())
    }
}

/// Keys per UNLINK command: large enough to amortise round trips, small enough that Redis
/// never blocks noticeably on one command.
pub(crate) const UNLINK_BATCH: usize = 1_000;

impl Store {
    /// SCAN pages over this instance's keys. On a cluster every primary is scanned (not only the
    /// node owning the instance's slot), so a key left on another node by an interrupted slot
    /// migration is still found; on a single node this is a plain SCAN.
    pub(crate) fn instance_pages(
        &self,
    ) -> futures::stream::BoxStream<'static, Result<fred::types::scan::ScanResult, fred::error::Error>> {
        use futures::StreamExt;
        let pattern = self.keys.scan_pattern();
        if self.client().client_config().server.is_clustered() {
            self.client().scan_cluster(pattern, Some(SCAN_COUNT), None).boxed()
        } else {
            self.client().scan(pattern, Some(SCAN_COUNT), None).boxed()
        }
    }

    /// Counts this instance's keys per family, leaving out the instance lock (whoever holds it
    /// — a destroy counts what it is about to delete, not its own lock).
    pub async fn count_instance_keys(&self) -> Result<FamilyCounts> {
        let lock = self.keys.lock();
        let mut counts = FamilyCounts::new();
        let mut pages = self.instance_pages();
        while let Some(mut page) = pages.try_next().await? {
            let keys = page.take_results().unwrap_or_default();
            page.next();
            for k in keys.iter().filter_map(|k| k.as_str()) {
                if k != lock {
                    count_family(&mut counts, self.keys.family_of(k));
                }
            }
        }
        Ok(counts)
    }

    /// Whether this instance has any key besides its lock: one EXISTS over its fixed keys
    /// (an instance that wrote anything has its ledger head or an index), else a SCAN that stops
    /// at the first key found.
    pub async fn has_instance_keys(&self) -> Result<bool> {
        let lock = self.keys.lock();
        let fixed: Vec<String> = self.keys.fixed().into_iter().filter(|k| *k != lock).collect();
        if self.client().exists::<u64, _>(fixed).await? > 0 {
            return Ok(true);
        }
        let mut pages = self.instance_pages();
        while let Some(mut page) = pages.try_next().await? {
            if page.take_results().unwrap_or_default().iter().filter_map(|k| k.as_str()).any(|k| k != lock) {
                return Ok(true);
            }
            page.next();
        }
        Ok(false)
    }

    /// Deletes every key of this instance **except its lock** by scanning the whole keyspace:
    /// the final sweep of a destroy whose instance is not known to be indexed
    /// ([`Store::purge_instance_keys`]), and the baseline the destroy bench compares with. SCAN pages stream into UNLINK batches grouped by hash slot
    /// (with the instance hash tag that is always one slot, so a batch is valid on a cluster)
    /// and by family, with a bounded number of batches in flight: memory stays flat whatever the
    /// key count. `progress` gets the running number of keys deleted. Returns the counts per
    /// family of the keys deleted: counted from UNLINK's replies, not from SCAN, which may
    /// return a key twice while the keyspace is rehashed (a destroy shrinks it).
    pub async fn purge_by_scan(&self, mut progress: impl FnMut(u64)) -> Result<FamilyCounts> {
        type Unlinked = (String, Result<u64, fred::error::Error>);
        let lock = self.keys.lock();
        let mut counts = FamilyCounts::new();
        let mut total = 0u64;
        let mut inflight: JoinSet<Unlinked> = JoinSet::new();
        let mut done = |joined: std::result::Result<Unlinked, tokio::task::JoinError>| -> Result<()> {
            let (family, deleted) = joined.map_err(|e| StoreError::Conflict(format!("unlink task failed: {e}")))?;
            let deleted = deleted?;
            if deleted > 0 {
                *counts.entry(family).or_default() += deleted;
                total += deleted;
                progress(total);
            }
            Ok(())
        };
        // One node takes any batch; only a cluster needs batches grouped by hash slot.
        let clustered = self.client().client_config().server.is_clustered();
        // Keys wait per (slot, family) until a full batch is there, across pages: a page holds
        // keys of every family, and batches split by family within one page would be small
        // (more round trips). At most one partial batch per family is held: memory stays flat.
        let mut waiting: BTreeMap<(u16, String), Vec<fred::types::Key>> = BTreeMap::new();
        let mut full: Vec<(String, Vec<fred::types::Key>)> = Vec::new();
        let mut pages = self.instance_pages();
        loop {
            let page = pages.try_next().await?;
            let last = page.is_none();
            if let Some(mut page) = page {
                let keys = page.take_results().unwrap_or_default();
                // Ask for the next page first so the scan and the deletes overlap.
                page.next();
                for k in keys {
                    let Some(s) = k.as_str() else { continue };
                    if s == lock {
                        continue;
                    }
                    let slot = if clustered { fred::util::redis_keyslot(k.as_bytes()) } else { 0 };
                    let family = self.keys.family_of(s).to_owned();
                    let batch = waiting.entry((slot, family)).or_default();
                    batch.push(k);
                    if batch.len() >= UNLINK_BATCH {
                        let family = self.keys.family_of(batch[0].as_str().unwrap_or_default()).to_owned();
                        full.push((family, std::mem::take(batch)));
                    }
                }
            } else {
                full.extend(
                    std::mem::take(&mut waiting)
                        .into_iter()
                        .filter(|(_, keys)| !keys.is_empty())
                        .map(|((_, family), keys)| (family, keys)),
                );
            }
            for (family, chunk) in full.drain(..) {
                while inflight.len() >= MAX_UNLINKS_IN_FLIGHT {
                    if let Some(joined) = inflight.join_next().await {
                        done(joined)?;
                    }
                }
                let client = self.client().clone();
                inflight.spawn(async move { (family, client.unlink::<u64, _>(chunk).await) });
            }
            if last {
                break;
            }
        }
        while let Some(joined) = inflight.join_next().await {
            done(joined)?;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_out_sorted_and_unique_through_runs_on_disk() {
        let names = ["k:5", "k:1", "k:3", "k:1", "k:9", "k:2", "k:3", "k:0", "k:\n7"];
        let mut want: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
        want.sort();
        want.dedup();
        for run in [2, 3, 100] {
            let mut sorter = Sorter::new(run);
            for n in names {
                sorter.push(n.as_bytes().to_vec()).unwrap();
            }
            let spilled = !sorter.files.is_empty();
            assert_eq!(spilled, run < names.len(), "run {run}");
            let mut sorted = sorter.finish().unwrap();
            let mut got = Vec::new();
            while let Some(n) = sorted.next_name().unwrap() {
                got.push(n);
            }
            assert_eq!(got, want, "run {run}");
        }
    }
}
