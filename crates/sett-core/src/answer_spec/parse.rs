//! A spec read from an agent's payload: the subset of JSON Schema (and choices) Sett can show as
//! a prompt and a form, anything else refused with every problem named.

use super::{
    AnswerSpec, Choice, Field, FieldKind, FieldProblem, Form, MAX_FIELDS, MAX_OPTIONS, MAX_PATTERN_LEN, Ordered,
    REGEX_SIZE_LIMIT,
};
pub(super) fn compile(pattern: &str) -> Result<regex::Regex, String> {
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

pub(super) fn parse_choice(
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

pub(super) fn parse_form(schema: &Ordered, problems: &mut Vec<FieldProblem>) -> Option<AnswerSpec> {
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
