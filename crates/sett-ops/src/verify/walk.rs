//! The walk over a whole ledger: the chain page by page (each page's records checked in one
//! batch), then the head record, a head recorded earlier (`--head`) and a witness file's heads,
//! the records that have no event (inserted), and every claim against its last transition.

use std::collections::{HashMap, HashSet};

use sett_core::ledger::{self, GENESIS, Head};
use sett_core::witness::{WitnessWalk, Witnesses};

use super::chain::Chain;
use super::page::{Seen, check_page};
use super::report::{Breach, Outcome, Report, WitnessReport, breach};
use super::{Fields, LedgerSource, PAGE, VerifyError, WITNESSED_HEAD};

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
