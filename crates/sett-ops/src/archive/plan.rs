//! Step 2 of an archiving pass: the [`Replay`] of the live stream after the archive head
//! (kept between the orchestrator's passes) and the plan drawn from it: which ended workflows
//! with nothing open go into the segment, and which events.

use std::collections::{BTreeMap, HashSet, VecDeque};

use sett_core::ArtifactId;
use sett_store::{Store, StoreError, WorkflowMembers, WorkflowSnapshot, now_ms};

use super::segment::{Manifest, SegmentLine};
use super::{
    ArchiveError, BATCH, MAX_EVENTS_PER_PASS, MAX_WORKFLOWS_PER_PASS, PAGE, PassReport, Plan, PlanState, Policy,
};
use crate::workflow::Workflows;

/// What passes know of the live stream after the archive head: its workflows (membership,
/// outcome, when each ended) and which workflows each event concerns. Every workflow still in
/// Redis has all its events after the head (a pass archives events only up to the first event
/// of a workflow that stays), so the replay never needs what lies before it. The orchestrator
/// keeps one between its passes: each pass then reads only the events appended since the
/// previous one, and forgets what it archived. It starts again from the head whenever the head
/// is not where it left it (another process archived, a crash's pass was finished, a pass
/// failed).
#[derive(Debug, Default)]
pub struct Replay {
    /// The archive head (stream id) it was built from and left at; `None`: not built.
    at: Option<Option<String>>,
    /// The last stream id replayed.
    cursor: Option<String>,
    flows: Workflows,
    /// Each replayed event, in stream order: its id and the goals of the workflows it concerns.
    owned: VecDeque<((u64, u64), Vec<ArtifactId>)>,
}

impl Replay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replays up to the end of the stream, from the archive head `head` (a stream id).
    pub(super) async fn catch_up(&mut self, store: &Store, head: Option<&str>) -> Result<(), ArchiveError> {
        if self.at.as_ref().map(Option::as_deref) != Some(head) {
            *self = Self { at: Some(head.map(str::to_owned)), cursor: head.map(str::to_owned), ..Self::default() };
        }
        loop {
            let page = store.entries_after(self.cursor.as_deref(), PAGE).await?;
            let full = page.len() as u64 >= PAGE;
            for entry in page {
                let (id, owners) = match entry {
                    Ok(e) => {
                        self.flows.observe(&e);
                        let owners = self.flows.owners_of(&e);
                        (e.id, owners)
                    }
                    // An entry Sett cannot read concerns no workflow it knows of.
                    Err(m) => (m.id, Vec::new()),
                };
                let parsed = sett_store::parse_stream_id(&id)
                    .ok_or_else(|| StoreError::Decode(format!("the event stream's id {id:?}")))?;
                self.owned.push_back((parsed, owners));
                self.cursor = Some(id);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Forgets what a pass archived: `workflows`, and the events up to the new archive head.
    pub(super) fn archived(&mut self, workflows: &[String], head: Option<String>) {
        for g in workflows {
            if let Ok(g) = g.parse::<ArtifactId>() {
                self.flows.forget(&g);
            }
        }
        if let Some(h) = head.as_deref().and_then(sett_store::parse_stream_id) {
            while self.owned.front().is_some_and(|(id, _)| *id <= h) {
                self.owned.pop_front();
            }
        }
        self.at = Some(head);
    }
}

/// Step 2: which workflows and events go into this pass's segment (`None`: nothing to do),
/// from `replay` (caught up to the end of the stream).
pub(super) async fn plan_pass(
    store: &Store,
    policy: Policy,
    report: &mut PassReport,
    replay: &mut Replay,
) -> Result<Option<(Plan, Vec<SegmentLine>)>, ArchiveError> {
    let archived_through = store.archive_head().await?;
    let now = now_ms();
    let cutoff = now - policy.archive_after.as_millis() as i64;
    let restored = store.restored_goals().await?;
    let goals: Vec<ArtifactId> = replay.flows.iter().map(|w| w.goal()).collect();
    let mut live: HashSet<ArtifactId> = HashSet::with_capacity(goals.len());
    for (g, exists) in goals.iter().zip(store.artifacts_exist(&goals).await?) {
        if exists {
            live.insert(*g);
        } else {
            // Gone from Redis by other means (archived by another process, destroyed).
            replay.flows.forget(g);
        }
    }
    let flows = &replay.flows;
    let mut due: Vec<(i64, &crate::workflow::Workflow)> = flows
        .iter()
        .filter(|w| live.contains(&w.goal()) && !restored.contains(&w.goal().to_string()))
        .filter_map(|w| w.ended_ms().filter(|t| *t <= cutoff).map(|t| (t, w)))
        .collect();
    due.sort_by_key(|(t, w)| (*t, w.goal()));
    let (executions, outbox) =
        if due.is_empty() { Default::default() } else { store.execution_and_outbox_fields().await? };
    let mut chosen: HashSet<ArtifactId> = HashSet::new();
    let mut lines: Vec<SegmentLine> = Vec::new();
    let mut workflows = Vec::new();
    let mut next = 0;
    while next < due.len() && workflows.len() < MAX_WORKFLOWS_PER_PASS {
        let n = BATCH.min(MAX_WORKFLOWS_PER_PASS - workflows.len()).min(due.len() - next);
        let batch = &due[next..next + n];
        next += n;
        let members: Vec<WorkflowMembers> = batch
            .iter()
            .map(|(_, w)| {
                let mut artifacts: Vec<ArtifactId> = w.artifacts().copied().collect();
                artifacts.sort();
                let mut claims: Vec<_> = w.claims().copied().collect();
                claims.sort();
                WorkflowMembers { goal: w.goal(), artifacts, claims }
            })
            .collect();
        let snapshots = store.workflow_snapshots(&members, &executions, &outbox).await?;
        for (m, snapshot) in members.into_iter().zip(snapshots) {
            match snapshot {
                WorkflowSnapshot::Open(why) => {
                    tracing::debug!(goal = %m.goal, why, "ended workflow kept: something is open");
                    report.open += 1;
                }
                WorkflowSnapshot::Records(records) => {
                    let goal = m.goal.to_string();
                    lines
                        .extend(records.into_iter().map(|record| SegmentLine { workflow: Some(goal.clone()), record }));
                    workflows.push(goal);
                    chosen.insert(m.goal);
                }
            }
        }
    }
    // Events: from the archive head up to the first one of a workflow that stays in Redis.
    let stays = |g: &ArtifactId| live.contains(g) && !chosen.contains(g);
    let owned = &replay.owned;
    let cut = owned
        .iter()
        .take(MAX_EVENTS_PER_PASS)
        .position(|(_, owners)| owners.iter().any(stays))
        .unwrap_or(owned.len().min(MAX_EVENTS_PER_PASS));
    report.capped = next < due.len() || (cut == MAX_EVENTS_PER_PASS && owned.len() > cut);
    // Consumer groups do not bound what is archived, only what is trimmed (`trim`): an archived
    // event a group has not delivered yet stays in the stream until it has.
    if workflows.is_empty() && cut == 0 {
        return Ok(None);
    }
    let mut events: Vec<(String, BTreeMap<String, String>)> = Vec::with_capacity(cut);
    if cut > 0 {
        let (ms, seq) = owned[cut - 1].0;
        let last_id = format!("{ms}-{seq}");
        let mut after = archived_through.as_ref().map(|(_, _, id)| id.clone());
        'read: loop {
            let page = store.raw_events_after(after.as_deref(), PAGE).await?;
            if page.is_empty() {
                break;
            }
            for (id, fields) in page {
                after = Some(id.clone());
                let done = id == last_id;
                events.push((id, fields.into_iter().collect()));
                if done {
                    break 'read;
                }
            }
        }
    }
    let seq = |f: &BTreeMap<String, String>| f.get("seq").and_then(|s| s.parse::<u64>().ok());
    let first = events.first();
    let last = events.last();
    let n = store.next_archive_segment().await?;
    let manifest = Manifest {
        segment: format!("seg-{n:08}"),
        sha256: String::new(),
        bytes: 0,
        created_ms: now,
        workflows,
        records: lines.len() as u64,
        events: events.len() as u64,
        first_seq: first.and_then(|(_, f)| seq(f)),
        last_seq: last.and_then(|(_, f)| seq(f)),
        first_id: first.map(|(id, _)| id.clone()),
        last_id: last.map(|(id, _)| id.clone()),
        prev: first.and_then(|(_, f)| first_prev(f, archived_through.as_ref().map(|(_, hash, _)| hash.as_str()))),
        last_hash: last.and_then(|(_, f)| f.get("hash").cloned()),
        workflow_count: 0,
        first_goal: None,
        last_goal: None,
    }
    .with_goal_range();
    lines.extend(
        events.into_iter().map(|(id, fields)| SegmentLine {
            workflow: None,
            record: sett_store::ArchivedRecord::Event { id, fields },
        }),
    );
    Ok(Some((Plan { state: PlanState::Planned, manifest }, lines)))
}

/// The `prev` a segment's manifest records: the hash its first event links to. Entries written
/// before issue 29 store it; newer ones do not, and it is the archive head's hash (the last
/// archived event's), or the genesis when nothing chained was archived before: the same manifest
/// either way. `None` for an event written before the ledger.
fn first_prev(first: &BTreeMap<String, String>, archive_head: Option<&str>) -> Option<String> {
    if let Some(p) = first.get("prev") {
        return Some(p.clone());
    }
    first.contains_key("hash").then(|| archive_head.unwrap_or(sett_core::ledger::GENESIS).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(f: &[(&str, &str)]) -> BTreeMap<String, String> {
        f.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_segment_records_the_same_prev_for_old_and_new_entries() {
        let h = "ab".repeat(20);
        let old = fields(&[("seq", "8"), ("prev", &h), ("hash", "cd")]);
        let new = fields(&[("seq", "8"), ("hash", "cd")]);
        assert_eq!(first_prev(&old, Some(&h)), Some(h.clone()));
        assert_eq!(first_prev(&new, Some(&h)), Some(h.clone()));
        let genesis = sett_core::ledger::GENESIS.to_owned();
        assert_eq!(
            first_prev(&fields(&[("seq", "1"), ("prev", &genesis), ("hash", "cd")]), None),
            Some(genesis.clone())
        );
        assert_eq!(first_prev(&fields(&[("seq", "1"), ("hash", "cd")]), None), Some(genesis));
        // Written before the ledger: no link.
        assert_eq!(first_prev(&fields(&[("kind", "k")]), None), None);
    }
}
