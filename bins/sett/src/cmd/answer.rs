//! `sett answer`: answer an agent's question. The Answer artifact and the closing of the question
//! are one atomic write, so of two concurrent answers exactly one wins; the other is told who
//! answered and when.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sett_core::{Artifact, ArtifactId, StructuralType};
use sett_ops::feed::short;
use sett_ops::resolve::{IdQuery, Resolution, resolve_among, resolve_artifact};
use sett_store::{AnswerRecord, CreateOutcome, Store, now_ms};

use super::hoard::ambiguous;
use crate::cli::{AnswerArgs, OutputFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

/// How many prefix matches are examined for Questions when a short id is ambiguous.
const QUESTION_SCAN_LIMIT: usize = 1_000;

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

/// Open questions first (cheap, and what the operator means), then every artifact.
async fn resolve_question(store: &Store, raw: &str) -> Result<ArtifactId> {
    let query = IdQuery::parse(raw).map_err(usage)?;
    let open: Vec<ArtifactId> = store.open_questions().await?.into_iter().map(|(id, _)| id).collect();
    let resolution = match resolve_among(&query, &open) {
        Resolution::None => match resolve_artifact(store, &query).await? {
            // Only a Question can be answered: among several matches (ids created in the same
            // minute share a prefix — e.g. a question answered a moment ago and its answer),
            // the Questions are what the operator means.
            Resolution::Ambiguous(_) => only_questions(store, &query).await?,
            other => other,
        },
        found => found,
    };
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

/// The Questions among every artifact matching `query`.
async fn only_questions(store: &Store, query: &IdQuery) -> Result<Resolution> {
    let IdQuery::Short(prefix) = query else {
        return Ok(Resolution::None);
    };
    let mut questions = Vec::new();
    for id in store.artifacts_by_prefix(prefix, QUESTION_SCAN_LIMIT).await? {
        if store.get_artifact(&id).await?.is_some_and(|a| a.structural_type == StructuralType::Question) {
            questions.push(id);
        }
    }
    Ok(resolve_among(query, &questions))
}

pub(crate) async fn run(ctx: &Ctx, args: AnswerArgs) -> Result<ExitCode> {
    IdQuery::parse(&args.question).map_err(usage)?;
    let text = answer_text(&args)?;
    let store = ctx.store().await?;
    let qid = resolve_question(&store, &args.question).await?;
    let Some(question) = store.get_artifact(&qid).await? else {
        bail!("question {qid} disappeared while reading it (was instance '{}' destroyed?)", store.instance());
    };
    if question.structural_type != StructuralType::Question {
        bail!(
            "artifact {} is a {} ({}), not a Question\nList open questions with 'sett questions -n {}'",
            short(&qid.to_string()),
            question.structural_type,
            question.artifact_type,
            store.instance()
        );
    }
    // A question whose claim already ended unanswered (it timed out, or the claim failed) has
    // nobody waiting for it: an answer would be recorded and never read.
    if store.answer_record(&qid).await?.is_none()
        && let Some(cid) = question.claim_id
        && let Some(claim) = store.get_claim(&cid).await?
        && claim.status.is_final()
    {
        bail!(
            "question {} can no longer be answered: its claim {} is {}{}\nInspect it with 'sett claims -n {}'; start again with 'sett forage'",
            short(&qid.to_string()),
            short(&cid.to_string()),
            claim.status,
            claim.termination_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
            store.instance()
        );
    }
    let operator = ctx.operator();
    let now = now_ms();
    let mut answer = Artifact::new_root(StructuralType::Answer, "Answer", text, format!("human:{operator}"), now);
    answer.source_artifacts = vec![qid];
    answer.claim_id = question.claim_id;
    answer.answered_by = Some(operator.clone());
    let record =
        AnswerRecord { answer_id: answer.id, answered_by: operator.clone(), answered_at_ms: now, timed_out: false };
    match store.create_answer(&answer, &qid, &record).await.context("writing the answer")? {
        CreateOutcome::Created { .. } => {}
        CreateOutcome::AlreadyAnswered(r) => bail!(
            "question {} was already answered by {} at {}\nSee the answer with 'sett hoard {} -n {}'",
            short(&qid.to_string()),
            r.answered_by,
            output::rfc3339_ms(r.answered_at_ms),
            short(&r.answer_id.to_string()),
            store.instance()
        ),
        other => bail!("the answer was not written ({other:?}); retry 'sett answer'"),
    }
    let summary = serde_json::json!({"id": answer.id, "question_id": qid, "claim_id": question.claim_id, "answered_by": operator});
    match (ctx.global.quiet, ctx.output()) {
        (true, _) => output::line(&answer.id.to_string())?,
        (false, OutputFormat::Json) => output::json(&summary)?,
        (false, OutputFormat::Jsonl) => output::jsonl(&summary)?,
        (false, OutputFormat::Table) => {
            output::line(&answer.id.to_string())?;
            eprintln!("Answered question {} as {operator}; the waiting agent resumes.", short(&qid.to_string()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
