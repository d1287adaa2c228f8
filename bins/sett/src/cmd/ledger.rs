//! `sett ledger ack`: an operator has looked at the instance's ledger regressions (see
//! docs/operations.md, "The ledger went back"): they are marked acknowledged (who, when), `sett
//! status` stops showing them, and this workspace's record of the highest head seen and its
//! witness file (`sett verify --witness`) start again from the current head.

use std::process::ExitCode;

use anyhow::{Context, Result};
use sett_ops::ledger_watch::{LedgerWatch, state_path};
use sett_store::now_ms;

use crate::cli::{LedgerCommand, OutputFormat};
use crate::ctx::Ctx;
use crate::output;

pub(crate) async fn run(ctx: &Ctx, cmd: LedgerCommand) -> Result<ExitCode> {
    match cmd {
        LedgerCommand::Ack => ack(ctx).await,
    }
}

async fn ack(ctx: &Ctx) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let operator = ctx.operator();
    let acknowledged = store.acknowledge_regressions(&operator, now_ms()).await?;
    let file = state_path(ctx.workspace_root(), store.instance().as_str());
    let mut watch = LedgerWatch::persisted(store.clone(), "status", file.clone())
        .with_context(|| format!("remove {} to start over", file.display()))?;
    let local = watch.unacknowledged().len();
    watch.acknowledge().await?;
    let head = watch.seen().map(ToString::to_string);
    // The witness file checks from this head on: the loss is known and accepted; the lines of
    // the heads lost stay in the file as evidence.
    let accepted = store.ledger_head().await?.unwrap_or(sett_core::ledger::Head { seq: 0, hash: String::new() });
    let record =
        sett_ops::witness::record(store.instance().as_str(), &accepted, sett_core::witness::REASON_ACKNOWLEDGED);
    if let Err(e) = sett_ops::witness::append(&ctx.witness_file(), &record) {
        eprintln!("Warning: {e}; 'sett verify --witness' will still report the heads lost");
    }
    let doc = serde_json::json!({
        "instance": store.instance().as_str(),
        "acknowledged_by": operator,
        "acknowledged": acknowledged,
        "head": head,
    });
    match ctx.output() {
        OutputFormat::Json => output::json(&doc)?,
        OutputFormat::Jsonl => output::jsonl(&doc)?,
        OutputFormat::Table => {
            if !ctx.global.quiet {
                let n = acknowledged.len().max(local);
                let mut lines = vec![format!(
                    "Acknowledged {n} ledger regression(s) of instance '{}' as {operator}.",
                    store.instance()
                )];
                for r in &acknowledged {
                    lines.push(format!(
                        "  {} -> {} (at least {} event(s) lost; noticed by {})",
                        r.seen,
                        r.found.as_deref().unwrap_or("nothing"),
                        r.lost_at_least,
                        r.detected_by
                    ));
                }
                lines.push(format!(
                    "Compared from now on with head {}.",
                    head.as_deref().unwrap_or("(no chained event yet)")
                ));
                output::line(&lines.join("\n"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
