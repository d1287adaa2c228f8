//! `sett verify` across the archive and Redis: one [`LedgerSource`] whose events are the
//! archived segments' (in segment order) followed by the live stream after the archive head,
//! and whose records are Redis' with the archived ones behind them. The chain check itself is
//! `verify::verify`, unchanged: the first live event's `prev` must be the last archived `hash`.
//!
//! Every segment is checked against its manifest first (present, same SHA-256, readable): a
//! changed byte is reported as a break of that segment. Streamed with flat memory: segments are
//! decoded one at a time (a pass writes at most `MAX_WORKFLOWS_PER_PASS` workflows and
//! `MAX_EVENTS_PER_PASS` events into one), the last [`CACHED_SEGMENTS`] decoded stay, and what is
//! held across the whole archive is a few numbers per segment and the cancellation records.
//! An archived record is looked for in the cached segments, then from the segment the walk is
//! in backwards (a workflow's records are archived in the same pass as its events or before).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use sett_core::ledger::Head;
use sett_store::{ArchivedRecord, RelativeKey, SourceState, Store, parse_stream_id};

use super::segment::Manifest;
use super::{ArchiveError, ArchiveObjects, manifests, read_segment};
use crate::verify::{Breach, LedgerSource, VerifyError};

type Fields = HashMap<String, String>;

/// Decoded segments kept while verifying.
pub const CACHED_SEGMENTS: usize = 3;

/// What one segment holds, decoded for lookups.
#[derive(Debug, Default)]
struct Decoded {
    events: Vec<(String, Fields)>,
    artifacts: HashMap<String, Fields>,
    claims: HashMap<String, Fields>,
    answers: HashMap<String, String>,
    /// Its claims index members, in index order (score, then id).
    claim_index: Vec<String>,
}

impl Decoded {
    fn new(seg: super::segment::Segment) -> (Self, HashMap<String, String>) {
        let mut me = Self::default();
        let mut cancellations = HashMap::new();
        let mut index: Vec<(f64, String)> = Vec::new();
        for l in seg.lines {
            match l.record {
                ArchivedRecord::Event { id, fields } => me.events.push((id, fields.into_iter().collect())),
                ArchivedRecord::Hash { key, fields } => {
                    let fields: Fields = fields.into_iter().collect();
                    match RelativeKey::parse(&key) {
                        RelativeKey::Artifact(id) => {
                            me.artifacts.insert(id.to_owned(), fields);
                        }
                        RelativeKey::Claim(id) => {
                            me.claims.insert(id.to_owned(), fields);
                        }
                        _ => {}
                    }
                }
                ArchivedRecord::Field { key, field, value } => match RelativeKey::parse(&key) {
                    RelativeKey::QuestionAnswers => {
                        me.answers.insert(field, value);
                    }
                    RelativeKey::CancelledWorkflows => {
                        cancellations.insert(field, value);
                    }
                    _ => {}
                },
                ArchivedRecord::Member { key, member, score }
                    if RelativeKey::parse(&key) == RelativeKey::ClaimsIndex =>
                {
                    index.push((score.parse().unwrap_or(0.0), member));
                }
                ArchivedRecord::Member { .. } => {}
            }
        }
        index.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        me.claim_index = index.into_iter().map(|(_, id)| id).collect();
        (me, cancellations)
    }
}

/// Archive + live as one ledger; the live part is Redis ([`Store`]) or an export file.
#[derive(Debug)]
pub struct ArchivedLedger<L: LedgerSource = Store> {
    live: L,
    objects: ArchiveObjects,
    manifests: Vec<Manifest>,
    /// Archived claims per segment (to page through the archived claims index).
    claims_per_segment: Vec<u64>,
    cache: VecDeque<(usize, Arc<Decoded>)>,
    /// Where the walk through archived events is: the last one returned (id, segment, position).
    walk: Option<(String, usize, usize)>,
    /// The segment the walk is in (archived records are looked for from it backwards).
    walk_segment: usize,
    /// Live claims, once a page of the live index came back empty.
    live_claims: Option<usize>,
    /// The last archived event's stream id: live events at or before it are archived already.
    archived_through: Option<String>,
    cancellations: HashMap<String, String>,
    part: ArchivedPart,
    answers: u64,
}

/// What came from the archive, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchivedPart {
    pub segments: u64,
    pub events: u64,
    pub artifacts: u64,
    pub claims: u64,
}

impl ArchivedLedger<Store> {
    /// An instance's archive and Redis. `Ok(Err(breach))` when a segment is missing, changed or
    /// unreadable.
    pub async fn open(store: &Store, objects: &ArchiveObjects) -> Result<Result<Self, Breach>, VerifyError> {
        let manifests = manifests(store).await.map_err(to_verify)?;
        let head = store.archive_head().await?.map(|(_, _, id)| id);
        ArchivedLedger::over(store.clone(), manifests, head, objects).await
    }
}

impl<L: LedgerSource> ArchivedLedger<L> {
    /// The archive (its `manifests` and the last archived event's stream id `head_id`) with `live`
    /// after it. Reads and checks every recorded segment, one at a time.
    pub async fn over(
        live: L,
        manifests: Vec<Manifest>,
        head_id: Option<String>,
        objects: &ArchiveObjects,
    ) -> Result<Result<Self, Breach>, VerifyError> {
        let mut me = Self {
            live,
            objects: objects.clone(),
            claims_per_segment: Vec::with_capacity(manifests.len()),
            manifests,
            cache: VecDeque::new(),
            walk: None,
            walk_segment: 0,
            live_claims: None,
            archived_through: head_id,
            cancellations: HashMap::new(),
            part: ArchivedPart::default(),
            answers: 0,
        };
        for i in 0..me.manifests.len() {
            let seg = match read_segment(objects, &me.manifests[i]).await {
                Ok(s) => s,
                Err(ArchiveError::Segment { segment, problem }) => {
                    return Ok(Err(Breach { record: format!("archive segment {segment}"), problem }));
                }
                Err(e) => return Err(to_verify(e)),
            };
            let (d, cancellations) = Decoded::new(seg);
            me.part.segments += 1;
            me.part.events += d.events.len() as u64;
            me.part.artifacts += d.artifacts.len() as u64;
            me.part.claims += d.claim_index.len() as u64;
            me.answers += d.answers.len() as u64;
            me.claims_per_segment.push(d.claim_index.len() as u64);
            me.cancellations.extend(cancellations);
        }
        me.walk_segment = me.manifests.len().saturating_sub(1);
        Ok(Ok(me))
    }

    /// What the archive contributed.
    pub fn archived_part(&self) -> ArchivedPart {
        self.part.clone()
    }

    /// Segment `i` decoded, from the cache or the archive store.
    async fn segment(&mut self, i: usize) -> Result<Arc<Decoded>, VerifyError> {
        if let Some(pos) = self.cache.iter().position(|(j, _)| *j == i) {
            let hit = self.cache.remove(pos).expect("present");
            let d = hit.1.clone();
            self.cache.push_front(hit);
            return Ok(d);
        }
        // Checked when opened; read again, so checked again (it may have changed since).
        let seg = read_segment(&self.objects, &self.manifests[i]).await.map_err(to_verify)?;
        let d = Arc::new(Decoded::new(seg).0);
        self.cache.push_front((i, d.clone()));
        self.cache.truncate(CACHED_SEGMENTS);
        Ok(d)
    }

    /// Looks up archived records the live lookup did not find: in the cached segments, then
    /// from the walk's segment backwards, then the later ones. `None` where absent everywhere.
    async fn archived<T: Clone>(
        &mut self,
        ids: &[String],
        found: Vec<Option<T>>,
        pick: impl Fn(&Decoded, &str) -> Option<T>,
    ) -> Result<Vec<Option<T>>, VerifyError> {
        let mut out = found;
        let mut missing: Vec<usize> = (0..ids.len()).filter(|i| out[*i].is_none()).collect();
        if missing.is_empty() || self.manifests.is_empty() {
            return Ok(out);
        }
        let cached: Vec<usize> = self.cache.iter().map(|(i, _)| *i).collect();
        let from = self.walk_segment.min(self.manifests.len() - 1);
        let order = cached.into_iter().chain((0..=from).rev()).chain(from + 1..self.manifests.len());
        let mut tried = std::collections::HashSet::new();
        for s in order {
            if missing.is_empty() {
                break;
            }
            if !tried.insert(s) || !self.manifests[s].holds_workflows() {
                continue;
            }
            let d = self.segment(s).await?;
            missing.retain(|i| match pick(&d, &ids[*i]) {
                Some(v) => {
                    out[*i] = Some(v);
                    false
                }
                None => true,
            });
        }
        Ok(out)
    }

    /// The archived segment holding the event with stream id `id` (by the manifests' ranges).
    fn event_segment(&self, id: &str) -> Option<usize> {
        let at = parse_stream_id(id)?;
        self.manifests.iter().position(|m| {
            let first = m.first_id.as_deref().and_then(parse_stream_id);
            let last = m.last_id.as_deref().and_then(parse_stream_id);
            matches!((first, last), (Some(f), Some(l)) if f <= at && at <= l)
        })
    }
}

fn to_verify(e: ArchiveError) -> VerifyError {
    match e {
        ArchiveError::Store(s) => VerifyError::Store(s),
        other => VerifyError::File(other.to_string()),
    }
}

impl<L: LedgerSource> LedgerSource for ArchivedLedger<L> {
    async fn events_after(&mut self, after: Option<&str>, count: usize) -> Result<Vec<(String, Fields)>, VerifyError> {
        // Where in the archive to go on from (`None`: the walk is past the archive).
        let start = match (after, &self.walk) {
            (None, _) => Some((0, 0)),
            (Some(a), Some((last, s, p))) if a == last => Some((*s, p + 1)),
            (Some(a), _) => match self.event_segment(a) {
                Some(s) => {
                    let d = self.segment(s).await?;
                    d.events.iter().position(|(id, _)| id == a).map(|p| (s, p + 1))
                }
                None => None,
            },
        };
        if let Some((mut s, mut p)) = start {
            let mut out = Vec::new();
            while out.is_empty() && s < self.manifests.len() {
                let d = self.segment(s).await?;
                if p < d.events.len() {
                    out.extend(d.events[p..].iter().take(count).cloned());
                    p += out.len();
                    self.walk = out.last().map(|(id, _)| (id.clone(), s, p - 1));
                    self.walk_segment = s;
                } else {
                    s += 1;
                    p = 0;
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
        // The live stream, after the archive head (events archived but not trimmed yet are
        // the archive's).
        self.walk_segment = self.manifests.len().saturating_sub(1);
        let live_after = match (after, start) {
            (Some(a), None) if self.walk.as_ref().is_none_or(|(last, _, _)| last != a) => Some(a.to_owned()),
            _ => self.archived_through.clone(),
        };
        self.live.events_after(live_after.as_deref(), count).await
    }
    async fn artifacts(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        let live = self.live.artifacts(ids).await?;
        self.archived(ids, live, |d, id| d.artifacts.get(id).cloned()).await
    }
    async fn source_states(&mut self, ids: &[String]) -> Result<Vec<SourceState>, VerifyError> {
        let live: Vec<Option<SourceState>> = self
            .live
            .source_states(ids)
            .await?
            .into_iter()
            .map(|s| (!matches!(s, SourceState::Missing)).then_some(s))
            .collect();
        let all = self
            .archived(ids, live, |d, id| {
                d.artifacts
                    .get(id)
                    .map(|f| f.get("hash").map_or(SourceState::Unhashed, |h| SourceState::Hash(h.clone())))
            })
            .await?;
        Ok(all.into_iter().map(|s| s.unwrap_or(SourceState::Missing)).collect())
    }
    async fn answer_records(&mut self, question_ids: &[String]) -> Result<Vec<Option<String>>, VerifyError> {
        let live = self.live.answer_records(question_ids).await?;
        self.archived(question_ids, live, |d, q| d.answers.get(q).cloned()).await
    }
    async fn head(&mut self) -> Result<Option<Head>, VerifyError> {
        self.live.head().await
    }
    async fn claim_ids(&mut self, start: usize, count: usize) -> Result<Vec<String>, VerifyError> {
        if self.live_claims.is_none_or(|n| start < n) {
            let page = self.live.claim_ids(start, count).await?;
            if !page.is_empty() {
                return Ok(page);
            }
            self.live_claims = Some(start);
        }
        // The archived claims index, segment by segment.
        let mut skip = (start - self.live_claims.unwrap_or(0)) as u64;
        for s in 0..self.manifests.len() {
            let n = self.claims_per_segment[s];
            if skip >= n {
                skip -= n;
                continue;
            }
            let d = self.segment(s).await?;
            self.walk_segment = s;
            return Ok(d.claim_index.iter().skip(skip as usize).take(count).cloned().collect());
        }
        Ok(Vec::new())
    }
    async fn claims(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        let live = self.live.claims(ids).await?;
        self.archived(ids, live, |d, id| d.claims.get(id).cloned()).await
    }
    async fn events_by_id(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        let mut out = self.live.events_by_id(ids).await?;
        for (slot, id) in out.iter_mut().zip(ids) {
            if slot.is_none()
                && let Some(s) = self.event_segment(id)
            {
                let d = self.segment(s).await?;
                *slot = d.events.iter().find(|(e, _)| e == id).map(|(_, f)| f.clone());
            }
        }
        Ok(out)
    }
    async fn artifact_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.live.artifact_count().await? + self.part.artifacts)
    }
    /// Only asked for when a count says an artifact was inserted: every id.
    async fn artifact_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        let mut ids = self.live.artifact_ids().await?;
        for s in 0..self.manifests.len() {
            ids.extend(self.segment(s).await?.artifacts.keys().cloned());
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
    async fn answer_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.live.answer_count().await? + self.answers)
    }
    async fn answered_question_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        let mut ids = self.live.answered_question_ids().await?;
        for s in 0..self.manifests.len() {
            ids.extend(self.segment(s).await?.answers.keys().cloned());
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
    async fn cancellation_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        let mut all: BTreeMap<String, String> = self.cancellations.clone().into_iter().collect();
        all.extend(self.live.cancellation_records().await?);
        Ok(all.into_iter().collect())
    }
    /// Action records are never archived: they stay in Redis beside the events they check.
    async fn action_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        self.live.action_records().await
    }
}
