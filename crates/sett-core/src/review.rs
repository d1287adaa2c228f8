//! Human reviewers (`humans.reviewers`): a person takes part in a claim's review phase like a
//! reviewing agent. The orchestrator asks a Question of kind `review` — what the reviewer is
//! shown ([`ReviewSubject`]: the artifact under review with its content hash) and a form of
//! `decision` (approve / changes) and `comments` — and turns the person's answer into a Review
//! artifact produced by `human:<name>` ([`HumanReview`]), which the review phase counts exactly
//! as an agent's Review: `{}` approves, anything else is feedback that drives a rework. Pure: the
//! callers read the store and the clock.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer_spec::{Field, FieldProblem, QuestionKind, StructuredQuestion, parse_decision, trimmed_note};
use crate::approval::BoundArtifact;
use crate::ids::{AgentName, ArtifactId, ClaimId};

/// The `type` of a human review's Question artifact and of the Review artifact it becomes.
pub const REVIEW_ARTIFACT_TYPE: &str = "HumanReview";
/// The name a human review's open question carries where a question names the agent waiting
/// for it (nobody's tool waits for a human review); `sett.yml` refuses an agent of this name.
pub const HUMAN_REVIEW_ROLE: &str = "human-review";
/// The longest comments kept.
pub const MAX_COMMENTS_LEN: usize = 20_000;

/// The name of [`HUMAN_REVIEW_ROLE`] as an open question stores it.
pub fn human_review_role() -> AgentName {
    AgentName::parse(HUMAN_REVIEW_ROLE).expect("a valid agent name")
}

/// The ids of a human review's question and of the Review its answer becomes (derived there).
pub use crate::derive::{review_artifact_id, review_question_id};

/// What a human review is about (the review Question's `subject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSubject {
    pub claim_id: ClaimId,
    /// The artifact under review, with its content hash as shown.
    pub target: BoundArtifact,
    /// Who reviews it (`humans.reviewers`): people and `group:<name>`.
    pub reviewers: Vec<String>,
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewDecision {
    /// The artifact passes this review.
    Approve,
    /// The artifact goes back to its producer with the comments (a rework).
    Changes,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Changes => "changes",
        }
    }
}

impl std::fmt::Display for ReviewDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A human review answer's payload: `{"decision": "approve"|"changes", "comments": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewAnswer {
    pub decision: ReviewDecision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
}

impl ReviewSubject {
    /// The Question asking a reviewer to decide on this subject.
    pub fn question(&self) -> StructuredQuestion {
        StructuredQuestion::asked_by_sett(
            QuestionKind::Review,
            format!("Review {} {}: approve it, or request changes?", self.target.artifact_type, self.target.id.short()),
            vec![
                Field::decision(
                    "approve: it passes your review; changes: it goes back to its producer with your comments",
                    &["approve", "changes"],
                ),
                Field::note(
                    "comments",
                    "Comments",
                    "what to change (required to request changes; given to the agent that reworks it)",
                    MAX_COMMENTS_LEN,
                ),
            ],
            self,
        )
    }

    /// The review Question's payload text.
    pub fn to_payload(&self) -> String {
        self.question().to_payload()
    }

    /// The subject of a review Question's payload; `None` for any other question.
    pub fn of_payload(payload: &str) -> Option<Self> {
        StructuredQuestion::subject_of(payload, QuestionKind::Review)
    }
}

/// A review answer typed as text (`sett answer <id> approve`): a JSON object is the form itself,
/// any other text is the decision.
pub fn text_answer(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => serde_json::json!({ "decision": text.trim() }),
    }
}

/// Reads a review answer (already validated against the question's form): requesting changes
/// must say which, since the comments are all the reworking agent is given.
pub fn parse_answer(value: &Value) -> Result<ReviewAnswer, Vec<FieldProblem>> {
    let mut answer: ReviewAnswer = parse_decision(value, &["approve", "changes"])?;
    answer.comments = trimmed_note(answer.comments);
    if answer.decision == ReviewDecision::Changes && answer.comments.is_none() {
        return Err(vec![FieldProblem {
            field: "comments".into(),
            problem: "required to request changes: say what to change (--comment \"…\")".into(),
        }]);
    }
    Ok(answer)
}

/// A person's decided review, as the orchestrator read it from the answer (the state machine's
/// `Input::HumanReview`, and the Review artifact it writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HumanReview {
    /// Who decided (the answer record's `answered_by`).
    pub by: String,
    pub decision: ReviewDecision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
    /// The Answer artifact the decision was given in.
    pub answer: ArtifactId,
}

impl HumanReview {
    /// The Review artifact's `produced_by_role`.
    pub fn role(&self) -> String {
        format!("human:{}", self.by)
    }

    /// The Review artifact's payload: `{}` approves (as an agent's approving Review), feedback
    /// otherwise.
    pub fn payload(&self) -> String {
        match self.decision {
            ReviewDecision::Approve => "{}".into(),
            ReviewDecision::Changes => serde_json::json!({
                "decision": self.decision,
                "reviewer": self.role(),
                "comments": self.comments.as_deref().unwrap_or_default(),
            })
            .to_string(),
        }
    }

    /// The Review artifact's one-line summary.
    pub fn summary(&self) -> String {
        match self.decision {
            ReviewDecision::Approve => format!("approved by {}", self.by),
            ReviewDecision::Changes => format!("changes requested by {}", self.by),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Artifact, StructuralType};

    fn subject() -> ReviewSubject {
        let target = Artifact::new_root(
            ArtifactId::derived(&"t", "target"),
            StructuralType::Standard,
            "Draft",
            "v1",
            "Writer",
            1,
        );
        ReviewSubject {
            claim_id: ClaimId::derived(&"t", "claim"),
            target: BoundArtifact::of(&target, Some("ab12")),
            reviewers: vec!["alice".into(), "group:legal".into()],
        }
    }

    #[test]
    fn the_review_question_round_trips_through_its_payload() {
        let s = subject();
        let payload = s.to_payload();
        assert_eq!(QuestionKind::of_payload(&payload), QuestionKind::Review);
        assert_eq!(ReviewSubject::of_payload(&payload), Some(s));
        assert_eq!(crate::approval::ApprovalSubject::of_payload(&payload), None);
        let q = StructuredQuestion::from_payload(&payload).unwrap().unwrap();
        assert!(q.spec.validate(&json!({"decision": "approve"})).is_ok());
        assert!(q.spec.validate(&json!({"decision": "reject"})).is_err());
    }

    #[test]
    fn requesting_changes_needs_comments_and_text_is_the_decision() {
        assert_eq!(text_answer(" approve "), json!({"decision": "approve"}));
        assert_eq!(text_answer(r#"{"decision": "changes", "comments": "x"}"#)["comments"], "x");
        assert!(parse_answer(&json!({"decision": "changes"})).is_err());
        assert!(parse_answer(&json!({"decision": "changes", "comments": "  "})).is_err());
        let a = parse_answer(&json!({"decision": "changes", "comments": " cite the clause "})).unwrap();
        assert_eq!(a.comments.as_deref(), Some("cite the clause"));
        assert_eq!(parse_answer(&json!({"decision": "approve"})).unwrap().decision, ReviewDecision::Approve);
    }

    #[test]
    fn an_approving_review_is_empty_and_changes_are_feedback() {
        let answer = ArtifactId::derived(&"t", "answer");
        let approve = HumanReview { by: "alice".into(), decision: ReviewDecision::Approve, comments: None, answer };
        let mut review =
            Artifact::new_root(answer, StructuralType::Review, "HumanReview", approve.payload(), approve.role(), 1);
        assert!(review.is_approval());
        assert_eq!(review.produced_by_role, "human:alice");
        assert_eq!(review.producing_agent(), None, "a person is no agent");
        let changes = HumanReview { decision: ReviewDecision::Changes, comments: Some("{}".into()), ..approve };
        review.payload = changes.payload();
        assert!(!review.is_approval(), "comments never read as an approval");
    }

    #[test]
    fn an_agent_cannot_ask_a_review() {
        let out = format!(
            r#"{{"structural_type": "Question", "artifact_type": "Q", "artifact_payload": {}}}"#,
            subject().to_payload()
        );
        let err = crate::tool::parse_tool_output(&out).unwrap_err();
        assert!(err.to_string().contains("asked by Sett itself"), "{err}");
    }
}
