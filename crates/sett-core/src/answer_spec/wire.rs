//! A spec written back as JSON in the agent's order (the canonical Question payload).

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::validate::number_value;
use super::{AnswerSpec, Field, FieldKind, Form, QuestionKind, StructuredQuestion};
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
