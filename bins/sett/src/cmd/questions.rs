//! `sett questions`: the open questions, oldest first, read from the open-question index (cost
//! independent of the number of artifacts). `--wait` blocks, push-driven on the event stream,
//! until one is open. Approvals (`kind: approval`) are listed with what is to be approved: the
//! agent, the claim type, the target with a payload excerpt, and the hashes a decision binds.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use sett_core::answer_spec::{AnswerSpec, FieldKind, QuestionKind, StructuredQuestion};
use sett_core::approval::ApprovalSubject;
use sett_core::event::EventKind;
use sett_core::review::ReviewSubject;
use sett_core::text::unique_prefixes;
use sett_core::text::{excerpt, short as short_display};
use sett_store::{Store, now_ms};
use tokio::time::Instant;

use crate::cli::{OutputFormat, QuestionsArgs};
use crate::ctx::{Ctx, usage};
use crate::output;

/// Longest single blocking read while waiting.
const MAX_BLOCK: Duration = Duration::from_secs(5);

/// One open question as shown to operators and scripts.
#[derive(Debug, Serialize)]
struct OpenQuestion {
    id: String,
    short_id: String,
    agent: String,
    claim_id: Option<String>,
    asked_at_ms: i64,
    age_ms: i64,
    deadline_ms: Option<i64>,
    time_left_ms: Option<i64>,
    /// The Question's payload as stored (a structured question's canonical JSON).
    text: String,
    /// The question's text (for a structured question, its `question`).
    question: String,
    /// What answer it wants (docs/agents.md, "Structured questions"); absent for free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    answer_spec: Option<StructuredQuestion>,
    /// Who it is addressed to (people and `group:<name>`); empty: anyone may answer.
    to: Vec<String>,
    /// Whether the operator running this command may answer it.
    may_answer: bool,
    /// Whether it was addressed to the operator (by name, or a `sett.yml` group): `--mine`.
    #[serde(skip)]
    mine: bool,
    /// Reminders sent so far, and whether it was escalated (`humans:` in sett.yml).
    reminders: u32,
    escalated: bool,
    /// What the question is for: `question` (an agent's), `approval` (a gated grant), ….
    kind: QuestionKind,
    /// For an approval: what is to be approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    approval: Option<ApprovalListing>,
    /// For a human review (`humans.reviewers`): the artifact to review, with its hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    review: Option<ReviewSubject>,
}

/// What an approval asks to approve, as listed.
#[derive(Debug, Serialize)]
struct ApprovalListing {
    #[serde(flatten)]
    subject: ApprovalSubject,
    /// The target's payload, cut to one line.
    payload_excerpt: String,
    /// False when the target's stored hash is no longer the one shown (a decision is refused).
    target_unchanged: bool,
}

/// One line saying what a structured question accepts: its numbered options, or its fields
/// (`*` = required).
fn accepts(q: &StructuredQuestion) -> String {
    match &q.spec {
        AnswerSpec::Choice(c) => {
            let options: Vec<String> = c
                .options
                .iter()
                .enumerate()
                .map(|(n, o)| {
                    let default = match &c.default {
                        Some(serde_json::Value::String(d)) => d == o,
                        Some(serde_json::Value::Array(ds)) => ds.iter().any(|d| d == o),
                        _ => false,
                    };
                    format!("{} {o}{}", n + 1, if default { " (default)" } else { "" })
                })
                .collect();
            format!("{}: {}", if c.multiple { "pick any" } else { "pick one" }, options.join(" | "))
        }
        AnswerSpec::Form(f) => {
            let fields: Vec<String> = f
                .fields
                .iter()
                .map(|field| {
                    let kind = match &field.kind {
                        FieldKind::Text { .. } => "text".to_owned(),
                        FieldKind::OneOf { options } => options.join("/"),
                        FieldKind::Number { integer: true, .. } => "integer".to_owned(),
                        FieldKind::Number { .. } => "number".to_owned(),
                        FieldKind::Boolean => "true/false".to_owned(),
                        FieldKind::SomeOf { options, .. } => format!("[{}]", options.join(",")),
                    };
                    let default = field.default.as_ref().map(|d| format!(" = {d}")).unwrap_or_default();
                    format!("{}{}: {kind}{default}", field.name, if field.required { "*" } else { "" })
                })
                .collect();
            format!("form: {}", fields.join(", "))
        }
    }
}

/// The lines of an approval in the table: what may run, on what, and the hashes it binds.
fn approval_lines(a: &ApprovalListing) -> String {
    let s = &a.subject;
    let mut lines = vec![
        format!(
            "APPROVAL: may {} run its {} claim on {} {}?",
            s.agent,
            s.claim_type,
            s.target.artifact_type,
            s.target.id.short()
        ),
        format!("  target: {}", excerpt(&a.payload_excerpt, 70)),
        format!(
            "  hash {}{}",
            &s.target.hash,
            if a.target_unchanged { "" } else { "  (CHANGED since asked: a decision is refused)" }
        ),
    ];
    if !s.context.is_empty() {
        let context: Vec<String> =
            s.context.iter().map(|c| format!("{} {}", c.artifact_type, &c.hash[..c.hash.len().min(12)])).collect();
        lines.push(format!("  context: {}", context.join(", ")));
    }
    lines.join("\n")
}

async fn open_questions(store: &Store, operator: &str) -> Result<Vec<OpenQuestion>> {
    let now = now_ms();
    let mut out = Vec::new();
    let open = store.open_questions().await?;
    // Unique among open questions: `sett answer` resolves among those first.
    let short = unique_prefixes(&open.iter().map(|(id, _)| *id).collect::<Vec<_>>(), 8);
    for (id, asked_at_ms) in open {
        let artifact = store.get_artifact(&id).await?;
        let claim_id = artifact.as_ref().and_then(|a| a.claim_id);
        let claim = match claim_id {
            Some(c) => store.get_claim(&c).await?,
            None => None,
        };
        let open = claim.as_ref().and_then(|c| c.open_questions.get(&id));
        let deadline_ms = open.and_then(|q| q.deadline_ms);
        let to = open.map(|q| q.to.clone()).unwrap_or_default();
        let may_answer = open.is_none_or(|q| q.may_answer(operator, &[]));
        let (reminders, escalated) = open.map_or((0, false), |q| (q.reminders, q.escalated));
        let agent = artifact
            .as_ref()
            .map(|a| a.produced_by_role.clone())
            .or_else(|| claim.as_ref().and_then(|c| c.open_questions.get(&id)).map(|q| q.agent.to_string()))
            .unwrap_or_else(|| "?".into());
        let payload = artifact.map(|a| a.payload).unwrap_or_default();
        let spec = StructuredQuestion::from_payload(&payload).ok().flatten();
        let kind = spec.as_ref().map(|s| s.kind).unwrap_or_default();
        let approval = match kind {
            QuestionKind::Approval => sett_ops::approval::approval_view(store, &id).await?.map(|v| ApprovalListing {
                payload_excerpt: v.payload_excerpt(120),
                target_unchanged: v.target_unchanged,
                subject: v.subject,
            }),
            _ => None,
        };
        // An approval is asked by the orchestrator about an agent: show that agent.
        let agent = approval.as_ref().map_or(agent, |a| a.subject.agent.to_string());
        let review = (kind == QuestionKind::Review).then(|| ReviewSubject::of_payload(&payload)).flatten();
        let question_text = spec.as_ref().map_or_else(|| payload.clone(), |s| s.question.clone());
        out.push(OpenQuestion {
            id: id.to_string(),
            short_id: short.get(&id).cloned().unwrap_or_else(|| id.to_string()),
            agent,
            claim_id: claim_id.map(|c| c.to_string()),
            asked_at_ms,
            age_ms: now - asked_at_ms,
            deadline_ms,
            time_left_ms: deadline_ms.map(|d| d - now),
            question: question_text.clone(),
            answer_spec: spec,
            text: payload,
            kind,
            approval,
            review,
            mine: !to.is_empty() && may_answer,
            to,
            may_answer,
            reminders,
            escalated,
        });
    }
    Ok(out)
}

fn print(ctx: &Ctx, store: &Store, qs: &[OpenQuestion]) -> Result<()> {
    match ctx.output() {
        OutputFormat::Json => output::json(&serde_json::to_value(qs)?),
        OutputFormat::Jsonl => {
            for q in qs {
                output::jsonl(&serde_json::to_value(q)?)?;
            }
            Ok(())
        }
        OutputFormat::Table if ctx.global.quiet => {
            for q in qs {
                output::line(&q.id)?;
            }
            Ok(())
        }
        OutputFormat::Table if qs.is_empty() => {
            output::line(&format!("No open questions in instance '{}'.", store.instance()))
        }
        OutputFormat::Table => {
            let rows = qs
                .iter()
                .map(|q| {
                    let left = match q.time_left_ms {
                        None => "never expires".to_owned(),
                        Some(l) if l < 0 => format!("overdue {}", output::human_ms(-l)),
                        Some(l) => output::human_ms(l),
                    };
                    vec![
                        q.short_id.clone(),
                        q.agent.clone(),
                        q.claim_id.as_deref().map(|c| short_display(c).to_owned()).unwrap_or_else(|| "-".into()),
                        format!("{} ago", output::human_ms(q.age_ms)),
                        left,
                        match (&q.approval, &q.answer_spec) {
                            (Some(a), _) => approval_lines(a),
                            (None, spec) => {
                                let mut cell = excerpt(&q.question, 70);
                                if let Some(r) = &q.review {
                                    cell = format!("REVIEW: {cell}\n  hash {}", r.target.hash);
                                } else if let Some(s) = spec {
                                    cell = format!("{cell}\n{}", accepts(s));
                                }
                                if !q.to.is_empty() {
                                    let escalated = if q.escalated { " (escalated)" } else { "" };
                                    cell = format!("{cell}\nfor: {}{escalated}", q.to.join(", "));
                                }
                                cell
                            }
                        },
                    ]
                })
                .collect();
            output::table(&["ID", "AGENT", "CLAIM", "ASKED", "TIME LEFT", "QUESTION"], rows)?;
            if qs.iter().any(|q| q.approval.is_some()) {
                eprintln!(
                    "Decide an approval with: sett approve <ID> [--reason TEXT] | sett reject <ID> --reason TEXT -n {}",
                    store.instance()
                );
            }
            if qs.iter().any(|q| q.review.is_some()) {
                eprintln!(
                    "Decide a review with: sett answer <ID> approve | sett answer <ID> changes --comment TEXT -n {}",
                    store.instance()
                );
            }
            if qs.iter().any(|q| q.approval.is_none() && q.review.is_none() && q.answer_spec.is_some()) {
                eprintln!(
                    "Answer with: sett answer <ID> \"text\" (an option's text or number; --json '{{…}}' for a form; no answer at a terminal to be prompted) -n {}",
                    store.instance()
                );
            } else {
                eprintln!("Answer with: sett answer <ID> \"text\" -n {}", store.instance());
            }
            Ok(())
        }
    }
}

/// Blocks until a question is open. The stream position is taken before the index is read,
/// so a question asked between the two is seen by the blocking read.
async fn wait_for_question(store: &Store, deadline: Option<Instant>, who: &Who) -> Result<Option<Vec<OpenQuestion>>> {
    let mut cursor = store.last_event_id().await?.unwrap_or_else(|| "0-0".to_owned());
    let open = open_questions(store, &who.operator).await?;
    let open = who.filter(open);
    if !open.is_empty() {
        return Ok(Some(open));
    }
    let reader = store.event_reader().await?;
    let found = loop {
        let block = match deadline {
            None => MAX_BLOCK,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break None;
                }
                left.min(MAX_BLOCK).max(Duration::from_millis(1))
            }
        };
        // A malformed ledger entry is stepped over: it cannot be the question being waited for.
        let entries = reader.read_entries_after(&cursor, 100, block).await?;
        let Some(last) = entries.last() else { continue };
        cursor = last.as_ref().map_or_else(|bad| bad.id.clone(), |e| e.id.clone());
        if entries.iter().flatten().any(|e| e.kind() == EventKind::QuestionAsked) {
            // It may have been answered already; then keep waiting.
            let open = who.filter(open_questions(store, &who.operator).await?);
            if !open.is_empty() {
                break Some(open);
            }
        }
    };
    reader.quit().await;
    Ok(found)
}

/// Who is asking, and whether only the questions addressed to them are wanted (`--mine`).
struct Who {
    operator: String,
    mine: bool,
}

impl Who {
    fn filter(&self, qs: Vec<OpenQuestion>) -> Vec<OpenQuestion> {
        if self.mine { qs.into_iter().filter(|q| q.mine).collect() } else { qs }
    }
}

pub(crate) async fn run(ctx: &Ctx, args: QuestionsArgs) -> Result<ExitCode> {
    if args.timeout.is_some() && !args.wait {
        return Err(usage("--timeout only applies with --wait"));
    }
    let store = ctx.store().await?;
    let who = Who { operator: ctx.operator(), mine: args.mine };
    if !args.wait {
        let qs = open_questions(&store, &who.operator)
            .await
            .with_context(|| format!("reading the open questions of '{}'", store.instance()))?;
        let qs = who.filter(qs);
        if args.mine && qs.is_empty() && ctx.output() == OutputFormat::Table && !ctx.global.quiet {
            return output::line(&format!(
                "No open questions addressed to {} in instance '{}' (sett questions lists them all).",
                who.operator,
                store.instance()
            ))
            .map(|()| ExitCode::SUCCESS);
        }
        print(ctx, &store, &qs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = args.timeout.map(|t| Instant::now() + t);
    match wait_for_question(&store, deadline, &who).await? {
        Some(qs) => {
            print(ctx, &store, &qs)?;
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(super::watch::timed_out("a question", args.timeout.unwrap_or_default(), store.instance().as_str())),
    }
}
