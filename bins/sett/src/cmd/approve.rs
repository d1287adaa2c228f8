//! `sett approve` / `sett reject`: decide an approval (a gated agent's claim waiting for a
//! person, `agents.<name>.approval`). Resolves the (short) id like `sett answer`, then writes
//! through `sett_ops::approval::decide`, the code the console and MCP use too: the decision binds
//! the hashes of what the approval showed, and is refused when the target changed since.

use std::process::ExitCode;

use anyhow::{Result, bail};
use sett_core::approval::Decision;
use sett_core::text::short;
use sett_ops::answer::AnswerError;
use sett_ops::resolve::IdQuery;

use super::answer::resolve_question;
use crate::cli::OutputFormat;
use crate::ctx::{Ctx, usage};
use crate::output;

pub(crate) async fn run(ctx: &Ctx, raw: &str, decision: Decision, reason: Option<&str>) -> Result<ExitCode> {
    IdQuery::parse(raw).map_err(usage)?;
    if decision == Decision::Reject && reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(usage("--reason is required to reject: say why, it is recorded in the Failure"));
    }
    let store = ctx.store().await?;
    let qid = resolve_question(&store, raw).await?;
    let operator = ctx.operator();
    let instance = store.instance();
    let decided = match sett_ops::approval::decide(&store, &qid, decision, reason, &operator).await {
        Ok(a) => a,
        Err(e @ (AnswerError::Invalid { .. } | AnswerError::NotAnApproval(_))) => {
            return Err(usage(e.report(instance.as_str())));
        }
        Err(AnswerError::Store(e)) => return Err(anyhow::Error::from(e).context("writing the decision")),
        Err(e) => bail!("{}", e.report(instance.as_str())),
    };
    let summary = serde_json::json!({
        "id": decided.id,
        "approval_id": qid,
        "claim_id": decided.claim_id,
        "decision": decision,
        "decided_by": operator,
        "reason": reason,
    });
    match (ctx.global.quiet, ctx.output()) {
        (true, _) => output::line(&decided.id.to_string())?,
        (false, OutputFormat::Json) => output::json(&summary)?,
        (false, OutputFormat::Jsonl) => output::jsonl(&summary)?,
        (false, OutputFormat::Table) => {
            output::line(&decided.id.to_string())?;
            match decision {
                Decision::Approve => eprintln!(
                    "Approved {} as {operator}; the agent is granted its claim on exactly the artifact shown.",
                    short(&qid.to_string())
                ),
                Decision::Reject => eprintln!(
                    "Rejected {} as {operator}; the claim ends with a Failure naming you and your reason.",
                    short(&qid.to_string())
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
