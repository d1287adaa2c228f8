//! The tool contract (design.md §5): the JSON a tool receives on stdin, the JSON it must print on
//! stdout, and the one-word answer of a bid script. These parsers take outside input and never
//! panic; every rejection says what was expected.

use serde::{Deserialize, Serialize};

use crate::artifact::{Artifact, StructuralType};
use crate::claim::{BidType, ClaimType};
use crate::ids::ClaimId;

/// A question and its answer, as handed to a resumed tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuestionAnswer {
    pub question: Artifact,
    pub answer: Artifact,
}

/// What a tool reads on stdin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ToolInput {
    pub claim_id: ClaimId,
    pub claim_type: ClaimType,
    pub target_artifact: Artifact,
    pub context_chain: Vec<Artifact>,
    pub additional_context: Vec<Artifact>,
    pub answers: Vec<QuestionAnswer>,
}

/// What a tool printed, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub structural_type: StructuralType,
    pub artifact_type: String,
    pub payload: String,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolOutputError {
    #[error("the tool printed nothing on stdout; it must print exactly one JSON object")]
    Empty,
    #[error("the tool's stdout is not one JSON object: {0}")]
    NotJson(String),
    #[error("the tool's output is missing \"artifact_type\" (a non-empty string)")]
    MissingType,
    #[error("the tool's \"structural_type\" is invalid: {0}")]
    BadStructuralType(String),
    #[error("a tool may not produce an Answer; answers come from humans via `sett answer`")]
    AnswerNotAllowed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    artifact_type: Option<String>,
    artifact_payload: Option<serde_json::Value>,
    summary: Option<String>,
    structural_type: Option<String>,
}

/// Parses a tool's stdout.
pub fn parse_tool_output(stdout: &str) -> Result<ToolOutput, ToolOutputError> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err(ToolOutputError::Empty);
    }
    let raw: RawOutput = serde_json::from_str(text).map_err(|e| ToolOutputError::NotJson(e.to_string()))?;
    let artifact_type = raw.artifact_type.filter(|t| !t.trim().is_empty()).ok_or(ToolOutputError::MissingType)?;
    let structural_type = match raw.structural_type.as_deref() {
        None | Some("") if artifact_type == "Review" => StructuralType::Review,
        None | Some("") => StructuralType::Standard,
        Some(s) => s
            .parse()
            .map_err(|e: crate::artifact::UnknownStructuralType| ToolOutputError::BadStructuralType(e.to_string()))?,
    };
    if structural_type == StructuralType::Answer {
        return Err(ToolOutputError::AnswerNotAllowed);
    }
    // A payload may be given as a string or as any JSON value (kept as its JSON text).
    let payload = match raw.artifact_payload {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    Ok(ToolOutput { structural_type, artifact_type, payload, summary: raw.summary.filter(|s| !s.is_empty()) })
}

/// Parses a bid script's stdout: one bid word, surrounding whitespace ignored.
pub fn parse_bid(stdout: &str) -> Result<BidType, String> {
    let word = stdout.trim();
    word.parse::<BidType>()
        .map_err(|_| format!("the bid script printed {word:?}; it must print one of review, claim, exclusive, ignore"))
}

/// True when `payload` names a git commit: 40 (SHA-1) or 64 (SHA-256) hex characters.
pub fn looks_like_commit_hash(payload: &str) -> bool {
    let p = payload.trim();
    (p.len() == 40 || p.len() == 64) && p.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn outputs() {
        let o =
            parse_tool_output(r#"{"artifact_type":"CodeCommit","artifact_payload":"abc","summary":"done"}"#).unwrap();
        assert_eq!(o.structural_type, StructuralType::Standard);
        assert_eq!(o.summary.as_deref(), Some("done"));
        let o = parse_tool_output(r#"{"artifact_type":"Review","artifact_payload":{}}"#).unwrap();
        assert_eq!(o.structural_type, StructuralType::Review);
        assert_eq!(o.payload, "{}");
        let o = parse_tool_output(
            r#" {"artifact_type":"Clarify","artifact_payload":"Which?","structural_type":"Question"} "#,
        )
        .unwrap();
        assert_eq!(o.structural_type, StructuralType::Question);
        assert_eq!(parse_tool_output(""), Err(ToolOutputError::Empty));
        assert!(matches!(parse_tool_output("nope"), Err(ToolOutputError::NotJson(_))));
        assert!(matches!(parse_tool_output("{} {}"), Err(ToolOutputError::NotJson(_))));
        assert_eq!(parse_tool_output(r#"{"artifact_payload":"x"}"#), Err(ToolOutputError::MissingType));
        assert!(matches!(
            parse_tool_output(r#"{"artifact_type":"x","structural_type":"Nope"}"#),
            Err(ToolOutputError::BadStructuralType(_))
        ));
        assert_eq!(
            parse_tool_output(r#"{"artifact_type":"x","structural_type":"Answer"}"#),
            Err(ToolOutputError::AnswerNotAllowed)
        );
    }

    #[test]
    fn bids() {
        assert_eq!(parse_bid(" exclusive\n"), Ok(BidType::Exclusive));
        assert!(parse_bid("yes").is_err());
        assert!(parse_bid("").is_err());
    }

    proptest! {
        #[test]
        fn output_parser_never_panics(s in "\\PC*") {
            let _ = parse_tool_output(&s);
            let _ = parse_bid(&s);
        }
    }
}
