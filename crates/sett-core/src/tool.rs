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
    #[error("the tool's \"usage\" is invalid: {0}")]
    BadUsage(String),
}

/// What a tool may report about its own run: the model it used, its tokens and their cost.
/// The shape is fixed and validated now; Sett does not record it yet (docs/agents.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolUsage {
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// In US dollars.
    pub cost_usd: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    artifact_type: Option<String>,
    artifact_payload: Option<serde_json::Value>,
    summary: Option<String>,
    structural_type: Option<String>,
    usage: Option<ToolUsage>,
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
    if let Some(cost) = raw.usage.as_ref().and_then(|u| u.cost_usd)
        && !(cost.is_finite() && cost >= 0.0)
    {
        return Err(ToolOutputError::BadUsage(format!(
            "cost_usd must be a non-negative number of dollars, got {cost}"
        )));
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
    fn usage_is_accepted_and_validated() {
        let o = parse_tool_output(
            r#"{"artifact_type":"Plan","artifact_payload":"x","usage":{"model":"m","input_tokens":10,"output_tokens":2,"cost_usd":0.01}}"#,
        )
        .unwrap();
        assert_eq!(o.payload, "x");
        assert!(parse_tool_output(r#"{"artifact_type":"Plan","usage":{}}"#).is_ok());
        assert!(parse_tool_output(r#"{"artifact_type":"Plan","usage":null}"#).is_ok());
        assert!(matches!(
            parse_tool_output(r#"{"artifact_type":"Plan","usage":{"cost_usd":-1}}"#),
            Err(ToolOutputError::BadUsage(_))
        ));
        for bad in [r#"{"tokens":1}"#, r#"{"input_tokens":-1}"#, r#"{"model":3}"#, r#""lots""#] {
            let text = format!(r#"{{"artifact_type":"Plan","usage":{bad}}}"#);
            assert!(matches!(parse_tool_output(&text), Err(ToolOutputError::NotJson(_))), "{bad}");
        }
    }

    /// The Python SDK's test suite reads these inputs as the cub's own: they must stay in the
    /// contract's shape.
    #[test]
    fn the_python_sdk_fixtures_are_tool_inputs() {
        let fixtures = [
            ("exclusive", include_str!("../../../sdk/python/tests/fixtures/exclusive.json"), ClaimType::Exclusive),
            ("resume", include_str!("../../../sdk/python/tests/fixtures/resume.json"), ClaimType::Resume),
            ("review", include_str!("../../../sdk/python/tests/fixtures/review.json"), ClaimType::Review),
            ("rework", include_str!("../../../sdk/python/tests/fixtures/rework.json"), ClaimType::Rework),
        ];
        for (name, text, claim_type) in fixtures {
            let input: ToolInput = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}.json: {e}"));
            assert_eq!(input.claim_type, claim_type, "{name}.json");
            let again = serde_json::to_value(&input).unwrap();
            assert_eq!(again, serde_json::from_str::<serde_json::Value>(text).unwrap(), "{name}.json has every field");
        }
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
