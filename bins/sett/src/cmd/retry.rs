//! `sett retry`: give a failed workflow's failed step a new attempt. Resolves the (short) id,
//! then writes through `sett_ops::retry`, the code the web console uses too. Retrying a workflow
//! that has not failed is an error that says how it stands.

use std::process::ExitCode;

use anyhow::{Result, bail};
use sett_core::text::short;
use sett_ops::retry::{RetryError, retry};

use super::cancel::resolve_one;
use crate::cli::{OutputFormat, RetryArgs};
use crate::ctx::Ctx;
use crate::output;

pub(crate) async fn run(ctx: &Ctx, args: RetryArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let instance = store.instance().clone();
    let id = resolve_one(&store, &args.workflow).await?;
    let operator = ctx.operator();
    let retried = match retry(&store, &id, &operator, args.reason.as_deref()).await {
        Ok(r) => r,
        Err(e @ RetryError::NotFailed { .. }) => {
            bail!("{e}: only a failed workflow is retried\nSee how it stands with 'sett watch -n {instance}'")
        }
        Err(e @ RetryError::NotFound(..)) => bail!("{e}\nList artifacts with 'sett hoard -n {instance}'"),
        Err(e @ RetryError::AlreadyRetried { .. }) => {
            bail!("{e}\nFollow the new attempt with 'sett watch -n {instance}'")
        }
        Err(RetryError::Store(e)) => return Err(anyhow::Error::from(e).context("retrying the workflow")),
        Err(e) => bail!("{e}"),
    };
    match (ctx.global.quiet, ctx.output()) {
        (true, _) => output::line(&retried.claim_id.to_string())?,
        (false, OutputFormat::Json) => output::json(&serde_json::to_value(&retried)?)?,
        (false, OutputFormat::Jsonl) => output::jsonl(&serde_json::to_value(&retried)?)?,
        (false, OutputFormat::Table) => {
            output::line(&retried.claim_id.to_string())?;
            eprintln!(
                "Retried the workflow of goal {} as {operator}: claim {} is a new attempt at {} (the failed claim {} and its {} stay in the history).\nFollow it with 'sett watch -n {instance}'",
                short(&retried.goal_id.to_string()),
                short(&retried.claim_id.to_string()),
                short(&retried.artifact_id.to_string()),
                short(&retried.failed_claim.to_string()),
                retried.failure_type,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
