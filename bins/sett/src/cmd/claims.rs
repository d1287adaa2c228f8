//! `sett claims`: claims oldest first, filtered by status or stuck-ness (non-final and past a
//! deadline, or idle longer than `--stuck-after` with no deadline).

use std::process::ExitCode;

use anyhow::Result;
use sett_core::text::unique_prefixes;
use sett_core::{Claim, ClaimStatus};
use sett_ops::status::stuck_for;
use sett_store::now_ms;

use crate::cli::{ClaimsArgs, OutputFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

/// Every agent granted on the claim, in phase order, without repeats.
fn granted_agents(c: &Claim) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = c
        .granted_review_agents
        .iter()
        .chain(&c.granted_parallel_agents)
        .chain(&c.granted_exclusive_agent)
        .chain(&c.assigned_agent)
        .chain(c.grants.keys());
    for a in all {
        if !out.iter().any(|x| x == a.as_str()) {
            out.push(a.to_string());
        }
    }
    out
}

fn deadline_text(next: Option<i64>, now: i64) -> String {
    match next {
        None => "-".into(),
        Some(d) if d < now => format!("overdue {}", output::human_ms(now - d)),
        Some(d) => format!("in {}", output::human_ms(d - now)),
    }
}

pub(crate) async fn run(ctx: &Ctx, args: ClaimsArgs) -> Result<ExitCode> {
    let status = args.status.as_deref().map(str::parse::<ClaimStatus>).transpose().map_err(usage)?;
    let stuck_after_ms = i64::try_from(args.stuck_after.as_millis()).unwrap_or(i64::MAX);
    let store = ctx.store().await?;
    let now = now_ms();
    let claims: Vec<(Claim, Option<i64>)> = store
        .all_claims()
        .await?
        .into_iter()
        .map(|c| {
            let stuck = stuck_for(&c, now, stuck_after_ms);
            (c, stuck)
        })
        .filter(|(c, stuck)| status.is_none_or(|s| c.status == s) && (!args.stuck || stuck.is_some()))
        .collect();
    let as_json = |(c, stuck): &(Claim, Option<i64>)| -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(c)?;
        v["next_deadline_ms"] = serde_json::json!(c.next_deadline_ms());
        v["stuck_for_ms"] = serde_json::json!(stuck);
        Ok(v)
    };
    match ctx.output() {
        OutputFormat::Json => {
            output::json(&serde_json::Value::Array(claims.iter().map(as_json).collect::<Result<_>>()?))?
        }
        OutputFormat::Jsonl => {
            for c in &claims {
                output::jsonl(&as_json(c)?)?;
            }
        }
        OutputFormat::Table if ctx.global.quiet => {
            for (c, _) in &claims {
                output::line(&c.id.to_string())?;
            }
        }
        OutputFormat::Table if claims.is_empty() => {
            output::line(&format!("No claims match in instance '{}'.", store.instance()))?;
        }
        OutputFormat::Table => {
            let ids: Vec<_> = claims.iter().map(|(c, _)| c.id).collect();
            let short = unique_prefixes(&ids, 8);
            let rows = claims
                .iter()
                .map(|(c, _)| {
                    let agents = granted_agents(c);
                    vec![
                        short.get(&c.id).cloned().unwrap_or_else(|| c.id.to_string()),
                        sett_core::text::short(&c.artifact_id.to_string()).to_owned(),
                        c.status.to_string(),
                        if agents.is_empty() { "-".into() } else { agents.join(",") },
                        output::human_ms(now - c.created_at_ms),
                        deadline_text(c.next_deadline_ms(), now),
                        c.termination_reason.as_deref().map(|r| sett_core::text::excerpt(r, 60)).unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(&["ID", "ARTIFACT", "STATUS", "AGENTS", "AGE", "NEXT DEADLINE", "REASON"], rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
