//! The questions inbox (`/questions`): one page of open questions across instances, each with
//! its goal and answer form (its context chain is fetched when opened), and the recently
//! answered ones.

use maud::{Markup, PreEscaped, html};
use sett_core::text::excerpt;

use super::forms::answer_form;
use super::{Paging, ago, human_ms, pager, question_text, range};
use crate::data::{AnsweredQuestion, Question};

/// One page of the inbox.
#[derive(Debug, Clone)]
pub struct InboxPage {
    /// This page's questions, in inbox order.
    pub questions: Vec<Question>,
    /// Open questions on every page.
    pub total: usize,
    /// 1-based.
    pub number: usize,
    pub pages: usize,
    pub per_page: usize,
    /// The one instance shown (`?instance=`), if any.
    pub instance: Option<String>,
    /// Whether the signed-in user's role may answer (a viewer sees no answer forms).
    pub may_answer: bool,
    /// Only the questions addressed to the signed-in user (`?mine=1`).
    pub mine: bool,
}

/// The questions inbox across instances: one page of open questions (soonest deadline first),
/// each with its goal; its context chain is fetched when opened.
pub fn inbox(p: &InboxPage, answered: &[AnsweredQuestion], errors: &[String], now: i64) -> Markup {
    // The "Mine" filter keeps the instance filter, and the other way round. The instance is
    // escaped like any text; the `&` between query parameters is markup.
    let instance_arg = html! { @if let Some(i) = &p.instance { "instance=" (i) (PreEscaped("&")) } };
    let paging = Paging {
        total: p.total,
        number: p.number,
        pages: p.pages,
        per_page: p.per_page,
        base: format!(
            "/questions?{}{}",
            p.instance.as_deref().map(|i| format!("instance={i}&")).unwrap_or_default(),
            if p.mine { "mine=1&" } else { "" }
        ),
    };
    let nav = pager(&paging);
    html! {
        h1 { "Questions " span class="count" id="open-count" { (p.total) } }
        @if let Some(i) = &p.instance {
            p class="filter" { "Instance " b { (i) } " only · " a href="/questions" { "all instances" } }
        }
        p class="filter mine" {
            @if p.mine {
                b id="filter-mine" { "Mine" } " · " a href={ "/questions?" (instance_arg) } id="filter-all" { "All" }
            } @else {
                a href={ "/questions?" (instance_arg) "mine=1" } id="filter-mine" { "Mine" } " · " b id="filter-all" { "All" }
            }
        }
        @for e in errors { p class="err" { (e) } }
        @if p.total == 0 && p.mine {
            p class="empty" { "Nothing is addressed to you." }
        } @else if p.total == 0 {
            p class="empty" { "No agent is waiting for an answer." }
        } @else {
            (range(&paging, p.questions.len(), "open, soonest deadline first"))
        }
        (nav)
        div class="questions" {
            @for q in &p.questions { (question(q, p.may_answer, now)) }
        }
        (nav)
        @if !answered.is_empty() {
            h2 { "Recently answered" }
            div class="answered" {
                @for a in answered {
                    @let i = &a.instance;
                    article class="question done" data-question-id=(a.id) data-instance=(i) data-state="answered" {
                        div class="meta" {
                            b { (a.agent) } " · " a href={ "/instances/" (i) "/artifacts/" (a.id) } class="id" { (a.short_id) }
                            " · answered by " b class="by" { (a.record.answered_by) } " " (ago(now, a.record.answered_at_ms))
                            @if a.record.timed_out { " (timed out)" }
                        }
                        pre class="text" { (excerpt(&question_text(&a.text), 300)) }
                        pre class="answer-text" { (excerpt(&a.answer, 300)) }
                    }
                }
            }
        }
    }
}

/// One open question: who asked when, how long is left, the text, the goal, the context chain
/// (loaded when opened, by assets/console.js: most chains are never looked at), the form.
fn question(q: &Question, may_answer: bool, now: i64) -> Markup {
    let i = &q.instance;
    let left = match q.time_left_ms {
        None => "never times out".to_owned(),
        Some(l) if l < 0 => format!("overdue by {}", human_ms(-l)),
        Some(l) => format!("{} left", human_ms(l)),
    };
    html! {
        article class="question" id={ "q-" (q.id) } data-question-id=(q.id) data-instance=(i) data-state="open" {
            div class="meta" {
                b { (q.agent) } " asked " (ago(now, q.asked_at_ms)) " · " span class="left" { (left) } " · "
                a href={ "/instances/" (i) } { (i) } " · "
                a href={ "/instances/" (i) "/artifacts/" (q.id) } class="id" { (q.short_id) }
            }
            pre class="text" { (question_text(&q.text)) }
            @if let Some(g) = &q.goal {
                div class="goal" { "Goal: " a href={ "/instances/" (i) "/workflows/" (g.id) } { (g.excerpt) } }
            }
            @if q.context_len > 0 {
                details class="chain" data-context={ "/api/v1/instances/" (i) "/questions/" (q.id) "/context" } {
                    summary { "Context chain (" (q.context_len) ")" }
                    ol {}
                }
            }
            @if may_answer { (answer_form(&q.instance, &q.id, &q.text)) }
        }
    }
}
