//! Deleting one instance's keys (destroy) in time proportional to its own keys: they are
//! enumerated — the fixed names ([`Keys::fixed`]), the artifact, thread, claim and bids keys of
//! the ids in `index:artifacts` and `index:claims`, and the names in the key registry
//! `index:keys` — and unlinked in pipelined batches, never by walking the whole keyspace.
//!
//! Then a final sweep, bounded to what it must cover, proves nothing is left:
//! - on a Redis Cluster, `CLUSTER COUNTKEYSINSLOT` / `GETKEYSINSLOT` of the instance's one slot
//!   (its hash tag) on every primary, so a key left on another node by an interrupted slot
//!   migration is found too;
//! - on a single node, an instance whose keys were not all written by writers that keep the
//!   indexes and the registry (no `keys` mark in its ledger head: written by an older Sett, or
//!   imported) is swept by SCAN; one that has the mark needs no sweep (the test
//!   `every_key_family_is_enumerated` writes every family through its real writers and checks a
//!   SCAN finds nothing the enumeration does not).
//!
//! The order makes an interrupted destroy resumable: indexed keys first, the fixed keys after,
//! and the indexes, the registry and the ledger head (the mark) last, so a destroy run again
//! still reaches whatever the first one left.
//!
//! [`Keys::fixed`]: crate::Keys::fixed

use std::collections::BTreeMap;

use fred::prelude::*;
use fred::types::Key;
use fred::types::scan::Scanner;
use futures::TryStreamExt;
use tokio::task::JoinSet;

use crate::scan::{FamilyCounts, MAX_UNLINKS_IN_FLIGHT, UNLINK_BATCH};
use crate::{Result, Store, StoreError};

/// Index members read per ZRANGE (each yields two keys to unlink).
const INDEX_CHUNK: i64 = 5_000;
/// Registry members per SSCAN page.
const REGISTRY_PAGE: u32 = 1_000;
/// Keys per `CLUSTER GETKEYSINSLOT` in the cluster sweep.
const SLOT_PAGE: u64 = 1_000;

type Unlinked = (String, Result<u64, fred::error::Error>);

/// The ledger head's `keys` mark of an instance whose keys all kept their indexes and registry,
/// when every first version had its own thread set (`thread:<its id>`, Sett before issue 29's
/// third round).
const INDEXED_MARK: &str = "indexed";
/// The mark written by `ledger_chain.lua` today: as [`INDEXED_MARK`], and every thread set is in
/// the key registry (a first version alone has none).
const THREADS_REGISTERED_MARK: &str = "indexed:threads-registered";

/// How destroy finds an instance's keys, by the mark its first event left in the ledger head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyIndexing {
    /// No mark (written by an older Sett, or imported): a SCAN sweeps after the enumeration.
    Unindexed,
    /// Enumerated: the indexes, the registry and `thread:<id>` of every artifact.
    Indexed,
    /// Enumerated: the indexes and the registry, which names every thread set.
    ThreadsRegistered,
}

/// Batches of keys of one family, unlinked with a bounded number in flight; counts what
/// UNLINK reports deleted, per family.
struct Unlinker<F: FnMut(u64)> {
    client: Client,
    inflight: JoinSet<Unlinked>,
    waiting: BTreeMap<String, Vec<Key>>,
    counts: FamilyCounts,
    total: u64,
    progress: F,
}

impl<F: FnMut(u64)> Unlinker<F> {
    fn new(client: Client, progress: F) -> Self {
        Self {
            client,
            inflight: JoinSet::new(),
            waiting: BTreeMap::new(),
            counts: FamilyCounts::new(),
            total: 0,
            progress,
        }
    }

    fn done(&mut self, joined: std::result::Result<Unlinked, tokio::task::JoinError>) -> Result<()> {
        let (family, deleted) = joined.map_err(|e| StoreError::Conflict(format!("unlink task failed: {e}")))?;
        self.add(family, deleted?);
        Ok(())
    }

    fn add(&mut self, family: String, deleted: u64) {
        if deleted > 0 {
            *self.counts.entry(family).or_default() += deleted;
            self.total += deleted;
            (self.progress)(self.total);
        }
    }

    /// Queues `key` of `family`; a full batch goes out at once.
    async fn push(&mut self, family: &str, key: String) -> Result<()> {
        let batch = match self.waiting.get_mut(family) {
            Some(b) => b,
            None => self.waiting.entry(family.to_owned()).or_default(),
        };
        batch.push(key.into());
        if batch.len() >= UNLINK_BATCH {
            let keys = std::mem::take(batch);
            self.send(family.to_owned(), keys).await?;
        }
        Ok(())
    }

    async fn send(&mut self, family: String, keys: Vec<Key>) -> Result<()> {
        while self.inflight.len() >= MAX_UNLINKS_IN_FLIGHT {
            if let Some(joined) = self.inflight.join_next().await {
                self.done(joined)?;
            }
        }
        let client = self.client.clone();
        self.inflight.spawn(async move { (family, client.unlink::<u64, _>(keys).await) });
        Ok(())
    }

    /// Sends the partial batches and waits for every UNLINK.
    async fn flush(&mut self) -> Result<()> {
        for (family, keys) in std::mem::take(&mut self.waiting) {
            if !keys.is_empty() {
                self.send(family, keys).await?;
            }
        }
        while let Some(joined) = self.inflight.join_next().await {
            self.done(joined)?;
        }
        Ok(())
    }
}

impl Store {
    /// How this instance's keys are found: its ledger head's `keys` mark, set by its first event.
    pub async fn key_indexing(&self) -> Result<KeyIndexing> {
        let mark: Option<String> = self.client().hget(self.keys.ledger(), "keys").await?;
        Ok(match mark.as_deref() {
            Some(THREADS_REGISTERED_MARK) => KeyIndexing::ThreadsRegistered,
            Some(INDEXED_MARK) => KeyIndexing::Indexed,
            _ => KeyIndexing::Unindexed,
        })
    }

    /// Whether every key of this instance is reachable from its indexes and key registry.
    pub async fn keys_indexed(&self) -> Result<bool> {
        Ok(self.key_indexing().await? != KeyIndexing::Unindexed)
    }

    /// Deletes every key of this instance **except its lock**, which the destroyer holds while
    /// it works and releases last (see the module doc for the order and the final sweep).
    /// `progress` gets the running number of keys deleted. Returns the counts per family of the
    /// keys deleted, from UNLINK's replies. Memory stays flat: ids are read in chunks.
    pub async fn purge_instance_keys(&self, progress: impl FnMut(u64)) -> Result<FamilyCounts> {
        let indexing = self.key_indexing().await?;
        let clustered = self.client().client_config().server.is_clustered();
        let mut u = Unlinker::new(self.client().clone(), progress);
        let k = &self.keys;
        // Every thread set is in the registry once the mark says so; before (and without a mark),
        // a first version may have its own `thread:<id>`.
        let artifact_keys: &[(&str, &str, &str)] = if indexing == KeyIndexing::ThreadsRegistered {
            &[("artifact", "artifact:", "")]
        } else {
            &[("artifact", "artifact:", ""), ("thread", "thread:", "")]
        };
        self.unlink_indexed(&mut u, &k.artifacts_index(), artifact_keys).await?;
        self.unlink_indexed(&mut u, &k.claims_index(), &[("claim", "claim:", ""), ("bids", "claim:", ":bids")]).await?;
        self.unlink_registered(&mut u).await?;
        u.flush().await?;
        // The fixed keys, in order on one connection: the indexes, the registry and the ledger
        // head go last.
        let lock = k.lock();
        let fixed: Vec<String> = k.fixed().into_iter().filter(|f| *f != lock).collect();
        let p = self.client().pipeline();
        for f in &fixed {
            let _: () = p.unlink(f).await?;
        }
        let deleted: Vec<u64> = p.all().await?;
        for (f, n) in fixed.iter().zip(deleted) {
            u.add(k.family_of(f).to_owned(), n);
        }
        let Unlinker { mut counts, total, mut progress, .. } = u;
        let swept = if clustered {
            self.sweep_slot(|n| progress(total + n)).await?
        } else if indexing == KeyIndexing::Unindexed {
            self.purge_by_scan(|n| progress(total + n)).await?
        } else {
            FamilyCounts::new()
        };
        for (family, n) in swept {
            *counts.entry(family).or_default() += n;
        }
        Ok(counts)
    }

    /// Unlinks, for every id in the sorted set `index`, the key `<prefix><id><suffix>` of each
    /// `(family, prefix, suffix)`. The index itself is left (it goes with the fixed keys), so
    /// paging it by rank is stable while its ids' keys are deleted.
    ///
    /// The next chunk is asked for before this one's keys are queued: on the one connection a
    /// ZRANGE sent after the UNLINKs would wait for them, and Redis would idle while the client
    /// turned its reply into keys. One chunk ahead at most, so memory stays bounded.
    async fn unlink_indexed<F: FnMut(u64)>(
        &self,
        u: &mut Unlinker<F>,
        index: &str,
        shapes: &[(&str, &str, &str)],
    ) -> Result<()> {
        // A JoinSet, not a bare spawn: returning early (an UNLINK failed) drops the read ahead.
        let mut ahead: JoinSet<Result<Vec<String>, fred::error::Error>> = JoinSet::new();
        let read = |ahead: &mut JoinSet<_>, start: i64| {
            let (client, index) = (self.client().clone(), index.to_owned());
            ahead.spawn(
                async move { client.zrange(index, start, start + INDEX_CHUNK - 1, None, false, None, false).await },
            );
        };
        let mut start = 0i64;
        read(&mut ahead, start);
        while let Some(joined) = ahead.join_next().await {
            let ids = joined.map_err(|e| StoreError::Conflict(format!("index read task failed: {e}")))??;
            if ids.len() as i64 == INDEX_CHUNK {
                start += INDEX_CHUNK;
                read(&mut ahead, start);
            }
            for id in &ids {
                for (family, prefix, suffix) in shapes {
                    u.push(family, format!("{}{prefix}{id}{suffix}", self.keys.prefix())).await?;
                }
            }
        }
        Ok(())
    }

    /// Unlinks the keys named in the key registry (never a fixed key: those go last, in order).
    async fn unlink_registered<F: FnMut(u64)>(&self, u: &mut Unlinker<F>) -> Result<()> {
        let fixed = self.keys.fixed();
        let pages = self.client().sscan(self.keys.key_registry(), "*", Some(REGISTRY_PAGE));
        futures::pin_mut!(pages);
        while let Some(mut page) = pages.try_next().await? {
            let names = page.take_results().unwrap_or_default();
            page.next();
            for name in names {
                let Some(name) = name.as_string() else { continue };
                let key = self.keys.relative(&name);
                if fixed.contains(&key) {
                    continue;
                }
                let family = self.keys.family_of(&key).to_owned();
                u.push(&family, key).await?;
            }
        }
        Ok(())
    }

    /// The cluster sweep: every primary is asked for the keys it holds in the instance's slot
    /// (`CLUSTER GETKEYSINSLOT`), and what is there besides the lock is unlinked, until none is.
    async fn sweep_slot(&self, progress: impl FnMut(u64)) -> Result<FamilyCounts> {
        let slot = fred::util::redis_keyslot(self.keys.lock().as_bytes());
        let lock = self.keys.lock();
        let primaries = self.client().cached_cluster_state().map(|s| s.unique_primary_nodes()).unwrap_or_default();
        let mut u = Unlinker::new(self.client().clone(), progress);
        for node in primaries {
            loop {
                let on_node = self.client().with_cluster_node(node.clone());
                let count: u64 = on_node.cluster_count_keys_in_slot(slot).await?;
                if count == 0 {
                    break;
                }
                // The slot may hold other instances' keys too (their hash tags collide): all of
                // it is listed (GETKEYSINSLOT has no cursor), and only this instance's is taken.
                let keys: Vec<String> = on_node.cluster_get_keys_in_slot(slot, count.max(SLOT_PAGE)).await?;
                let left: Vec<String> =
                    keys.into_iter().filter(|key| key.starts_with(self.keys.prefix()) && *key != lock).collect();
                if left.is_empty() {
                    break;
                }
                let before = u.total;
                for key in left {
                    let family = self.keys.family_of(&key).to_owned();
                    u.push(&family, key).await?;
                }
                u.flush().await?;
                if u.total == before {
                    return Err(StoreError::Conflict(format!(
                        "keys of this instance remain on {node} in slot {slot} and cannot be deleted through the slot's owner (a slot migration in progress?); finish it, then run the destroy again"
                    )));
                }
            }
        }
        Ok(u.counts)
    }
}
