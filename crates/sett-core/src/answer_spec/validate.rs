//! Answers checked against a spec (every problem listed at once), and answers read from a
//! terminal's text and an HTML form's pairs.

use serde_json::{Map, Number, Value};

use super::parse::compile;
use super::{AnswerSpec, Choice, Field, FieldKind, FieldProblem, Form};
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
pub(super) fn number_value(n: f64) -> Option<Value> {
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
    pub(super) fn validate(&self, answer: &Value) -> Result<Value, Vec<FieldProblem>> {
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
