//! Retention and archival (`retention:` in sett.yml, `sett archive`, `sett restore`, the
//! orchestrator's periodic pass): finished workflows go into immutable compressed segments
//! ([`segment`]) in a directory or an S3-compatible bucket ([`objects`]) and leave Redis; the
//! event stream is trimmed behind them so that archive + stream stay one hash chain, which
//! `sett verify` walks across both ([`ledger`]).
//!
//! A pass, one at a time (`archive:lock`), each step safe to repeat:
//! 1. finish the pass a crash left (`archive:pending`);
//! 2. replay the live stream after the archive head ([`Replay`]: the orchestrator keeps it
//!    between passes and reads only what was appended since) to find each workflow, its outcome
//!    and when it ended; choose those ended longer than `archive_after` ago with nothing open
//!    (claim, question, follow-up; read [`BATCH`] workflows per pipelined burst), and the events
//!    to archive: from the archive head up to the first event of a workflow that stays (so every
//!    live workflow keeps all its events, all of them after the head);
//! 3. write the plan to `archive:pending`, then the segment; read it back and compare its hash;
//! 4. record its manifest and the new archive head (one MULTI, the plan moves to `recorded`);
//! 5. delete the workflows' records ([`BATCH`] workflows per atomic step, with the key-registry
//!    entries they empty), trim the stream through the archive head (never past what every
//!    consumer group has delivered and acknowledged), clear the plan.
//!
//! A SIGKILL before 4 leaves Redis untouched (the next pass discards the plan and the unrecorded
//! segment); after 4 the next pass repeats 5 from the recorded segment. Nothing is lost (Redis
//! keeps every record until a segment holding it was read back) and nothing is archived twice
//! (a recorded workflow's records are gone from Redis, its events behind the archive head).
//! A pass stops at [`MAX_WORKFLOWS_PER_PASS`] workflows or [`MAX_EVENTS_PER_PASS`] events (a
//! segment stays a few MB); the orchestrator then starts the next one at once.

pub mod ledger;
pub mod objects;
mod plan;
pub mod segment;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sett_core::ArtifactId;
use sett_core::config::{ArchiveShare, ArchiveTarget};
use sett_store::{ArchivedRecord, RelativeKey, Store, StoreError, now_ms};

pub use objects::ArchiveObjects;
pub use plan::Replay;
use plan::plan_pass;
use segment::{FORMAT, Manifest, Segment, SegmentHeader, SegmentLine};

/// Workflows archived per pass at most (a segment stays a few MB).
pub const MAX_WORKFLOWS_PER_PASS: usize = 1_000;
/// Events archived per pass at most.
pub const MAX_EVENTS_PER_PASS: usize = 100_000;
/// The archiving lock's time to live; renewed while a pass runs.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// Events read per page while replaying the stream.
const PAGE: u64 = 1_000;
/// Workflows read per pipelined burst while planning, and deleted per atomic step: a few
/// round trips per hundred workflows, and no single step that holds Redis for long.
pub const BATCH: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("archive store {location}: {reason}")]
    Objects { location: String, reason: String },
    #[error(
        "another archiving pass runs ({holder}); wait for it (a pass that died frees the lock within {}s)",
        LOCK_TTL.as_secs()
    )]
    Busy { holder: String },
    #[error("archive segment {segment}: {problem}")]
    Segment { segment: String, problem: String },
    #[error("{0}")]
    NotFound(String),
    #[error(
        "instance '{0}' has an archive but its location is not recorded; set retention.archive in sett.yml and run the command from the workspace"
    )]
    NoLocation(String),
}

/// The `retention:` policy as a pass applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub archive_after: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// The segment it wrote (none when there was nothing to archive).
    pub segment: Option<String>,
    pub workflows: u64,
    pub events: u64,
    pub records: u64,
    pub bytes: u64,
    /// Ended workflows left in Redis because something of theirs is still open.
    pub open: u64,
    /// Events removed from the stream.
    pub trimmed: u64,
    /// The consumer group that keeps older events in the stream, if one does.
    pub held_by: Option<String>,
    /// Whether it finished a pass a crash had left.
    pub resumed: Option<String>,
    /// It stopped at [`MAX_WORKFLOWS_PER_PASS`] or [`MAX_EVENTS_PER_PASS`] with more to archive.
    pub capped: bool,
}

/// The plan of a pass, in `archive:pending` while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Plan {
    state: PlanState,
    manifest: Manifest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PlanState {
    /// The segment may or may not be stored; nothing in Redis refers to it yet.
    Planned,
    /// Its manifest is recorded: its records are to be deleted and the stream trimmed.
    Recorded,
}

/// The archive lock's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    run_id: String,
    host: String,
    pid: u32,
    started_at: i64,
}

/// Resolves a `retention.archive` target against the workspace (a relative directory).
pub fn resolve_target(target: &ArchiveTarget, workspace: &std::path::Path) -> ArchiveTarget {
    match target {
        ArchiveTarget::Dir(d) => ArchiveTarget::Dir(workspace.join(d).display().to_string()),
        other => other.clone(),
    }
}

/// The archive store an instance's archive was written to (`archive:state` `location`), else
/// `fallback` (the workspace's `retention.archive`), else `None` (no archive anywhere).
pub async fn recorded_objects(
    store: &Store,
    fallback: Option<&ArchiveTarget>,
) -> Result<Option<ArchiveObjects>, ArchiveError> {
    let state = store.archive_state().await?;
    let target = match state.get("location") {
        Some(l) => Some(serde_json::from_str::<ArchiveTarget>(l).map_err(|e| {
            ArchiveError::Store(StoreError::Decode(format!("the archive state's location {l:?}: {e}")))
        })?),
        None => fallback.cloned(),
    };
    target.map(|t| ArchiveObjects::open(&t, store.instance())).transpose()
}

/// Whether the instance has archived anything.
pub async fn has_archive(store: &Store) -> Result<bool, ArchiveError> {
    Ok(!store.archive_segments().await?.is_empty() || store.archive_pending().await?.is_some())
}

/// Runs one archiving pass (see the module doc). `objects` must be the store the instance's
/// archive is in: the pass records its location in `archive:state`.
pub async fn run_pass(store: &Store, objects: &ArchiveObjects, policy: Policy) -> Result<PassReport, ArchiveError> {
    run_pass_with(store, objects, policy, &mut Replay::new()).await
}

/// [`run_pass`] with the replay of the previous passes of this process (see [`Replay`]).
pub async fn run_pass_with(
    store: &Store,
    objects: &ArchiveObjects,
    policy: Policy,
    replay: &mut Replay,
) -> Result<PassReport, ArchiveError> {
    let holder = Holder {
        run_id: format!("{}-{}-{}", crate::destroy::this_host(), std::process::id(), now_ms()),
        host: crate::destroy::this_host(),
        pid: std::process::id(),
        started_at: now_ms(),
    };
    let value = serde_json::to_string(&holder).expect("serializable");
    if let Err(current) = store.acquire_archive_lock(&value, LOCK_TTL.as_millis() as u64).await? {
        // A pass on this host whose process is gone: take over at once instead of waiting.
        let dead = serde_json::from_str::<Holder>(&current)
            .is_ok_and(|h| h.host == holder.host && h.pid != holder.pid && !pid_alive(h.pid));
        if !(dead && store.take_over_archive_lock(&current, &value, LOCK_TTL.as_millis() as u64).await?) {
            // Another process archives: what this one replayed is out of date.
            *replay = Replay::new();
            return Err(ArchiveError::Busy { holder: current });
        }
    }
    let renewer = {
        let store = store.clone();
        let run_id = holder.run_id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                if !matches!(store.renew_archive_lock(&run_id, LOCK_TTL.as_millis() as u64).await, Ok(true)) {
                    tracing::warn!("could not renew the archive lock");
                }
            }
        })
    };
    let started = now_ms();
    let result = pass(store, objects, policy, replay).await;
    renewer.abort();
    if result.is_err() {
        // Whatever the pass did before it failed, the next one starts from what Redis says.
        *replay = Replay::new();
    }
    let mut state = vec![("last_run_ms", started.to_string())];
    match &result {
        Ok(r) => {
            state.push(("last_success_ms", now_ms().to_string()));
            if let Some(g) = &r.held_by {
                state.push(("held_by", g.clone()));
            }
        }
        Err(e) => {
            state.push(("last_error", e.to_string()));
            state.push(("last_error_ms", now_ms().to_string()));
        }
    }
    let _ = store.set_archive_state(state).await;
    if result.as_ref().is_ok_and(|r| r.held_by.is_none()) {
        let _ = store.clear_archive_state_field("held_by").await;
    }
    let _ = store.release_archive_lock(&holder.run_id).await;
    result
}

fn pid_alive(pid: u32) -> bool {
    !std::path::Path::new("/proc/self").exists() || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn pass(
    store: &Store,
    objects: &ArchiveObjects,
    policy: Policy,
    replay: &mut Replay,
) -> Result<PassReport, ArchiveError> {
    let location = serde_json::to_string(objects.target()).expect("serializable");
    store.set_archive_state(vec![("location", location)]).await?;
    let mut report = PassReport::default();
    if let Some(raw) = store.archive_pending().await? {
        let plan: Plan = serde_json::from_str(&raw)
            .map_err(|e| StoreError::Decode(format!("the pending archive pass is not a plan ({e}): {raw}")))?;
        report.resumed = Some(plan.manifest.segment.clone());
        finish(store, objects, plan, None, &mut report).await?;
    }
    let head = store.archive_head().await?.map(|(_, _, id)| id);
    replay.catch_up(store, head.as_deref()).await?;
    let Some((plan, lines)) = plan_pass(store, policy, &mut report, replay).await? else {
        trim(store, &mut report).await?;
        return Ok(report);
    };
    let header = SegmentHeader {
        format: FORMAT.to_owned(),
        instance: store.instance().to_string(),
        segment: plan.manifest.segment.clone(),
        created_ms: plan.manifest.created_ms,
        workflows: plan.manifest.workflows.clone(),
        first_seq: plan.manifest.first_seq,
        last_seq: plan.manifest.last_seq,
    };
    let bytes = segment::encode(&header, &lines)
        .map_err(|e| ArchiveError::Segment { segment: header.segment.clone(), problem: e.to_string() })?;
    let mut plan = plan;
    plan.manifest.sha256 = segment::sha256_hex(&bytes);
    plan.manifest.bytes = bytes.len() as u64;
    store.set_archive_pending(&serde_json::to_string(&plan).expect("serializable")).await?;
    objects.put(&plan.manifest.segment, &bytes).await?;
    drop(bytes);
    let archived = plan.manifest.workflows.clone();
    let new_head = plan.manifest.last_id.clone().or(head);
    finish(store, objects, plan, Some((header, lines)), &mut report).await?;
    replay.archived(&archived, new_head);
    Ok(report)
}

/// Steps 3–5 of a pass for `plan`: read the segment back, record it, delete, trim. `written`:
/// the segment as this pass encoded it (a crash's leftover is decoded from what was stored).
async fn finish(
    store: &Store,
    objects: &ArchiveObjects,
    mut plan: Plan,
    written: Option<(SegmentHeader, Vec<SegmentLine>)>,
    report: &mut PassReport,
) -> Result<(), ArchiveError> {
    let name = plan.manifest.segment.clone();
    let stored = objects.get(&name).await?;
    let intact = stored.as_ref().is_some_and(|b| segment::sha256_hex(b) == plan.manifest.sha256);
    if !intact {
        if plan.state == PlanState::Recorded {
            return Err(ArchiveError::Segment {
                segment: name.clone(),
                problem: format!(
                    "recorded but {} at {}: its records are still in Redis; restore the file from a backup of the archive store",
                    if stored.is_some() { "changed" } else { "missing" },
                    objects.describe(&name)
                ),
            });
        }
        // Never recorded: nothing refers to it. A new pass starts from Redis, which kept everything.
        objects.delete(&name).await?;
        store.clear_archive_pending().await?;
        return Ok(());
    }
    // The stored bytes hash as the plan records, so they are the bytes this pass encoded from
    // `written` (decoding them again would give back the same lines).
    let seg = match written {
        Some((header, lines)) => Segment { header, lines },
        None => segment::decode(stored.as_deref().unwrap_or_default())
            .map_err(|problem| ArchiveError::Segment { segment: name.clone(), problem })?,
    };
    drop(stored);
    if plan.state == PlanState::Planned {
        plan.state = PlanState::Recorded;
        let m = &plan.manifest;
        let head = match (m.last_seq, &m.last_hash, &m.last_id) {
            (Some(s), Some(h), Some(i)) => Some((s, h.as_str(), i.as_str())),
            _ => None,
        };
        store
            .record_archive_segment(
                &name,
                &serde_json::to_string(&m.recorded()).expect("serializable"),
                head,
                &serde_json::to_string(&plan).expect("serializable"),
            )
            .await?;
    }
    let workflows = seg.header.workflows.clone();
    let mut records = seg.into_workflow_records();
    for chunk in workflows.chunks(BATCH) {
        let batch: Vec<&[ArchivedRecord]> =
            chunk.iter().map(|g| records.get(g.as_str()).map_or(&[][..], Vec::as_slice)).collect();
        store.delete_archived(&batch).await?;
        for g in chunk {
            records.remove(g.as_str());
        }
    }
    report.segment = Some(name);
    report.workflows += workflows.len() as u64;
    report.events += plan.manifest.events;
    report.records += plan.manifest.records;
    report.bytes += plan.manifest.bytes;
    trim(store, report).await?;
    store.clear_archive_pending().await?;
    Ok(())
}

/// Trims the stream through the archive head, never past what every consumer group has
/// delivered and acknowledged.
async fn trim(store: &Store, report: &mut PassReport) -> Result<(), ArchiveError> {
    let Some((_, _, head_id)) = store.archive_head().await? else { return Ok(()) };
    let Some(head) = sett_store::parse_stream_id(&head_id) else {
        return Err(StoreError::Decode(format!("the archive head's id {head_id:?}")).into());
    };
    let floor = store.trim_floor().await?;
    let upto = match floor.upto {
        Some(f) if f >= head => head,
        Some(f) => {
            report.held_by = floor.held_by;
            f
        }
        None => {
            report.held_by = floor.held_by;
            return Ok(());
        }
    };
    report.trimmed += store.trim_events_through(&format!("{}-{}", upto.0, upto.1)).await?;
    Ok(())
}

/// Every segment manifest, in order.
pub async fn manifests(store: &Store) -> Result<Vec<Manifest>, ArchiveError> {
    parse_manifests(store.archive_segments().await?)
}

/// Segment manifests as recorded in `archive:segments` (segment name → JSON), in segment order.
pub fn parse_manifests(recorded: BTreeMap<String, String>) -> Result<Vec<Manifest>, ArchiveError> {
    recorded
        .into_iter()
        .map(|(name, m)| {
            serde_json::from_str::<Manifest>(&m)
                .map(|m| if m.workflows.is_empty() { m } else { m.with_goal_range() })
                .map_err(|e| ArchiveError::Segment {
                    segment: name,
                    problem: format!("its manifest in Redis is not valid ({e})"),
                })
        })
        .collect()
}

/// Reads and checks one recorded segment: present, the hash its manifest records, decodable.
pub async fn read_segment(objects: &ArchiveObjects, m: &Manifest) -> Result<Segment, ArchiveError> {
    let bad = |problem: String| ArchiveError::Segment { segment: m.segment.clone(), problem };
    let bytes = objects
        .get(&m.segment)
        .await?
        .ok_or_else(|| bad(format!("missing from the archive store ({})", objects.describe(&m.segment))))?;
    let sha = segment::sha256_hex(&bytes);
    if sha != m.sha256 {
        return Err(bad(format!(
            "its content hash is {sha} but its manifest records {}: the segment was changed",
            m.sha256
        )));
    }
    segment::decode(&bytes).map_err(|e| bad(format!("cannot be read: {e}")))
}

/// The archived events after a stream id, segment by segment (one decoded at a time), for
/// readers of history (`sett watch --since`): the part of the chain the stream was trimmed of.
#[derive(Debug)]
pub struct ArchivedEvents {
    manifests: std::vec::IntoIter<Manifest>,
    after: Option<(u64, u64)>,
    /// The last archived event's stream id: the live stream continues after it.
    pub head_id: Option<String>,
}

impl ArchivedEvents {
    /// The archived events strictly after stream id `after` (`None`: all of them).
    pub async fn after(store: &Store, after: Option<&str>) -> Result<Self, ArchiveError> {
        let after = after.and_then(sett_store::parse_stream_id);
        let head_id = store.archive_head().await?.map(|(_, _, id)| id);
        let later = |m: &Manifest| {
            m.last_id.as_deref().and_then(sett_store::parse_stream_id).is_some_and(|l| after.is_none_or(|a| l > a))
        };
        let manifests: Vec<Manifest> = manifests(store).await?.into_iter().filter(later).collect();
        Ok(Self { manifests: manifests.into_iter(), after, head_id })
    }

    /// The next segment's events (in stream order) with the segment's name; `None` at the end.
    pub async fn next_page(
        &mut self,
        objects: &ArchiveObjects,
    ) -> Result<Option<(String, Vec<sett_store::LedgerEntry>)>, ArchiveError> {
        let Some(m) = self.manifests.next() else { return Ok(None) };
        let seg = read_segment(objects, &m).await?;
        let after = self.after;
        let events = seg
            .lines
            .into_iter()
            .filter_map(|l| match l.record {
                ArchivedRecord::Event { id, fields } => Some((id, fields)),
                _ => None,
            })
            .filter(|(id, _)| after.is_none_or(|a| sett_store::parse_stream_id(id).is_some_and(|i| i > a)))
            .map(|(id, fields)| sett_store::ledger_entry(id, fields.into_iter().collect()))
            .collect();
        Ok(Some((m.segment, events)))
    }
}

/// Where an archived artifact is: its record and the segment holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedArtifact {
    pub segment: String,
    pub workflow: String,
    pub fields: HashMap<String, String>,
}

/// Looks for an artifact in the archive, newest segment first.
pub async fn find_artifact(
    store: &Store,
    objects: &ArchiveObjects,
    id: &ArtifactId,
) -> Result<Option<ArchivedArtifact>, ArchiveError> {
    let key = RelativeKey::artifact(id);
    for m in manifests(store).await?.iter().rev().filter(|m| m.holds_workflows()) {
        let seg = read_segment(objects, m).await?;
        for l in seg.lines {
            if let ArchivedRecord::Hash { key: k, fields } = l.record
                && k == key
            {
                return Ok(Some(ArchivedArtifact {
                    segment: m.segment.clone(),
                    workflow: l.workflow.unwrap_or_default(),
                    fields: fields.into_iter().collect(),
                }));
            }
        }
    }
    Ok(None)
}

/// An archived workflow's artifacts and claims (records as stored) and the segment holding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedWorkflow {
    pub segment: String,
    pub artifacts: Vec<HashMap<String, String>>,
    pub claims: Vec<HashMap<String, String>>,
}

/// Looks for a workflow (by its goal) in the archive: the newest segment that names it.
pub async fn find_workflow(
    store: &Store,
    objects: &ArchiveObjects,
    goal: &ArtifactId,
) -> Result<Option<ArchivedWorkflow>, ArchiveError> {
    let g = goal.to_string();
    let Some((m, seg)) = segment_of_workflow(store, objects, &g).await? else {
        return Ok(None);
    };
    let mut found = ArchivedWorkflow { segment: m.segment, artifacts: Vec::new(), claims: Vec::new() };
    for r in seg.workflow_records(&g) {
        if let ArchivedRecord::Hash { key, fields } = r {
            match RelativeKey::parse(&key) {
                RelativeKey::Artifact(_) => found.artifacts.push(fields.into_iter().collect()),
                RelativeKey::Claim(_) => found.claims.push(fields.into_iter().collect()),
                _ => {}
            }
        }
    }
    Ok(Some(found))
}

/// The newest segment holding the workflow of `goal`, decoded: the segments whose goal range
/// covers it, newest first, until one's header names it.
async fn segment_of_workflow(
    store: &Store,
    objects: &ArchiveObjects,
    goal: &str,
) -> Result<Option<(Manifest, Segment)>, ArchiveError> {
    for m in manifests(store).await?.into_iter().rev().filter(|m| m.may_hold(goal)) {
        let seg = read_segment(objects, &m).await?;
        if seg.header.workflows.iter().any(|g| g == goal) {
            return Ok(Some((m, seg)));
        }
    }
    Ok(None)
}

/// What `sett restore` brought back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub workflow: String,
    pub segment: String,
    pub records: u64,
}

/// Brings an archived workflow's records back into Redis exactly as they were archived, and
/// marks it restored (passes leave it in Redis from then on). Its events stay in the archive:
/// the chain keeps them there, and `sett verify` reads them from it.
pub async fn restore(
    store: &Store,
    objects: &ArchiveObjects,
    goal: &ArtifactId,
    operator: &str,
) -> Result<RestoreReport, ArchiveError> {
    if store.artifact_exists(goal).await? {
        return Err(ArchiveError::NotFound(format!(
            "workflow {goal} is in Redis already (not archived, or restored before): nothing to restore"
        )));
    }
    let g = goal.to_string();
    let Some((m, seg)) = segment_of_workflow(store, objects, &g).await? else {
        return Err(ArchiveError::NotFound(format!(
            "workflow {goal} is not in the archive of instance '{}'; 'sett archive' lists its segments",
            store.instance()
        )));
    };
    let records = seg.workflow_records(&g);
    store.restore_archived(&records).await?;
    let record = serde_json::json!({"segment": m.segment, "operator": operator, "at_ms": now_ms()}).to_string();
    store.mark_restored(goal, &record).await?;
    Ok(RestoreReport { workflow: g, segment: m.segment, records: records.len() as u64 })
}

/// The archive at a glance, for `sett archive` and `sett status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub location: Option<String>,
    pub segments: u64,
    pub bytes: u64,
    pub workflows: u64,
    pub events: u64,
    /// The last archived event (`seq`); the live stream continues after it.
    pub head_seq: Option<u64>,
    pub last_run_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// A pass that did not finish (its segment name).
    pub pending: Option<String>,
    pub held_by: Option<String>,
    pub restored: u64,
}

impl Summary {
    /// Whether the last pass failed (its error is newer than its last success).
    pub fn failing(&self) -> bool {
        self.last_error_ms.is_some_and(|e| self.last_success_ms.is_none_or(|s| e > s))
    }
}

pub async fn summary(store: &Store) -> Result<Summary, ArchiveError> {
    let state = store.archive_state().await?;
    let ms = |k: &str| state.get(k).and_then(|v| v.parse::<i64>().ok());
    let mut s = Summary {
        location: state
            .get("location")
            .map(|l| serde_json::from_str::<ArchiveTarget>(l).map_or_else(|_| l.clone(), |t| t.to_string())),
        last_run_ms: ms("last_run_ms"),
        last_success_ms: ms("last_success_ms"),
        last_error: state.get("last_error").cloned(),
        last_error_ms: ms("last_error_ms"),
        held_by: state.get("held_by").cloned(),
        head_seq: store.archive_head().await?.map(|(s, _, _)| s),
        restored: store.restored_goals().await?.len() as u64,
        ..Summary::default()
    };
    for m in manifests(store).await? {
        s.segments += 1;
        s.bytes += m.bytes;
        s.workflows += m.workflow_count;
        s.events += m.events;
    }
    if let Some(raw) = store.archive_pending().await? {
        s.pending = serde_json::from_str::<Plan>(&raw).ok().map(|p| p.manifest.segment);
    }
    Ok(s)
}

/// `retention:` in the orchestrator: once it holds the instance lock (`ready`), a pass every
/// `every` until `stop`, and the next one at once when a pass stopped at its cap with more to
/// archive — but never before the rest `max_share` asks for after the previous pass (see
/// [`ArchiveShare`]), so passes take at most that share of the orchestrator's time. The passes
/// share one [`Replay`], so each reads only the events appended since the last. A failed pass
/// is logged, recorded in `archive:state` (`sett status` shows it) and retried at the next
/// tick; Redis keeps everything meanwhile.
pub async fn archive_periodically(
    store: Store,
    objects: ArchiveObjects,
    policy: Policy,
    every: Duration,
    max_share: ArchiveShare,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut replay = Replay::new();
    let mut again = false;
    // When the next pass may start, by `max_share`.
    let mut rested_at = tokio::time::Instant::now();
    loop {
        if again {
            if stop.is_cancelled() {
                return;
            }
        } else {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
        }
        again = false;
        if !ready.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        let now = tokio::time::Instant::now();
        if rested_at > now {
            metrics::counter!(sett_core::metrics::ARCHIVE_REST).increment(1);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(rested_at) => {}
            }
        }
        let started = std::time::Instant::now();
        let result = run_pass_with(&store, &objects, policy, &mut replay).await;
        rested_at = tokio::time::Instant::now() + max_share.rest_after(started.elapsed());
        match result {
            Ok(r) => {
                metrics::counter!(sett_core::metrics::ARCHIVE_RUNS, "result" => "ok").increment(1);
                metrics::counter!(sett_core::metrics::ARCHIVE_WORKFLOWS).increment(r.workflows);
                metrics::counter!(sett_core::metrics::ARCHIVE_BYTES).increment(r.bytes);
                metrics::counter!(sett_core::metrics::ARCHIVE_TRIMMED).increment(r.trimmed);
                metrics::gauge!(sett_core::metrics::ARCHIVE_LAST_SUCCESS).set(now_ms() as f64 / 1000.0);
                if r.segment.is_some() || r.trimmed > 0 {
                    tracing::info!(segment = ?r.segment, workflows = r.workflows, events = r.events, bytes = r.bytes, trimmed = r.trimmed, held_by = ?r.held_by, capped = r.capped, seconds = started.elapsed().as_secs_f64(), "archived");
                }
                again = r.capped;
            }
            Err(ArchiveError::Busy { holder }) => {
                tracing::info!(holder, "another archiving pass runs; next try at the next interval");
            }
            Err(e) => {
                metrics::counter!(sett_core::metrics::ARCHIVE_RUNS, "result" => "error").increment(1);
                tracing::warn!(error = %e, "archiving pass failed; Redis keeps everything, retrying at the next interval");
            }
        }
    }
}
