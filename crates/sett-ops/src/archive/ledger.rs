//! `sett verify` across the archive and Redis: one [`LedgerSource`] whose events are the
//! archived segments' (in segment order) followed by the live stream after the archive head,
//! and whose records are Redis' with the archived ones behind them. The chain check itself is
//! `verify::verify`, unchanged: the first live event's `prev` must be the last archived `hash`.
//!
//! Every segment is checked against its manifest first (present, same SHA-256, readable): a
//! changed byte is reported as a break of that segment. The archived records are held in
//! memory while verifying (in proportion to the archive; the live part streams as before).

use std::collections::{BTreeMap, HashMap};

use sett_core::ledger::Head;
use sett_store::{ArchivedRecord, SourceState, Store};

use super::{ArchiveError, ArchiveObjects, manifests, read_segment};
use crate::verify::{Breach, LedgerSource, VerifyError};

type Fields = HashMap<String, String>;

/// Archive + live as one ledger.
#[derive(Debug)]
pub struct ArchivedLedger {
    store: Store,
    events: Vec<(String, Fields)>,
    event_pos: HashMap<String, usize>,
    artifacts: HashMap<String, Fields>,
    answers: HashMap<String, String>,
    cancellations: HashMap<String, String>,
    claims: HashMap<String, Fields>,
    /// Archived claim ids by their index score, in index order.
    claim_index: Vec<String>,
    live_claims: Option<usize>,
    /// The last archived event's stream id: live events at or before it are archived already.
    archived_through: Option<String>,
    pub segments: u64,
}

/// What came from the archive, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchivedPart {
    pub segments: u64,
    pub events: u64,
    pub artifacts: u64,
    pub claims: u64,
}

impl ArchivedLedger {
    /// Reads and checks every recorded segment. `Ok(Err(breach))` when a segment is missing,
    /// changed or unreadable.
    pub async fn open(store: &Store, objects: &ArchiveObjects) -> Result<Result<Self, Breach>, VerifyError> {
        let mut me = Self {
            store: store.clone(),
            events: Vec::new(),
            event_pos: HashMap::new(),
            artifacts: HashMap::new(),
            answers: HashMap::new(),
            cancellations: HashMap::new(),
            claims: HashMap::new(),
            claim_index: Vec::new(),
            live_claims: None,
            archived_through: store.archive_head().await?.map(|(_, _, id)| id),
            segments: 0,
        };
        let manifests = manifests(store).await.map_err(to_verify)?;
        let mut index: Vec<(f64, String)> = Vec::new();
        for m in &manifests {
            let seg = match read_segment(objects, m).await {
                Ok(s) => s,
                Err(ArchiveError::Segment { segment, problem }) => {
                    return Ok(Err(Breach { record: format!("archive segment {segment}"), problem }));
                }
                Err(e) => return Err(to_verify(e)),
            };
            me.segments += 1;
            for l in seg.lines {
                match l.record {
                    ArchivedRecord::Event { id, fields } => {
                        me.event_pos.insert(id.clone(), me.events.len());
                        me.events.push((id, fields.into_iter().collect()));
                    }
                    ArchivedRecord::Hash { key, fields } => {
                        let fields: Fields = fields.into_iter().collect();
                        if let Some(id) = key.strip_prefix("artifact:") {
                            me.artifacts.insert(id.to_owned(), fields);
                        } else if let Some(id) = key.strip_prefix("claim:").filter(|r| !r.ends_with(":bids")) {
                            me.claims.insert(id.to_owned(), fields);
                        }
                    }
                    ArchivedRecord::Field { key, field, value } => match key.as_str() {
                        "questions:answers" => {
                            me.answers.insert(field, value);
                        }
                        "workflows:cancelled" => {
                            me.cancellations.insert(field, value);
                        }
                        _ => {}
                    },
                    ArchivedRecord::Member { key, member, score } if key == "index:claims" => {
                        index.push((score.parse().unwrap_or(0.0), member));
                    }
                    ArchivedRecord::Member { .. } => {}
                }
            }
        }
        index.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        me.claim_index = index.into_iter().map(|(_, id)| id).collect();
        Ok(Ok(me))
    }

    /// What the archive contributed.
    pub fn archived_part(&self) -> ArchivedPart {
        ArchivedPart {
            segments: self.segments,
            events: self.events.len() as u64,
            artifacts: self.artifacts.len() as u64,
            claims: self.claims.len() as u64,
        }
    }

    async fn live_claims(&mut self) -> Result<usize, VerifyError> {
        if let Some(n) = self.live_claims {
            return Ok(n);
        }
        let n = self.store.claim_ids().await?.len();
        self.live_claims = Some(n);
        Ok(n)
    }
}

fn to_verify(e: ArchiveError) -> VerifyError {
    match e {
        ArchiveError::Store(s) => VerifyError::Store(s),
        other => VerifyError::File(other.to_string()),
    }
}

/// Fills the gaps of a live lookup from the archive.
fn fill(live: Vec<Option<Fields>>, ids: &[String], archived: &HashMap<String, Fields>) -> Vec<Option<Fields>> {
    live.into_iter().zip(ids).map(|(l, id)| l.or_else(|| archived.get(id).cloned())).collect()
}

impl LedgerSource for ArchivedLedger {
    async fn events_after(&mut self, after: Option<&str>, count: usize) -> Result<Vec<(String, Fields)>, VerifyError> {
        let start = match after {
            None => Some(0),
            Some(a) => self.event_pos.get(a).map(|i| i + 1),
        };
        if let Some(start) = start
            && start < self.events.len()
        {
            return Ok(self.events.iter().skip(start).take(count).cloned().collect());
        }
        // The live stream, after the archive head (events archived but not trimmed yet are
        // the archive's).
        let live_after = match (after, start) {
            (Some(a), None) => Some(a.to_owned()),
            _ => self.archived_through.clone(),
        };
        Ok(self.store.raw_events_after(live_after.as_deref(), count as u64).await?)
    }
    async fn artifacts(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        Ok(fill(self.store.raw_artifacts(ids).await?, ids, &self.artifacts))
    }
    async fn source_states(&mut self, ids: &[String]) -> Result<Vec<SourceState>, VerifyError> {
        let live = self.store.artifact_hash_states(ids).await?;
        Ok(live
            .into_iter()
            .zip(ids)
            .map(|(s, id)| match (s, self.artifacts.get(id)) {
                (SourceState::Missing, Some(f)) => {
                    f.get("hash").map_or(SourceState::Unhashed, |h| SourceState::Hash(h.clone()))
                }
                (s, _) => s,
            })
            .collect())
    }
    async fn answer_records(&mut self, question_ids: &[String]) -> Result<Vec<Option<String>>, VerifyError> {
        let live = self.store.raw_answer_records(question_ids).await?;
        Ok(live.into_iter().zip(question_ids).map(|(l, q)| l.or_else(|| self.answers.get(q).cloned())).collect())
    }
    async fn head(&mut self) -> Result<Option<Head>, VerifyError> {
        Ok(self.store.ledger_head().await?)
    }
    async fn claim_ids(&mut self, start: usize, count: usize) -> Result<Vec<String>, VerifyError> {
        let live = self.live_claims().await?;
        if start < live {
            return Ok(self.store.claim_id_page(start as i64, count.min(live - start) as i64).await?);
        }
        Ok(self.claim_index.iter().skip(start - live).take(count).cloned().collect())
    }
    async fn claims(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        Ok(fill(self.store.raw_claims(ids).await?, ids, &self.claims))
    }
    async fn events_by_id(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        let live = self.store.raw_events_by_id(ids).await?;
        Ok(live
            .into_iter()
            .zip(ids)
            .map(|(l, id)| l.or_else(|| self.event_pos.get(id).map(|&i| self.events[i].1.clone())))
            .collect())
    }
    async fn artifact_count(&mut self) -> Result<u64, VerifyError> {
        let live = self.store.count_instance_keys().await?.get("artifact").copied().unwrap_or(0);
        Ok(live + self.artifacts.len() as u64)
    }
    async fn artifact_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        let mut ids = self.store.scan_artifact_ids().await?;
        ids.extend(self.artifacts.keys().cloned());
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
    async fn answer_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.store.answer_record_count().await? + self.answers.len() as u64)
    }
    async fn answered_question_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        let mut ids = self.store.answered_question_ids().await?;
        ids.extend(self.answers.keys().cloned());
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
    async fn cancellation_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        let mut all: BTreeMap<String, String> = self.cancellations.clone().into_iter().collect();
        all.extend(self.store.cancellations().await?);
        Ok(all.into_iter().collect())
    }
    /// Action records are never archived: they stay in Redis beside the events they check.
    async fn action_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        Ok(self.store.actions().await?)
    }
}
