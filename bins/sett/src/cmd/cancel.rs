//! `sett cancel`: cancel one workflow. Resolves the (short) id, then writes through
//! `sett_ops::cancel`, the code the web console uses too: one atomic step ends the workflow's
//! claims and questions; its cubs then stop the running tools. Cancelling twice is a no-op
//! that says so.

use std::process::ExitCode;

use anyhow::{Result, bail};
use sett_core::ArtifactId;
use sett_core::text::short;
use sett_ops::cancel::{CancelError, cancel_workflow};
use sett_ops::resolve::{IdQuery, Resolution, resolve_artifact};
use sett_store::Store;

use super::hoard::ambiguous;
use crate::cli::{CancelArgs, OutputFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

/// The one artifact `text` (a full or short id) names in the instance, or an error naming the
/// fix (shared by the steering commands: cancel, retry, fork).
pub(crate) async fn resolve_one(store: &Store, text: &str) -> Result<ArtifactId> {
    let query = IdQuery::parse(text).map_err(usage)?;
    let instance = store.instance();
    Ok(match resolve_artifact(store, &query).await? {
        Resolution::One(id) => id,
        Resolution::None => bail!(
            "no artifact matches '{text}' in instance '{instance}'\nList workflows' artifacts with 'sett hoard -n {instance}'"
        ),
        Resolution::Ambiguous(ids) => bail!("{}", ambiguous(store, text, &ids).await?),
    })
}

pub(crate) async fn run(ctx: &Ctx, args: CancelArgs) -> Result<ExitCode> {
    IdQuery::parse(&args.workflow).map_err(usage)?;
    let store = ctx.store().await?;
    let instance = store.instance().clone();
    let id = resolve_one(&store, &args.workflow).await?;
    let operator = ctx.operator();
    let cancelled = match cancel_workflow(&store, &id, &operator, args.reason.as_deref()).await {
        Ok(c) => c,
        Err(CancelError::AlreadyCancelled { goal, record }) => {
            let doc = serde_json::json!({
                "goal_id": goal, "already_cancelled": true, "operator": record.operator,
                "reason": record.reason, "at_ms": record.at_ms,
            });
            match ctx.output() {
                OutputFormat::Json => output::json(&doc)?,
                OutputFormat::Jsonl => output::jsonl(&doc)?,
                OutputFormat::Table => eprintln!(
                    "Nothing to do: the workflow of goal {} was already cancelled by {} at {}{}",
                    short(&goal.to_string()),
                    record.operator,
                    output::rfc3339_ms(record.at_ms),
                    record.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                ),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e @ CancelError::Ended { .. }) => {
            bail!("{e}: there is nothing left to cancel\nSee how it went with 'sett watch -n {instance}'")
        }
        Err(e @ CancelError::NotFound(..)) => bail!("{e}\nList artifacts with 'sett hoard -n {instance}'"),
        Err(CancelError::Store(e)) => return Err(anyhow::Error::from(e).context("cancelling the workflow")),
        Err(e) => bail!("{e}"),
    };
    match (ctx.global.quiet, ctx.output()) {
        (true, _) => output::line(&cancelled.goal_id.to_string())?,
        (false, OutputFormat::Json) => output::json(&serde_json::to_value(&cancelled)?)?,
        (false, OutputFormat::Jsonl) => output::jsonl(&serde_json::to_value(&cancelled)?)?,
        (false, OutputFormat::Table) => {
            output::line(&cancelled.goal_id.to_string())?;
            eprintln!(
                "Cancelled the workflow of goal {} as {operator}: {} claim(s) ended, {} question(s) closed; its running tools are being stopped.",
                short(&cancelled.goal_id.to_string()),
                cancelled.claims.len(),
                cancelled.questions.len(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
