//! `sett pause` / `sett resume`: pause or resume the instance, or one workflow. Resolves the
//! (short) id, then writes through `sett_ops::pause`, the code the web console uses too.
//! Pausing what is paused, or resuming what is not, is a no-op that says so.

use std::process::ExitCode;

use anyhow::{Result, bail};
use sett_core::ArtifactId;
use sett_ops::pause::{PauseError, pause, resume, what};
use sett_ops::resolve::{IdQuery, Resolution, resolve_artifact};

use super::hoard::ambiguous;
use crate::cli::{OutputFormat, PauseArgs};
use crate::ctx::{Ctx, usage};
use crate::output;

/// Which of the two commands runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Pause,
    Resume,
}

pub(crate) async fn run(ctx: &Ctx, args: PauseArgs, action: Action) -> Result<ExitCode> {
    let query = args.workflow.as_deref().map(IdQuery::parse).transpose().map_err(usage)?;
    let store = ctx.store().await?;
    let instance = store.instance().clone();
    let target: Option<ArtifactId> = match &query {
        None => None,
        Some(q) => match resolve_artifact(&store, q).await? {
            Resolution::One(id) => Some(id),
            Resolution::None => bail!(
                "no artifact matches '{}' in instance '{instance}'\nList workflows' artifacts with 'sett hoard -n {instance}'",
                args.workflow.as_deref().unwrap_or_default()
            ),
            Resolution::Ambiguous(ids) => {
                bail!("{}", ambiguous(&store, args.workflow.as_deref().unwrap_or_default(), &ids).await?)
            }
        },
    };
    let operator = ctx.operator();
    let reason = args.reason.as_deref();
    let done = match action {
        Action::Pause => pause(&store, target.as_ref(), &operator, reason).await.map(|d| serde_json::to_value(&d)),
        Action::Resume => resume(&store, target.as_ref(), &operator, reason).await.map(|d| serde_json::to_value(&d)),
    };
    let doc = match done {
        Ok(doc) => doc?,
        Err(PauseError::AlreadyPaused { scope, record }) => {
            let doc = serde_json::json!({
                "goal_id": scope.goal(), "already_paused": true, "operator": record.operator,
                "reason": record.reason, "at_ms": record.at_ms,
            });
            let line = format!(
                "Nothing to do: {} was already paused by {} at {}{}",
                what(&scope),
                record.operator,
                output::rfc3339_ms(record.at_ms),
                record.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
            );
            return no_op(ctx, &doc, &line);
        }
        Err(PauseError::NotPaused(scope)) => {
            let doc = serde_json::json!({"goal_id": scope.goal(), "not_paused": true});
            return no_op(ctx, &doc, &format!("Nothing to do: {} is not paused", what(&scope)));
        }
        Err(e @ PauseError::Ended { .. }) => {
            bail!("{e}: there is nothing left to pause\nSee how it went with 'sett watch -n {instance}'")
        }
        Err(e @ PauseError::NotFound(..)) => bail!("{e}\nList artifacts with 'sett hoard -n {instance}'"),
        Err(PauseError::Store(e)) => return Err(anyhow::Error::from(e).context("writing the pause")),
        Err(e) => bail!("{e}"),
    };
    let scope = match doc["goal_id"].as_str() {
        Some(goal) => format!("the workflow of goal {}", sett_core::text::short(goal)),
        None => format!("instance '{instance}'"),
    };
    match (ctx.global.quiet, ctx.output()) {
        (true, _) => {}
        (false, OutputFormat::Json) => output::json(&doc)?,
        (false, OutputFormat::Jsonl) => output::jsonl(&doc)?,
        (false, OutputFormat::Table) => match action {
            Action::Pause => eprintln!(
                "Paused {scope} as {operator}: nothing new is granted (bids are still collected, running tools finish) and its deadlines stand still.\nResume it with 'sett resume{}'",
                args.workflow.as_deref().map(|w| format!(" {w}")).unwrap_or_default()
            ),
            Action::Resume => eprintln!(
                "Resumed {scope} as {operator} after {} s: {} claim(s) got their deadlines moved later; held grants follow now.",
                doc["paused_ms"].as_i64().unwrap_or(0) / 1000,
                doc["claims"].as_array().map_or(0, Vec::len),
            ),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Reports a no-op (paused twice, resumed when not paused): success, and says why.
fn no_op(ctx: &Ctx, doc: &serde_json::Value, line: &str) -> Result<ExitCode> {
    match ctx.output() {
        OutputFormat::Json => output::json(doc)?,
        OutputFormat::Jsonl => output::jsonl(doc)?,
        OutputFormat::Table => eprintln!("{line}"),
    }
    Ok(ExitCode::SUCCESS)
}
