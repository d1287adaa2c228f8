//! Answering an agent's question, shared by `sett answer` and the web console so both write
//! exactly the same Answer. The Answer artifact and the closing of the question are one atomic
//! write, so of two concurrent answers exactly one wins; the loser learns who answered and when.

use sett_core::answer_spec::{FieldProblem, StructuredQuestion, describe};
use sett_core::approval::{ApprovalBinding, ApprovalSubject, Decision, parse_answer};
use sett_core::budget::BudgetSubject;
use sett_core::review::{ReviewDecision, ReviewSubject};
use sett_core::{Artifact, ArtifactId, ClaimId, ClaimStatus, StructuralType};
use sett_store::{AnswerRecord, CancelRecord, CreateOutcome, Fenced, Store, StoreError, now_ms};

use crate::resolve::{IdQuery, Resolution, resolve_among, resolve_artifact};
use sett_core::text::short;

/// How many prefix matches are examined for Questions when a short id is ambiguous.
const QUESTION_SCAN_LIMIT: usize = 1_000;

/// Which question an operator means by `query` (a full or short id): the open questions first
/// (cheap, and what the operator means), then every artifact; among several artifacts sharing
/// a prefix, only the Questions.
pub async fn resolve_question(store: &Store, query: &IdQuery) -> Result<Resolution, StoreError> {
    let open: Vec<ArtifactId> = store.open_questions().await?.into_iter().map(|(id, _)| id).collect();
    Ok(match resolve_among(query, &open) {
        Resolution::None => match resolve_artifact(store, query).await? {
            // Only a Question can be answered: among several matches (ids created in the same
            // minute share a prefix — e.g. a question answered a moment ago and its answer),
            // the Questions are what the operator means.
            Resolution::Ambiguous(_) => only_questions(store, query).await?,
            other => other,
        },
        found => found,
    })
}

/// The Questions among every artifact matching `query`.
async fn only_questions(store: &Store, query: &IdQuery) -> Result<Resolution, StoreError> {
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

/// A written answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Answered {
    pub id: ArtifactId,
    pub question_id: ArtifactId,
    pub claim_id: Option<ClaimId>,
    pub answered_by: String,
}

/// An answer as given: typed text (an option's text or number for a choice), a JSON value
/// (`--json`, the API), or an HTML form's fields (the console).
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerInput {
    Text(String),
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// The payload an answer to `question` stores: free text as it is, a structured question's
/// answer as its validated JSON text. Pure, so callers can check an answer before writing.
pub fn answer_payload(question: &Artifact, input: &AnswerInput) -> Result<String, AnswerError> {
    let invalid = |problems: Vec<FieldProblem>| AnswerError::Invalid { question: question.id, problems };
    let spec = match StructuredQuestion::from_payload(&question.payload) {
        Ok(Some(q)) => q.spec,
        // A question whose spec no longer parses (stored before the cub checked specs) is
        // answered as free text: refusing every answer would leave its agent waiting.
        Ok(None) | Err(_) => {
            let text = match input {
                AnswerInput::Text(t) => t.clone(),
                AnswerInput::Json(serde_json::Value::String(t)) => t.clone(),
                AnswerInput::Form(pairs) => {
                    pairs.iter().find(|(n, _)| n == "answer").map(|(_, v)| v.clone()).unwrap_or_default()
                }
                AnswerInput::Json(_) => {
                    return Err(invalid(vec![FieldProblem {
                        field: String::new(),
                        problem: "this question takes free text, not JSON: give the answer as text".into(),
                    }]));
                }
            };
            if text.trim().is_empty() {
                return Err(AnswerError::Empty);
            }
            return Ok(text);
        }
    };
    let value = match input {
        AnswerInput::Text(t) => spec.parse_text(t),
        AnswerInput::Json(v) => spec.validate(v),
        AnswerInput::Form(pairs) => spec.from_form_pairs(pairs),
    }
    .map_err(invalid)?;
    Ok(value.to_string())
}

/// Checks an approval's answer (validated against its form as `text`) before it is written: it
/// still waits (open, so the transition that asked it is written), a rejection says why, and
/// the target is still the artifact the approval showed. Returns what the answer binds and the
/// answer's payload (the reason trimmed).
async fn bind_approval(
    store: &Store,
    question: &Artifact,
    subject: &ApprovalSubject,
    text: &str,
) -> Result<(ApprovalBinding, String), AnswerError> {
    if !store.is_question_open(&question.id).await? {
        return Err(AnswerError::NotWaiting(question.id));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| AnswerError::Unexpected(format!("approval answer: {e}")))?;
    let decided = parse_answer(&value).map_err(|problems| AnswerError::Invalid { question: question.id, problems })?;
    let now = store.artifact_hashes(&[subject.target.id]).await?.pop().flatten();
    if now.as_deref() != Some(subject.target.hash.as_str()) {
        return Err(AnswerError::TargetChanged {
            question: question.id,
            target: subject.target.id,
            shown: subject.target.hash.clone(),
            now,
        });
    }
    let payload = serde_json::to_string(&decided).map_err(|e| AnswerError::Unexpected(e.to_string()))?;
    Ok((ApprovalBinding::of(subject, decided.decision), payload))
}

/// Checks a human review's answer (validated against its form as `text`) before it is written:
/// it still waits (open, so the transition that asked it is written) and a request for changes
/// says which. Returns the decision and the answer's payload (the comments trimmed).
async fn check_review(store: &Store, question: &Artifact, text: &str) -> Result<(ReviewDecision, String), AnswerError> {
    if !store.is_question_open(&question.id).await? {
        return Err(AnswerError::NotWaiting(question.id));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| AnswerError::Unexpected(format!("review answer: {e}")))?;
    let decided = sett_core::review::parse_answer(&value)
        .map_err(|problems| AnswerError::Invalid { question: question.id, problems })?;
    let payload = serde_json::to_string(&decided).map_err(|e| AnswerError::Unexpected(e.to_string()))?;
    Ok((decided.decision, payload))
}

/// Why an answer was not written.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer is empty: an agent cannot act on an empty answer")]
    Empty,
    #[error("no question {0} in instance '{1}'")]
    NotFound(ArtifactId, String),
    #[error("artifact {} is a {structural_type} ({artifact_type}), not a Question", short(&.id.to_string()))]
    NotAQuestion { id: ArtifactId, structural_type: StructuralType, artifact_type: String },
    /// The question's claim ended unanswered (it timed out, or the claim failed): nobody is
    /// waiting for it, and an answer would be recorded and never read.
    #[error(
        "question {} can no longer be answered: its claim {} is {status}{}",
        short(&.question.to_string()),
        short(&.claim.to_string()),
        .reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Closed { question: ArtifactId, claim: ClaimId, status: ClaimStatus, reason: Option<String> },
    /// The question's workflow was cancelled (`sett cancel`): its question was closed with it.
    #[error(
        "question {} can no longer be answered: its workflow (goal {}) was cancelled by {} at {}{}",
        short(&.question.to_string()),
        short(&.goal.to_string()),
        .record.operator,
        sett_store::time::rfc3339_ms(.record.at_ms),
        .record.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Cancelled { question: ArtifactId, goal: ArtifactId, record: CancelRecord },
    /// The question is addressed to others (`humans:` routing): only they may answer.
    #[error(
        "question {} is addressed to {}; {operator} is not one of them, so the answer was not written",
        short(&.question.to_string()),
        .to.join(", ")
    )]
    NotAddressed { question: ArtifactId, operator: String, to: Vec<String> },
    /// Someone answered first (or the orchestrator, on timeout).
    #[error("question {} was already answered by {} at {} ms", short(&.question.to_string()), .record.answered_by, .record.answered_at_ms)]
    AlreadyAnswered { question: ArtifactId, record: AnswerRecord },
    /// The answer does not fit the question's answer spec; every problem is listed.
    #[error("the answer to question {} does not fit what it asks; nothing was written:\n{}", short(&.question.to_string()), describe(.problems))]
    Invalid { question: ArtifactId, problems: Vec<FieldProblem> },
    /// An approval that no longer waits (it timed out, or its claim moved on).
    #[error("{} {} is no longer waiting for a decision (it timed out or its claim moved on)", "question", short(&.0.to_string()))]
    NotWaiting(ArtifactId),
    /// The artifact to approve is not what the approval showed: deciding on it would bind a hash
    /// nobody was shown.
    #[error(
        "approval {} showed {} with hash {shown}, but its stored hash is now {}; nothing was written",
        short(&.question.to_string()),
        .target,
        .now.as_deref().unwrap_or("(missing)")
    )]
    TargetChanged { question: ArtifactId, target: ArtifactId, shown: String, now: Option<String> },
    /// `sett approve`/`sett reject` on a question that is not an approval.
    #[error("question {} is not an approval (it is a question from agent work): answer it with 'sett answer'", short(&.0.to_string()))]
    NotAnApproval(ArtifactId),
    #[error("the answer was not written ({0}); retry")]
    Unexpected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AnswerError {
    /// The error as an operator is told it (by `sett answer`, the MCP server): what went wrong
    /// and the command to run next, for instance `instance`.
    pub fn report(&self, instance: &str) -> String {
        match self {
            Self::NotFound(..) => format!(
                "{self} (was instance '{instance}' destroyed?)\nList open questions with 'sett questions -n {instance}'"
            ),
            Self::NotAQuestion { .. } => format!("{self}\nList open questions with 'sett questions -n {instance}'"),
            Self::NotAddressed { .. } => format!(
                "{self}\nAsk one of them to answer it (sett answer as them: SETT_OPERATOR names who answers; groups come from humans.groups in sett.yml or the console's users file); see yours with 'sett questions --mine -n {instance}'"
            ),
            Self::Closed { .. } => {
                format!("{self}\nInspect it with 'sett claims -n {instance}'; start again with 'sett forage'")
            }
            Self::Cancelled { .. } => format!("{self}\nStart again with 'sett forage'"),
            Self::AlreadyAnswered { question, record } => {
                format!(
                    "question {} was already answered by {} at {}\nSee the answer with 'sett hoard {} -n {instance}'",
                    short(&question.to_string()),
                    record.answered_by,
                    sett_store::time::rfc3339_ms(record.answered_at_ms),
                    short(&record.answer_id.to_string()),
                )
            }
            Self::Store(e) => format!("writing the answer: {e}"),
            Self::Empty => self.to_string(),
            Self::Invalid { .. } => format!("{self}\nSee what it asks with 'sett questions -n {instance}'"),
            Self::NotWaiting(_) => {
                format!("{self}\nSee what happened with 'sett claims -n {instance}' and 'sett watch -n {instance}'")
            }
            Self::TargetChanged { .. } => {
                format!("{self}\nRun 'sett verify -n {instance}': a stored artifact changed after it was written")
            }
            Self::NotAnApproval(q) => format!("{self}: 'sett answer {} -n {instance}'", short(&q.to_string())),
            Self::Unexpected(_) => format!("{self} 'sett answer'"),
        }
    }
}

/// Answers question `qid` with `input` as `operator`: checks it is an open Question whose claim
/// still waits and that the answer fits the question's spec (if it has one), then writes the
/// Answer (`produced_by_role` = `human:<operator>`, `answered_by` = `operator`) and closes the
/// question atomically.
pub async fn answer_question(
    store: &Store,
    qid: &ArtifactId,
    input: &AnswerInput,
    operator: &str,
) -> Result<Answered, AnswerError> {
    answer_question_as(store, qid, input, operator, &[]).await
}

/// Refuses `operator` (a member of `groups`) early when question `qid` is addressed to others:
/// `sett answer` calls it before prompting, so nobody fills in a form that cannot be sent.
/// [`answer_question_as`] checks again when it writes.
pub async fn check_addressee(
    store: &Store,
    qid: &ArtifactId,
    operator: &str,
    groups: &[String],
) -> Result<(), AnswerError> {
    let Some(cid) = store.get_artifact(qid).await?.and_then(|q| q.claim_id) else { return Ok(()) };
    if let Some(claim) = store.get_claim(&cid).await?
        && let Some(open) = claim.open_questions.get(qid)
        && !open.may_answer(operator, groups)
    {
        return Err(AnswerError::NotAddressed { question: *qid, operator: operator.to_owned(), to: open.to.clone() });
    }
    Ok(())
}

/// [`answer_question`] by `operator`, a member of `groups` beyond the `sett.yml` groups the
/// orchestrator expanded when the question was asked (the console's users file names these):
/// a question addressed to others is refused, naming who may answer.
pub async fn answer_question_as(
    store: &Store,
    qid: &ArtifactId,
    input: &AnswerInput,
    operator: &str,
    groups: &[String],
) -> Result<Answered, AnswerError> {
    if let AnswerInput::Text(text) = input
        && text.trim().is_empty()
    {
        return Err(AnswerError::Empty);
    }
    let Some(question) = store.get_artifact(qid).await? else {
        return Err(AnswerError::NotFound(*qid, store.instance().to_string()));
    };
    if question.structural_type != StructuralType::Question {
        return Err(AnswerError::NotAQuestion {
            id: *qid,
            structural_type: question.structural_type,
            artifact_type: question.artifact_type,
        });
    }
    if let Some(record) = store.answer_record(qid).await? {
        return Err(AnswerError::AlreadyAnswered { question: *qid, record });
    }
    if let Some(fenced) = store.fenced(&qid.to_string()).await?
        && let Some(record) = store.cancellation(&fenced.goal()).await?
    {
        return Err(AnswerError::Cancelled { question: *qid, goal: fenced.goal(), record });
    }
    if let Some(cid) = question.claim_id
        && let Some(claim) = store.get_claim(&cid).await?
    {
        if claim.status.is_final() {
            return Err(AnswerError::Closed {
                question: *qid,
                claim: cid,
                status: claim.status,
                reason: claim.termination_reason,
            });
        }
        // Escalation only ever adds addressees, so a check that races one refuses at worst a
        // person who was just added (they try again), never lets an outsider in.
        if let Some(open) = claim.open_questions.get(qid)
            && !open.may_answer(operator, groups)
        {
            return Err(AnswerError::NotAddressed {
                question: *qid,
                operator: operator.to_owned(),
                to: open.to.clone(),
            });
        }
    }
    let review = ReviewSubject::of_payload(&question.payload).is_some();
    // A review's decision may be typed as a word: `sett answer <id> approve`.
    let input = match input {
        AnswerInput::Text(t) if review => &AnswerInput::Json(sett_core::review::text_answer(t)),
        other => other,
    };
    let mut text = answer_payload(&question, input)?;
    let mut review_summary = None;
    if review {
        let (decided, normalised) = check_review(store, &question, &text).await?;
        text = normalised;
        review_summary = Some(match decided {
            ReviewDecision::Approve => format!("approved by {operator}"),
            ReviewDecision::Changes => format!("changes requested by {operator}"),
        });
    }
    let approval = match ApprovalSubject::of_payload(&question.payload) {
        Some(subject) => {
            let (binding, normalised) = bind_approval(store, &question, &subject, &text).await?;
            text = normalised;
            Some(binding)
        }
        None => None,
    };
    if let Some(subject) = BudgetSubject::of_payload(&question.payload) {
        // `continue` must raise what was reached above what was spent; checked before writing.
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| AnswerError::Unexpected(format!("budget answer: {e}")))?;
        sett_core::budget::parse_answer(&subject, &value)
            .map_err(|problems| AnswerError::Invalid { question: question.id, problems })?;
    }
    let now = now_ms();
    let mut answer =
        Artifact::answer(sett_store::new_artifact_id(), &question, text, format!("human:{operator}"), operator, now);
    if let Some(b) = &approval {
        answer.summary = Some(match b.decision {
            Decision::Approve => format!("approved by {operator}"),
            Decision::Reject => format!("rejected by {operator}"),
        });
    }
    if review_summary.is_some() {
        answer.summary = review_summary;
    }
    let mut record = AnswerRecord::by_operator(answer.id, operator, now);
    record.approval = approval.map(Box::new);
    match store.create_answer(&answer, qid, &record).await? {
        CreateOutcome::Created { .. } => Ok(Answered {
            id: answer.id,
            question_id: *qid,
            claim_id: question.claim_id,
            answered_by: operator.to_owned(),
        }),
        CreateOutcome::AlreadyAnswered(record) => Err(AnswerError::AlreadyAnswered { question: *qid, record }),
        // Cancelled between the check above and the write (the write checks atomically).
        CreateOutcome::Cancelled(fence) => {
            let goal = Fenced::parse(&fence).map(Fenced::goal);
            match goal {
                Some(goal) => match store.cancellation(&goal).await? {
                    Some(record) => Err(AnswerError::Cancelled { question: *qid, goal, record }),
                    None => Err(AnswerError::Unexpected(format!("cancelled ({fence})"))),
                },
                None => Err(AnswerError::Unexpected(format!("cancelled ({fence})"))),
            }
        }
        other => Err(AnswerError::Unexpected(format!("{other:?}"))),
    }
}
