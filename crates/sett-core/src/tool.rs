//! The tool contract (design.md §5): the JSON a tool receives on stdin, the JSON it must print on
//! stdout, and the one-word answer of a bid script. These parsers take outside input and never
//! panic; every rejection says what was expected.

use serde::{Deserialize, Serialize};

use crate::answer_spec::{Ordered, StructuredQuestion, canonical_question, describe};
use crate::artifact::{Artifact, StructuralType};
use crate::claim::{BidType, ClaimType};
use crate::ids::ClaimId;
use crate::usage::Usage;

/// A question and its answer, as handed to a resumed tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuestionAnswer {
    pub question: Artifact,
    pub answer: Artifact,
    /// The answer as JSON, for a structured question (docs/agents.md): the chosen option, the
    /// array of options, or the form's object. Absent for free text and for a timed-out answer
    /// that has no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl QuestionAnswer {
    /// The pair, with the answer's JSON value when the question is structured.
    pub fn new(question: Artifact, answer: Artifact) -> Self {
        let structured = matches!(StructuredQuestion::from_payload(&question.payload), Ok(Some(_)));
        let value = structured.then(|| serde_json::from_str(&answer.payload).ok()).flatten();
        Self { question, answer, value }
    }
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
    /// What the run cost, when the tool said (docs/agents.md, "Usage").
    pub usage: Option<Usage>,
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
    #[error("the tool's \"usage\" is invalid (see docs/agents.md, \"Usage\"):\n{0}")]
    BadUsage(String),
    #[error("the Question's answer spec is invalid (see docs/agents.md, \"Structured questions\"):\n{0}")]
    BadAnswerSpec(String),
}

/// Only the payload of a tool's output, with its objects' keys in the written order.
#[derive(Deserialize)]
struct OrderedPayload {
    artifact_payload: Ordered,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    artifact_type: Option<String>,
    artifact_payload: Option<serde_json::Value>,
    summary: Option<String>,
    structural_type: Option<String>,
    #[serde(default)]
    usage: serde_json::Value,
}

/// Parses a tool's stdout. A Question may leave out its `artifact_type` (it then is
/// "Question"); a Question whose payload asks for a structured answer must carry a valid spec,
/// and its payload is stored in the spec's canonical form.
pub fn parse_tool_output(stdout: &str) -> Result<ToolOutput, ToolOutputError> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err(ToolOutputError::Empty);
    }
    let raw: RawOutput = serde_json::from_str(text).map_err(|e| ToolOutputError::NotJson(e.to_string()))?;
    let is_question = raw.structural_type.as_deref() == Some("Question");
    let artifact_type = match raw.artifact_type.filter(|t| !t.trim().is_empty()) {
        Some(t) => t,
        None if is_question => "Question".to_owned(),
        None => return Err(ToolOutputError::MissingType),
    };
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
    let usage = Usage::from_tool_json(&raw.usage).map_err(|problems| {
        ToolOutputError::BadUsage(problems.lines().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))
    })?;
    if structural_type == StructuralType::Question
        && let Some(serde_json::Value::Object(_)) = &raw.artifact_payload
    {
        let ordered: OrderedPayload =
            serde_json::from_str(text).map_err(|e| ToolOutputError::BadAnswerSpec(format!("  - {e}")))?;
        match canonical_question(&ordered.artifact_payload) {
            Ok(Some(payload)) => {
                return Ok(ToolOutput {
                    structural_type,
                    artifact_type,
                    payload,
                    summary: raw.summary.filter(|s| !s.is_empty()),
                    usage,
                });
            }
            Ok(None) => {}
            Err(problems) => return Err(ToolOutputError::BadAnswerSpec(describe(&problems))),
        }
    }
    // A payload may be given as a string or as any JSON value (kept as its JSON text).
    let payload = match raw.artifact_payload {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    Ok(ToolOutput { structural_type, artifact_type, payload, summary: raw.summary.filter(|s| !s.is_empty()), usage })
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
        let o = parse_tool_output(r#"{"structural_type":"Question","artifact_payload":"Which?"}"#).unwrap();
        assert_eq!((o.artifact_type.as_str(), o.payload.as_str()), ("Question", "Which?"));
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
    fn usage_is_read_and_malformed_usage_is_refused_with_every_problem() {
        let o = parse_tool_output(
            r#"{"artifact_type":"Plan","artifact_payload":"x","usage":{"model":"m","input_tokens":10,"output_tokens":2,"cost":{"amount":"0.01","currency":"USD"}}}"#,
        )
        .unwrap();
        assert_eq!(o.payload, "x");
        let u = o.usage.unwrap();
        assert_eq!(
            (u.model.as_deref(), u.tokens(), u.cost.unwrap().amount.to_string()),
            (Some("m"), 12, "0.01".into())
        );
        assert_eq!(parse_tool_output(r#"{"artifact_type":"Plan","usage":{}}"#).unwrap().usage, None);
        assert_eq!(parse_tool_output(r#"{"artifact_type":"Plan","usage":null}"#).unwrap().usage, None);
        assert_eq!(parse_tool_output(r#"{"artifact_type":"Plan"}"#).unwrap().usage, None);
        for (bad, says) in [
            (r#"{"cost_usd":0.01}"#, "cost_usd: not accepted"),
            (r#"{"tokens":1}"#, "tokens: unknown field"),
            (r#"{"input_tokens":-1}"#, "input_tokens: must be a non-negative integer"),
            (r#"{"model":3}"#, "model: must be a string"),
            (r#""lots""#, "must be an object"),
            (r#"{"cost":{"amount":0.5,"currency":"USD"}}"#, "not a number: a float loses cents"),
        ] {
            let text = format!(r#"{{"artifact_type":"Plan","usage":{bad}}}"#);
            let e = parse_tool_output(&text).unwrap_err();
            assert!(matches!(e, ToolOutputError::BadUsage(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains(says), "{bad}: {e}");
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
    fn structured_questions_are_checked_and_kept_in_order() {
        let o = parse_tool_output(
            r#"{"structural_type":"Question","artifact_payload":{"question":"Q?","schema":{"type":"object",
               "properties":{"z":{"type":"boolean"},"a":{"type":"string"}},"required":["a"]}}}"#,
        )
        .unwrap();
        assert_eq!(
            o.payload,
            r#"{"question":"Q?","schema":{"type":"object","properties":{"z":{"type":"boolean"},"a":{"type":"string"}},"required":["a"]}}"#
        );
        let e = parse_tool_output(r#"{"structural_type":"Question","artifact_payload":{"options":[]}}"#).unwrap_err();
        let ToolOutputError::BadAnswerSpec(text) = e else { panic!("{e:?}") };
        assert!(text.contains("question: required") && text.contains("options: must list"), "{text}");
        // A Standard artifact's object payload is not a question, whatever its keys.
        let o = parse_tool_output(r#"{"artifact_type":"T","artifact_payload":{"options":1}}"#).unwrap();
        assert_eq!(o.payload, r#"{"options":1}"#);
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
