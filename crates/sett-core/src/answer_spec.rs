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

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

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

impl AnswerSpec {
    /// Validates `answer`, returning the value to store: for a form, fields left out take their
    /// default. Every problem is listed.
    pub fn validate(&self, answer: &Value) -> Result<Value, Vec<FieldProblem>> {
        match self {
            Self::Choice(c) => c.validate(answer),
            Self::Form(f) => f.validate(answer),
        }
    }

    /// An answer typed on a command line: an option by its text or its number (1-based; several
    /// separated by commas when `multiple`), or a form's JSON object.
    pub fn parse_text(&self, text: &str) -> Result<Value, Vec<FieldProblem>> {
        match self {
            Self::Choice(c) => c.parse_text(text),
            Self::Form(f) => match serde_json::from_str::<Value>(text) {
                Ok(v) => f.validate(&v),
                Err(_) => Err(vec![FieldProblem::new(
                    "",
                    format!(
                        "this question wants a form ({}): give a JSON object, e.g. --json '{}'",
                        f.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
                        f.example()
                    ),
                )]),
            },
        }
    }

    /// The answer given when the question times out under `on_question_timeout: default`: the
    /// choice's default, or the form's defaults — `None` when they do not make a valid answer
    /// (no default, or a required field without one).
    pub fn default_answer(&self) -> Option<Value> {
        match self {
            Self::Choice(c) => c.default.as_ref().and_then(|d| c.validate(d).ok()),
            Self::Form(f) => f.validate(&Value::Object(Map::new())).ok(),
        }
    }

    /// An answer submitted as an HTML form: `(name, value)` pairs, a name repeated for each
    /// checked checkbox. A choice's control is named `answer`; a boolean field is true when
    /// present (a checkbox), false when absent; an empty text or number input is left out.
    pub fn from_form_pairs(&self, pairs: &[(String, String)]) -> Result<Value, Vec<FieldProblem>> {
        let values = |name: &str| pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect::<Vec<_>>();
        match self {
            Self::Choice(c) => {
                let picked = values("answer");
                let answer = if c.multiple {
                    Value::Array(picked.into_iter().map(Value::String).collect())
                } else {
                    match picked.as_slice() {
                        [] => Value::Null,
                        [one] => Value::String(one.clone()),
                        _ => Value::Array(picked.into_iter().map(Value::String).collect()),
                    }
                };
                c.validate(&answer)
            }
            Self::Form(f) => {
                let mut object = Map::new();
                let mut problems = Vec::new();
                for field in &f.fields {
                    let given = values(&field.name);
                    let value = match &field.kind {
                        FieldKind::Boolean => Some(Value::Bool(given.iter().any(|v| v != "false"))),
                        FieldKind::SomeOf { .. } => {
                            Some(Value::Array(given.into_iter().filter(|v| !v.is_empty()).map(Value::String).collect()))
                        }
                        FieldKind::Number { .. } => match given.first().map(|s| s.trim()) {
                            None | Some("") => None,
                            Some(s) => match s.parse::<f64>().ok().and_then(number_value) {
                                Some(n) => Some(n),
                                None => {
                                    problems.push(FieldProblem::new(&field.name, format!("{s:?} is not a number")));
                                    continue;
                                }
                            },
                        },
                        FieldKind::Text { .. } | FieldKind::OneOf { .. } => {
                            given.into_iter().next().filter(|s| !s.is_empty()).map(Value::String)
                        }
                    };
                    if let Some(v) = value {
                        object.insert(field.name.clone(), v);
                    }
                }
                match f.validate(&Value::Object(object)) {
                    Ok(v) if problems.is_empty() => Ok(v),
                    Ok(_) => Err(problems),
                    Err(more) => {
                        // A field already refused as unreadable is not also "required".
                        let refused: Vec<String> = problems.iter().map(|p| p.field.clone()).collect();
                        problems.extend(more.into_iter().filter(|p| !refused.contains(&p.field)));
                        Err(problems)
                    }
                }
            }
        }
    }
}

/// A whole number as an integer JSON value, anything else as a float (none for NaN/infinity).
fn number_value(n: f64) -> Option<Value> {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Some(Value::Number(Number::from(n as i64)))
    } else {
        Number::from_f64(n).map(Value::Number)
    }
}

fn list(options: &[String]) -> String {
    options.iter().enumerate().map(|(i, o)| format!("{} {o:?}", i + 1)).collect::<Vec<_>>().join(", ")
}

impl Choice {
    fn validate(&self, answer: &Value) -> Result<Value, Vec<FieldProblem>> {
        let expected = || format!("one of {}", list(&self.options));
        match (self.multiple, answer) {
            (false, Value::String(s)) if self.options.contains(s) => Ok(answer.clone()),
            (false, Value::String(s)) => {
                Err(vec![FieldProblem::new("", format!("{s:?} is not an option; expected {}", expected()))])
            }
            (false, Value::Null) => Err(vec![FieldProblem::new("", format!("required: pick {}", expected()))]),
            (false, _) => Err(vec![FieldProblem::new("", format!("pick exactly one option: {}", expected()))]),
            (true, Value::Array(items)) => {
                let mut problems = Vec::new();
                let mut seen = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if self.options.contains(s) => {
                            if seen.contains(s) {
                                problems.push(FieldProblem::new("", format!("{s:?} is picked twice")));
                            }
                            seen.push(s.clone());
                        }
                        Value::String(s) => problems
                            .push(FieldProblem::new("", format!("{s:?} is not an option; expected {}", expected()))),
                        other => problems.push(FieldProblem::new("", format!("{other} is not an option's text"))),
                    }
                }
                if problems.is_empty() {
                    // Stored in the options' order, whatever order they were picked in.
                    let picked = self.options.iter().filter(|o| seen.contains(o)).cloned().map(Value::String);
                    Ok(Value::Array(picked.collect()))
                } else {
                    Err(problems)
                }
            }
            (true, Value::String(s)) => self.validate(&Value::Array(vec![Value::String(s.clone())])),
            (true, _) => {
                Err(vec![FieldProblem::new("", format!("give an array of options out of {}", list(&self.options)))])
            }
        }
    }

    fn parse_text(&self, text: &str) -> Result<Value, Vec<FieldProblem>> {
        let text = text.trim();
        if self.multiple {
            if let Some(one) = self.pick(text) {
                return self.validate(&Value::Array(vec![Value::String(one)]));
            }
            if text.is_empty() {
                return self.validate(&Value::Array(Vec::new()));
            }
            let mut picked = Vec::new();
            let mut problems = Vec::new();
            for part in text.split(',').map(str::trim) {
                match self.pick(part) {
                    Some(o) => picked.push(Value::String(o)),
                    None => problems.push(self.not_an_option(part)),
                }
            }
            if problems.is_empty() { self.validate(&Value::Array(picked)) } else { Err(problems) }
        } else {
            match self.pick(text) {
                Some(o) => Ok(Value::String(o)),
                None => Err(vec![self.not_an_option(text)]),
            }
        }
    }

    /// An option by its exact text, its number, or its text in any case when that is unique.
    fn pick(&self, text: &str) -> Option<String> {
        if let Some(o) = self.options.iter().find(|o| o.as_str() == text) {
            return Some(o.clone());
        }
        if let Ok(n) = text.parse::<usize>()
            && (1..=self.options.len()).contains(&n)
        {
            return Some(self.options[n - 1].clone());
        }
        let mut folded = self.options.iter().filter(|o| o.to_lowercase() == text.to_lowercase());
        match (folded.next(), folded.next()) {
            (Some(o), None) => Some(o.clone()),
            _ => None,
        }
    }

    fn not_an_option(&self, text: &str) -> FieldProblem {
        FieldProblem::new(
            "",
            format!("{text:?} is not an option; give an option's text or number: {}", list(&self.options)),
        )
    }
}

impl Form {
    fn validate(&self, answer: &Value) -> Result<Value, Vec<FieldProblem>> {
        let Value::Object(given) = answer else {
            return Err(vec![FieldProblem::new(
                "",
                format!("the answer must be a JSON object, e.g. {}", self.example()),
            )]);
        };
        let mut problems = Vec::new();
        for name in given.keys() {
            if !self.fields.iter().any(|f| &f.name == name) {
                problems.push(FieldProblem::new(
                    name,
                    format!(
                        "unknown field; the fields are {}",
                        self.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let mut out = Map::new();
        for field in &self.fields {
            match given.get(&field.name).filter(|v| !v.is_null()) {
                Some(v) => match field.check(v) {
                    Ok(v) => {
                        out.insert(field.name.clone(), v);
                    }
                    Err(p) => problems.extend(p.into_iter().map(|p| FieldProblem::new(&field.name, p))),
                },
                None => match &field.default {
                    Some(d) => {
                        out.insert(field.name.clone(), d.clone());
                    }
                    None if field.required => {
                        problems.push(FieldProblem::new(&field.name, format!("required: {}", field.kind.expected())))
                    }
                    None => {}
                },
            }
        }
        if problems.is_empty() { Ok(Value::Object(out)) } else { Err(problems) }
    }

    /// An example answer (defaults, else a placeholder of the right type), for error messages.
    fn example(&self) -> String {
        let mut m = Map::new();
        for f in &self.fields {
            let v = f.default.clone().unwrap_or_else(|| match &f.kind {
                FieldKind::Text { .. } => Value::String("…".into()),
                FieldKind::OneOf { options } => Value::String(options.first().cloned().unwrap_or_default()),
                FieldKind::Number { minimum, .. } => {
                    Value::Number(Number::from(minimum.map_or(1, |m| m.ceil() as i64)))
                }
                FieldKind::Boolean => Value::Bool(true),
                FieldKind::SomeOf { options, .. } => {
                    Value::Array(options.first().cloned().map(Value::String).into_iter().collect())
                }
            });
            m.insert(f.name.clone(), v);
        }
        Value::Object(m).to_string()
    }
}

impl FieldKind {
    /// What a value of this kind must be, in words.
    pub fn expected(&self) -> String {
        match self {
            Self::Text { min_length, max_length, pattern } => {
                let mut s = "a string".to_owned();
                if let Some(n) = min_length {
                    s += &format!(" of at least {n} characters");
                }
                if let Some(n) = max_length {
                    s += &format!(" of at most {n} characters");
                }
                if let Some(p) = pattern {
                    s += &format!(" matching {p:?}");
                }
                s
            }
            Self::OneOf { options } => format!("one of {}", list(options)),
            Self::Number { integer, minimum, maximum } => {
                let mut s = if *integer { "an integer".to_owned() } else { "a number".to_owned() };
                match (minimum, maximum) {
                    (Some(a), Some(b)) => s += &format!(" from {a} to {b}"),
                    (Some(a), None) => s += &format!(" ≥ {a}"),
                    (None, Some(b)) => s += &format!(" ≤ {b}"),
                    (None, None) => {}
                }
                s
            }
            Self::Boolean => "true or false".into(),
            Self::SomeOf { options, .. } => format!("an array of options out of {}", list(options)),
        }
    }
}

impl Field {
    /// A field with a title and a description, and no default.
    pub fn described(name: &str, title: &str, description: impl Into<String>, required: bool, kind: FieldKind) -> Self {
        Self {
            name: name.into(),
            title: Some(title.into()),
            description: Some(description.into()),
            required,
            default: None,
            kind,
        }
    }

    /// The required `decision` of a question Sett asks: one of `options`, `description` saying
    /// what each does.
    pub fn decision(description: &str, options: &[&str]) -> Self {
        let options = options.iter().map(|o| (*o).to_owned()).collect();
        Self::described("decision", "Decision", description, true, FieldKind::OneOf { options })
    }

    /// An optional free-text field of at most `max_length` characters.
    pub fn note(name: &str, title: &str, description: &str, max_length: usize) -> Self {
        let kind = FieldKind::Text { min_length: None, max_length: Some(max_length as u64), pattern: None };
        Self::described(name, title, description, false, kind)
    }

    /// The label shown for the field: its title, else its name.
    pub fn label(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.name)
    }

    /// The value, normalised (a multiple choice in the options' order), or every problem.
    pub fn check(&self, v: &Value) -> Result<Value, Vec<String>> {
        let wrong = || Err(vec![format!("expected {}, got {v}", self.kind.expected())]);
        match &self.kind {
            FieldKind::Text { min_length, max_length, pattern } => {
                let Value::String(s) = v else { return wrong() };
                let mut problems = Vec::new();
                let len = s.chars().count() as u64;
                if let Some(n) = min_length
                    && len < *n
                {
                    problems.push(format!("must have at least {n} characters, has {len}"));
                }
                if let Some(n) = max_length
                    && len > *n
                {
                    problems.push(format!("must have at most {n} characters, has {len}"));
                }
                if let Some(p) = pattern
                    && let Ok(re) = compile(p)
                    && !re.is_match(s)
                {
                    problems.push(format!("{s:?} does not match the pattern {p:?}"));
                }
                if problems.is_empty() { Ok(v.clone()) } else { Err(problems) }
            }
            FieldKind::OneOf { options } => match v {
                Value::String(s) if options.contains(s) => Ok(v.clone()),
                _ => wrong(),
            },
            FieldKind::Number { integer, minimum, maximum } => {
                let Some(n) = v.as_f64() else { return wrong() };
                let mut problems = Vec::new();
                if *integer && n.fract() != 0.0 {
                    return Err(vec![format!("expected an integer, got {v}")]);
                }
                if let Some(m) = minimum
                    && n < *m
                {
                    problems.push(format!("must be at least {m}, got {v}"));
                }
                if let Some(m) = maximum
                    && n > *m
                {
                    problems.push(format!("must be at most {m}, got {v}"));
                }
                if !problems.is_empty() {
                    return Err(problems);
                }
                Ok(if *integer { number_value(n).unwrap_or_else(|| v.clone()) } else { v.clone() })
            }
            FieldKind::Boolean => match v {
                Value::Bool(_) => Ok(v.clone()),
                _ => wrong(),
            },
            FieldKind::SomeOf { options, min_items, max_items } => {
                let Value::Array(items) = v else { return wrong() };
                let mut problems = Vec::new();
                let mut seen: Vec<&String> = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if options.contains(s) => {
                            if seen.contains(&s) {
                                problems.push(format!("{s:?} is picked twice"));
                            }
                            seen.push(s);
                        }
                        other => problems.push(format!("{other} is not one of {}", list(options))),
                    }
                }
                let n = items.len() as u64;
                if let Some(m) = min_items
                    && n < *m
                {
                    problems.push(format!("pick at least {m}, picked {n}"));
                }
                if let Some(m) = max_items
                    && n > *m
                {
                    problems.push(format!("pick at most {m}, picked {n}"));
                }
                if !problems.is_empty() {
                    return Err(problems);
                }
                Ok(Value::Array(options.iter().filter(|o| seen.contains(o)).cloned().map(Value::String).collect()))
            }
        }
    }
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!("a pattern may have at most {MAX_PATTERN_LEN} characters"));
    }
    regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| format!("invalid pattern: {e}"))
}

fn parse_options(field: &str, v: &Ordered, problems: &mut Vec<FieldProblem>) -> Vec<String> {
    let Ordered::Array(items) = v else {
        problems.push(FieldProblem::new(field, "must be an array of strings"));
        return Vec::new();
    };
    let mut options = Vec::new();
    for item in items {
        match item {
            Ordered::String(s) if s.trim().is_empty() => problems.push(FieldProblem::new(field, "an option is empty")),
            Ordered::String(s) if options.contains(s) => {
                problems.push(FieldProblem::new(field, format!("{s:?} is listed twice")))
            }
            Ordered::String(s) => options.push(s.clone()),
            _ => problems.push(FieldProblem::new(field, "every option must be a string")),
        }
    }
    if options.is_empty() && items.is_empty() {
        problems.push(FieldProblem::new(field, "must list at least one option"));
    }
    if options.len() > MAX_OPTIONS {
        problems.push(FieldProblem::new(field, format!("at most {MAX_OPTIONS} options")));
    }
    options
}

fn parse_choice(
    options: &Ordered,
    multiple: Option<&Ordered>,
    default: Option<&Ordered>,
    problems: &mut Vec<FieldProblem>,
) -> Option<AnswerSpec> {
    let options = parse_options("options", options, problems);
    let multiple = match multiple {
        None => false,
        Some(Ordered::Bool(b)) => *b,
        Some(_) => {
            problems.push(FieldProblem::new("multiple", "must be true or false"));
            false
        }
    };
    let choice = Choice { options, multiple, default: None };
    let default = match default.map(Ordered::to_value) {
        None => None,
        Some(d) => match choice.validate(&d) {
            Ok(d) => Some(d),
            Err(p) => {
                problems.extend(p.into_iter().map(|p| FieldProblem::new("default", p.problem)));
                None
            }
        },
    };
    Some(AnswerSpec::Choice(Choice { default, ..choice }))
}

fn parse_form(schema: &Ordered, problems: &mut Vec<FieldProblem>) -> Option<AnswerSpec> {
    let Ordered::Object(entries) = schema else {
        problems.push(FieldProblem::new(
            "schema",
            "must be a JSON Schema object: {\"type\": \"object\", \"properties\": {…}}",
        ));
        return None;
    };
    let get = |k: &str| entries.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    for (k, v) in entries {
        match k.as_str() {
            "type" | "properties" | "required" | "title" | "description" | "$schema" => {}
            "additionalProperties" if matches!(v, Ordered::Bool(false)) => {}
            _ => problems.push(FieldProblem::new(
                format!("schema.{k}"),
                "not supported; a schema has type: object, properties, required (and title, description)",
            )),
        }
    }
    if !matches!(get("type"), Some(Ordered::String(t)) if t == "object") {
        problems.push(FieldProblem::new("schema.type", "must be \"object\""));
    }
    let required: Vec<String> = match get("required") {
        None => Vec::new(),
        Some(Ordered::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Ordered::String(s) => Some(s.clone()),
                _ => {
                    problems.push(FieldProblem::new("schema.required", "must be an array of property names"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            problems.push(FieldProblem::new("schema.required", "must be an array of property names"));
            Vec::new()
        }
    };
    let Some(Ordered::Object(properties)) = get("properties") else {
        problems.push(FieldProblem::new("schema.properties", "required: an object of fields"));
        return None;
    };
    if properties.is_empty() {
        problems.push(FieldProblem::new("schema.properties", "must have at least one field"));
    }
    if properties.len() > MAX_FIELDS {
        problems.push(FieldProblem::new("schema.properties", format!("at most {MAX_FIELDS} fields")));
    }
    for r in &required {
        if !properties.iter().any(|(n, _)| n == r) {
            problems.push(FieldProblem::new("schema.required", format!("{r:?} is not a property")));
        }
    }
    let fields = properties
        .iter()
        .filter_map(|(name, spec)| parse_field(name, spec, required.contains(name), problems))
        .collect();
    Some(AnswerSpec::Form(Form { fields }))
}

fn parse_field(name: &str, spec: &Ordered, required: bool, problems: &mut Vec<FieldProblem>) -> Option<Field> {
    let at = |k: &str| format!("{name}.{k}");
    if name.trim().is_empty() {
        problems.push(FieldProblem::new("schema.properties", "a property name is empty"));
        return None;
    }
    let Ordered::Object(entries) = spec else {
        problems.push(FieldProblem::new(name, "must be an object such as {\"type\": \"string\"}"));
        return None;
    };
    let get = |k: &str| entries.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let text = |k: &str, problems: &mut Vec<FieldProblem>| match get(k) {
        None => None,
        Some(Ordered::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.push(FieldProblem::new(at(k), "must be a string"));
            None
        }
    };
    let count = |k: &str, problems: &mut Vec<FieldProblem>| match get(k) {
        None => None,
        Some(Ordered::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => {
            problems.push(FieldProblem::new(at(k), "must be a whole number ≥ 0"));
            None
        }
    };
    let bound = |k: &str, problems: &mut Vec<FieldProblem>| match get(k) {
        None => None,
        Some(Ordered::Number(n)) => n.as_f64(),
        Some(_) => {
            problems.push(FieldProblem::new(at(k), "must be a number"));
            None
        }
    };
    let ty = match get("type") {
        Some(Ordered::String(t)) => t.as_str(),
        _ => {
            problems.push(FieldProblem::new(at("type"), "required: one of string, number, integer, boolean, array"));
            return None;
        }
    };
    let allowed: &[&str] = match ty {
        "string" => &["enum", "minLength", "maxLength", "pattern"],
        "number" | "integer" => &["minimum", "maximum"],
        "boolean" => &[],
        "array" => &["items", "minItems", "maxItems", "uniqueItems"],
        other => {
            problems.push(FieldProblem::new(
                at("type"),
                format!("{other:?} is not supported; use string, number, integer, boolean or array (of an enum)"),
            ));
            return None;
        }
    };
    for (k, _) in entries {
        if !["type", "title", "description", "default"].contains(&k.as_str()) && !allowed.contains(&k.as_str()) {
            problems.push(FieldProblem::new(at(k), format!("not supported for type {ty}")));
        }
    }
    let before = problems.len();
    let kind = match ty {
        "string" => match get("enum") {
            Some(e) => FieldKind::OneOf { options: parse_options(&at("enum"), e, problems) },
            None => {
                let pattern = text("pattern", problems);
                if let Some(p) = &pattern
                    && let Err(e) = compile(p)
                {
                    problems.push(FieldProblem::new(at("pattern"), e));
                }
                FieldKind::Text {
                    min_length: count("minLength", problems),
                    max_length: count("maxLength", problems),
                    pattern,
                }
            }
        },
        "number" | "integer" => FieldKind::Number {
            integer: ty == "integer",
            minimum: bound("minimum", problems),
            maximum: bound("maximum", problems),
        },
        "boolean" => FieldKind::Boolean,
        _ => {
            let options = match get("items") {
                Some(Ordered::Object(items)) => {
                    let is_string =
                        items.iter().any(|(k, v)| k == "type" && matches!(v, Ordered::String(s) if s == "string"));
                    let enumeration = items.iter().find(|(k, _)| k == "enum").map(|(_, v)| v);
                    match enumeration {
                        Some(e) if is_string && items.len() == 2 => parse_options(&at("items.enum"), e, problems),
                        _ => {
                            problems.push(FieldProblem::new(
                                at("items"),
                                "an array must be of an enum: {\"type\": \"string\", \"enum\": [...]}",
                            ));
                            Vec::new()
                        }
                    }
                }
                _ => {
                    problems.push(FieldProblem::new(at("items"), "required: {\"type\": \"string\", \"enum\": [...]}"));
                    Vec::new()
                }
            };
            if let Some(u) = get("uniqueItems")
                && !matches!(u, Ordered::Bool(true))
            {
                problems.push(FieldProblem::new(at("uniqueItems"), "may only be true: each option is picked once"));
            }
            FieldKind::SomeOf {
                options,
                min_items: count("minItems", problems),
                max_items: count("maxItems", problems),
            }
        }
    };
    let mut field = Field {
        name: name.to_owned(),
        title: text("title", problems),
        description: text("description", problems),
        required,
        default: None,
        kind,
    };
    if problems.len() > before {
        return None;
    }
    if let Some(d) = get("default") {
        match field.check(&d.to_value()) {
            Ok(d) => field.default = Some(d),
            Err(p) => problems.extend(p.into_iter().map(|p| FieldProblem::new(at("default"), p))),
        }
    }
    Some(field)
}

// ---- The wire form (serialised in the agent's order) ----

impl Serialize for StructuredQuestion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        // A plain question's text stays what it was before kinds existed.
        if self.kind != QuestionKind::Question {
            m.serialize_entry("kind", &self.kind)?;
        }
        m.serialize_entry("question", &self.question)?;
        if let Some(subject) = &self.subject {
            m.serialize_entry("subject", subject)?;
        }
        match &self.spec {
            AnswerSpec::Choice(c) => {
                m.serialize_entry("options", &c.options)?;
                m.serialize_entry("multiple", &c.multiple)?;
                if let Some(d) = &c.default {
                    m.serialize_entry("default", d)?;
                }
            }
            AnswerSpec::Form(f) => m.serialize_entry("schema", f)?,
        }
        m.end()
    }
}

impl Serialize for Form {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Properties<'a>(&'a [Field]);
        impl Serialize for Properties<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for f in self.0 {
                    m.serialize_entry(&f.name, f)?;
                }
                m.end()
            }
        }
        let required: Vec<&str> = self.fields.iter().filter(|f| f.required).map(|f| f.name.as_str()).collect();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "object")?;
        m.serialize_entry("properties", &Properties(&self.fields))?;
        m.serialize_entry("required", &required)?;
        m.end()
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match &self.kind {
            FieldKind::Text { min_length, max_length, pattern } => {
                m.serialize_entry("type", "string")?;
                if let Some(n) = min_length {
                    m.serialize_entry("minLength", n)?;
                }
                if let Some(n) = max_length {
                    m.serialize_entry("maxLength", n)?;
                }
                if let Some(p) = pattern {
                    m.serialize_entry("pattern", p)?;
                }
            }
            FieldKind::OneOf { options } => {
                m.serialize_entry("type", "string")?;
                m.serialize_entry("enum", options)?;
            }
            FieldKind::Number { integer, minimum, maximum } => {
                m.serialize_entry("type", if *integer { "integer" } else { "number" })?;
                for (k, v) in [("minimum", minimum), ("maximum", maximum)] {
                    if let Some(v) = v.and_then(number_value) {
                        m.serialize_entry(k, &v)?;
                    }
                }
            }
            FieldKind::Boolean => m.serialize_entry("type", "boolean")?,
            FieldKind::SomeOf { options, min_items, max_items } => {
                m.serialize_entry("type", "array")?;
                m.serialize_entry("items", &serde_json::json!({"type": "string", "enum": options}))?;
                if let Some(n) = min_items {
                    m.serialize_entry("minItems", n)?;
                }
                if let Some(n) = max_items {
                    m.serialize_entry("maxItems", n)?;
                }
            }
        }
        if let Some(t) = &self.title {
            m.serialize_entry("title", t)?;
        }
        if let Some(d) = &self.description {
            m.serialize_entry("description", d)?;
        }
        if let Some(d) = &self.default {
            m.serialize_entry("default", d)?;
        }
        m.end()
    }
}

// ---- JSON parsed with its keys in order (serde_json's map sorts them) ----

/// A JSON value whose objects keep their keys in the written order, so a form's fields are shown
/// in the order the agent wrote them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ordered {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.clone()),
            Self::Array(a) => Value::Array(a.iter().map(Self::to_value).collect()),
            Self::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()),
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_none<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Ordered, E> {
                Number::from_f64(n).map(Ordered::Number).ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
                Ok(Ordered::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Ordered::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut v: Vec<(String, Ordered)> = Vec::new();
                while let Some((k, x)) = a.next_entry::<String, Ordered>()? {
                    if v.iter().any(|(n, _)| *n == k) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    v.push((k, x));
                }
                Ok(Ordered::Object(v))
            }
        }
        d.deserialize_any(V)
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
