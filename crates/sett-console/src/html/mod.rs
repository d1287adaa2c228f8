//! Server-rendered pages, as maud templates: every value spliced into a page is escaped unless
//! it is wrapped in `PreEscaped` (only markup built by these templates, and a literal `&` in a
//! query string, are). A question is untrusted input: `<script>` in it shows as text. The small
//! script in `assets/console.js` only inserts server-rendered HTML or sets `textContent`.
//! `cargo xtask tidy` checks that no hand-written escaping appears outside this module.
//!
//! The frame and shared pieces are here; each page is in its own module.

mod artifact;
mod forms;
mod inbox;
mod instances;
mod workflow;

use std::collections::HashSet;

use maud::{DOCTYPE, Markup, html};
use sett_core::ArtifactId;
use sett_core::answer_spec::StructuredQuestion;

use crate::auth::Role;

pub use artifact::{artifact, from_archive};
pub use inbox::{InboxPage, inbox};
pub use instances::{instances, workflows};
pub use workflow::{Steering, archived_workflow, workflow};

// One formatting of times and durations for every component (sett-store's time module).
pub use sett_store::time::{human_ms, rfc3339_ms as time};

/// "3m 5s ago", with the exact time on hover.
fn ago(now: i64, ms: i64) -> Markup {
    let t = time(ms);
    html! { time datetime=(t) title=(t) { (human_ms(now - ms)) " ago" } }
}

/// Who is looking, and what the page needs to post and follow.
#[derive(Debug, Clone)]
pub struct PageCtx {
    pub user: String,
    /// What the signed-in user may do (buttons a role may not use are not shown).
    pub role: Role,
    /// The user's groups from the users file (empty for a single token).
    pub groups: Vec<String>,
    /// The session's CSRF token (absent for Bearer requests, which need none).
    pub csrf: Option<String>,
    pub now_ms: i64,
}

/// Which instance streams a page follows, each from the last event id it was rendered at.
pub type Live = Vec<(String, String)>;

/// The page frame: navigation, who is signed in with which role, the notice of what the role
/// may not do, and the live-update hooks.
pub fn page(title: &str, ctx: &PageCtx, live: &Live, body: Markup) -> String {
    let live_attr: Vec<String> = live.iter().map(|(i, after)| format!("{i}={after}")).collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="sett-csrf" content=(ctx.csrf.as_deref().unwrap_or(""));
                title { (title) " · Sett console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header {
                    a class="brand" href="/" { "Sett" }
                    nav { a href="/" { "Instances" } a href="/questions" { "Questions" } }
                    span class="who" {
                        "signed in as " b id="user" { (ctx.user) } " "
                        span class="role" id="role" title=(role_title(ctx.role)) { (ctx.role) } " "
                        span id="live-state" class="live-off" title="live updates" { "●" }
                    }
                }
                p class="notice" id="notice" { (notice(ctx.role)) }
                main id="main" data-live=(live_attr.join(" ")) { (body) }
            }
        }
    }
    .into_string()
}

/// What a role may do, in a few words (the role badge's tooltip).
fn role_title(role: Role) -> &'static str {
    match role {
        Role::Viewer => "reads only",
        Role::Answerer => "reads and answers questions",
        Role::Operator => "reads, answers, and cancels, pauses, resumes, retries and forks workflows",
    }
}

/// The banner under the header: what this user may not do here.
fn notice(role: Role) -> Markup {
    match role {
        Role::Viewer => html! {
            "Read only: your role is viewer. Answering needs the role answerer, workflow actions the role operator; destroy, down and import are not available from the console."
        },
        Role::Answerer => html! {
            "Read + answer only: destroy, down and import are not available from the console; use the " code { "sett" }
            " CLI for those. Workflow actions (cancel, pause, retry, fork) need the role operator."
        },
        Role::Operator => html! {
            "Read, answer and act on workflows (cancel, pause, resume, retry, fork): every action is recorded under your name. Destroy, down and import are not available from the console; use the "
            code { "sett" } " CLI for those."
        },
    }
}

/// A page that says what is wrong and what to do.
pub fn message(title: &str, text: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) " · Sett console" } link rel="stylesheet" href="/assets/console.css"; }
            body { main id="main" { h1 { (title) } p { (text) } } }
        }
    }
    .into_string()
}

/// Where a paged table is: enough for its page links.
#[derive(Debug, Clone)]
pub struct Paging {
    pub total: usize,
    /// 1-based.
    pub number: usize,
    pub pages: usize,
    pub per_page: usize,
    /// The page's URL up to and including `?` (or `&`), to which `page=N` is added.
    pub base: String,
}

/// Page links: previous, a window around this page with the first and last, next.
pub fn pager(p: &Paging) -> Markup {
    if p.pages <= 1 {
        return html! {};
    }
    let link = |n: usize, label: &str, rel: Option<&str>| {
        html! { a href={ (p.base) "page=" (n) } rel=[rel] data-page=(n) { (label) } }
    };
    let lo = p.number.saturating_sub(3).max(1);
    let hi = (p.number + 3).min(p.pages);
    html! {
        nav class="pager" aria-label="pages" {
            @if p.number > 1 { (link(p.number - 1, "← previous", Some("prev"))) }
            @if lo > 1 {
                (link(1, "1", None))
                @if lo > 2 { span { "…" } }
            }
            @for n in lo..=hi {
                @if n == p.number { b aria-current="page" { (n) } } @else { (link(n, &n.to_string(), None)) }
            }
            @if hi < p.pages {
                @if hi + 1 < p.pages { span { "…" } }
                (link(p.pages, &p.pages.to_string(), None))
            }
            @if p.number < p.pages { (link(p.number + 1, "next →", Some("next"))) }
        }
    }
}

/// "41–50 of 1,000 …" above a paged table.
fn range(p: &Paging, shown: usize, what: &str) -> Markup {
    let first = (p.number - 1) * p.per_page + 1;
    html! {
        p class="range" id="range" {
            (first) "–" (first + shown.saturating_sub(1)) " of " (p.total) " " (what)
            " · page " (p.number) " of " (p.pages)
        }
    }
}

/// "Usage …: 1500 tokens (1200 in, 300 out) in 3 runs, 0.0042 USD", or nothing when no run
/// reported usage (docs/agents.md, "Usage").
fn usage_paragraph(u: &sett_core::usage::UsageTotals, whose: &str) -> Markup {
    html! {
        @if u.runs > 0 {
            p class="usage" {
                "Usage " (whose) ": " b { (u.tokens()) } " tokens (" (u.input_tokens) " in, " (u.output_tokens)
                " out) in " (u.runs) " runs, " b { (u.cost_text()) }
            }
        }
    }
}

/// The text shown for a question: a structured question's own text, else the payload.
pub fn question_text(payload: &str) -> String {
    match StructuredQuestion::from_payload(payload) {
        Ok(Some(q)) => q.question,
        _ => payload.to_owned(),
    }
}

/// Open question ids as a set, for marking graph nodes.
pub fn open_set(qs: &[(ArtifactId, i64)]) -> HashSet<ArtifactId> {
    qs.iter().map(|(id, _)| *id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_in_content_and_attributes() {
        let m = message(r#"<script>alert(1)</script>"#, r#""><img src=x onerror=alert(1)> & 'b'"#);
        assert!(m.contains("<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>"), "{m}");
        assert!(m.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt; &amp; 'b'"), "{m}");
        let ctx = PageCtx {
            user: r#"<b>"mallory"</b>"#.into(),
            role: Role::Answerer,
            groups: vec![],
            csrf: Some(r#""><script>"#.into()),
            now_ms: 0,
        };
        let p = page("t", &ctx, &vec![], html! {});
        assert!(!p.contains("<script>") && !p.contains("<b>\"mallory"), "{p}");
        assert!(p.contains(r#"content="&quot;&gt;&lt;script&gt;""#), "{p}");
    }

    #[test]
    fn durations() {
        assert_eq!(human_ms(5_000), "5s");
        assert_eq!(human_ms(185_000), "3m 5s");
        assert_eq!(human_ms(-4), "0s");
        assert!(time(0).starts_with("1970-01-01T00:00:00"));
    }
}
