//! `sett verify`: recomputes every artifact hash and the whole event chain of an instance (from
//! Redis, or offline from an export file), checks that every artifact has its
//! `artifact_created` event, every answer its `question_answered` and every claim record the
//! event of its last transition, and names the **first** broken record. The canonical encodings
//! are in `sett_core::ledger` and docs/architecture.md ("Ledger").
//!
//! Streamed: events are read in pages of [`PAGE`] and each page's artifacts, sources and answer
//! records are fetched in one pipelined batch, so memory stays flat whatever the size (the
//! extra lookups that find an *inserted* record run only once a count says one exists).

use serde::Serialize;
use sett_core::ledger::{self, ARTIFACT_HASHED_FIELDS, GENESIS, GENESIS_V1, Head, UNHASHED_SOURCE};
use sett_core::witness::{WitnessWalk, Witnesses};
use sett_store::{SourceState, Store, StoreError};
use std::collections::{HashMap, HashSet};

pub use crate::export_ledger::ExportLedger;

/// The record a break found by a witness file names.
pub const WITNESSED_HEAD: &str = "witnessed head";

/// Events per page (one XRANGE and one pipelined batch of lookups each).
pub const PAGE: usize = 1_000;

type Fields = HashMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    File(String),
}

/// The first broken record and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breach {
    /// e.g. `event 1733000000000-0 (seq 17)`, `artifact <id>`, `claim <id>`, `ledger head`.
    pub record: String,
    pub problem: String,
}

/// What was verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The chain's last event (`None` when nothing is chained yet).
    pub head: Option<Head>,
    /// Chained events verified.
    pub events: u64,
    /// Events written before the ledger existed (not verifiable): the chain starts after them.
    pub unverified_events: u64,
    pub artifacts: u64,
    pub unverified_artifacts: u64,
    pub answers: u64,
    pub claims: u64,
    pub unverified_claims: u64,
    /// Whether a head recorded earlier (`--head`) was found in the chain.
    pub recorded_head_matches: Option<bool>,
    /// What a witness file (`--witness`) said, when one was given.
    pub witnessed: Option<WitnessReport>,
}

/// The heads of a witness file checked against the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WitnessReport {
    /// Heads of the instance's current ledger, each of which must be a link of the chain.
    pub heads: u64,
    /// The highest of them.
    pub highest: Option<Head>,
    /// Heads of ledgers a destroy or an import replaced on purpose (not checked).
    pub replaced: u64,
}

impl Report {
    /// "unverified before event N": the seq of the first chained event, when earlier events
    /// exist that predate the ledger.
    pub fn unverified_before(&self) -> Option<u64> {
        (self.unverified_events > 0).then_some(self.unverified_events + 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub report: Report,
    /// `None` when intact.
    pub breach: Option<Breach>,
}

impl Outcome {
    pub fn intact(&self) -> bool {
        self.breach.is_none()
    }
}

/// Where the records come from: Redis, or an export file.
#[allow(async_fn_in_trait)]
pub trait LedgerSource {
    async fn events_after(&mut self, after: Option<&str>, count: usize) -> Result<Vec<(String, Fields)>, VerifyError>;
    async fn artifacts(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError>;
    async fn source_states(&mut self, ids: &[String]) -> Result<Vec<SourceState>, VerifyError>;
    async fn answer_records(&mut self, question_ids: &[String]) -> Result<Vec<Option<String>>, VerifyError>;
    async fn head(&mut self) -> Result<Option<Head>, VerifyError>;
    async fn claim_ids(&mut self, start: usize, count: usize) -> Result<Vec<String>, VerifyError>;
    async fn claims(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError>;
    async fn events_by_id(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError>;
    async fn artifact_count(&mut self) -> Result<u64, VerifyError>;
    async fn artifact_ids(&mut self) -> Result<Vec<String>, VerifyError>;
    async fn answer_count(&mut self) -> Result<u64, VerifyError>;
    async fn answered_question_ids(&mut self) -> Result<Vec<String>, VerifyError>;
    /// Every cancellation record (`workflows:cancelled`): goal id → the JSON record.
    async fn cancellation_records(&mut self) -> Result<HashMap<String, String>, VerifyError>;
    /// Every operator action record (`actions`): action id → the JSON record.
    async fn action_records(&mut self) -> Result<HashMap<String, String>, VerifyError>;
}

impl LedgerSource for Store {
    async fn events_after(&mut self, after: Option<&str>, count: usize) -> Result<Vec<(String, Fields)>, VerifyError> {
        Ok(self.raw_events_after(after, count as u64).await?)
    }
    async fn artifacts(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        Ok(self.raw_artifacts(ids).await?)
    }
    async fn source_states(&mut self, ids: &[String]) -> Result<Vec<SourceState>, VerifyError> {
        Ok(self.artifact_hash_states(ids).await?)
    }
    async fn answer_records(&mut self, question_ids: &[String]) -> Result<Vec<Option<String>>, VerifyError> {
        Ok(self.raw_answer_records(question_ids).await?)
    }
    async fn head(&mut self) -> Result<Option<Head>, VerifyError> {
        Ok(self.ledger_head().await?)
    }
    async fn claim_ids(&mut self, start: usize, count: usize) -> Result<Vec<String>, VerifyError> {
        Ok(self.claim_id_page(start as i64, count as i64).await?)
    }
    async fn claims(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        Ok(self.raw_claims(ids).await?)
    }
    async fn events_by_id(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        Ok(self.raw_events_by_id(ids).await?)
    }
    async fn artifact_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.count_instance_keys().await?.get("artifact").copied().unwrap_or(0))
    }
    async fn artifact_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        Ok(self.scan_artifact_ids().await?)
    }
    async fn answer_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.answer_record_count().await?)
    }
    async fn answered_question_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        Ok(Store::answered_question_ids(self).await?)
    }
    async fn cancellation_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        Ok(self.cancellations().await?)
    }
    async fn action_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        Ok(self.actions().await?)
    }
}

/// The chain walk's state.
#[derive(Debug)]
struct Chain {
    started: bool,
    seq: u64,
    prev: String,
    legacy: u64,
}

fn event_record(id: &str, f: &Fields) -> String {
    match f.get("seq") {
        Some(s) => format!("event {id} (seq {s})"),
        None => format!("event {id}"),
    }
}

fn breach(record: impl Into<String>, problem: impl Into<String>) -> Breach {
    Breach { record: record.into(), problem: problem.into() }
}

/// The `prev` of a chain's first event: 40 zeros, or 64 for a chain begun by the first ledger
/// version.
fn is_genesis(prev: &str) -> bool {
    prev == GENESIS || prev == GENESIS_V1
}

impl Chain {
    /// Checks one entry; `Ok(false)` for an entry written before the ledger.
    fn step(&mut self, id: &str, f: &Fields, recorded: Option<&Head>) -> Result<bool, Breach> {
        let rec = || event_record(id, f);
        let Some(hash) = f.get("hash") else {
            if self.started {
                return Err(breach(
                    rec(),
                    "not chained (no seq/prev/hash): an event was inserted without going through Sett's store, or its chain fields were removed",
                ));
            }
            self.legacy += 1;
            return Ok(false);
        };
        // Canonical decimal only: "05" would hash like "5" and hide an edit.
        let seq: u64 = f
            .get("seq")
            .and_then(|s| s.parse().ok().filter(|n: &u64| n.to_string() == *s))
            .ok_or_else(|| breach(rec(), "its seq is missing or not a number: the event was edited"))?;
        let prev = f.get("prev").ok_or_else(|| breach(rec(), "its prev is missing: the event was edited"))?;
        if !self.started {
            self.started = true;
            let first = self.legacy + 1;
            if seq > first || (seq == first && !is_genesis(prev) && self.legacy == 0) {
                return Err(breach(
                    rec(),
                    format!(
                        "the stream was truncated: it is the first chained event but has seq {seq} (expected {first}); {} earlier event(s) were removed (XTRIM/XDEL)",
                        seq.saturating_sub(first).max(1)
                    ),
                ));
            }
            if seq < first {
                return Err(breach(
                    rec(),
                    format!("seq {seq} where {first} was expected: unchained events were inserted before it"),
                ));
            }
            if !is_genesis(prev) {
                return Err(breach(rec(), "the first chained event's prev is not all zeros: the chain was edited"));
            }
        } else {
            let expected = self.seq + 1;
            if seq > expected {
                let missing = if seq == expected + 1 {
                    format!("the event with seq {expected} is missing")
                } else {
                    format!("the events with seq {expected}..{} are missing", seq - 1)
                };
                return Err(breach(rec(), format!("{missing} before it (deleted, e.g. XDEL)")));
            }
            if seq < expected {
                return Err(breach(
                    rec(),
                    format!("seq {seq} where {expected} was expected: an event was inserted or the stream reordered"),
                ));
            }
            if *prev != self.prev {
                return Err(breach(
                    rec(),
                    "its prev is not the hash of the event before it: an earlier event was replaced or the chain edited",
                ));
            }
        }
        let (Some(kind), Some(ts), Some(data)) = (f.get("kind"), f.get("ts"), f.get("data")) else {
            return Err(breach(rec(), "its kind, ts or data field is missing: the event was edited"));
        };
        let digest = ledger::event_digest(kind, ts, data, f.get("claim").map(String::as_str));
        let link = ledger::recompute_link(prev, &digest, seq, hash)
            .ok_or_else(|| breach(rec(), "its prev is not a 40-digit hex hash: the event was edited"))?;
        if link != *hash {
            return Err(breach(rec(), "content changed: its kind, ts, data or claim no longer match its hash"));
        }
        if let Some(r) = recorded
            && r.seq == seq
            && r.hash != *hash
        {
            return Err(breach(
                rec(),
                format!(
                    "head mismatch: the head recorded earlier is {r} but the chain now has {seq}:{hash} here: the chain was rewritten"
                ),
            ));
        }
        self.seq = seq;
        self.prev = hash.clone();
        Ok(true)
    }
}

/// An event data field as the stored string it describes (`None` when null or absent).
fn as_stored(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Event-data fields that copy an artifact field: telling which one changed.
const EVENT_COPIES: &[&str] = &[
    "logical_id",
    "version",
    "structural_type",
    "type",
    "produced_by_role",
    "claim_id",
    "source_artifacts",
    "summary",
    "answered_by",
    "timed_out",
];

/// Checks one artifact against its `artifact_created` event (data `ev`, timestamp `ts`).
fn check_artifact(
    id: &str,
    f: &Fields,
    ev: &serde_json::Value,
    ts: &str,
    sources: &HashMap<String, SourceState>,
) -> Result<(), Breach> {
    let rec = format!("artifact {id}");
    if let Some(extra) = f.keys().find(|k| *k != "hash" && !ARTIFACT_HASHED_FIELDS.contains(&k.as_str())) {
        return Err(breach(rec, format!("unexpected field '{extra}' (added after it was written)")));
    }
    let Some(stored) = f.get("hash") else {
        return Err(breach(rec, "its hash field was removed"));
    };
    for name in EVENT_COPIES {
        let in_ledger = as_stored(ev.get(*name));
        // Older writers did not copy answered_by/timed_out into the event: compare when present.
        if ev.get(*name).is_none() && matches!(*name, "answered_by" | "timed_out") {
            continue;
        }
        if in_ledger.as_deref() != f.get(*name).map(String::as_str) {
            return Err(breach(
                rec,
                format!(
                    "{name} changed (the ledger has {}, the record has {})",
                    in_ledger.as_deref().unwrap_or("none"),
                    f.get(*name).map_or("none", String::as_str)
                ),
            ));
        }
    }
    if f.get("created_at_ms").map(String::as_str) != Some(ts) {
        return Err(breach(rec, "created_at_ms changed (it no longer matches its event's time)"));
    }
    if as_stored(ev.get("hash")).as_deref() != Some(stored.as_str()) {
        return Err(breach(rec, "its hash field was changed (it differs from the hash in its artifact_created event)"));
    }
    let source_ids: Vec<String> = f
        .get("source_artifacts")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| breach(rec.clone(), "source_artifacts is not a JSON list of ids"))?;
    let mut hashes = Vec::with_capacity(source_ids.len());
    for s in &source_ids {
        match sources.get(s) {
            Some(SourceState::Hash(h)) => hashes.push(h.as_str()),
            Some(SourceState::Unhashed) => hashes.push(UNHASHED_SOURCE),
            Some(SourceState::Missing) | None => {
                return Err(breach(rec, format!("source artifact {s} is missing (deleted)")));
            }
        }
    }
    let fields = f.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    if ledger::artifact_hash(fields, &hashes) != *stored {
        return Err(breach(
            rec,
            "payload changed, or a source's hash changed: its fields and sources no longer match its hash",
        ));
    }
    Ok(())
}

fn check_answer(question: &str, record: Option<&String>, ev: &serde_json::Value) -> Result<(), Breach> {
    let rec = format!("answer to question {question}");
    let Some(record) = record else {
        return Err(breach(rec, "its answer record is missing (deleted from questions:answers)"));
    };
    let r: serde_json::Value =
        serde_json::from_str(record).map_err(|_| breach(rec.clone(), "its answer record is not JSON"))?;
    for name in ["answer_id", "answered_by", "timed_out"] {
        let stored = r.get(name).cloned().unwrap_or(serde_json::Value::Bool(false));
        let logged = ev.get(name).cloned().unwrap_or(serde_json::Value::Bool(false));
        if stored != logged {
            return Err(breach(rec, format!("{name} changed (the ledger has {logged}, the record has {stored})")));
        }
    }
    // An approval's record binds a decision and the hash of what the approver saw; the ledger
    // event copies both (absent on both for any other question).
    let approval = r.get("approval");
    for (name, stored) in [
        ("decision", approval.and_then(|a| a.get("decision"))),
        ("target_hash", approval.and_then(|a| a.get("target_hash"))),
    ] {
        let stored = stored.cloned().unwrap_or(serde_json::Value::Null);
        let logged = ev.get(name).cloned().unwrap_or(serde_json::Value::Null);
        if stored != logged {
            return Err(breach(
                rec,
                format!("its approval's {name} changed (the ledger has {logged}, the record has {stored})"),
            ));
        }
    }
    Ok(())
}

/// What the ledger says decided an approval so far: a person's decision with the hash it bound,
/// or `on_timeout: approve`.
#[derive(Debug, Clone)]
enum ApprovalSeen {
    Decided { decision: String, target_hash: Option<String> },
    ApprovedOnTimeout,
}

/// A `claim_granted` that names its approval (`agents.<name>.approval`) against what the ledger
/// recorded before it: an approval of the granted target's hash (`target_hash`, the hash stored
/// with the target now), or `on_timeout: approve`.
fn check_gated_grant(
    grant: &str,
    question: &str,
    seen: Option<&ApprovalSeen>,
    target: &str,
    target_hash: Option<&str>,
) -> Result<(), Breach> {
    let rec = format!("grant {grant}");
    match seen {
        None => Err(breach(rec, format!("it follows approval {question}, which the ledger never decided before it"))),
        Some(ApprovalSeen::ApprovedOnTimeout) => Ok(()),
        Some(ApprovalSeen::Decided { decision, .. }) if decision != "approve" => {
            Err(breach(rec, format!("approval {question} was decided '{decision}', not approve")))
        }
        Some(ApprovalSeen::Decided { target_hash: bound, .. }) if bound.as_deref() != target_hash => Err(breach(
            rec,
            format!(
                "approval {question} bound hash {} but the granted target {target} has hash {}",
                bound.as_deref().unwrap_or("(none)"),
                target_hash.unwrap_or("(missing)")
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// A `workflow_cancelled` event against its cancellation record: operator, reason and time.
fn check_cancellation(goal: &str, record: Option<&String>, ev: &serde_json::Value, ts: &str) -> Result<(), Breach> {
    let rec = format!("cancellation of workflow {goal}");
    let Some(record) = record else {
        return Err(breach(rec, "its cancellation record is missing (deleted from workflows:cancelled)"));
    };
    let r: serde_json::Value =
        serde_json::from_str(record).map_err(|_| breach(rec.clone(), "its cancellation record is not JSON"))?;
    for name in ["operator", "reason"] {
        let stored = r.get(name).cloned().unwrap_or(serde_json::Value::Null);
        let logged = ev.get(name).cloned().unwrap_or(serde_json::Value::Null);
        if stored != logged {
            return Err(breach(rec, format!("{name} changed (the ledger has {logged}, the record has {stored})")));
        }
    }
    let at = r.get("at_ms").map(ToString::to_string).unwrap_or_default();
    if at != ts {
        return Err(breach(rec, format!("its time changed (the ledger has {ts}, the record has {at})")));
    }
    Ok(())
}

/// The event kinds of operators' steering actions, each with its record in `actions`.
const ACTION_KINDS: [&str; 5] = ["paused", "resumed", "workflow_retried", "artifact_forked", "budget_decided"];

/// What an action event acted on, as its record names it.
fn action_target(kind: &str, ev: &serde_json::Value) -> String {
    let field = |name: &str| ev.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    match kind {
        "workflow_retried" => field("failed_claim"),
        "artifact_forked" => field("forked_from"),
        _ => Some(field("goal_id").unwrap_or_else(|| "instance".to_owned())),
    }
    .unwrap_or_default()
}

/// An action event (`paused`, `resumed`, `workflow_retried`, `artifact_forked`,
/// `budget_decided`) against its record in `actions`: kind, target, operator, reason and time.
fn check_action(kind: &str, record: Option<&String>, ev: &serde_json::Value, ts: &str) -> Result<(), Breach> {
    let id = ev.get("action_id").and_then(|v| v.as_str()).unwrap_or_default();
    let rec = format!("{kind} action {id}");
    let Some(record) = record else {
        return Err(breach(rec, "its action record is missing (deleted from actions)"));
    };
    let r: serde_json::Value =
        serde_json::from_str(record).map_err(|_| breach(rec.clone(), "its action record is not JSON"))?;
    let expected = [
        ("kind", serde_json::Value::from(kind)),
        ("target", serde_json::Value::from(action_target(kind, ev))),
        ("operator", ev.get("operator").cloned().unwrap_or(serde_json::Value::Null)),
        ("reason", ev.get("reason").cloned().unwrap_or(serde_json::Value::Null)),
    ];
    for (name, logged) in expected {
        let stored = r.get(name).cloned().unwrap_or(serde_json::Value::Null);
        if stored != logged {
            return Err(breach(rec, format!("{name} changed (the ledger has {logged}, the record has {stored})")));
        }
    }
    let at = r.get("at_ms").map(ToString::to_string).unwrap_or_default();
    if at != ts {
        return Err(breach(rec, format!("its time changed (the ledger has {ts}, the record has {at})")));
    }
    Ok(())
}

/// Counts of the records the chain accounts for, and the cancellation records to check.
#[derive(Debug, Default)]
struct Seen {
    created: u64,
    legacy_created: u64,
    answered: u64,
    legacy_answered: u64,
    cancelled: u64,
    cancellations: HashMap<String, String>,
    /// Approvals decided so far (by question id), for the grants that follow them.
    approvals: HashMap<String, ApprovalSeen>,
    /// The action ids the chain's action events name.
    acted: std::collections::HashSet<String>,
    actions: HashMap<String, String>,
}

/// Checks the contents a page of chained events refers to; the earliest breach (by position).
async fn check_page(
    src: &mut impl LedgerSource,
    page: &[(String, Fields)],
    chained: &[bool],
    seen: &mut Seen,
) -> Result<Option<(usize, Breach)>, VerifyError> {
    let mut created: Vec<(usize, String, serde_json::Value)> = Vec::new();
    let mut answered: Vec<(usize, String, serde_json::Value)> = Vec::new();
    let mut cancel_breach: Option<(usize, Breach)> = None;
    // Gated grants: (position, grant record, question, target, what decided the approval).
    let mut gated: Vec<(usize, String, String, String, Option<ApprovalSeen>)> = Vec::new();
    for (i, ((id, f), chained)) in page.iter().zip(chained).enumerate() {
        let kind = f.get("kind").map(String::as_str);
        if *chained && matches!(kind, Some("question_answered" | "question_timed_out" | "claim_granted")) {
            let data: serde_json::Value = f.get("data").and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
            let text = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            match (kind, text("question_id"), text("decision"), text("approval")) {
                (Some("question_answered"), Some(q), Some(decision), _) => {
                    seen.approvals.insert(q, ApprovalSeen::Decided { decision, target_hash: text("target_hash") });
                }
                (Some("question_timed_out"), Some(q), _, _) if text("policy").as_deref() == Some("approve") => {
                    seen.approvals.insert(q, ApprovalSeen::ApprovedOnTimeout);
                }
                (Some("claim_granted"), _, _, Some(q)) => {
                    let target = text("artifact_id").unwrap_or_default();
                    let decided = seen.approvals.get(&q).cloned();
                    gated.push((i, event_record(id, f), q, target, decided));
                }
                _ => {}
            }
        }
        if kind == Some("workflow_cancelled") && *chained {
            seen.cancelled += 1;
            let data: serde_json::Value = f.get("data").and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
            let goal = data.get("goal_id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let ts = f.get("ts").map_or("", String::as_str);
            if cancel_breach.is_none()
                && let Err(b) = check_cancellation(&goal, seen.cancellations.get(&goal), &data, ts)
            {
                cancel_breach = Some((i, b));
            }
            continue;
        }
        if let Some(kind) = kind.filter(|k| ACTION_KINDS.contains(k))
            && *chained
        {
            let data: serde_json::Value = f.get("data").and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
            let action = data.get("action_id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let ts = f.get("ts").map_or("", String::as_str);
            if cancel_breach.is_none()
                && let Err(b) = check_action(kind, seen.actions.get(&action), &data, ts)
            {
                cancel_breach = Some((i, b));
            }
            seen.acted.insert(action);
            continue;
        }
        if !matches!(kind, Some("artifact_created" | "question_answered")) {
            continue;
        }
        let data: serde_json::Value = f.get("data").and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
        if !chained {
            if kind == Some("artifact_created") {
                seen.legacy_created += 1;
            } else {
                seen.legacy_answered += 1;
            }
            continue;
        }
        let key = if kind == Some("artifact_created") { "artifact_id" } else { "question_id" };
        let Some(target) = data.get(key).and_then(|v| v.as_str()).map(str::to_owned) else {
            return Ok(Some((i, breach(event_record(id, f), format!("its data has no {key}")))));
        };
        if kind == Some("artifact_created") {
            seen.created += 1;
            created.push((i, target, data));
        } else {
            seen.answered += 1;
            answered.push((i, target, data));
        }
    }
    let mut found: Vec<(usize, Breach)> = cancel_breach.into_iter().collect();
    if !gated.is_empty() {
        let targets: Vec<String> = gated.iter().map(|(_, _, _, t, _)| t.clone()).collect();
        let records = src.artifacts(&targets).await?;
        for ((i, grant, q, target, decided), record) in gated.iter().zip(&records) {
            let hash = record.as_ref().and_then(|f| f.get("hash")).map(String::as_str);
            if let Err(b) = check_gated_grant(grant, q, decided.as_ref(), target, hash) {
                found.push((*i, b));
                break;
            }
        }
    }
    let ids: Vec<String> = created.iter().map(|(_, id, _)| id.clone()).collect();
    let records = src.artifacts(&ids).await?;
    let mut source_ids: Vec<String> = records
        .iter()
        .flatten()
        .filter_map(|f| f.get("source_artifacts").and_then(|s| serde_json::from_str::<Vec<String>>(s).ok()))
        .flatten()
        .collect();
    source_ids.sort();
    source_ids.dedup();
    let states = src.source_states(&source_ids).await?;
    let sources: HashMap<String, SourceState> = source_ids.into_iter().zip(states).collect();
    for ((i, id, data), record) in created.iter().zip(&records) {
        let (eid, ef) = &page[*i];
        let r = match record {
            None => Err(breach(
                format!("artifact {id}"),
                format!("missing (deleted): its artifact_created {} is in the ledger", event_record(eid, ef)),
            )),
            Some(f) => check_artifact(id, f, data, ef.get("ts").map_or("", String::as_str), &sources),
        };
        if let Err(b) = r {
            found.push((*i, b));
            break;
        }
    }
    let qids: Vec<String> = answered.iter().map(|(_, q, _)| q.clone()).collect();
    let records = src.answer_records(&qids).await?;
    for ((i, q, data), record) in answered.iter().zip(&records) {
        if let Err(b) = check_answer(q, record.as_ref(), data) {
            found.push((*i, b));
            break;
        }
    }
    Ok(found.into_iter().min_by_key(|(i, _)| *i))
}

/// Verifies everything `src` holds; `recorded` is a head recorded earlier (`--head`).
pub async fn verify(src: &mut impl LedgerSource, recorded: Option<&Head>) -> Result<Outcome, VerifyError> {
    verify_witnessed(src, recorded, None).await
}

/// [`verify`], and every head of a witness file (`--witness`) must be a link of the chain: a
/// witnessed head beyond the chain's end, or with another hash at its seq, is a break naming the
/// events lost. Still streamed: the witnessed heads (a few bytes each) are the one thing held.
pub async fn verify_witnessed(
    src: &mut impl LedgerSource,
    recorded: Option<&Head>,
    witnesses: Option<&Witnesses>,
) -> Result<Outcome, VerifyError> {
    let mut report = Report {
        witnessed: witnesses.map(|w| WitnessReport {
            heads: w.count(),
            highest: w.highest().map(|(seq, h)| Head { seq, hash: h.hash.clone() }),
            replaced: w.replaced,
        }),
        ..Report::default()
    };
    let empty = Witnesses::default();
    let mut walk = WitnessWalk::new(witnesses.unwrap_or(&empty));
    let mut chain = Chain { started: false, seq: 0, prev: GENESIS.to_owned(), legacy: 0 };
    let mut seen = Seen {
        cancellations: src.cancellation_records().await?,
        actions: src.action_records().await?,
        ..Seen::default()
    };
    let mut after: Option<String> = None;
    let broken = |mut report: Report, chain: &Chain, b: Breach| {
        report.unverified_events = chain.legacy;
        report.head = chain.started.then(|| Head { seq: chain.seq, hash: chain.prev.clone() });
        Ok(Outcome { report, breach: Some(b) })
    };
    loop {
        let page = src.events_after(after.as_deref(), PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        let mut chained = Vec::with_capacity(page.len());
        let mut chain_breach = None;
        for (i, (id, f)) in page.iter().enumerate() {
            match chain.step(id, f, recorded) {
                Ok(c) => {
                    chained.push(c);
                    report.events += u64::from(c);
                    if c && let Err(problem) = walk.link(chain.seq, &chain.prev) {
                        chain_breach = Some((i, breach(WITNESSED_HEAD, problem)));
                        break;
                    }
                }
                Err(b) => {
                    chain_breach = Some((i, b));
                    break;
                }
            }
        }
        let upto = chain_breach.as_ref().map_or(page.len(), |(i, _)| *i);
        if let Some((_, b)) = check_page(src, &page[..upto], &chained[..upto], &mut seen).await? {
            return broken(report, &chain, b);
        }
        if let Some((_, b)) = chain_breach {
            return broken(report, &chain, b);
        }
    }
    report.unverified_events = chain.legacy;
    report.artifacts = seen.created;
    report.unverified_artifacts = seen.legacy_created;
    report.answers = seen.answered;
    report.head = chain.started.then(|| Head { seq: chain.seq, hash: chain.prev.clone() });

    // The head record: the newest events cannot be removed without it telling.
    let stored_head = src.head().await?;
    match (&report.head, &stored_head) {
        (None, None) => {}
        (Some(h), None) => {
            return broken(
                report.clone(),
                &chain,
                breach("ledger head", format!("missing (deleted): the chain ends at {h}")),
            );
        }
        (None, Some(s)) => {
            return broken(
                report.clone(),
                &chain,
                breach(
                    "event stream",
                    format!("no chained event, but the head says seq {}: every event was removed", s.seq),
                ),
            );
        }
        (Some(h), Some(s)) if s.seq > h.seq => {
            return broken(
                report.clone(),
                &chain,
                breach(
                    "event stream end",
                    format!(
                        "the chain ends at seq {} but the head says seq {}: the newest event(s) were removed",
                        h.seq, s.seq
                    ),
                ),
            );
        }
        (Some(h), Some(s)) if s != h => {
            return broken(
                report.clone(),
                &chain,
                breach("ledger head", format!("it says {s} but the chain ends at {h}: the head record was edited")),
            );
        }
        _ => {}
    }
    if let Some(r) = recorded {
        let beyond = report.head.as_ref().is_none_or(|h| r.seq > h.seq);
        if beyond || r.seq <= chain.legacy {
            return broken(
                report.clone(),
                &chain,
                breach(
                    "recorded head",
                    format!(
                        "{r} is not in the chain (it ends at {}): events were removed or the chain was rewritten",
                        report.head.as_ref().map_or_else(|| "nothing".to_owned(), ToString::to_string)
                    ),
                ),
            );
        }
        report.recorded_head_matches = Some(true);
    }
    if let Err(problem) = walk.end(report.head.as_ref()) {
        return broken(report.clone(), &chain, breach(WITNESSED_HEAD, problem));
    }

    // Records without their event (inserted): found by count, then located.
    let artifacts = src.artifact_count().await?;
    if artifacts > seen.created + seen.legacy_created {
        let known = created_ids(src, "artifact_created", "artifact_id").await?;
        let mut ids = src.artifact_ids().await?;
        ids.sort();
        if let Some(extra) = ids.into_iter().find(|id| !known.contains(id)) {
            return broken(
                report,
                &chain,
                breach(format!("artifact {extra}"), "has no artifact_created event in the ledger (inserted)"),
            );
        }
    }
    let answers = src.answer_count().await?;
    if answers > seen.answered + seen.legacy_answered {
        let known = created_ids(src, "question_answered", "question_id").await?;
        let mut ids = src.answered_question_ids().await?;
        ids.sort();
        if let Some(extra) = ids.into_iter().find(|id| !known.contains(id)) {
            return broken(
                report,
                &chain,
                breach(
                    format!("answer to question {extra}"),
                    "has no question_answered event in the ledger (inserted)",
                ),
            );
        }
    }

    if seen.cancellations.len() as u64 > seen.cancelled {
        let known = created_ids(src, "workflow_cancelled", "goal_id").await?;
        let mut goals: Vec<&String> = seen.cancellations.keys().collect();
        goals.sort();
        if let Some(extra) = goals.into_iter().find(|g| !known.contains(*g)) {
            return broken(
                report,
                &chain,
                breach(
                    format!("cancellation of workflow {extra}"),
                    "has no workflow_cancelled event in the ledger (inserted)",
                ),
            );
        }
    }

    let mut actions: Vec<&String> = seen.actions.keys().collect();
    actions.sort();
    if let Some(extra) = actions.into_iter().find(|a| !seen.acted.contains(*a)) {
        return broken(
            report,
            &chain,
            breach(format!("action {extra}"), "has no event in the ledger (inserted into actions)"),
        );
    }

    // Claims: each record must be the one its last transition's event names.
    let mut start = 0;
    loop {
        let ids = src.claim_ids(start, PAGE).await?;
        if ids.is_empty() {
            break;
        }
        start += ids.len();
        let records = src.claims(&ids).await?;
        let event_ids: Vec<String> = records
            .iter()
            .map(|r| r.as_ref().and_then(|f| f.get(ledger::CLAIM_EVENT_FIELD)).cloned().unwrap_or_default())
            .collect();
        let wanted: Vec<String> = event_ids.iter().filter(|e| !e.is_empty()).cloned().collect();
        let mut events: HashMap<String, Option<Fields>> =
            wanted.iter().cloned().zip(src.events_by_id(&wanted).await?).collect();
        for ((id, record), eid) in ids.iter().zip(&records).zip(&event_ids) {
            let rec = format!("claim {id}");
            let Some(f) = record else {
                return broken(report, &chain, breach(rec, "in the claims index but its record is missing (deleted)"));
            };
            if eid.is_empty() {
                if chain.legacy > 0 {
                    report.unverified_claims += 1;
                    continue;
                }
                return broken(
                    report,
                    &chain,
                    breach(rec, "has no ledger event (written outside Sett's store, or its event field removed)"),
                );
            }
            let Some(Some(ev)) = events.remove(eid) else {
                return broken(
                    report,
                    &chain,
                    breach(rec, format!("the event of its last transition ({eid}) is missing (deleted)")),
                );
            };
            let fields = f.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            let expected =
                format!("{id}:{}:{}", f.get("revision").map_or("", String::as_str), ledger::claim_hash(fields));
            if ev.get("claim") != Some(&expected) {
                let logged_rev = ev.get("claim").and_then(|c| c.split(':').nth(1)).unwrap_or("?");
                let problem = if Some(logged_rev) != f.get("revision").map(String::as_str) {
                    format!(
                        "revision changed (its last event has revision {logged_rev}, the record has {})",
                        f.get("revision").map_or("none", String::as_str)
                    )
                } else {
                    "changed since its last transition: the record no longer matches the ledger".to_owned()
                };
                return broken(report, &chain, breach(rec, problem));
            }
            report.claims += 1;
        }
    }
    Ok(Outcome { report, breach: None })
}

/// Every `key` of the chained events of `kind` (only used once a count says a record was
/// inserted, so the set is built only then).
async fn created_ids(src: &mut impl LedgerSource, kind: &str, key: &str) -> Result<HashSet<String>, VerifyError> {
    let mut out = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = src.events_after(after.as_deref(), PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, f) in &page {
            if f.get("kind").map(String::as_str) == Some(kind)
                && let Some(id) = f
                    .get("data")
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                    .and_then(|d| d.get(key).and_then(|v| v.as_str()).map(str::to_owned))
            {
                out.insert(id);
            }
        }
    }
    Ok(out)
}

/// Records the instance's ledger head in the global audit stream (an anchor:
/// `{"event": "ledger_anchor", "instance", "head", "reason", "ts"}`) and returns it; `None`
/// (and nothing written) before the first chained event. Written by `sett down`, `sett export`
/// and, with `ledger.anchor_every`, periodically by the orchestrator.
pub async fn anchor(store: &Store, reason: &str) -> Result<Option<Head>, VerifyError> {
    let Some(head) = store.ledger_head().await? else { return Ok(None) };
    let record = serde_json::json!({
        "event": "ledger_anchor",
        "instance": store.instance().as_str(),
        "head": head.to_string(),
        "reason": reason,
        "ts": sett_store::now_ms(),
    });
    store.redis().append_audit(&record).await?;
    Ok(Some(head))
}

/// `ledger.anchor_every`: once the orchestrator holds the instance lock (`ready`), records the
/// ledger head in the global audit stream every `every` until `stop` — only when the head moved
/// since the last anchor this loop wrote, so an idle instance adds nothing — and witnesses it
/// outside Redis (the witness file at `witness`, and `on_anchor`: the `ledger_anchor`
/// notification). A failed anchor is logged and retried at the next tick; anchoring never stops
/// the engine.
pub async fn anchor_periodically(
    store: Store,
    every: std::time::Duration,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
    witness: std::path::PathBuf,
    on_anchor: Option<crate::witness::OnAnchor>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // After a pause (a suspended machine) one anchor, not a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Head> = None;
    loop {
        // Cancel-safe: `tick()` and `cancelled()` hold no state that a lost race would drop.
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !ready.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        match store.ledger_head().await {
            Ok(Some(head)) if last.as_ref() != Some(&head) => match anchor(&store, "periodic").await {
                Ok(written) => {
                    tracing::info!(head = ?written.as_ref().map(ToString::to_string), "ledger head anchored in the global audit stream");
                    if let Some(h) = &written {
                        match crate::witness::witness_head(&store, h, "periodic", &witness, on_anchor.as_ref()).await {
                            Ok(_) => last = written,
                            Err(e) => {
                                tracing::warn!(error = %e, "could not witness the ledger head outside Redis; retrying at the next interval")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not anchor the ledger head; retrying at the next interval"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the ledger head; retrying at the next interval"),
        }
    }
}
