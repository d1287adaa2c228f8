//! Structured questions: what answer a Question asks for — one or several of a list of options,
//! or a form described by a small subset of JSON Schema — parsed from the Question's payload, and
//! the validation of an answer against it that lists every problem at once. `sett answer`, the
//! console and the cub share this code, so an answer refused in one place is refused in all.
//!
//! Why a hand-written validator and not a JSON Schema library: every spec must also be rendered
//! as a terminal prompt and as an HTML form, so a spec using anything outside the subset must be
//! refused when the agent asks, not accepted and then shown wrongly; and the errors must name the
//! field and what it expected in words an operator reads. A general validator would still need
//! this subset check, and brings a large dependency tree for ~300 lines of rules.

//!
//! By concern: this file holds the model (a question's kind and spec, its fields, the problems
//! found); `parse.rs` reads a spec from an agent's payload and refuses what is outside the
//! subset, `validate.rs` checks answers (and reads them from text and HTML forms), `wire.rs`
//! writes a spec back in the agent's order, and `ordered.rs` is JSON read with its keys in order.

mod ordered;
mod parse;
mod validate;
mod wire;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use ordered::Ordered;
use parse::{parse_choice, parse_form};

/// The most options a choice (or an enum field) may offer: more would not fit a prompt.
pub const MAX_OPTIONS: usize = 100;
/// The most fields a form may have.
pub const MAX_FIELDS: usize = 50;
/// The longest pattern accepted (compiled with a size limit too, so a hostile agent cannot make
/// the validator slow).
const MAX_PATTERN_LEN: usize = 1_000;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A Question that says what answer it wants.
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredQuestion {
    /// The question's text, shown to the person answering.
    pub question: String,
    pub spec: AnswerSpec,
    /// What the question is for (payload key `kind`; `question` when absent).
    pub kind: QuestionKind,
    /// What is being decided about, for a kind other than `question` (payload key `subject`,
    /// any JSON value; for an approval, a [`crate::approval::ApprovalSubject`]).
    pub subject: Option<Value>,
}

/// What a human decision is for: the one typed field every consumer of questions (`sett
/// questions`, the console, MCP, routing, reminders, metrics) reads to tell them apart. A
/// Question's JSON payload carries it as `kind` next to its answer spec; a payload without it
/// (and any free-text question) is a `question`. Only `question` may be asked by an agent (the
/// cub refuses the others); the other kinds are asked by Sett itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// An agent's question (its claim waits for the answer, then the agent resumes).
    #[default]
    Question,
    /// The orchestrator asks whether a gated agent may act on a claim (`agents.<name>.approval`).
    Approval,
    /// The orchestrator asks a human reviewer to approve an artifact or request changes
    /// (`humans.reviewers`).
    Review,
    /// A budget was reached and its workflow paused (`budgets:`): continue with a raised budget,
    /// or stop the workflow.
    Budget,
}

impl QuestionKind {
    pub const ALL: [QuestionKind; 4] = [Self::Question, Self::Approval, Self::Review, Self::Budget];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Question => "question",
            Self::Approval => "approval",
            Self::Review => "review",
            Self::Budget => "budget",
        }
    }

    /// The kind of a Question artifact's payload: the `kind` of a structured question, and
    /// `question` for anything else (free text, or written before kinds existed).
    pub fn of_payload(payload: &str) -> Self {
        StructuredQuestion::from_payload(payload).ok().flatten().map(|q| q.kind).unwrap_or_default()
    }
}

impl fmt::Display for QuestionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for QuestionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            format!("unknown question kind '{s}': expected one of {}", Self::ALL.map(QuestionKind::as_str).join(", "))
        })
    }
}

/// What answer a structured question wants.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerSpec {
    /// One option (answer: the option's text) or several (answer: an array of option texts).
    Choice(Choice),
    /// An object with these fields (answer: a JSON object).
    Form(Form),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub options: Vec<String>,
    pub multiple: bool,
    /// An option (single) or an array of options (multiple).
    pub default: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    /// A label for the field (JSON Schema `title`); the name is shown without one.
    pub title: Option<String>,
    pub description: Option<String>,
    pub required: bool,
    pub default: Option<Value>,
    pub kind: FieldKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    Text {
        min_length: Option<u64>,
        max_length: Option<u64>,
        pattern: Option<String>,
    },
    /// A string that must be one of `options` (JSON Schema `enum`).
    OneOf {
        options: Vec<String>,
    },
    /// `integer: true` for JSON Schema `integer`.
    Number {
        integer: bool,
        minimum: Option<f64>,
        maximum: Option<f64>,
    },
    Boolean,
    /// An array of distinct strings out of `options` (`type: array`, `items: {type: string, enum}`).
    SomeOf {
        options: Vec<String>,
        min_items: Option<u64>,
        max_items: Option<u64>,
    },
}

/// One problem with a spec or an answer: where (a field name, or empty for the whole thing) and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.problem) } else { write!(f, "{}: {}", self.field, self.problem) }
    }
}

/// Every problem, one per line (for error messages).
pub fn describe(problems: &[FieldProblem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// Reads the answer to a form with a `decision` (one of `decisions`) as `A`: an error names
/// the decisions it expected.
pub fn parse_decision<A: serde::de::DeserializeOwned>(
    value: &Value,
    decisions: &[&str],
) -> Result<A, Vec<FieldProblem>> {
    serde_json::from_value(value.clone()).map_err(|e| {
        let expected: Vec<String> = decisions.iter().map(|d| format!("\"{d}\"")).collect();
        vec![FieldProblem::new("decision", format!("expected {}: {e}", expected.join(" or ")))]
    })
}

/// A free-text note as kept: trimmed, `None` when nothing is left.
pub fn trimmed_note(note: Option<String>) -> Option<String> {
    note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty())
}

impl StructuredQuestion {
    /// The spec of a Question payload: `Ok(None)` for a free-text question (any payload that is
    /// not a JSON object with `options` or `schema`), an error listing every problem when it
    /// asks for a structured answer but the spec is not one Sett can render and validate.
    pub fn from_payload(payload: &str) -> Result<Option<Self>, Vec<FieldProblem>> {
        if !payload.trim_start().starts_with('{') {
            return Ok(None);
        }
        let Ok(Value::Object(plain)) = serde_json::from_str::<Value>(payload) else {
            return Ok(None);
        };
        if !plain.contains_key("options") && !plain.contains_key("schema") {
            return Ok(None);
        }
        match serde_json::from_str::<Ordered>(payload) {
            Ok(value) => Self::from_ordered(&value),
            Err(e) => Err(vec![FieldProblem::new("", e.to_string())]),
        }
    }

    /// As [`Self::from_payload`], from a value already parsed with its key order kept.
    fn from_ordered(value: &Ordered) -> Result<Option<Self>, Vec<FieldProblem>> {
        let Ordered::Object(entries) = value else {
            return Ok(None);
        };
        let get = |k: &str| entries.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        if get("options").is_none() && get("schema").is_none() {
            return Ok(None);
        }
        let mut problems = Vec::new();
        for (k, _) in entries {
            if !["question", "options", "multiple", "default", "schema", "kind", "subject", "to"].contains(&k.as_str())
            {
                problems.push(FieldProblem::new(
                    k,
                    "unknown key; a structured question has question, and options (with multiple, default) or schema, and to (its addressees)",
                ));
            }
        }
        let kind = match get("kind") {
            None => QuestionKind::Question,
            Some(Ordered::String(s)) => s.parse().unwrap_or_else(|e: String| {
                problems.push(FieldProblem::new("kind", e));
                QuestionKind::Question
            }),
            Some(_) => {
                problems.push(FieldProblem::new("kind", "must be a string such as \"question\""));
                QuestionKind::Question
            }
        };
        let subject = get("subject").map(Ordered::to_value);
        let question = match get("question") {
            Some(Ordered::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => {
                problems.push(FieldProblem::new("question", "required: the question's text, a non-empty string"));
                String::new()
            }
        };
        let spec = match (get("options"), get("schema")) {
            (Some(_), Some(_)) => {
                problems.push(FieldProblem::new("", "give either options or schema, not both"));
                None
            }
            (Some(options), None) => parse_choice(options, get("multiple"), get("default"), &mut problems),
            (None, Some(schema)) => {
                for k in ["multiple", "default"] {
                    if get(k).is_some() {
                        problems
                            .push(FieldProblem::new(k, "belongs to options; a schema's defaults go on its properties"));
                    }
                }
                parse_form(schema, &mut problems)
            }
            (None, None) => None,
        };
        match spec {
            Some(spec) if problems.is_empty() => Ok(Some(Self { question, spec, kind, subject })),
            _ => Err(problems),
        }
    }

    /// The canonical JSON text of this question (what a Question's payload holds once the cub
    /// accepted it): the wire form, properties in the agent's order.
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A question Sett asks itself (approval, review, budget): of `kind`, about `subject`,
    /// answered with a form of `fields`.
    pub fn asked_by_sett(kind: QuestionKind, question: String, fields: Vec<Field>, subject: &impl Serialize) -> Self {
        Self { question, spec: AnswerSpec::Form(Form { fields }), kind, subject: serde_json::to_value(subject).ok() }
    }

    /// The subject of a Question payload of `kind` (see [`Self::asked_by_sett`]); `None` for a
    /// question of any other kind, or one without a subject of that shape.
    pub fn subject_of<T: serde::de::DeserializeOwned>(payload: &str, kind: QuestionKind) -> Option<T> {
        let q = Self::from_payload(payload).ok().flatten()?;
        if q.kind != kind {
            return None;
        }
        serde_json::from_value(q.subject?).ok()
    }
}

/// Parses a tool's Question payload (given with its key order) into its canonical text, or says
/// why the spec is refused. `Ok(None)`: a free-text question.
/// An agent may only ask a `question`: the other kinds are Sett's own decisions (an agent
/// cannot make its question look like an approval).
pub(crate) fn canonical_question(payload: &Ordered) -> Result<Option<String>, Vec<FieldProblem>> {
    let question = StructuredQuestion::from_ordered(payload)?;
    if let Some(q) = &question
        && q.kind != QuestionKind::Question
    {
        return Err(vec![FieldProblem::new(
            "kind",
            format!("an agent asks kind \"question\" only; \"{}\" is asked by Sett itself", q.kind),
        )]);
    }
    Ok(question.map(|q| q.to_payload()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(payload: Value) -> AnswerSpec {
        StructuredQuestion::from_payload(&payload.to_string()).unwrap().unwrap().spec
    }

    const FORM: &str = r#"{"question": "Deploy how?", "schema": {"type": "object",
        "properties": {
          "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2, "description": "pods"},
          "region": {"type": "string", "enum": ["eu", "us"]},
          "dry_run": {"type": "boolean", "default": true},
          "checks": {"type": "array", "items": {"type": "string", "enum": ["lint", "test"]}, "default": ["test"]},
          "ticket": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$", "maxLength": 12},
          "ratio": {"type": "number"}
        },
        "required": ["replicas", "region", "ticket"]}}"#;

    #[test]
    fn free_text_questions_have_no_spec() {
        for p in ["Which DB?", "", "{\"a\": 1}", "[1]", "{not json", "{\"question\": \"x\"}"] {
            assert_eq!(StructuredQuestion::from_payload(p), Ok(None), "{p}");
        }
    }

    #[test]
    fn choices_by_text_number_and_case() {
        let s = spec(json!({"question": "DB?", "options": ["SQLite", "Postgres"], "default": "SQLite"}));
        assert_eq!(s.parse_text("Postgres"), Ok(json!("Postgres")));
        assert_eq!(s.parse_text("2"), Ok(json!("Postgres")));
        assert_eq!(s.parse_text("sqlite"), Ok(json!("SQLite")));
        let e = s.parse_text("3").unwrap_err();
        assert!(e[0].problem.contains("1 \"SQLite\", 2 \"Postgres\""), "{e:?}");
        assert_eq!(s.default_answer(), Some(json!("SQLite")));
        assert!(s.validate(&json!(["SQLite"])).is_err());
        let m = spec(json!({"question": "Which?", "options": ["a", "b", "c"], "multiple": true}));
        assert_eq!(m.parse_text("3, a"), Ok(json!(["a", "c"])));
        assert_eq!(m.validate(&json!(["c", "b"])), Ok(json!(["b", "c"])));
        assert_eq!(m.parse_text("a,x,9").unwrap_err().len(), 2);
        assert_eq!(m.default_answer(), None);
    }

    #[test]
    fn a_form_lists_every_problem() {
        let s = StructuredQuestion::from_payload(FORM).unwrap().unwrap();
        let AnswerSpec::Form(f) = &s.spec else { panic!() };
        let names: Vec<&str> = f.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["replicas", "region", "dry_run", "checks", "ticket", "ratio"], "the agent's order");
        let problems =
            s.spec.validate(&json!({"replicas": 11.5, "region": "mars", "ticket": "x", "extra": 1})).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["extra", "replicas", "region", "ticket"], "{problems:?}");
        assert!(problems[1].problem.contains("integer"));
        assert!(problems[2].problem.contains("\"eu\""));
        assert_eq!(s.spec.validate(&json!({})).unwrap_err().len(), 2, "region and ticket are required");
        let ok = s.spec.validate(&json!({"replicas": 3.0, "region": "us", "ticket": "OPS-1"})).unwrap();
        assert_eq!(ok, json!({"replicas": 3, "region": "us", "ticket": "OPS-1", "dry_run": true, "checks": ["test"]}));
        assert_eq!(s.spec.default_answer(), None);
        // The canonical payload keeps the order and parses back to the same spec.
        let again = StructuredQuestion::from_payload(&s.to_payload()).unwrap().unwrap();
        assert_eq!(again, s);
        assert!(s.to_payload().find("replicas") < s.to_payload().find("region"));
    }

    #[test]
    fn form_pairs_from_html() {
        let s = StructuredQuestion::from_payload(FORM).unwrap().unwrap().spec;
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let ok = s
            .from_form_pairs(&pairs(&[("replicas", "4"), ("region", "eu"), ("ticket", "A-1"), ("checks", "lint")]))
            .unwrap();
        assert_eq!(ok, json!({"replicas": 4, "region": "eu", "ticket": "A-1", "dry_run": false, "checks": ["lint"]}));
        let e = s.from_form_pairs(&pairs(&[("replicas", "four"), ("region", "eu")])).unwrap_err();
        assert_eq!(e.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), ["replicas", "ticket"]);
        let c = spec(json!({"question": "?", "options": ["a", "b"], "multiple": true}));
        assert_eq!(c.from_form_pairs(&pairs(&[("answer", "b"), ("answer", "a")])), Ok(json!(["a", "b"])));
    }

    #[test]
    fn bad_specs_are_refused_with_every_problem() {
        let p = StructuredQuestion::from_payload(
            &json!({"options": ["a", "a", 3], "multiple": "yes", "default": "z", "extra": 1}).to_string(),
        )
        .unwrap_err();
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["extra", "question", "options", "options", "multiple", "default"], "{p:?}");
        let p = StructuredQuestion::from_payload(
            &json!({"question": "?", "schema": {"type": "object", "properties": {
                "a": {"type": "object"}, "b": {"type": "string", "pattern": "("}, "c": {"type": "integer", "format": "x"},
                "d": {"type": "array", "items": {"type": "integer"}}, "e": {"type": "number", "default": "x"}},
                "required": ["zz"]}})
            .to_string(),
        )
        .unwrap_err();
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["schema.required", "a.type", "b.pattern", "c.format", "d.items", "e.default"], "{p:?}");
        assert!(StructuredQuestion::from_payload(r#"{"question":"?","options":["a"],"options":["b"]}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_and_validating_never_panic(s in "\\PC*", t in "\\PC*") {
            let _ = StructuredQuestion::from_payload(&s);
            let q = StructuredQuestion::from_payload(FORM).unwrap().unwrap();
            let _ = q.spec.parse_text(&t);
        }
    }
}
