//! The records a page of chained events refers to: the artifacts, sources and answer records
//! fetched in one batch per page, gated grants, cancellations and actions checked in order, and
//! the counts the walk compares with the stored records at the end.

use std::collections::HashMap;

use sett_store::SourceState;

use super::chain::event_record;
use super::records::{
    ACTION_KINDS, ApprovalSeen, check_action, check_answer, check_artifact, check_cancellation, check_gated_grant,
};
use super::report::{Breach, breach};
use super::{Fields, LedgerSource, VerifyError};

/// Counts of the records the chain accounts for, and the cancellation records to check.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) created: u64,
    pub(super) legacy_created: u64,
    pub(super) answered: u64,
    pub(super) legacy_answered: u64,
    pub(super) cancelled: u64,
    pub(super) cancellations: HashMap<String, String>,
    /// Approvals decided so far (by question id), for the grants that follow them.
    pub(super) approvals: HashMap<String, ApprovalSeen>,
    /// The action ids the chain's action events name.
    pub(super) acted: std::collections::HashSet<String>,
    pub(super) actions: HashMap<String, String>,
}

/// Checks the contents a page of chained events refers to; the earliest breach (by position).
pub(super) async fn check_page(
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
