//! The answer forms: free text, a structured question's controls, and an approval's decision.
//! The browser checks what HTML can express (required, min/max, lengths); console.js adds
//! patterns and item counts; the server checks everything again.

use maud::{Markup, html};
use sett_core::answer_spec::{AnswerSpec, Field, FieldKind, StructuredQuestion};
use sett_core::approval::ApprovalSubject;

/// A required mark after a label.
fn req_mark(required: bool) -> Markup {
    html! { @if required { " " abbr class="req" title="required" { "*" } } }
}

/// The decision form of an approval: a reason, and Approve / Reject buttons (a rejection needs
/// the reason; the server checks it again, and that the target is still what was shown).
pub(super) fn approval_form(instance: &str, qid: &str) -> Markup {
    html! {
        form class="answer structured approval" data-instance=(instance) data-question-id=(qid) data-structured="1" data-approval="1" {
            div class="field" data-field="reason" {
                label { span class="name" { "Reason" } input type="text" name="reason" maxlength=(sett_core::approval::MAX_REASON_LEN); }
                small class="help" { "required to reject; recorded in the ledger with your name" }
                output class="problem" {}
            }
            div class="field" data-field="decision" { output class="problem" {} }
            button type="submit" name="decision" value="approve" class="approve" { "Approve" }
            " "
            button type="submit" name="decision" value="reject" class="reject" { "Reject" }
            output class="result" {}
        }
    }
}

/// The answer form of a question: a text area for free text; for a structured question its spec
/// as controls (radio buttons or checkboxes for options; per field a select, checkboxes, a
/// checkbox, a number or text input), required marks and defaults filled in.
pub(super) fn answer_form(instance: &str, qid: &str, payload: &str) -> Markup {
    if ApprovalSubject::of_payload(payload).is_some() {
        return html! {
            p class="approval-link" {
                a href={ "/instances/" (instance) "/artifacts/" (qid) } { "Review what is to be approved" }
                " (target payload, context chain, hashes)"
            }
            (approval_form(instance, qid))
        };
    }
    // What to review, before the decision form.
    let review = sett_core::review::ReviewSubject::of_payload(payload).map(|r| {
        html! {
            p class="review-link" {
                "Review "
                a href={ "/instances/" (instance) "/artifacts/" (r.target.id) } class="review-target" {
                    (r.target.artifact_type) " " (r.target.id.short())
                }
                " (hash " code class="hash" { (r.target.hash) } "): approve it, or request changes with comments for its producer."
            }
        }
    });
    let Ok(Some(q)) = StructuredQuestion::from_payload(payload) else {
        // (A review question is structured; a free-text one has no review link.)
        return html! {
            form class="answer" data-instance=(instance) data-question-id=(qid) {
                label { "Your answer" textarea name="answer" required maxlength="65536" rows="3" {} }
                button type="submit" { "Answer" }
                output class="result" {}
            }
        };
    };
    html! {
        (review.unwrap_or_default())
        form class="answer structured" data-instance=(instance) data-question-id=(qid) data-structured="1" {
            @match &q.spec {
                AnswerSpec::Choice(c) => {
                    @let kind = if c.multiple { "checkbox" } else { "radio" };
                    @let checked = |o: &str| match &c.default {
                        Some(serde_json::Value::String(d)) => d == o,
                        Some(serde_json::Value::Array(ds)) => ds.iter().any(|d| d == o),
                        _ => false,
                    };
                    fieldset class="field choice" data-field="" data-required=[(!c.multiple).then_some("1")] {
                        legend { @if c.multiple { "Pick any" } @else { "Pick one" } (req_mark(!c.multiple)) }
                        @for (n, o) in c.options.iter().enumerate() {
                            label class="option" {
                                input type=(kind) name="answer" value=(o) required[!c.multiple] checked[checked(o)];
                                " " span class="num" { (n + 1) } " " (o)
                            }
                        }
                        output class="problem" {}
                    }
                },
                AnswerSpec::Form(f) => {
                    @for field in &f.fields { (form_field(field)) }
                },
            }
            button type="submit" { "Answer" }
            output class="result" {}
        }
    }
}

/// One field of a form question.
fn form_field(field: &Field) -> Markup {
    let name = field.name.as_str();
    let required = field.required;
    let label = html! { (field.label()) (req_mark(required)) };
    let help = html! { @if let Some(d) = &field.description { small class="help" { (d) } } };
    let default_str = field.default.as_ref().map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned));
    let control = match &field.kind {
        FieldKind::Boolean => {
            let on = field.default.as_ref().and_then(serde_json::Value::as_bool).unwrap_or(false);
            return html! {
                div class="field boolean" data-field=(name) {
                    label { input type="checkbox" name=(name) value="true" checked[on]; " " (label) }
                    (help)
                    output class="problem" {}
                }
            };
        }
        FieldKind::OneOf { options } => html! {
            select name=(name) required[required] {
                @if !required || default_str.is_none() { option value="" { "—" } }
                @for o in options {
                    option value=(o) selected[default_str.as_deref() == Some(o.as_str())] { (o) }
                }
            }
        },
        FieldKind::SomeOf { options, min_items, max_items } => {
            let picked = |o: &str| match &field.default {
                Some(serde_json::Value::Array(ds)) => ds.iter().any(|d| d == o),
                _ => false,
            };
            return html! {
                fieldset class="field some" data-field=(name) data-min-items=[min_items] data-max-items=[max_items] {
                    legend { (label) }
                    @for o in options {
                        label class="option" { input type="checkbox" name=(name) value=(o) checked[picked(o)]; " " (o) }
                    }
                    (help)
                    output class="problem" {}
                }
            };
        }
        FieldKind::Number { integer, minimum, maximum } => html! {
            input type="number" name=(name) step=(if *integer { "1" } else { "any" }) min=[minimum] max=[maximum]
                value=[default_str.as_deref()] required[required];
        },
        FieldKind::Text { min_length, max_length, pattern } => html! {
            input type="text" name=(name) minlength=[min_length] maxlength=[max_length]
                data-pattern=[pattern.as_deref()] title=[pattern.as_deref().map(|p| format!("must match {p}"))]
                value=[default_str.as_deref()] required[required];
        },
    };
    html! {
        div class="field" data-field=(name) {
            label { span class="name" { (label) } (control) }
            (help)
            output class="problem" {}
        }
    }
}
