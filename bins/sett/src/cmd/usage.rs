//! `sett usage`: what agents reported they spent (sett_ops::usage), summed by workflow, agent or
//! model, with a total.

use std::process::ExitCode;

use anyhow::Result;
use sett_ops::resolve::Since;
use sett_ops::usage::{Grouping, UsageLedger};
use sett_store::now_ms;

use crate::cli::{OutputFormat, UsageArgs, UsageBy};
use crate::ctx::{Ctx, usage};
use crate::output;

pub(crate) async fn run(ctx: &Ctx, args: UsageArgs) -> Result<ExitCode> {
    let since = args.since.as_deref().map(|s| Since::parse(s, now_ms())).transpose().map_err(usage)?;
    let grouping = match args.by {
        UsageBy::Workflow => Grouping::Workflow,
        UsageBy::Agent => Grouping::Agent,
        UsageBy::Model => Grouping::Model,
    };
    let store = ctx.store().await?;
    let mut ledger = UsageLedger::read(&store).await?;
    if let Some(s) = &since {
        ledger = ledger.since(s.min_time_ms());
    }
    let rows = ledger.rows(grouping);
    let total = ledger.total();
    match ctx.output() {
        OutputFormat::Json => output::json(&serde_json::json!({
            "by": grouping.as_str(),
            "rows": rows,
            "total": total,
        }))?,
        OutputFormat::Jsonl => {
            for r in &rows {
                output::jsonl(&serde_json::to_value(r)?)?;
            }
        }
        OutputFormat::Table if ctx.global.quiet => {
            output::line(&format!("{} {}", total.tokens(), total.cost_text()))?;
        }
        OutputFormat::Table if rows.is_empty() => {
            output::line(&format!(
                "No usage reported in instance '{}'{}. Agents report it in their output's \"usage\" (docs/agents.md, \"Usage\").",
                store.instance(),
                if since.is_some() { " in that period" } else { "" }
            ))?;
        }
        OutputFormat::Table => {
            let header = grouping.as_str().to_uppercase();
            let mut table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let key = match (&r.goal, grouping) {
                        (Some(goal), Grouping::Workflow) => {
                            format!("{} {}", sett_core::text::short(&r.key), sett_core::text::excerpt(goal, 40))
                        }
                        _ => r.key.clone(),
                    };
                    vec![
                        key,
                        r.totals.runs.to_string(),
                        r.totals.input_tokens.to_string(),
                        r.totals.output_tokens.to_string(),
                        r.totals.cost_text(),
                    ]
                })
                .collect();
            table.push(vec![
                "TOTAL".to_owned(),
                total.runs.to_string(),
                total.input_tokens.to_string(),
                total.output_tokens.to_string(),
                total.cost_text(),
            ]);
            output::table(&[&header, "RUNS", "INPUT TOKENS", "OUTPUT TOKENS", "COST"], table)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
