//! Approval gates (`agents.<name>.approval`): what a person approving an agent's claim is shown —
//! the [`ApprovalSubject`]: the agent, the claim type, the target artifact and its context chain,
//! each with its content hash — the Question the orchestrator asks (`kind: approval`, a form of
//! `decision` and `reason`), what an answer binds (the hashes the approver saw:
//! [`ApprovalBinding`], stored in the answer record and copied into its ledger event), and the
//! orchestrator's judgement of an answer before it grants ([`judge`]). Pure: the callers read the
//! store and the clock.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer_spec::{Field, FieldProblem, QuestionKind, StructuredQuestion, parse_decision, trimmed_note};
use crate::artifact::Artifact;
use crate::claim::ClaimType;
use crate::ids::{AgentName, ArtifactId, ClaimId};

/// The `type` of an approval Question artifact.
pub const APPROVAL_ARTIFACT_TYPE: &str = "Approval";
/// The longest reason kept (a reason is shown in a Failure's one-line summary).
pub const MAX_REASON_LEN: usize = 2_000;

/// The id of the approval asked before a grant (derived there).
pub use crate::derive::approval_question_id;

/// An artifact as the approver was shown it: its id, type and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundArtifact {
    pub id: ArtifactId,
    #[serde(rename = "type")]
    pub artifact_type: String,
    /// The artifact's ledger hash (`-` for an artifact written before the ledger).
    pub hash: String,
}

impl BoundArtifact {
    pub fn of(a: &Artifact, hash: Option<&str>) -> Self {
        Self { id: a.id, artifact_type: a.artifact_type.clone(), hash: hash.unwrap_or("-").to_owned() }
    }
}

/// What an approval is about (the approval Question's `subject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSubject {
    pub agent: AgentName,
    pub claim_id: ClaimId,
    pub claim_type: ClaimType,
    /// The artifact the agent would act on.
    pub target: BoundArtifact,
    /// The target's context chain, as the tool would be given it (oldest first).
    #[serde(default)]
    pub context: Vec<BoundArtifact>,
}

/// A person's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An approval answer's payload: `{"decision": "approve"|"reject", "reason": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAnswer {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an approval answer binds: the decision and the hashes of the artifacts the approver was
/// shown. Stored in the answer record; its decision and target hash are copied into the
/// `question_answered` event, so `sett verify` catches a record edited afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalBinding {
    pub decision: Decision,
    pub target: ArtifactId,
    pub target_hash: String,
    /// The context chain's hashes, in the order shown.
    #[serde(default)]
    pub context_hashes: Vec<String>,
}

impl ApprovalBinding {
    /// The binding of `decision` on what `subject` showed.
    pub fn of(subject: &ApprovalSubject, decision: Decision) -> Self {
        Self {
            decision,
            target: subject.target.id,
            target_hash: subject.target.hash.clone(),
            context_hashes: subject.context.iter().map(|a| a.hash.clone()).collect(),
        }
    }
}

impl ApprovalSubject {
    /// The approval Question asking a person to decide on this subject.
    pub fn question(&self) -> StructuredQuestion {
        StructuredQuestion::asked_by_sett(
            QuestionKind::Approval,
            format!(
                "May agent {} act on {} {} ({} claim)?",
                self.agent,
                self.target.artifact_type,
                self.target.id.short(),
                self.claim_type
            ),
            vec![
                Field::decision(
                    "approve: the agent runs on exactly this artifact; reject: the claim ends with a Failure",
                    &["approve", "reject"],
                ),
                Field::note("reason", "Reason", "why (required to reject; recorded in the ledger)", MAX_REASON_LEN),
            ],
            self,
        )
    }

    /// The approval Question's payload text.
    pub fn to_payload(&self) -> String {
        self.question().to_payload()
    }

    /// The subject of an approval Question's payload; `None` for any other question.
    pub fn of_payload(payload: &str) -> Option<Self> {
        StructuredQuestion::subject_of(payload, QuestionKind::Approval)
    }

    /// Every artifact shown, the target first.
    pub fn shown(&self) -> impl Iterator<Item = &BoundArtifact> {
        std::iter::once(&self.target).chain(self.context.iter())
    }
}

/// Reads an approval answer (already validated against the question's form): a rejection must
/// say why, so the Failure it causes names a reason.
pub fn parse_answer(value: &Value) -> Result<ApprovalAnswer, Vec<FieldProblem>> {
    let mut answer: ApprovalAnswer = parse_decision(value, &["approve", "reject"])?;
    answer.reason = trimmed_note(answer.reason);
    if answer.decision == Decision::Reject && answer.reason.is_none() {
        return Err(vec![FieldProblem {
            field: "reason".into(),
            problem: "required to reject: say why, it is recorded in the Failure".into(),
        }]);
    }
    Ok(answer)
}

/// The orchestrator's judgement of an answered approval, handed to the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Approved, and the target is still exactly the artifact approved: grant.
    Approved { by: String },
    /// Rejected by a person: the claim ends with a Failure naming them and their reason.
    Rejected { by: String, reason: String },
    /// Approved, but not what is there now (or not what was asked): no grant; the claim ends.
    Mismatch { why: String },
}

/// Judges an answered approval: the binding must be of the asked subject's target, with the
/// hash the question showed, and that hash must still be the target's stored hash
/// (`current_target_hash`, `None` when the target is gone).
pub fn judge(
    subject: &ApprovalSubject,
    binding: &ApprovalBinding,
    answered_by: &str,
    reason: Option<&str>,
    current_target_hash: Option<&str>,
) -> Verdict {
    let by = answered_by.to_owned();
    match binding.decision {
        Decision::Reject => Verdict::Rejected { by, reason: reason.unwrap_or("no reason given").to_owned() },
        Decision::Approve if binding.target != subject.target.id => Verdict::Mismatch {
            why: format!("{by} approved artifact {}, not the target {}", binding.target, subject.target.id),
        },
        Decision::Approve if binding.target_hash != subject.target.hash => Verdict::Mismatch {
            why: format!(
                "{by} approved hash {} of {}, but the approval showed hash {}",
                binding.target_hash, subject.target.id, subject.target.hash
            ),
        },
        Decision::Approve if current_target_hash != Some(binding.target_hash.as_str()) => Verdict::Mismatch {
            why: format!(
                "{by} approved hash {} of {}, but its stored hash is now {}",
                binding.target_hash,
                subject.target.id,
                current_target_hash.unwrap_or("(missing)")
            ),
        },
        Decision::Approve => Verdict::Approved { by },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::StructuralType;

    fn subject() -> ApprovalSubject {
        let target = Artifact::new_root(
            ArtifactId::derived(&"t", "target"),
            StructuralType::Standard,
            "Plan",
            "deploy v2",
            "Planner",
            1,
        );
        ApprovalSubject {
            agent: AgentName::parse("Deployer").unwrap(),
            claim_id: ClaimId::derived(&"t", "claim"),
            claim_type: ClaimType::Exclusive,
            target: BoundArtifact::of(&target, Some("ab12")),
            context: vec![],
        }
    }

    #[test]
    fn the_approval_question_round_trips_through_its_payload() {
        let s = subject();
        let payload = s.to_payload();
        assert_eq!(QuestionKind::of_payload(&payload), QuestionKind::Approval);
        assert_eq!(ApprovalSubject::of_payload(&payload), Some(s.clone()));
        let q = StructuredQuestion::from_payload(&payload).unwrap().unwrap();
        assert_eq!(q.to_payload(), payload, "canonical");
        assert!(q.spec.validate(&json!({"decision": "approve"})).is_ok());
        assert!(q.spec.validate(&json!({"decision": "maybe"})).is_err());
        assert_eq!(ApprovalSubject::of_payload(r#"{"question": "x", "options": ["a", "b"]}"#), None);
    }

    #[test]
    fn a_rejection_needs_a_reason() {
        assert!(parse_answer(&json!({"decision": "reject"})).is_err());
        assert!(parse_answer(&json!({"decision": "reject", "reason": "  "})).is_err());
        let a = parse_answer(&json!({"decision": "reject", "reason": " too risky "})).unwrap();
        assert_eq!(a.reason.as_deref(), Some("too risky"));
        assert_eq!(parse_answer(&json!({"decision": "approve"})).unwrap().decision, Decision::Approve);
    }

    #[test]
    fn an_approval_grants_only_the_hash_shown_and_stored() {
        let s = subject();
        let approve = ApprovalBinding::of(&s, Decision::Approve);
        assert_eq!(judge(&s, &approve, "ann", None, Some("ab12")), Verdict::Approved { by: "ann".into() });
        assert!(matches!(judge(&s, &approve, "ann", None, Some("ffff")), Verdict::Mismatch { .. }));
        assert!(matches!(judge(&s, &approve, "ann", None, None), Verdict::Mismatch { .. }));
        let mut edited = approve.clone();
        edited.target_hash = "ffff".into();
        assert!(matches!(judge(&s, &edited, "ann", None, Some("ffff")), Verdict::Mismatch { .. }));
        let reject = ApprovalBinding::of(&s, Decision::Reject);
        assert_eq!(
            judge(&s, &reject, "bob", Some("not today"), Some("ab12")),
            Verdict::Rejected { by: "bob".into(), reason: "not today".into() }
        );
    }

    #[test]
    fn an_agent_cannot_ask_an_approval() {
        let out = format!(
            r#"{{"structural_type": "Question", "artifact_type": "Q", "artifact_payload": {}}}"#,
            subject().to_payload()
        );
        let err = crate::tool::parse_tool_output(&out).unwrap_err();
        assert!(err.to_string().contains("asked by Sett itself"), "{err}");
    }
}
