//! `sett forage`: start a workflow by writing the root GoalDefined artifact; with `--watch`,
//! stream the workflow's events until a Terminal (exit 0) or Failure (exit 1) artifact, or the
//! timeout (exit 2).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sett_ops::forage::{ForageError, start_workflow};
use sett_ops::workflow::Workflow;
use tokio::time::Instant;

use super::watch::{Step, print_event, report_outcome, stream_events, timed_out};
use crate::cli::{ForageArgs, OutputFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

pub(crate) async fn run(ctx: &Ctx, args: ForageArgs) -> Result<ExitCode> {
    if args.goal.trim().is_empty() {
        return Err(usage("the goal is empty: pass --goal \"what the agents should achieve\""));
    }
    if args.timeout.is_some() && !args.watch {
        return Err(usage("--timeout only applies with --watch"));
    }
    let store = ctx.store().await?;
    let instance = store.instance().clone();
    // The position before the goal, so --watch shows the goal's own event too.
    let start = store.last_event_id().await?.unwrap_or_else(|| "0-0".to_owned());
    let started = match start_workflow(&store, &args.goal).await {
        Ok(s) => s,
        Err(ForageError::Store(e)) => return Err(anyhow::Error::from(e).context("writing the goal")),
        Err(e) => bail!("{e}"),
    };
    let (goal_id, event_id) = (started.id, started.event_id);
    let summary = serde_json::json!({"id": goal_id, "instance": instance, "event_id": event_id});
    match (ctx.global.quiet, ctx.output()) {
        (true, _) => output::line(&goal_id.to_string())?,
        (false, OutputFormat::Json) => output::json(&summary)?,
        (false, OutputFormat::Jsonl) => output::jsonl(&summary)?,
        (false, OutputFormat::Table) => {
            output::line(&goal_id.to_string())?;
            if !args.watch {
                eprintln!(
                    "Goal written to instance '{instance}'. Follow it with 'sett watch -n {instance} --exit-on-completion'."
                );
            }
        }
    }
    if !args.watch {
        return Ok(ExitCode::SUCCESS);
    }
    let mut wf = Workflow::new(goal_id);
    let format = ctx.output();
    let quiet = ctx.global.quiet;
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let result = stream_events(&store, start, deadline, None, async |step| {
        let Step::Event(e) = step else {
            return Ok(None);
        };
        if !wf.observe(e) {
            return Ok(None);
        }
        if !quiet {
            print_event(format, e)?;
        }
        match wf.outcome() {
            Some(o) => report_outcome(ctx, &store, o).await.map(Some),
            None => Ok(None),
        }
    })
    .await
    .with_context(|| format!("watching the workflow of goal {goal_id}"))?;
    Ok(result.unwrap_or_else(|| timed_out("the workflow to end", args.timeout.unwrap_or_default(), instance.as_str())))
}
