//! Whole-instance operations driven by SCAN over `sett:{<instance>}:*`: counting and deleting
//! keys per family (destroy), and the exact JSONL export / import of every key.
//!
//! SCAN is used in pages with a bounded number of UNLINKs in flight, so memory stays flat
//! whatever the number of keys. The pattern carries the instance's hash tag, so on a cluster the
//! scan goes to the one node owning that slot and each UNLINK batch stays within one slot.

use std::collections::{BTreeMap, HashMap};

use fred::prelude::*;
use fred::types::Value;
use fred::types::scan::Scanner;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::{Result, Store, StoreError};

/// Number of keys per family (`artifact`, `claim`, `bids`, `thread`, …).
pub type FamilyCounts = BTreeMap<String, u64>;

const SCAN_COUNT: u32 = 2_000;
const MAX_UNLINKS_IN_FLIGHT: usize = 4;

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

/// One key of an export: its name relative to the instance prefix, its type, TTL and content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dump {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub ttl_ms: Option<i64>,
    pub value: serde_json::Value,
}

fn as_string(v: &Value) -> String {
    v.as_string().unwrap_or_default()
}

impl Store {
    /// Calls `sink` with every key of this instance, in sorted key order (so two exports of the
    /// same data are identical).
    pub async fn export(&self, mut sink: impl FnMut(Dump) -> Result<()>) -> Result<u64> {
        let mut names: Vec<String> = Vec::new();
        let mut pages = self.client().scan(self.keys.scan_pattern(), Some(SCAN_COUNT), None);
        while let Some(mut page) = pages.try_next().await? {
            for k in page.take_results().unwrap_or_default() {
                if let Some(s) = k.as_str() {
                    names.push(s.to_owned());
                }
            }
            page.next();
        }
        names.sort();
        names.dedup();
        let mut n = 0;
        for key in names {
            if let Some(d) = self.dump_key(&key).await? {
                sink(d)?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn dump_key(&self, key: &str) -> Result<Option<Dump>> {
        let c = self.client();
        let kind: String = c.r#type(key).await?;
        let value = match kind.as_str() {
            "none" => return Ok(None),
            "string" => serde_json::Value::String(c.get::<String, _>(key).await?),
            "hash" => {
                let m: HashMap<String, String> = c.hgetall(key).await?;
                serde_json::to_value(m.into_iter().collect::<BTreeMap<_, _>>()).expect("map")
            }
            "zset" => {
                let rows: Vec<(String, f64)> = c.zrange(key, 0, -1, None, false, None, true).await?;
                serde_json::to_value(rows).expect("rows")
            }
            "list" => serde_json::to_value(c.lrange::<Vec<String>, _>(key, 0, -1).await?).expect("list"),
            "set" => {
                let mut m: Vec<String> = c.smembers(key).await?;
                m.sort();
                serde_json::to_value(m).expect("set")
            }
            "stream" => {
                let entries: Vec<(String, HashMap<String, String>)> = c.xrange_values(key, "-", "+", None).await?;
                let entries: Vec<(String, BTreeMap<String, String>)> =
                    entries.into_iter().map(|(id, f)| (id, f.into_iter().collect())).collect();
                let groups: Vec<HashMap<String, Value>> = c.xinfo_groups(key).await?;
                let mut groups: Vec<serde_json::Value> = groups
                    .iter()
                    .map(|g| {
                        serde_json::json!({
                            "name": g.get("name").map(as_string).unwrap_or_default(),
                            "last_delivered_id": g.get("last-delivered-id").map(as_string).unwrap_or_default(),
                        })
                    })
                    .collect();
                groups.sort_by_key(|g| g["name"].as_str().unwrap_or_default().to_owned());
                serde_json::json!({"entries": entries, "groups": groups})
            }
            other => return Err(StoreError::Decode(format!("key {key} has unsupported type {other}"))),
        };
        let ttl: i64 = c.pttl(key).await?;
        let rel = key.strip_prefix(self.keys.prefix()).unwrap_or(key).to_owned();
        Ok(Some(Dump { key: rel, kind, ttl_ms: (ttl >= 0).then_some(ttl), value }))
    }

    /// Writes one exported key back (replacing any key of that name).
    pub async fn restore(&self, d: &Dump) -> Result<()> {
        if d.key.contains(['*', '?', '[', ']', '{', '}']) {
            return Err(StoreError::Decode(format!("refusing to import key name {:?}", d.key)));
        }
        let key = format!("{}{}", self.keys.prefix(), d.key);
        let c = self.client();
        let bad = |what: &str| StoreError::Decode(format!("import of {}: malformed {what}", d.key));
        // Each branch checks the record before deleting the key it replaces, so a malformed
        // record never removes a key it cannot restore.
        match d.kind.as_str() {
            "string" => {
                let v = d.value.as_str().ok_or_else(|| bad("string"))?;
                let _: u64 = c.del(&key).await?;
                let _: () = c.set(&key, v, None, None, false).await?;
            }
            "hash" => {
                let m: BTreeMap<String, String> = serde_json::from_value(d.value.clone()).map_err(|_| bad("hash"))?;
                let _: u64 = c.del(&key).await?;
                if !m.is_empty() {
                    let _: () = c.hset(&key, m.into_iter().collect::<Vec<_>>()).await?;
                }
            }
            "zset" => {
                let rows: Vec<(String, f64)> = serde_json::from_value(d.value.clone()).map_err(|_| bad("zset"))?;
                let _: u64 = c.del(&key).await?;
                if !rows.is_empty() {
                    let _: () = c
                        .zadd(&key, None, None, false, false, rows.into_iter().map(|(m, s)| (s, m)).collect::<Vec<_>>())
                        .await?;
                }
            }
            "list" => {
                let items: Vec<String> = serde_json::from_value(d.value.clone()).map_err(|_| bad("list"))?;
                let _: u64 = c.del(&key).await?;
                if !items.is_empty() {
                    let _: () = c.rpush(&key, items).await?;
                }
            }
            "set" => {
                let items: Vec<String> = serde_json::from_value(d.value.clone()).map_err(|_| bad("set"))?;
                let _: u64 = c.del(&key).await?;
                if !items.is_empty() {
                    let _: () = c.sadd(&key, items).await?;
                }
            }
            "stream" => {
                let entries: Vec<(String, BTreeMap<String, String>)> =
                    serde_json::from_value(d.value["entries"].clone()).map_err(|_| bad("stream entries"))?;
                let groups = d.value["groups"].as_array().cloned().unwrap_or_default();
                let groups: Vec<(&str, &str)> = groups
                    .iter()
                    .map(|g| {
                        Ok((
                            g["name"].as_str().ok_or_else(|| bad("group"))?,
                            g["last_delivered_id"].as_str().unwrap_or("0"),
                        ))
                    })
                    .collect::<Result<_>>()?;
                let _: u64 = c.del(&key).await?;
                for (id, fields) in entries {
                    let _: String = c.xadd(&key, false, None, id, fields.into_iter().collect::<Vec<_>>()).await?;
                }
                for (name, last) in groups {
                    let _: () = c.xgroup_create(&key, name, last, true).await?;
                }
            }
            other => return Err(StoreError::Decode(format!("import of {}: unsupported type {other}", d.key))),
        }
        if let Some(ttl) = d.ttl_ms {
            let _: bool = c.pexpire(&key, ttl.max(1), None).await?;
        }
        Ok(())
    }
}

/// Keys per UNLINK command: large enough to amortise round trips, small enough that Redis
/// never blocks noticeably on one command.
const UNLINK_BATCH: usize = 1_000;

impl Store {
    /// SCAN pages over this instance's keys. On a cluster every primary is scanned (not only the
    /// node owning the instance's slot), so a key left on another node by an interrupted slot
    /// migration is still found; on a single node this is a plain SCAN.
    fn instance_pages(
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
                    *counts.entry(self.keys.family_of(k).to_owned()).or_default() += 1;
                }
            }
        }
        Ok(counts)
    }

    /// Deletes every key of this instance **except its lock**, which the destroyer holds while
    /// it works and releases last. SCAN pages stream into UNLINK batches grouped by hash slot
    /// (with the instance hash tag that is always one slot, so a batch is valid on a cluster),
    /// with a bounded number of batches in flight: memory stays flat whatever the key count.
    /// `progress` gets the running number of keys deleted. Returns the counts per family.
    pub async fn purge_instance_keys(&self, mut progress: impl FnMut(u64)) -> Result<FamilyCounts> {
        let lock = self.keys.lock();
        let mut counts = FamilyCounts::new();
        let mut total = 0u64;
        let mut inflight: JoinSet<Result<u64, fred::error::Error>> = JoinSet::new();
        let mut pages = self.instance_pages();
        while let Some(mut page) = pages.try_next().await? {
            let keys = page.take_results().unwrap_or_default();
            // Ask for the next page first so the scan and the deletes overlap.
            page.next();
            let mut by_slot: BTreeMap<u16, Vec<fred::types::Key>> = BTreeMap::new();
            for k in keys {
                let Some(s) = k.as_str() else { continue };
                if s == lock {
                    continue;
                }
                *counts.entry(self.keys.family_of(s).to_owned()).or_default() += 1;
                by_slot.entry(fred::util::redis_keyslot(k.as_bytes())).or_default().push(k);
            }
            for (_, keys) in by_slot {
                for chunk in keys.chunks(UNLINK_BATCH) {
                    while inflight.len() >= MAX_UNLINKS_IN_FLIGHT {
                        if let Some(r) = inflight.join_next().await {
                            total += r.map_err(|e| StoreError::Conflict(format!("unlink task failed: {e}")))??;
                            progress(total);
                        }
                    }
                    let client = self.client().clone();
                    let chunk = chunk.to_vec();
                    inflight.spawn(async move { client.unlink::<u64, _>(chunk).await });
                }
            }
        }
        while let Some(r) = inflight.join_next().await {
            total += r.map_err(|e| StoreError::Conflict(format!("unlink task failed: {e}")))??;
            progress(total);
        }
        Ok(counts)
    }
}
