//! The Redis side of archiving (`retention:`): a finished workflow's records read exactly as
//! stored, deleted atomically and put back byte for byte; the event stream trimmed only behind
//! what is archived and what every consumer group has delivered and acknowledged; and the
//! archive's own bookkeeping (`archive:*`: segment manifests, head, pass in progress, lock).
//! What goes into a segment and where it is written is sett-ops' `archive` module.

use std::collections::{BTreeMap, HashMap, HashSet};

use fred::prelude::*;
use fred::types::{Expiration, SetOptions, Value};
use serde::{Deserialize, Serialize};
use sett_core::{ArtifactId, ClaimId, ClaimStatus};

use crate::scripts::{ARCHIVE_DELETE, LOCK_RELEASE, LOCK_RENEW};
use crate::{OutboxEntry, RelativeKey, Result, Store, StoreError};

/// One record of an archived workflow (or one event), exactly as it was stored. Key names are
/// relative to the instance prefix (`artifact:<id>`), as in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum ArchivedRecord {
    /// A whole hash key of the workflow (an artifact, a claim, a claim's bids).
    Hash { key: String, fields: BTreeMap<String, String> },
    /// One field of a hash shared by every workflow (answers, executions, indexes).
    Field { key: String, field: String, value: String },
    /// One member of a sorted set shared by every workflow, with its score as Redis prints it.
    Member { key: String, member: String, score: String },
    /// One entry of the event stream: its id and every field.
    Event { id: String, fields: BTreeMap<String, String> },
}

/// The artifacts and claims of one workflow (from the event stream's membership rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowMembers {
    pub goal: ArtifactId,
    pub artifacts: Vec<ArtifactId>,
    pub claims: Vec<ClaimId>,
}

/// A workflow's records as read for archiving, or why it cannot be archived now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowSnapshot {
    Records(Vec<ArchivedRecord>),
    /// Something is still open (a claim, a question, a follow-up): never archived in this state.
    Open(String),
}

/// What the consumer groups of the event stream allow to be trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimFloor {
    /// The newest entry every group has delivered and none holds pending; `None` when a group
    /// has delivered nothing (nothing may go). No groups at all: no limit (`Some(u64::MAX…)`).
    pub upto: Option<(u64, u64)>,
    /// The group that sets the limit, for `sett status`.
    pub held_by: Option<String>,
}

/// A stream id `ms-seq` as numbers (ordered like Redis orders them).
pub fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn format_stream_id(id: (u64, u64)) -> String {
    format!("{}-{}", id.0, id.1)
}

/// The smallest stream id after `id`.
fn next_stream_id(id: (u64, u64)) -> (u64, u64) {
    if id.1 == u64::MAX { (id.0 + 1, 0) } else { (id.0, id.1 + 1) }
}

/// The largest stream id before `id`.
fn previous_stream_id(id: (u64, u64)) -> (u64, u64) {
    if id.1 == 0 { (id.0.saturating_sub(1), u64::MAX) } else { (id.0, id.1 - 1) }
}

impl Store {
    /// Reads every record of `m` exactly as stored, unless something of it is still open: a
    /// claim not final, a question without an answer, a follow-up in the outbox. `executions`
    /// are the field names of that hash and `outbox` the claims with entries in the outbox (read
    /// once per pass by the caller).
    pub async fn workflow_snapshot(
        &self,
        m: &WorkflowMembers,
        executions: &[String],
        outbox: &HashSet<ClaimId>,
    ) -> Result<WorkflowSnapshot> {
        let mut all = self.workflow_snapshots(std::slice::from_ref(m), executions, outbox).await?;
        Ok(all.pop().unwrap_or(WorkflowSnapshot::Records(Vec::new())))
    }

    /// [`Store::workflow_snapshot`] of several workflows in three pipelined bursts in all (the
    /// records, the shared indexes, the executions), one snapshot per workflow in order: a pass
    /// reads a thousand workflows in a few round trips instead of three each.
    pub async fn workflow_snapshots(
        &self,
        ms: &[WorkflowMembers],
        executions: &[String],
        outbox: &HashSet<ClaimId>,
    ) -> Result<Vec<WorkflowSnapshot>> {
        let k = &self.keys;
        let rel = |key: String| key.strip_prefix(k.prefix()).map(str::to_owned).unwrap_or(key);
        let c = self.client();
        if ms.is_empty() {
            return Ok(Vec::new());
        }
        // 1. Every artifact, claim and bids hash.
        let p = c.pipeline();
        for m in ms {
            for a in &m.artifacts {
                let _: () = p.hgetall(k.artifact(a)).await?;
            }
            for cl in &m.claims {
                let _: () = p.hgetall(k.claim(cl)).await?;
                let _: () = p.hgetall(k.bids(cl)).await?;
            }
        }
        let first: Vec<Value> = p.all().await?;
        let mut first = first.into_iter();
        /// One workflow between the bursts: its records so far, or why it stays.
        struct Reading {
            records: Vec<ArchivedRecord>,
            artifacts: Vec<(ArtifactId, BTreeMap<String, String>)>,
            claims: Vec<ClaimId>,
            open: Option<String>,
        }
        let mut readings = Vec::with_capacity(ms.len());
        for m in ms {
            let mut r = Reading { records: Vec::new(), artifacts: Vec::new(), claims: Vec::new(), open: None };
            for a in &m.artifacts {
                let fields: BTreeMap<String, String> = first.next().unwrap_or(Value::Null).convert()?;
                if !fields.is_empty() {
                    r.artifacts.push((*a, fields));
                }
            }
            for cl in &m.claims {
                let fields: BTreeMap<String, String> = first.next().unwrap_or(Value::Null).convert()?;
                let bids: BTreeMap<String, String> = first.next().unwrap_or(Value::Null).convert()?;
                if fields.is_empty() || r.open.is_some() {
                    continue;
                }
                let status = fields.get("status").and_then(|s| s.parse::<ClaimStatus>().ok());
                if !status.is_some_and(ClaimStatus::is_final) {
                    r.open = Some(format!(
                        "claim {cl} is {}",
                        fields.get("status").map_or("without a status", String::as_str)
                    ));
                    continue;
                }
                if outbox.contains(cl) {
                    r.open = Some(format!("claim {cl} has follow-ups in the outbox"));
                    continue;
                }
                r.records.push(ArchivedRecord::Hash { key: rel(k.claim(cl)), fields });
                if !bids.is_empty() {
                    r.records.push(ArchivedRecord::Hash { key: rel(k.bids(cl)), fields: bids });
                }
                r.claims.push(*cl);
            }
            readings.push(r);
        }
        // 2. The shared indexes of the workflows not found open.
        let p = c.pipeline();
        for (m, r) in ms.iter().zip(&readings).filter(|(_, r)| r.open.is_none()) {
            for (a, f) in &r.artifacts {
                let _: () = p.zscore(k.artifacts_index(), a.to_string()).await?;
                let _: () = p.hget(k.claim_by_artifact(), a.to_string()).await?;
                let _: () = p.zscore(k.open_questions(), a.to_string()).await?;
                let _: () = p.hget(k.question_answers(), a.to_string()).await?;
                let thread = f.get("logical_id").map(|l| k.relative(&format!("thread:{l}"))).unwrap_or_default();
                let _: () = p.zscore(thread, a.to_string()).await?;
            }
            for cl in &r.claims {
                let _: () = p.zscore(k.claims_index(), cl.to_string()).await?;
                let _: () = p.zscore(k.deadlines(), cl.to_string()).await?;
            }
            let _: () = p.hget(k.cancelled_workflows(), m.goal.to_string()).await?;
            let _: () = p.hget(k.notify_workflows(), m.goal.to_string()).await?;
        }
        let second: Vec<Value> = p.all().await?;
        let mut second = second.into_iter();
        let mut next = || second.next().unwrap_or(Value::Null).as_string();
        for (m, r) in ms.iter().zip(readings.iter_mut()).filter(|(_, r)| r.open.is_none()) {
            for (a, f) in std::mem::take(&mut r.artifacts) {
                let id = a.to_string();
                let logical = f.get("logical_id").cloned();
                let index = next();
                let claim = next();
                let open = next();
                let answer = next();
                let thread = next();
                if open.is_some() && r.open.is_none() {
                    r.open = Some(format!("question {a} is open"));
                }
                r.records.push(ArchivedRecord::Hash { key: rel(k.artifact(&a)), fields: f });
                if let Some(s) = index {
                    r.records.push(ArchivedRecord::Member {
                        key: rel(k.artifacts_index()),
                        member: id.clone(),
                        score: s,
                    });
                }
                if let Some(v) = claim {
                    r.records.push(ArchivedRecord::Field {
                        key: rel(k.claim_by_artifact()),
                        field: id.clone(),
                        value: v,
                    });
                }
                if let Some(v) = answer {
                    r.records.push(ArchivedRecord::Field {
                        key: rel(k.question_answers()),
                        field: id.clone(),
                        value: v,
                    });
                }
                if let (Some(s), Some(l)) = (thread, logical) {
                    r.records.push(ArchivedRecord::Member { key: format!("thread:{l}"), member: id, score: s });
                }
            }
            for cl in &r.claims {
                let id = cl.to_string();
                if let Some(s) = next() {
                    r.records.push(ArchivedRecord::Member { key: rel(k.claims_index()), member: id.clone(), score: s });
                }
                if let Some(s) = next() {
                    r.records.push(ArchivedRecord::Member { key: rel(k.deadlines()), member: id, score: s });
                }
            }
            if let Some(v) = next() {
                r.records.push(ArchivedRecord::Field {
                    key: rel(k.cancelled_workflows()),
                    field: m.goal.to_string(),
                    value: v,
                });
            }
            if let Some(v) = next() {
                r.records.push(ArchivedRecord::Field {
                    key: rel(k.notify_workflows()),
                    field: m.goal.to_string(),
                    value: v,
                });
            }
        }
        // 3. Executions of the workflows' grants (`<claim>:<seq>`), matched by claim once for
        // the whole batch.
        let mut by_claim: HashMap<&str, Vec<&String>> = HashMap::new();
        for f in executions {
            if let Some((claim, _)) = f.split_once(':') {
                by_claim.entry(claim).or_default().push(f);
            }
        }
        let mut wanted: Vec<(usize, &String)> = Vec::new();
        for (i, r) in readings.iter().enumerate().filter(|(_, r)| r.open.is_none()) {
            for cl in &r.claims {
                let id = cl.to_string();
                wanted.extend(by_claim.get(id.as_str()).into_iter().flatten().map(|f| (i, *f)));
            }
        }
        if !wanted.is_empty() {
            let values: Vec<Option<String>> =
                c.hmget(k.executions(), wanted.iter().map(|(_, f)| (*f).clone()).collect::<Vec<_>>()).await?;
            for ((i, f), v) in wanted.into_iter().zip(values) {
                if let Some(v) = v {
                    readings[i].records.push(ArchivedRecord::Field {
                        key: rel(k.executions()),
                        field: f.clone(),
                        value: v,
                    });
                }
            }
        }
        Ok(readings
            .into_iter()
            .map(|r| match r.open {
                Some(why) => WorkflowSnapshot::Open(why),
                None => WorkflowSnapshot::Records(r.records),
            })
            .collect())
    }

    /// Field names of the `executions` hash and the claims with follow-ups in the outbox (what
    /// a pass matches claims against). An outbox entry whose name does not parse counts for no
    /// claim: the orchestrator drops it.
    pub async fn execution_and_outbox_fields(&self) -> Result<(Vec<String>, HashSet<ClaimId>)> {
        let c = self.client();
        let (e, o): (Vec<String>, Vec<String>) =
            futures::future::try_join(c.hkeys(self.keys.executions()), c.hkeys(self.keys.outbox())).await?;
        Ok((e, o.into_iter().filter_map(|f| OutboxEntry::from_field(f).claim()).collect()))
    }

    /// Which of `ids` still have an artifact record (one pipelined burst).
    pub async fn artifacts_exist(&self, ids: &[ArtifactId]) -> Result<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let p = self.client().pipeline();
        for id in ids {
            let _: () = p.exists(self.keys.artifact(id)).await?;
        }
        let all: Vec<u64> = p.all().await?;
        Ok(all.into_iter().map(|n| n > 0).collect())
    }

    /// Deletes archived workflows' records (`workflows`: each one's records) in one atomic step
    /// (all or nothing): whole hashes, the fields and members they own in shared keys; and each
    /// emptied key the key registry may name leaves it in the same step (see
    /// `lua/archive_delete.lua`). Events are not deleted here (the stream is trimmed, see
    /// [`Store::trim_events_through`]). Deleting what is already gone is a no-op, so a pass that
    /// died mid-way repeats this safely.
    pub async fn delete_archived(&self, workflows: &[&[ArchivedRecord]]) -> Result<()> {
        let fixed: HashSet<String> = self.keys.fixed().into_iter().collect();
        let mut keys = vec![self.keys.key_registry()];
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut args: Vec<String> = Vec::new();
        let mut registered: Vec<&str> = Vec::new();
        for r in workflows.iter().flat_map(|w| w.iter()) {
            let (op, key, arg) = match r {
                ArchivedRecord::Hash { key, .. } => ("D", key, ""),
                ArchivedRecord::Field { key, field, .. } => ("H", key, field.as_str()),
                ArchivedRecord::Member { key, member, .. } => ("Z", key, member.as_str()),
                ArchivedRecord::Event { .. } => continue,
            };
            let i = *index.entry(key.as_str()).or_insert_with(|| {
                let full = self.keys.relative(key);
                // Artifacts and claims are reached from the indexes, never named in the registry.
                let named = !fixed.contains(&full)
                    && !matches!(RelativeKey::parse(key), RelativeKey::Artifact(_) | RelativeKey::Claim(_));
                if named {
                    registered.push(key.as_str());
                }
                keys.push(full);
                keys.len()
            });
            args.extend([op.to_owned(), i.to_string(), arg.to_owned()]);
        }
        if args.is_empty() {
            return Ok(());
        }
        for key in registered {
            args.extend(["R".to_owned(), index[key].to_string(), key.to_owned()]);
        }
        let _: i64 = ARCHIVE_DELETE.evalsha_with_reload(self.client(), keys, args).await?;
        Ok(())
    }

    /// Puts archived records back exactly as they were, in one MULTI (`sett restore`). Events are
    /// not put back: the stream keeps its order and the chain its links; they stay archived.
    /// Every key a record may create that is not a fixed key joins the key registry in the same
    /// MULTI (destroy reaches it whatever indexes the records carry).
    pub async fn restore_archived(&self, records: &[ArchivedRecord]) -> Result<()> {
        let tx = self.client().multi();
        let fixed = self.keys.fixed();
        let mut named = std::collections::BTreeSet::new();
        for r in records {
            check_relative_key(r)?;
            if let ArchivedRecord::Hash { key, .. }
            | ArchivedRecord::Field { key, .. }
            | ArchivedRecord::Member { key, .. } = r
                && !fixed.contains(&self.keys.relative(key))
            {
                named.insert(key.as_str());
            }
            match r {
                ArchivedRecord::Hash { key, fields } => {
                    let key = self.keys.relative(key);
                    let _: () = tx.del(&key).await?;
                    if !fields.is_empty() {
                        let _: () = tx.hset(&key, fields.clone().into_iter().collect::<Vec<_>>()).await?;
                    }
                }
                ArchivedRecord::Field { key, field, value } => {
                    let _: () = tx.hset(self.keys.relative(key), (field.as_str(), value.as_str())).await?;
                }
                ArchivedRecord::Member { key, member, score } => {
                    let s: f64 = score.parse().map_err(|_| {
                        StoreError::Decode(format!("archived member {member} of {key}: score {score:?}"))
                    })?;
                    let _: () =
                        tx.zadd(self.keys.relative(key), None, None, false, false, (s, member.as_str())).await?;
                }
                ArchivedRecord::Event { .. } => {}
            }
        }
        if !named.is_empty() {
            let _: () = tx.sadd(self.keys.key_registry(), named.into_iter().collect::<Vec<_>>()).await?;
        }
        let _: Value = tx.exec(true).await?;
        Ok(())
    }

    /// What the consumer groups allow to be trimmed: the newest entry every group has delivered
    /// (`XINFO GROUPS` last-delivered-id) and that is older than every entry a group still holds
    /// pending (`XPENDING` smallest id). A lagging cub or notifier loses nothing.
    pub async fn trim_floor(&self) -> Result<TrimFloor> {
        let key = self.keys.events();
        let exists: u64 = self.client().exists(&key).await?;
        if exists == 0 {
            return Ok(TrimFloor { upto: Some((u64::MAX, u64::MAX)), held_by: None });
        }
        let groups: Vec<HashMap<String, Value>> = self.client().xinfo_groups(&key).await?;
        let mut floor = TrimFloor { upto: Some((u64::MAX, u64::MAX)), held_by: None };
        for g in groups {
            let name = g.get("name").and_then(Value::as_string).unwrap_or_default();
            let delivered = g.get("last-delivered-id").and_then(Value::as_string).unwrap_or_default();
            let mut limit = parse_stream_id(&delivered);
            let pending: Value = self.client().xpending(&key, name.as_str(), ()).await?;
            if let Value::Array(summary) = pending
                && let Some(min) = summary.get(1).and_then(Value::as_string)
                && let Some(min) = parse_stream_id(&min)
            {
                let before = previous_stream_id(min);
                limit = limit.map(|l| l.min(before));
            }
            let limit = limit.filter(|l| *l != (0, 0));
            let lower = match (limit, floor.upto) {
                (None, _) => true,
                (Some(l), Some(f)) => l < f,
                (Some(_), None) => false,
            };
            if lower {
                floor = TrimFloor { upto: limit, held_by: Some(name) };
            }
        }
        Ok(floor)
    }

    /// Removes every event up to and including `last_id` (XTRIM MINID, exact). The caller trims
    /// only what is archived, read back and behind every consumer group ([`Store::trim_floor`]).
    pub async fn trim_events_through(&self, last_id: &str) -> Result<u64> {
        let id = parse_stream_id(last_id).ok_or_else(|| StoreError::Decode(format!("stream id {last_id:?}")))?;
        let min = format_stream_id(next_stream_id(id));
        let n: u64 = self
            .client()
            .custom(fred::cmd!("XTRIM"), vec![self.keys.events(), "MINID".to_owned(), "=".to_owned(), min])
            .await?;
        Ok(n)
    }

    /// The id of the oldest event still in the stream.
    pub async fn first_event_id(&self) -> Result<Option<String>> {
        let entries: Vec<(String, HashMap<String, String>)> =
            self.client().xrange_values(self.keys.events(), "-", "+", Some(1)).await?;
        Ok(entries.into_iter().next().map(|(id, _)| id))
    }

    /// Takes the archiving lock (`holder` is JSON with a `run_id`) unless someone holds it;
    /// returns the holder's JSON when refused.
    pub async fn acquire_archive_lock(&self, holder: &str, ttl_ms: u64) -> Result<Result<(), String>> {
        let set: Option<String> = self
            .client()
            .set(self.keys.archive_lock(), holder, Some(Expiration::PX(ttl_ms as i64)), Some(SetOptions::NX), false)
            .await?;
        if set.is_some() {
            return Ok(Ok(()));
        }
        let current: Option<String> = self.client().get(self.keys.archive_lock()).await?;
        Ok(Err(current.unwrap_or_default()))
    }

    /// Replaces the archiving lock's holder `previous` (a pass that died) with `holder`, only if
    /// `previous` still holds it.
    pub async fn take_over_archive_lock(&self, previous: &str, holder: &str, ttl_ms: u64) -> Result<bool> {
        let c = self.client();
        let current: Option<String> = c.get(self.keys.archive_lock()).await?;
        if current.as_deref() != Some(previous) {
            return Ok(false);
        }
        let _: () = c.set(self.keys.archive_lock(), holder, Some(Expiration::PX(ttl_ms as i64)), None, false).await?;
        Ok(true)
    }

    pub async fn renew_archive_lock(&self, run_id: &str, ttl_ms: u64) -> Result<bool> {
        let n: i64 = LOCK_RENEW
            .evalsha_with_reload(
                self.client(),
                vec![self.keys.archive_lock()],
                vec![run_id.to_owned(), ttl_ms.to_string()],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn release_archive_lock(&self, run_id: &str) -> Result<bool> {
        let n: i64 = LOCK_RELEASE
            .evalsha_with_reload(self.client(), vec![self.keys.archive_lock()], vec![run_id.to_owned()])
            .await?;
        Ok(n == 1)
    }

    /// The plan of the archiving pass in progress (JSON), if one did not finish.
    pub async fn archive_pending(&self) -> Result<Option<String>> {
        Ok(self.client().get(self.keys.archive_pending()).await?)
    }

    pub async fn set_archive_pending(&self, plan: &str) -> Result<()> {
        let _: () = self.client().set(self.keys.archive_pending(), plan, None, None, false).await?;
        Ok(())
    }

    pub async fn clear_archive_pending(&self) -> Result<()> {
        let _: () = self.client().del(self.keys.archive_pending()).await?;
        Ok(())
    }

    /// Records a segment that was written and read back, in one MULTI: its manifest, the new
    /// archive head (when it holds events) and the pass's plan in its next state.
    pub async fn record_archive_segment(
        &self,
        name: &str,
        manifest: &str,
        head: Option<(u64, &str, &str)>,
        plan: &str,
    ) -> Result<()> {
        let tx = self.client().multi();
        let _: () = tx.hset(self.keys.archive_segments(), (name, manifest)).await?;
        if let Some((seq, hash, id)) = head {
            let _: () = tx
                .hset(
                    self.keys.archive_head(),
                    vec![("seq", seq.to_string()), ("hash", hash.to_owned()), ("id", id.to_owned())],
                )
                .await?;
        }
        let _: () = tx.set(self.keys.archive_pending(), plan, None, None, false).await?;
        let _: Value = tx.exec(true).await?;
        Ok(())
    }

    /// Every segment manifest (JSON), by segment name in order.
    pub async fn archive_segments(&self) -> Result<BTreeMap<String, String>> {
        let m: HashMap<String, String> = self.client().hgetall(self.keys.archive_segments()).await?;
        Ok(m.into_iter().collect())
    }

    pub async fn archive_segment(&self, name: &str) -> Result<Option<String>> {
        Ok(self.client().hget(self.keys.archive_segments(), name).await?)
    }

    /// The last archived event: `(seq, hash, id)`.
    pub async fn archive_head(&self) -> Result<Option<(u64, String, String)>> {
        let (seq, hash, id): (Option<u64>, Option<String>, Option<String>) =
            self.client().hmget(self.keys.archive_head(), vec!["seq", "hash", "id"]).await?;
        Ok(match (seq, hash, id) {
            (Some(s), Some(h), Some(i)) => Some((s, h, i)),
            _ => None,
        })
    }

    /// The archive's bookkeeping fields (`location`, `next_segment`, `last_run_ms`, …).
    pub async fn archive_state(&self) -> Result<BTreeMap<String, String>> {
        let m: HashMap<String, String> = self.client().hgetall(self.keys.archive_state()).await?;
        Ok(m.into_iter().collect())
    }

    pub async fn set_archive_state(&self, fields: Vec<(&str, String)>) -> Result<()> {
        let _: () = self.client().hset(self.keys.archive_state(), fields).await?;
        Ok(())
    }

    pub async fn clear_archive_state_field(&self, field: &str) -> Result<()> {
        let _: () = self.client().hdel(self.keys.archive_state(), field).await?;
        Ok(())
    }

    /// A new segment number (1, 2, …).
    pub async fn next_archive_segment(&self) -> Result<u64> {
        Ok(self.client().hincrby(self.keys.archive_state(), "next_segment", 1).await?)
    }

    /// Records that `goal` was brought back (`record` is JSON): passes leave it in Redis.
    pub async fn mark_restored(&self, goal: &ArtifactId, record: &str) -> Result<()> {
        let _: () = self.client().hset(self.keys.archive_restored(), (goal.to_string(), record)).await?;
        Ok(())
    }

    pub async fn restored_goals(&self) -> Result<HashSet<String>> {
        let keys: Vec<String> = self.client().hkeys(self.keys.archive_restored()).await?;
        Ok(keys.into_iter().collect())
    }
}

/// An archived record may only name a key of the instance: no glob or hash-tag characters.
fn check_relative_key(r: &ArchivedRecord) -> Result<()> {
    let key = match r {
        ArchivedRecord::Hash { key, .. } | ArchivedRecord::Field { key, .. } | ArchivedRecord::Member { key, .. } => {
            key
        }
        ArchivedRecord::Event { .. } => return Ok(()),
    };
    if key.is_empty() || key.contains(['*', '?', '[', ']', '{', '}']) {
        return Err(StoreError::Decode(format!("refusing to restore key name {key:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_step_both_ways() {
        assert_eq!(parse_stream_id("17-3"), Some((17, 3)));
        assert_eq!(parse_stream_id("17"), None);
        assert_eq!(next_stream_id((17, 3)), (17, 4));
        assert_eq!(previous_stream_id((17, 0)), (16, u64::MAX));
        assert_eq!(format_stream_id((5, 0)), "5-0");
    }
}
