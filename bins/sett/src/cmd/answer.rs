//! `sett answer`: answer an agent's question — as text, as an option by text or number, as
//! `--json`, or field by field at a terminal prompt. Resolves the (short) id, then writes through
//! `sett_ops::answer`, the code the web console uses too: an answer that does not fit the
//! question's spec is refused with every problem listed; of two concurrent answers exactly one
//! wins; the other is told who answered and when.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use inquire::validator::Validation;
use serde_json::{Map, Value};
use sett_core::ArtifactId;
use sett_core::answer_spec::{AnswerSpec, Field, FieldKind, StructuredQuestion};
use sett_core::text::short;
use sett_ops::answer::{AnswerError, AnswerInput, answer_question};
use sett_ops::resolve::{IdQuery, Resolution};
use sett_store::Store;

use super::hoard::ambiguous;
use crate::cli::{AnswerArgs, OutputFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

/// The answer given on the command line; `None` when it is to be prompted for.
fn given_answer(args: &AnswerArgs) -> Result<Option<AnswerInput>> {
    if let Some(json) = &args.json {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| usage(format!("--json is not valid JSON ({e}); e.g. --json '{{\"replicas\": 3}}'")))?;
        return Ok(Some(AnswerInput::Json(value)));
    }
    if let (Some(decision), Some(comments)) = (&args.text, &args.comment) {
        return Ok(Some(AnswerInput::Json(serde_json::json!({"decision": decision, "comments": comments}))));
    }
    if args.text.is_none() && args.file.is_none() && std::io::stdin().is_terminal() {
        return Ok(None);
    }
    Ok(Some(AnswerInput::Text(answer_text(args)?)))
}

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
            return Err(usage(
                "give the answer: sett answer <question> \"text\" (or an option's number), --json '{…}', --file FILE, or - to read stdin; or run it at a terminal to be prompted",
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(usage("the answer is empty: an agent cannot act on an empty answer"));
    }
    Ok(text)
}

/// The question `raw` names (see [`sett_ops::answer::resolve_question`]), or an error saying
/// how to find it.
pub(crate) async fn resolve_question(store: &Store, raw: &str) -> Result<ArtifactId> {
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

/// Asks for the answer at the terminal: a Select or MultiSelect for options, a form field by
/// field (Text, Select, MultiSelect, Confirm) for a schema, free text otherwise.
fn prompt(question: &str, spec: Option<&AnswerSpec>) -> Result<AnswerInput> {
    let cancelled = |e: inquire::InquireError| match e {
        inquire::InquireError::OperationCanceled | inquire::InquireError::OperationInterrupted => {
            anyhow::anyhow!("answer cancelled - nothing was written")
        }
        e => anyhow::Error::from(e).context("cannot read the answer - nothing was written; give it as an argument"),
    };
    let Some(spec) = spec else {
        let text = inquire::Text::new(question)
            .with_validator(|s: &str| {
                Ok(if s.trim().is_empty() {
                    Validation::Invalid("the answer is empty".into())
                } else {
                    Validation::Valid
                })
            })
            .prompt()
            .map_err(cancelled)?;
        return Ok(AnswerInput::Text(text));
    };
    match spec {
        AnswerSpec::Choice(c) => {
            let defaults: Vec<usize> = match &c.default {
                Some(Value::String(d)) => c.options.iter().position(|o| o == d).into_iter().collect(),
                Some(Value::Array(ds)) => {
                    c.options.iter().enumerate().filter(|(_, o)| ds.iter().any(|d| d == *o)).map(|(i, _)| i).collect()
                }
                _ => Vec::new(),
            };
            let value = if c.multiple {
                let picked = inquire::MultiSelect::new(question, c.options.clone())
                    .with_default(&defaults)
                    .prompt()
                    .map_err(cancelled)?;
                Value::Array(picked.into_iter().map(Value::String).collect())
            } else {
                let picked = inquire::Select::new(question, c.options.clone())
                    .with_starting_cursor(defaults.first().copied().unwrap_or(0))
                    .prompt()
                    .map_err(cancelled)?;
                Value::String(picked)
            };
            Ok(AnswerInput::Json(value))
        }
        AnswerSpec::Form(f) => {
            eprintln!("{question}");
            let mut object = Map::new();
            for field in &f.fields {
                if let Some(v) = prompt_field(field).map_err(cancelled)? {
                    object.insert(field.name.clone(), v);
                }
            }
            Ok(AnswerInput::Json(Value::Object(object)))
        }
    }
}

/// One form field; `None` when an optional field is left empty.
fn prompt_field(field: &Field) -> Result<Option<Value>, inquire::InquireError> {
    let label = format!("{}{}", field.label(), if field.required { " *" } else { "" });
    let help = field.description.clone().unwrap_or_else(|| field.kind.expected());
    match &field.kind {
        FieldKind::Boolean => {
            let default = field.default.as_ref().and_then(Value::as_bool).unwrap_or(false);
            let v = inquire::Confirm::new(&label).with_default(default).with_help_message(&help).prompt()?;
            Ok(Some(Value::Bool(v)))
        }
        FieldKind::OneOf { options } => {
            let start = field.default.as_ref().and_then(|d| options.iter().position(|o| d == o)).unwrap_or(0);
            let v = inquire::Select::new(&label, options.clone())
                .with_starting_cursor(start)
                .with_help_message(&help)
                .prompt()?;
            Ok(Some(Value::String(v)))
        }
        FieldKind::SomeOf { options, .. } => {
            let defaults: Vec<usize> = match &field.default {
                Some(Value::Array(ds)) => {
                    options.iter().enumerate().filter(|(_, o)| ds.iter().any(|d| d == *o)).map(|(i, _)| i).collect()
                }
                _ => Vec::new(),
            };
            let checked = field.clone();
            let v = inquire::MultiSelect::new(&label, options.clone())
                .with_default(&defaults)
                .with_help_message(&help)
                .with_validator(move |picked: &[inquire::list_option::ListOption<&String>]| {
                    let value = Value::Array(picked.iter().map(|o| Value::String(o.value.clone())).collect());
                    Ok(match checked.check(&value) {
                        Ok(_) => Validation::Valid,
                        Err(problems) => Validation::Invalid(problems.join("; ").into()),
                    })
                })
                .prompt()?;
            Ok(Some(Value::Array(v.into_iter().map(Value::String).collect())))
        }
        FieldKind::Text { .. } | FieldKind::Number { .. } => {
            let number = matches!(field.kind, FieldKind::Number { .. });
            let default = field.default.as_ref().map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned));
            let checked = field.clone();
            let parse = move |s: &str| -> Result<Option<Value>, String> {
                let s = s.trim();
                if s.is_empty() {
                    return if checked.required { Err("required".into()) } else { Ok(None) };
                }
                let value = if number {
                    serde_json::from_str::<Value>(s)
                        .ok()
                        .filter(Value::is_number)
                        .ok_or_else(|| format!("{s:?} is not a number"))?
                } else {
                    Value::String(s.to_owned())
                };
                checked.check(&value).map(Some).map_err(|p| p.join("; "))
            };
            let validate = parse.clone();
            let mut text = inquire::Text::new(&label).with_help_message(&help).with_validator(move |s: &str| {
                Ok(match validate(s) {
                    Ok(_) => Validation::Valid,
                    Err(e) => Validation::Invalid(e.into()),
                })
            });
            if let Some(d) = &default {
                text = text.with_default(d);
            }
            let typed = text.prompt()?;
            Ok(parse(&typed).unwrap_or(None))
        }
    }
}

pub(crate) async fn run(ctx: &Ctx, args: AnswerArgs) -> Result<ExitCode> {
    IdQuery::parse(&args.question).map_err(usage)?;
    let given = given_answer(&args)?;
    let store = ctx.store().await?;
    let qid = resolve_question(&store, &args.question).await?;
    let operator = ctx.operator();
    let instance = store.instance();
    let input = match given {
        Some(input) => input,
        None => {
            if let Err(e) = sett_ops::answer::check_addressee(&store, &qid, &operator, &[]).await {
                bail!("{}", e.report(instance.as_str()));
            }
            let question = store.get_artifact(&qid).await?;
            let payload = question.map(|q| q.payload).unwrap_or_default();
            match StructuredQuestion::from_payload(&payload) {
                Ok(Some(q)) => prompt(&q.question, Some(&q.spec))?,
                _ => prompt(&payload, None)?,
            }
        }
    };
    let answered = match answer_question(&store, &qid, &input, &operator).await {
        Ok(a) => a,
        Err(AnswerError::Empty) => return Err(usage(AnswerError::Empty.to_string())),
        Err(e @ AnswerError::Invalid { .. }) => {
            return Err(usage(format!("{e}\nSee what it asks with 'sett questions -n {instance}'")));
        }
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
