//! `sett answer`: answer an agent's question. Resolves the (short) id, then writes through
//! `sett_ops::answer`, the code the web console uses too: of two concurrent answers exactly one
//! wins; the other is told who answered and when.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sett_core::ArtifactId;
use sett_ops::answer::{AnswerError, answer_question};
use sett_ops::feed::short;
use sett_ops::resolve::{IdQuery, Resolution};
use sett_store::Store;

use super::hoard::ambiguous;
use crate::cli::{AnswerArgs, OutputFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

fn answer_text(args: &AnswerArgs) -> Result<String> {
    let text = match (&args.text, &args.file) {
        (Some(t), None) if t == "-" => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the answer from stdin")?;
            s.trim_end_matches(['\n', '\r']).to_owned()
        }
        (Some(t), None) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the answer from {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        _ => {
            return Err(usage("give the answer: sett answer <question> \"text\", or --file FILE, or - to read stdin"));
        }
    };
    if text.trim().is_empty() {
        return Err(usage("the answer is empty: an agent cannot act on an empty answer"));
    }
    Ok(text)
}

/// The question `raw` names (see [`sett_ops::answer::resolve_question`]), or an error saying
/// how to find it.
async fn resolve_question(store: &Store, raw: &str) -> Result<ArtifactId> {
    let query = IdQuery::parse(raw).map_err(usage)?;
    let resolution = sett_ops::answer::resolve_question(store, &query).await?;
    match resolution {
        Resolution::One(id) => Ok(id),
        Resolution::None => bail!(
            "no question matches '{raw}' in instance '{}'\nList open questions with 'sett questions -n {}'",
            store.instance(),
            store.instance()
        ),
        Resolution::Ambiguous(ids) => bail!("{}", ambiguous(store, raw, &ids).await?),
    }
}

pub(crate) async fn run(ctx: &Ctx, args: AnswerArgs) -> Result<ExitCode> {
    IdQuery::parse(&args.question).map_err(usage)?;
    let text = answer_text(&args)?;
    let store = ctx.store().await?;
    let qid = resolve_question(&store, &args.question).await?;
    let operator = ctx.operator();
    let instance = store.instance();
    let answered = match answer_question(&store, &qid, &text, &operator).await {
        Ok(a) => a,
        Err(AnswerError::Empty) => return Err(usage(AnswerError::Empty.to_string())),
        Err(AnswerError::Store(e)) => return Err(anyhow::Error::from(e).context("writing the answer")),
        Err(e) => bail!("{}", e.report(instance.as_str())),
    };
    let summary = serde_json::json!({"id": answered.id, "question_id": qid, "claim_id": answered.claim_id, "answered_by": operator});
    match (ctx.global.quiet, ctx.output()) {
        (true, _) => output::line(&answered.id.to_string())?,
        (false, OutputFormat::Json) => output::json(&summary)?,
        (false, OutputFormat::Jsonl) => output::jsonl(&summary)?,
        (false, OutputFormat::Table) => {
            output::line(&answered.id.to_string())?;
            eprintln!("Answered question {} as {operator}; the waiting agent resumes.", short(&qid.to_string()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
