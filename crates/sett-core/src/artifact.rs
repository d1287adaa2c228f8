//! Artifacts: immutable, versioned work products with provenance.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::claim::Claim;
use crate::ids::{ArtifactId, ClaimId};
use crate::usage::Usage;

/// What the orchestrator does with an artifact (design.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StructuralType {
    Standard,
    Review,
    Question,
    Answer,
    Failure,
    Terminal,
}

impl StructuralType {
    pub const ALL: [StructuralType; 6] =
        [Self::Standard, Self::Review, Self::Question, Self::Answer, Self::Failure, Self::Terminal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Review => "Review",
            Self::Question => "Question",
            Self::Answer => "Answer",
            Self::Failure => "Failure",
            Self::Terminal => "Terminal",
        }
    }

    /// Only Standard artifacts get a claim; the others are consumed by the claim they belong to.
    pub fn creates_claim(self) -> bool {
        self == Self::Standard
    }
}

impl fmt::Display for StructuralType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown structural type '{0}': expected one of Standard, Review, Question, Answer, Failure, Terminal")]
pub struct UnknownStructuralType(pub String);

impl FromStr for StructuralType {
    type Err = UnknownStructuralType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownStructuralType(s.to_owned()))
    }
}

/// One immutable artifact. `produced_by_role` is an agent name, `user`, `orchestrator` or
/// `human:<operator>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: ArtifactId,
    pub logical_id: ArtifactId,
    pub version: u32,
    pub structural_type: StructuralType,
    #[serde(rename = "type")]
    pub artifact_type: String,
    pub payload: String,
    pub source_artifacts: Vec<ArtifactId>,
    pub produced_by_role: String,
    pub claim_id: Option<ClaimId>,
    pub created_at_ms: i64,
    /// The tool's one-line summary.
    pub summary: Option<String>,
    /// For Answers: who answered (`$SETT_OPERATOR`, the OS user, or `orchestrator` on timeout).
    pub answered_by: Option<String>,
    /// For Answers: true when the orchestrator answered because the question timed out.
    pub timed_out: bool,
    /// What the run that produced it cost, when its agent said (docs/agents.md, "Usage").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Set on the first artifact of a branch (`sett fork`): the earlier artifact it is a new
    /// version of (or, for an Answer, the Question it answers differently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<ArtifactId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact type must not be empty")]
    EmptyType,
    #[error("artifact version must be at least 1")]
    ZeroVersion,
    #[error("produced_by_role must not be empty")]
    EmptyRole,
    #[error("an Answer must name exactly one source artifact: the Question it answers")]
    AnswerWithoutQuestion,
}

impl ArtifactId {
    /// What grant `seq` of `claim` writes: [`crate::derive::grant_output`].
    pub fn grant_output(claim: &ClaimId, seq: u64) -> Self {
        crate::derive::grant_output(claim, seq)
    }
}

impl Artifact {
    /// A first-version artifact (its own logical thread) produced by work on `claim`: it derives
    /// from the claim's artifact and belongs to the claim.
    pub fn of_claim(
        id: ArtifactId,
        claim: &Claim,
        structural_type: StructuralType,
        artifact_type: impl Into<String>,
        payload: impl Into<String>,
        produced_by_role: impl Into<String>,
        created_at_ms: i64,
    ) -> Self {
        let mut a = Self::new_root(id, structural_type, artifact_type, payload, produced_by_role, created_at_ms);
        a.source_artifacts = vec![claim.artifact_id];
        a.claim_id = Some(claim.id);
        a
    }

    /// The Failure that ends `claim` (written by the orchestrator, or by the cub whose tool
    /// failed): `failure_type` is its `type`, `summary` says why in one line.
    pub fn failure(
        id: ArtifactId,
        claim: &Claim,
        failure_type: impl Into<String>,
        payload: impl Into<String>,
        summary: impl Into<String>,
        produced_by_role: impl Into<String>,
        created_at_ms: i64,
    ) -> Self {
        let mut a =
            Self::of_claim(id, claim, StructuralType::Failure, failure_type, payload, produced_by_role, created_at_ms);
        a.summary = Some(summary.into());
        a
    }

    /// An Answer to `question` (its one source, in the question's claim) by `answered_by`.
    pub fn answer(
        id: ArtifactId,
        question: &Artifact,
        text: impl Into<String>,
        produced_by_role: impl Into<String>,
        answered_by: impl Into<String>,
        created_at_ms: i64,
    ) -> Self {
        let mut a = Self::new_root(id, StructuralType::Answer, "Answer", text, produced_by_role, created_at_ms);
        a.source_artifacts = vec![question.id];
        a.claim_id = question.claim_id;
        a.answered_by = Some(answered_by.into());
        a
    }

    /// A first-version artifact (its own logical thread, no sources, no claim) with the id the
    /// caller minted.
    pub fn new_root(
        id: ArtifactId,
        structural_type: StructuralType,
        artifact_type: impl Into<String>,
        payload: impl Into<String>,
        produced_by_role: impl Into<String>,
        created_at_ms: i64,
    ) -> Self {
        Self {
            id,
            logical_id: id,
            version: 1,
            structural_type,
            artifact_type: artifact_type.into(),
            payload: payload.into(),
            source_artifacts: Vec::new(),
            produced_by_role: produced_by_role.into(),
            claim_id: None,
            created_at_ms,
            summary: None,
            answered_by: None,
            timed_out: false,
            usage: None,
            forked_from: None,
        }
    }

    pub fn validate(&self) -> Result<(), ArtifactError> {
        if self.artifact_type.trim().is_empty() {
            return Err(ArtifactError::EmptyType);
        }
        if self.version == 0 {
            return Err(ArtifactError::ZeroVersion);
        }
        if self.produced_by_role.trim().is_empty() {
            return Err(ArtifactError::EmptyRole);
        }
        if self.structural_type == StructuralType::Answer && self.source_artifacts.len() != 1 {
            return Err(ArtifactError::AnswerWithoutQuestion);
        }
        Ok(())
    }

    /// A review approves when its payload is an empty JSON object or array; any other payload
    /// (other JSON, or plain text) is feedback and vetoes.
    pub fn is_approval(&self) -> bool {
        match serde_json::from_str::<serde_json::Value>(self.payload.trim()) {
            Ok(serde_json::Value::Object(m)) => m.is_empty(),
            Ok(serde_json::Value::Array(a)) => a.is_empty(),
            _ => false,
        }
    }

    /// The agent that produced this artifact, when an agent did.
    pub fn producing_agent(&self) -> Option<crate::AgentName> {
        crate::AgentName::parse(&self.produced_by_role).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_rules() {
        let mut a = Artifact::new_root(
            ArtifactId::from_uuid(uuid::Uuid::from_u128(1)),
            StructuralType::Review,
            "Review",
            "{}",
            "R",
            1,
        );
        assert!(a.is_approval());
        a.payload = " [ ] ".into();
        assert!(a.is_approval());
        for veto in [r#"{"issue":"x"}"#, "[1]", "looks bad", "", "null"] {
            a.payload = veto.into();
            assert!(!a.is_approval(), "{veto}");
        }
    }

    #[test]
    fn structural_types_round_trip() {
        for t in StructuralType::ALL {
            assert_eq!(t.as_str().parse::<StructuralType>().unwrap(), t);
        }
        assert!("standard".parse::<StructuralType>().is_err());
    }
}
