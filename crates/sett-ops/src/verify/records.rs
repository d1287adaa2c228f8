//! The check of each kind of record against the event that logged it: an artifact (its
//! fields, hash and sources), an answer record, a grant gated by an approval, a cancellation
//! record and an operator action record.

use std::collections::HashMap;

use sett_core::ledger::{self, ARTIFACT_HASHED_FIELDS, UNHASHED_SOURCE};
use sett_store::SourceState;

use super::Fields;
use super::report::{Breach, breach};

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
pub(super) fn check_artifact(
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

pub(super) fn check_answer(question: &str, record: Option<&String>, ev: &serde_json::Value) -> Result<(), Breach> {
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
pub(super) enum ApprovalSeen {
    Decided { decision: String, target_hash: Option<String> },
    ApprovedOnTimeout,
}

/// A `claim_granted` that names its approval (`agents.<name>.approval`) against what the ledger
/// recorded before it: an approval of the granted target's hash (`target_hash`, the hash stored
/// with the target now), or `on_timeout: approve`.
pub(super) fn check_gated_grant(
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
pub(super) fn check_cancellation(
    goal: &str,
    record: Option<&String>,
    ev: &serde_json::Value,
    ts: &str,
) -> Result<(), Breach> {
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
pub(super) const ACTION_KINDS: [&str; 5] =
    ["paused", "resumed", "workflow_retried", "artifact_forked", "budget_decided"];

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
pub(super) fn check_action(
    kind: &str,
    record: Option<&String>,
    ev: &serde_json::Value,
    ts: &str,
) -> Result<(), Breach> {
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
