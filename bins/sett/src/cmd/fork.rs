//! `sett fork`: start a branch of a workflow at an earlier artifact. Resolves the (short) id,
//! then writes through `sett_ops::fork`, the code the web console uses too.

use std::process::ExitCode;

use anyhow::{Result, bail};
use sett_core::text::short;
use sett_ops::fork::{ForkError, ForkInput, fork};

use super::cancel::resolve_one;
use crate::cli::{ForkArgs, OutputFormat};
use crate::ctx::Ctx;
use crate::output;

pub(crate) async fn run(ctx: &Ctx, args: ForkArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let instance = store.instance().clone();
    let id = resolve_one(&store, &args.artifact).await?;
    let operator = ctx.operator();
    let input = match args.answer.as_deref() {
        Some(answer) => ForkInput::Answer(answer),
        None => ForkInput::Payload(args.payload.as_deref()),
    };
    let forked = match fork(&store, &id, input, &operator, args.reason.as_deref()).await {
        Ok(f) => f,
        Err(e @ ForkError::NotFound(..)) => bail!("{e}\nList artifacts with 'sett hoard -n {instance}'"),
        Err(ForkError::Store(e)) => return Err(anyhow::Error::from(e).context("forking the workflow")),
        Err(e) => bail!("{e}"),
    };
    match (ctx.global.quiet, ctx.output()) {
        (true, _) => output::line(&forked.artifact_id.to_string())?,
        (false, OutputFormat::Json) => output::json(&serde_json::to_value(&forked)?)?,
        (false, OutputFormat::Jsonl) => output::jsonl(&serde_json::to_value(&forked)?)?,
        (false, OutputFormat::Table) => {
            output::line(&forked.artifact_id.to_string())?;
            let resumes = forked
                .claim_id
                .map(|c| format!("; claim {} resumes the asking agent with it", short(&c.to_string())))
                .unwrap_or_default();
            eprintln!(
                "Forked the workflow of goal {} at {} as {operator}: {} (v{}) starts the branch{resumes}. The original branch keeps its outcome.\nFollow it with 'sett watch -n {instance}'",
                short(&forked.goal_id.to_string()),
                short(&forked.forked_from.to_string()),
                short(&forked.artifact_id.to_string()),
                forked.version,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
