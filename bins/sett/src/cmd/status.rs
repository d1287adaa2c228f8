//! `sett status`: the health of one instance — lock holder, components (heartbeat and
//! `/healthz`), claims by status, open questions, the oldest stuck claim. Exit code 0 when
//! running and healthy, 1 when degraded, stopped or being destroyed (with the command to run).

use std::process::ExitCode;

use anyhow::Result;
use sett_ops::ledger_watch::{LedgerWatch, state_path};
use sett_ops::status::{Health, PROBE_TIMEOUT, STUCK_AFTER, StatusReport, advice, instance_status};
use sett_store::now_ms;

use crate::cli::{OutputFormat, StatusArgs};
use crate::ctx::Ctx;
use crate::output;

fn render(r: &StatusReport) -> String {
    let mut out = vec![format!("Instance:   {}", r.instance), format!("Status:     {}", r.health.as_str())];
    match &r.lock {
        Some(l) => out.push(format!(
            "Lock:       held by {} pid {} for {} (ttl {})",
            l.host,
            l.pid,
            output::human_ms(l.age_ms),
            l.ttl_ms.map_or_else(|| "none".to_owned(), |t| format!("{}ms", t))
        )),
        None => out.push("Lock:       free (stopped)".into()),
    }
    if r.components.is_empty() {
        out.push("Components: none registered".into());
    } else {
        out.push("Components:".into());
        for c in &r.components {
            let state =
                if c.healthy { "ok".to_owned() } else { format!("UNHEALTHY: {}", c.problem.as_deref().unwrap_or("?")) };
            let beat = c.heartbeat_age_ms.map_or_else(|| "-".to_owned(), |a| format!("{} ago", output::human_ms(a)));
            // Standing bids (design.md §5): which cubs offer one, and whether the orchestrator
            // records them.
            let standing = match (c.standing_bids, c.name.starts_with("cub:")) {
                (true, true) => ", standing bid offered",
                (true, false) => ", records standing bids",
                (false, _) => "",
            };
            out.push(format!(
                "  {:<20} pid {:<8} addr {:<22} heartbeat {:<9} {state}{standing}",
                c.name,
                c.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                c.addr.as_deref().unwrap_or("-"),
                beat
            ));
        }
    }
    if r.claims_by_status.is_empty() {
        out.push("Claims:     none".into());
    } else {
        let parts: Vec<String> = r.claims_by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
        out.push(format!("Claims:     {}", parts.join(", ")));
    }
    for p in &r.pauses {
        let scope = p.goal_id.as_deref().map_or_else(
            || "PAUSED:     the instance".to_owned(),
            |g| format!("PAUSED:     workflow of goal {}", sett_core::text::short(g)),
        );
        out.push(format!(
            "{scope} by {} for {}{}; {} held claim(s) — 'sett resume{} -n {}'",
            p.operator,
            output::human_ms(p.age_ms),
            p.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
            r.held_claims,
            p.goal_id.as_deref().map(|g| format!(" {}", sett_core::text::short(g))).unwrap_or_default(),
            r.instance
        ));
    }
    match r.oldest_question_age_ms {
        Some(age) => out.push(format!(
            "Questions:  {} open; the oldest has waited {} — 'sett questions -n {}'",
            r.open_questions,
            output::human_ms(age),
            r.instance
        )),
        None => out.push(format!("Questions:  {} open", r.open_questions)),
    }
    // The SLA view: how long each kind of human decision has kept work waiting.
    for k in &r.questions_by_kind {
        out.push(format!(
            "  {:<9} {} open; the oldest has waited {}",
            format!("{}:", k.kind),
            k.open,
            output::human_ms(k.oldest_age_ms)
        ));
    }
    match &r.oldest_stuck_claim {
        Some(s) => out.push(format!(
            "Stuck:      {} claim(s); oldest {} ({}, {} old) — 'sett claims --stuck -n {}'",
            r.stuck_claims,
            sett_core::text::short(&s.claim_id),
            s.status,
            output::human_ms(s.age_ms),
            r.instance
        )),
        None => out.push("Stuck:      none".into()),
    }
    match &r.ledger_head {
        Some(h) => out.push(format!("Ledger:     head {h} (check it with 'sett verify -n {}')", r.instance)),
        None => out.push("Ledger:     no chained event yet".into()),
    }
    for g in &r.ledger_regressions {
        out.push(format!(
            "  REGRESSED: went back from {} to {}; at least {} event(s) lost (noticed by {} at {}; 'sett ledger ack -n {}')",
            g.seen,
            g.found.as_deref().unwrap_or("nothing"),
            g.lost_at_least,
            g.detected_by,
            output::rfc3339_ms(g.detected_at_ms),
            r.instance
        ));
    }
    out.push(format!("Redis:      {}", r.replication.summary()));
    if let Some(a) = &r.archive {
        let now = now_ms();
        let ago =
            |t: Option<i64>| t.map_or_else(|| "never".to_owned(), |t| format!("{} ago", output::human_ms(now - t)));
        out.push(format!(
            "Archive:    {} segment(s), {} bytes, {} workflow(s); last success {}{}",
            a.segments,
            a.bytes,
            a.workflows,
            ago(a.last_success_ms),
            if a.failing() {
                format!("; LAST PASS FAILED {}: {}", ago(a.last_error_ms), a.last_error.as_deref().unwrap_or(""))
            } else {
                String::new()
            }
        ));
        if let Some(g) = &a.held_by {
            out.push(format!("            trimming held back by consumer group '{g}'"));
        }
    }
    if !r.webhooks.is_empty() {
        out.push("Webhooks:".into());
        for w in &r.webhooks {
            let state = if w.failing {
                format!(
                    "FAILING ({} attempt(s) in a row): {}",
                    w.consecutive_failures,
                    w.last_error.as_deref().unwrap_or("?")
                )
            } else {
                "ok".to_owned()
            };
            out.push(format!(
                "  {:<20} delivered {:<6} pending {:<5} given up {:<4} {state}",
                w.name, w.delivered, w.pending, w.given_up
            ));
        }
    }
    out.join("\n")
}

pub(crate) async fn run(ctx: &Ctx, _args: StatusArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let mut report = instance_status(&store, now_ms(), STUCK_AFTER, PROBE_TIMEOUT).await?;
    add_local_regressions(ctx, &store, &mut report).await;
    match ctx.output() {
        OutputFormat::Json => output::json(&serde_json::to_value(&report)?)?,
        OutputFormat::Jsonl => output::jsonl(&serde_json::to_value(&report)?)?,
        OutputFormat::Table => {
            if !ctx.global.quiet {
                output::line(&render(&report))?;
            }
            for a in advice(&report) {
                eprintln!("{a}");
            }
        }
    }
    let healthy = report.health == Health::Running && report.ledger_regressions.is_empty();
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Adds what this workspace knows outside Redis (`.sett/ledger/<instance>.json`): the
/// regressions its orchestrator noticed, and a check of the current head against the highest
/// one seen here — so a loss that happened while nothing ran is shown too.
async fn add_local_regressions(ctx: &Ctx, store: &sett_store::Store, report: &mut StatusReport) {
    let file = state_path(ctx.workspace_root(), store.instance().as_str());
    let mut watch = match LedgerWatch::persisted(store.clone(), "status", file) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("Warning: {e}");
            return;
        }
    };
    if let Err(e) = watch.check().await {
        eprintln!("Warning: could not check the ledger head against the one kept in this workspace: {e}");
    }
    // Acknowledged in Redis means acknowledged (a daemon's file may still list it).
    let acknowledged: Vec<String> = match store.regressions().await {
        Ok(all) => all.into_iter().filter(|r| r.is_acknowledged()).map(|r| r.seen).collect(),
        Err(_) => Vec::new(),
    };
    for r in watch.unacknowledged() {
        let known = report.ledger_regressions.iter().any(|k| k.seen == r.seen);
        if !known && !acknowledged.contains(&r.seen) {
            report.ledger_regressions.push(r.clone());
        }
    }
}
