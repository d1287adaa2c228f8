//! Artifacts: atomic creation (hash + thread + index + event), reads, listing, short-id lookup,
//! and the ledger hashes already known to this store ([`KnownHashes`]).

use std::collections::{HashMap, HashSet};

use fred::prelude::*;
use fred::types::scan::Scanner;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sett_core::approval::ApprovalBinding;
use sett_core::event::{ArtifactCreated, ArtifactForked, EventData, EventKind, QuestionAnswered};
use sett_core::ledger;
use sett_core::{Artifact, ArtifactId, ShortId};

use crate::codec::{decode_artifact, encode_artifact};
use crate::scripts::CREATE_ARTIFACT;
use crate::{Result, Store, StoreError};

/// Who answered a question, and when (stored in `questions:answers`, closing it for good).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub answer_id: ArtifactId,
    pub answered_by: String,
    pub answered_at_ms: i64,
    #[serde(default)]
    pub timed_out: bool,
    /// For an approval: the decision and the hashes of what the approver was shown (its
    /// decision and target hash are copied into the `question_answered` event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Box<ApprovalBinding>>,
}

impl AnswerRecord {
    /// An operator's answer (`sett answer`, the console), answered at `at_ms`.
    pub fn by_operator(answer_id: ArtifactId, operator: impl Into<String>, at_ms: i64) -> Self {
        Self { answer_id, answered_by: operator.into(), answered_at_ms: at_ms, timed_out: false, approval: None }
    }

    /// The orchestrator's automatic answer to a question that timed out
    /// (`on_question_timeout: continue`), written at `at_ms`.
    pub fn on_timeout(answer_id: ArtifactId, at_ms: i64) -> Self {
        Self { answer_id, answered_by: "orchestrator".into(), answered_at_ms: at_ms, timed_out: true, approval: None }
    }
}

/// Ledger hashes of artifacts this store read or wrote, remembered (boundedly) so that writing an
/// artifact does not first read its sources' hashes again (a cub's output cites the target it
/// has just read). Artifacts never change, and `create_artifact.lua` compares every source's hash
/// with the stored one anyway: a remembered hash that is not the stored one (an instance edited,
/// or restored) refuses the write, which is then made again with the hashes read.
#[derive(Debug, Default)]
pub(crate) struct KnownHashes {
    inner: std::sync::Mutex<KnownInner>,
}

#[derive(Debug, Default)]
struct KnownInner {
    hashes: HashMap<ArtifactId, String>,
    order: std::collections::VecDeque<ArtifactId>,
}

/// How many hashes are remembered; the oldest is forgotten first (a forgotten one is read).
const KNOWN_HASHES: usize = 1024;

impl KnownHashes {
    fn remember(&self, id: ArtifactId, hash: &str) {
        let mut inner = self.inner.lock().expect("not poisoned");
        if inner.hashes.insert(id, hash.to_owned()).is_none() {
            inner.order.push_back(id);
        }
        while inner.hashes.len() > KNOWN_HASHES || inner.order.len() > 2 * KNOWN_HASHES {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.hashes.remove(&oldest);
        }
    }

    fn get(&self, id: &ArtifactId) -> Option<String> {
        self.inner.lock().expect("not poisoned").hashes.get(id).cloned()
    }

    fn forget(&self, ids: &[ArtifactId]) {
        let mut inner = self.inner.lock().expect("not poisoned");
        for id in ids {
            inner.hashes.remove(id);
        }
    }
}

/// The result of an artifact write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Written; the ledger event id.
    Created { event_id: String },
    /// An artifact with this id exists (artifacts are immutable).
    IdExists,
    /// This thread already has an artifact at this version.
    VersionTaken { existing: ArtifactId },
    /// The question was answered before.
    AlreadyAnswered(AnswerRecord),
    /// The question's workflow was cancelled (the fence entry, `member:<goal>`): not answered.
    Cancelled(String),
}

/// The `artifact_forked` action written with a branch's first artifact, as `create_artifact.lua`
/// takes it: `[kind, data, digest, action id, action record]`.
fn fork_action(f: &ArtifactForked, at_ms: i64) -> String {
    let data = EventData::ArtifactForked(f.clone()).to_json();
    let kind = EventKind::ArtifactForked.as_str();
    let digest = ledger::event_digest(kind, &at_ms.to_string(), &data, None);
    let record = crate::pause::ActionRecord {
        kind: kind.into(),
        target: f.forked_from.to_string(),
        operator: f.operator.clone(),
        reason: f.reason.clone(),
        at_ms,
    };
    serde_json::json!([kind, data, digest, f.action_id, record.encode()]).to_string()
}

impl Store {
    /// Writes a new artifact atomically with its thread entry and its `artifact_created` event.
    pub async fn create_artifact(&self, a: &Artifact) -> Result<CreateOutcome> {
        self.write_artifact(a, None, None).await
    }

    /// Writes the first artifact of a branch (`sett fork`, `a.forked_from` set) atomically with
    /// its `artifact_forked` event (after `artifact_created`) and the action record `sett verify`
    /// checks it against; the action's time is the artifact's `created_at_ms`.
    pub async fn create_forked(&self, a: &Artifact, forked: &ArtifactForked) -> Result<CreateOutcome> {
        self.write_artifact(a, None, Some(forked)).await
    }

    /// Writes an Answer and closes its question in the same atomic step; a question can be
    /// answered once.
    pub async fn create_answer(
        &self,
        a: &Artifact,
        question: &ArtifactId,
        record: &AnswerRecord,
    ) -> Result<CreateOutcome> {
        self.write_artifact(a, Some((question, record)), None).await
    }

    async fn write_artifact(
        &self,
        a: &Artifact,
        answer: Option<(&ArtifactId, &AnswerRecord)>,
        forked: Option<&ArtifactForked>,
    ) -> Result<CreateOutcome> {
        a.validate().map_err(|e| StoreError::Conflict(format!("invalid artifact: {e}")))?;
        let k = &self.keys;
        let mut keys = vec![
            k.artifact(&a.id),
            k.thread(&a.logical_id),
            k.events(),
            k.artifacts_index(),
            k.question_answers(),
            k.open_questions(),
            k.ledger(),
            k.cancel_fence(),
            k.actions(),
            k.key_registry(),
            k.artifact(&a.logical_id),
        ];
        keys.extend(a.source_artifacts.iter().map(|s| k.artifact(s)));
        // The Merkle link: this artifact's hash covers its sources' hashes, which the Lua checks
        // are still the stored ones (and that every source exists) in the same atomic step.
        // Remembered hashes first; if one of them is refused, the write is made again with the
        // hashes read.
        let mut use_known = true;
        let (reply, rewritten, hash) = loop {
            let (source_hashes, known) = self.source_hashes(&a.source_artifacts, use_known).await?;
            let fields = encode_artifact(a);
            let hash = {
                let refs: Vec<&str> = source_hashes.iter().map(String::as_str).collect();
                ledger::artifact_hash(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())), &refs)
            };
            let ts = a.created_at_ms.to_string();
            let (qid, record, answered_event) = match answer {
                Some((q, r)) => (
                    q.to_string(),
                    serde_json::to_string(r).expect("serializable"),
                    EventData::QuestionAnswered(QuestionAnswered {
                        answer_id: r.answer_id,
                        answered_by: r.answered_by.clone(),
                        artifact_id: *q,
                        claim_id: a.claim_id,
                        decision: r.approval.as_ref().map(|b| b.decision),
                        question_id: *q,
                        target_hash: r.approval.as_ref().map(|b| b.target_hash.clone()),
                        timed_out: r.timed_out,
                    })
                    .to_json(),
                ),
                None => (String::new(), String::new(), String::new()),
            };
            let created = EventData::ArtifactCreated(ArtifactCreated::new(a, &hash)).to_json();
            let created_digest = ledger::event_digest(EventKind::ArtifactCreated.as_str(), &ts, &created, None);
            let answered_digest = if answered_event.is_empty() {
                String::new()
            } else {
                ledger::event_digest(EventKind::QuestionAnswered.as_str(), &ts, &answered_event, None)
            };
            let mut args = vec![
                a.id.to_string(),
                a.version.to_string(),
                ts,
                created,
                qid,
                record,
                answered_event,
                created_digest,
                answered_digest,
                serde_json::to_string(&source_hashes).expect("strings"),
                forked.map(|f| fork_action(f, a.created_at_ms)).unwrap_or_default(),
            ];
            for (f, v) in fields {
                args.push(f);
                args.push(v);
            }
            args.push("hash".to_owned());
            args.push(hash.clone());
            // Made again after a failover, a write that survived answers "exists": callers already
            // read that as done (same id: it is this very artifact).
            let (reply, rewritten): (Vec<String>, _) = self
                .durable(|| async {
                    Ok(CREATE_ARTIFACT.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?)
                })
                .await?;
            if known && matches!(reply.first().map(String::as_str), Some("source_missing" | "source_changed")) {
                self.known_hashes.forget(&a.source_artifacts);
                use_known = false;
                continue;
            }
            break (reply, rewritten, hash);
        };
        if reply.first().map(String::as_str) == Some("ok") {
            self.known_hashes.remember(a.id, &hash);
        }
        if rewritten && reply.first().map(String::as_str) == Some("exists") && answer.is_none() {
            // Our first write survived the failover: it is this very artifact, created by us
            // (its event id is not known any more).
            return Ok(CreateOutcome::Created { event_id: String::new() });
        }
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(CreateOutcome::Created { event_id: reply.get(1).cloned().unwrap_or_default() }),
            Some("exists") => Ok(CreateOutcome::IdExists),
            Some("version_taken") => Ok(CreateOutcome::VersionTaken {
                existing: ArtifactId::parse(reply.get(1).map_or("", String::as_str))
                    .map_err(|e| StoreError::Decode(e.to_string()))?,
            }),
            Some("cancelled") => Ok(CreateOutcome::Cancelled(reply.get(1).cloned().unwrap_or_default())),
            Some("answered") => {
                let rec = serde_json::from_str(reply.get(1).map_or("", String::as_str))
                    .map_err(|e| StoreError::Decode(format!("answer record: {e}")))?;
                Ok(CreateOutcome::AlreadyAnswered(rec))
            }
            Some(what @ ("source_missing" | "source_changed")) => {
                let i: usize = reply.get(1).and_then(|i| i.parse().ok()).unwrap_or(1);
                let source = a.source_artifacts.get(i.saturating_sub(1)).map(ToString::to_string).unwrap_or_default();
                Err(StoreError::Conflict(if what == "source_missing" {
                    format!(
                        "artifact {} refused: its source artifact {source} does not exist (write the sources first)",
                        a.id
                    )
                } else {
                    format!(
                        "artifact {} refused: source artifact {source} changed while it was written; retry, and run 'sett verify' if it happens again",
                        a.id
                    )
                }))
            }
            other => Err(StoreError::Decode(format!("unexpected create_artifact reply {other:?}"))),
        }
    }

    /// The stored hashes of `sources` (one pipelined round trip; none when there are no
    /// sources). A source without a hash (written before the ledger) gives
    /// [`ledger::UNHASHED_SOURCE`]; a missing source gives it too and the Lua refuses the write.
    /// With `use_known`, the hashes this store remembers are taken as they are (and the rest
    /// read); the flag says whether any was.
    async fn source_hashes(&self, sources: &[ArtifactId], use_known: bool) -> Result<(Vec<String>, bool)> {
        let mut hashes: Vec<Option<String>> =
            sources.iter().map(|s| if use_known { self.known_hashes.get(s) } else { None }).collect();
        let known = hashes.iter().any(Option::is_some);
        let unknown: Vec<usize> = (0..sources.len()).filter(|i| hashes[*i].is_none()).collect();
        if !unknown.is_empty() {
            let pipe = self.client().pipeline();
            for i in &unknown {
                let _: () = pipe.hget(self.keys.artifact(&sources[*i]), "hash").await?;
            }
            let read: Vec<Option<String>> = pipe.all().await?;
            for (i, h) in unknown.into_iter().zip(read) {
                hashes[i] = Some(h.unwrap_or_else(|| ledger::UNHASHED_SOURCE.to_owned()));
            }
        }
        Ok((hashes.into_iter().map(Option::unwrap_or_default).collect(), known))
    }

    /// The stored ledger hash of each of `ids` (one pipelined round trip), `None` for an
    /// artifact that does not exist or was written before the ledger.
    pub async fn artifact_hashes(&self, ids: &[ArtifactId]) -> Result<Vec<Option<String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = self.client().pipeline();
        for id in ids {
            let _: () = pipe.hget(self.keys.artifact(id), "hash").await?;
        }
        Ok(pipe.all().await?)
    }

    pub async fn get_artifact(&self, id: &ArtifactId) -> Result<Option<Artifact>> {
        let fields: HashMap<String, String> = self.client().hgetall(self.keys.artifact(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        if let Some(hash) = fields.get("hash") {
            self.known_hashes.remember(*id, hash);
        }
        decode_artifact(fields, self.strict()).map(Some)
    }

    /// The goal of the workflow `artifact` belongs to: its first source (or, for an output
    /// without sources, its claim's artifact), followed back to an artifact that has neither.
    pub async fn goal_of(&self, artifact: Artifact) -> Result<ArtifactId> {
        let mut goal = artifact;
        let mut seen = HashSet::from([goal.id]);
        loop {
            let next = match (goal.source_artifacts.first(), goal.claim_id) {
                (Some(src), _) => Some(*src),
                (None, Some(claim)) => self.get_claim(&claim).await?.map(|c| c.artifact_id),
                (None, None) => None,
            };
            let Some(next) = next.filter(|n| seen.insert(*n)) else { break };
            match self.get_artifact(&next).await? {
                Some(a) => goal = a,
                None => break,
            }
        }
        Ok(goal.id)
    }

    /// Several artifacts at once (concurrent reads, which the client pipelines), in the order
    /// asked; missing ones are skipped.
    pub async fn get_artifacts(&self, ids: &[ArtifactId]) -> Result<Vec<Artifact>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let futs = chunk.iter().map(|id| self.get_artifact(id));
            out.extend(futures::future::try_join_all(futs).await?.into_iter().flatten());
        }
        Ok(out)
    }

    /// Each of `ids` in the order asked, `None` for one that does not exist (concurrent reads,
    /// which the client pipelines: one round trip).
    pub async fn get_artifacts_or_none(&self, ids: &[ArtifactId]) -> Result<Vec<Option<Artifact>>> {
        futures::future::try_join_all(ids.iter().map(|id| self.get_artifact(id))).await
    }

    /// Every artifact of the instance, oldest first.
    pub async fn all_artifacts(&self) -> Result<Vec<Artifact>> {
        let n = self.artifact_count().await?;
        let ids = self.artifact_ids(0, n.max(1) as i64).await?;
        self.get_artifacts(&ids).await
    }

    /// An artifact's stored fields exactly as written (for `sett verify`), if it exists.
    pub async fn raw_artifact(&self, id: &ArtifactId) -> Result<Option<HashMap<String, String>>> {
        let fields: HashMap<String, String> = self.client().hgetall(self.keys.artifact(id)).await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    pub async fn artifact_exists(&self, id: &ArtifactId) -> Result<bool> {
        Ok(self.client().exists::<u32, _>(self.keys.artifact(id)).await? == 1)
    }

    /// The highest version of a logical thread (`None` when the thread does not exist).
    pub async fn latest_in_thread(&self, logical_id: &ArtifactId) -> Result<Option<Artifact>> {
        let ids: Vec<String> =
            self.client().zrange(self.keys.thread(logical_id), -1, -1, None, false, None, false).await?;
        match ids.first() {
            // No thread set: the thread's first artifact, if any, is its only version
            // (create_artifact.lua makes the set with the second).
            None => self.get_artifact(logical_id).await,
            Some(id) => {
                let id = ArtifactId::parse(id).map_err(|e| StoreError::Decode(e.to_string()))?;
                self.get_artifact(&id).await
            }
        }
    }

    pub async fn artifact_count(&self) -> Result<u64> {
        Ok(self.client().zcard(self.keys.artifacts_index()).await?)
    }

    /// Up to `limit` artifacts created (by the writer's clock) from `from_ms` to `until_ms`
    /// inclusive, oldest first, each with its creation time in ms.
    pub async fn artifacts_created_between(
        &self,
        from_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<(ArtifactId, i64)>> {
        let page: Vec<(String, f64)> = self
            .client()
            .zrangebyscore(self.keys.artifacts_index(), from_ms as f64, until_ms as f64, true, Some((0, limit as i64)))
            .await?;
        page.into_iter()
            .map(|(id, ms)| Ok((ArtifactId::parse(&id).map_err(|e| StoreError::Decode(e.to_string()))?, ms as i64)))
            .collect()
    }

    /// A page of artifact ids in creation order (`start` is a rank, 0 = oldest).
    pub async fn artifact_ids(&self, start: i64, count: i64) -> Result<Vec<ArtifactId>> {
        let ids: Vec<String> = self
            .client()
            .zrange(self.keys.artifacts_index(), start, start + count - 1, None, false, None, false)
            .await?;
        ids.iter().map(|s| ArtifactId::parse(s).map_err(|e| StoreError::Decode(e.to_string()))).collect()
    }

    /// Artifacts whose id starts with `prefix` (at most `limit`).
    pub async fn artifacts_by_prefix(&self, prefix: &ShortId, limit: usize) -> Result<Vec<ArtifactId>> {
        let pattern = self.keys.artifact_prefix_pattern(&prefix.hyphenated_prefix());
        let mut found = Vec::new();
        let mut pages = self.client().scan(pattern, Some(1000), None);
        while let Some(mut page) = pages.try_next().await? {
            for key in page.take_results().unwrap_or_default() {
                let Some(key) = key.as_str() else { continue };
                if let Some(id) = key.rsplit(':').next().and_then(|s| ArtifactId::parse(s).ok()) {
                    found.push(id);
                }
            }
            if found.len() >= limit {
                page.cancel();
                break;
            }
            page.next();
        }
        found.sort();
        found.truncate(limit);
        Ok(found)
    }
}
