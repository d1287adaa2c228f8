//! Server-rendered pages. Every string that came from an agent, a tool or Redis goes through
//! [`esc`] (a question is untrusted input: `<script>` in it must show as text); the small
//! script in `assets/console.js` only inserts server-rendered HTML or sets `textContent`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use sett_core::answer_spec::{AnswerSpec, Field, FieldKind, StructuredQuestion};
use sett_core::approval::ApprovalSubject;
use sett_core::{ArtifactId, BidType, Claim};
use sett_ops::approval::ApprovalView;
use sett_ops::feed::{excerpt, short};
use sett_ops::status::StatusReport;

use crate::auth::Role;
use crate::data::{AnsweredQuestion, ArtifactView, Question, Workflow, WorkflowRow, WorkflowState};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// One formatting of times and durations for every component (sett-store's time module).
pub use sett_store::time::{human_ms, rfc3339_ms as time};

fn ago(now: i64, ms: i64) -> String {
    format!(r#"<time datetime="{}" title="{}">{} ago</time>"#, time(ms), time(ms), human_ms(now - ms))
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
pub fn page(title: &str, ctx: &PageCtx, live: &Live, body: &str) -> String {
    let live_attr: Vec<String> = live.iter().map(|(i, after)| format!("{i}={after}")).collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="sett-csrf" content="{csrf}">
<title>{title} · Sett console</title>
<link rel="stylesheet" href="/assets/console.css">
<script src="/assets/console.js" defer></script>
</head><body>
<header><a class="brand" href="/">Sett</a><nav><a href="/">Instances</a><a href="/questions">Questions</a></nav>
<span class="who">signed in as <b id="user">{user}</b> <span class="role" id="role" title="{role_title}">{role}</span> <span id="live-state" class="live-off" title="live updates">●</span></span></header>
<p class="notice" id="notice">{notice}</p>
<main id="main" data-live="{live}">
{body}
</main>
</body></html>
"#,
        csrf = esc(ctx.csrf.as_deref().unwrap_or("")),
        title = esc(title),
        user = esc(&ctx.user),
        role = ctx.role,
        role_title = role_title(ctx.role),
        notice = notice(ctx.role),
        live = esc(&live_attr.join(" ")),
    )
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
fn notice(role: Role) -> &'static str {
    match role {
        Role::Viewer => {
            "Read only: your role is viewer. Answering needs the role answerer, workflow actions the role operator; destroy, down and import are not available from the console."
        }
        Role::Answerer => {
            "Read + answer only: destroy, down and import are not available from the console; use the <code>sett</code> CLI for those. Workflow actions (cancel, pause, retry, fork) need the role operator."
        }
        Role::Operator => {
            "Read, answer and act on workflows (cancel, pause, resume, retry, fork): every action is recorded under your name. Destroy, down and import are not available from the console; use the <code>sett</code> CLI for those."
        }
    }
}

/// A page that says what is wrong and what to do.
pub fn message(title: &str, text: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t} · Sett console</title><link rel="stylesheet" href="/assets/console.css"></head>
<body><main id="main"><h1>{t}</h1><p>{x}</p></main></body></html>
"#,
        t = esc(title),
        x = esc(text)
    )
}

fn health_class(h: &str) -> &'static str {
    match h {
        "running" => "ok",
        "degraded" => "warn",
        _ => "off",
    }
}

/// The instances page.
pub fn instances(reports: &[Result<StatusReport, String>], names: &[String]) -> String {
    let mut out = String::from("<h1>Instances</h1>\n");
    if names.is_empty() {
        out.push_str("<p>No instance is registered in this Redis. Start one with <code>sett up</code>.</p>");
        return out;
    }
    for (name, r) in names.iter().zip(reports) {
        let Ok(s) = r else { continue };
        for g in &s.ledger_regressions {
            let n = esc(name);
            let _ = write!(
                out,
                r#"<p class="err ledger-regressed" data-instance="{n}"><strong>Ledger regression</strong> in <a href="/instances/{n}">{n}</a>: the ledger went back from <code>{}</code> to <code>{}</code>; at least {} event(s) are gone (noticed by {}). Follow the runbook "The ledger went back", then run <code>sett ledger ack -n {n}</code>.</p>"#,
                esc(&g.seen),
                esc(g.found.as_deref().unwrap_or("nothing")),
                g.lost_at_least,
                esc(&g.detected_by),
            );
        }
        for p in &s.pauses {
            let n = esc(name);
            let scope = p.goal_id.as_deref().map_or_else(
                || format!(r#"<a href="/instances/{n}">{n}</a>"#),
                |g| format!(r#"the workflow of goal <code>{}</code> in <a href="/instances/{n}">{n}</a>"#, esc(g)),
            );
            let _ = write!(
                out,
                r#"<p class="warn paused" data-instance="{n}"><strong>Paused</strong>: {scope} by {}{}; nothing new is granted until it is resumed (<code>sett resume -n {n}</code>).</p>"#,
                esc(&p.operator),
                p.reason.as_deref().map(|r| format!(" ({})", esc(r))).unwrap_or_default(),
            );
        }
    }
    out.push_str(r#"<table class="instances"><thead><tr><th>Instance</th><th>Status</th><th>Components</th><th>Claims</th><th>Open questions</th></tr></thead><tbody>"#);
    for (name, r) in names.iter().zip(reports) {
        let n = esc(name);
        match r {
            Err(e) => {
                let _ = write!(
                    out,
                    r#"<tr data-instance="{n}"><td><a href="/instances/{n}">{n}</a></td><td colspan="4" class="err">{}</td></tr>"#,
                    esc(e)
                );
            }
            Ok(s) => {
                let comps: Vec<String> = s
                    .components
                    .iter()
                    .map(|c| {
                        let (cls, tip) = if c.healthy {
                            ("ok", "healthy".to_owned())
                        } else {
                            ("bad", c.problem.clone().unwrap_or_default())
                        };
                        format!(r#"<span class="comp {cls}" title="{}">{}</span>"#, esc(&tip), esc(&c.name))
                    })
                    .collect();
                let claims: Vec<String> = s.claims_by_status.iter().map(|(k, v)| format!("{} {v}", esc(k))).collect();
                let q = if s.open_questions > 0 {
                    format!(r#"<a href="/questions?instance={n}" class="badge">{}</a>"#, s.open_questions)
                } else {
                    "0".into()
                };
                let _ = write!(
                    out,
                    r#"<tr data-instance="{n}"><td><a href="/instances/{n}">{n}</a></td><td><span class="health {}">{}</span></td><td>{}</td><td>{}</td><td>{q}</td></tr>"#,
                    health_class(s.health.as_str()),
                    s.health.as_str(),
                    if comps.is_empty() { "—".into() } else { comps.join(" ") },
                    if claims.is_empty() { "—".into() } else { claims.join(", ") },
                );
            }
        }
    }
    out.push_str("</tbody></table>");
    out
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
pub fn pager(p: &Paging) -> String {
    if p.pages <= 1 {
        return String::new();
    }
    let link = |n: usize, label: &str, rel: &str| {
        format!(r#"<a href="{}page={n}"{rel} data-page="{n}">{label}</a>"#, esc(&p.base))
    };
    let mut out = String::from(r#"<nav class="pager" aria-label="pages">"#);
    if p.number > 1 {
        out.push_str(&link(p.number - 1, "← previous", r#" rel="prev""#));
    }
    let lo = p.number.saturating_sub(3).max(1);
    let hi = (p.number + 3).min(p.pages);
    if lo > 1 {
        out.push_str(&link(1, "1", ""));
        if lo > 2 {
            out.push_str("<span>…</span>");
        }
    }
    for n in lo..=hi {
        if n == p.number {
            let _ = write!(out, r#"<b aria-current="page">{n}</b>"#);
        } else {
            out.push_str(&link(n, &n.to_string(), ""));
        }
    }
    if hi < p.pages {
        if hi + 1 < p.pages {
            out.push_str("<span>…</span>");
        }
        out.push_str(&link(p.pages, &p.pages.to_string(), ""));
    }
    if p.number < p.pages {
        out.push_str(&link(p.number + 1, "next →", r#" rel="next""#));
    }
    out.push_str("</nav>");
    out
}

/// "41–50 of 1,000 …" above a paged table.
fn range(p: &Paging, shown: usize, what: &str) -> String {
    let first = (p.number - 1) * p.per_page + 1;
    format!(
        r#"<p class="range" id="range">{first}–{} of {} {what} · page {} of {}</p>"#,
        first + shown.saturating_sub(1),
        p.total,
        p.number,
        p.pages
    )
}

/// One page of the workflows of an instance, newest goal first.
pub fn workflows(instance: &str, rows: &[WorkflowRow], p: &Paging, now: i64) -> String {
    let i = esc(instance);
    let mut out = format!("<h1>Workflows of {i} <span class=\"count\">{}</span></h1>\n", p.total);
    if p.total == 0 {
        let _ = write!(out, "<p>No workflow yet. Start one with <code>sett forage --goal \"…\" -n {i}</code>.</p>");
        return out;
    }
    let mut total = sett_core::usage::UsageTotals::default();
    for w in rows {
        total.merge(&w.usage);
    }
    out.push_str(&usage_paragraph(&total, "on this page"));
    out.push_str(&range(p, rows.len(), "workflows, newest goal first"));
    let nav = pager(p);
    out.push_str(&nav);
    out.push_str(r#"<table class="workflows"><thead><tr><th>Goal</th><th>State</th><th>Age</th><th>Last change</th><th>Artifacts</th><th>Agents</th></tr></thead><tbody>"#);
    for w in rows {
        let id = w.goal_id.to_string();
        let _ = write!(
            out,
            r#"<tr data-goal-id="{id}"><td><a href="/instances/{i}/workflows/{id}">{}</a> <span class="id">{}</span></td><td><span class="state {}">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&excerpt(&w.goal, 90)),
            short(&id),
            w.state.css(),
            w.state.as_str(),
            human_ms(now - w.created_at_ms),
            ago(now, w.updated_at_ms),
            w.artifacts,
            esc(&w.agents.iter().cloned().collect::<Vec<_>>().join(", ")),
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&nav);
    out
}

/// What the workflow page's action panel offers: who may act, and the state the buttons follow.
#[derive(Debug, Clone)]
pub struct Steering {
    pub role: Role,
    /// The workflow's cancellation, when it was cancelled.
    pub cancelled: Option<sett_store::CancelRecord>,
    /// The workflow's own pause, when it is paused (the instance's shows in the banner).
    pub paused: Option<sett_store::PauseRecord>,
}

/// "Cancelled by NAME at TIME: REASON" (or Paused, …) as a paragraph of `class`.
fn acted_by(out: &mut String, class: &str, what: &str, operator: &str, at_ms: i64, reason: Option<&str>) {
    let _ = write!(
        out,
        r#"<p class="{class}">{what} by <b>{}</b> at {}{}</p>"#,
        esc(operator),
        time(at_ms),
        reason.map(|r| format!(": {}", esc(r))).unwrap_or_default()
    );
}

/// The workflow's actions: a reason field and a button per action, each disabled (saying why)
/// when the workflow's state does not allow it; for a role that may not act, a line saying
/// which role may. console.js posts a button's action with the reason.
fn actions_panel(instance: &str, w: &Workflow, steer: &Steering) -> String {
    let mut out = String::new();
    if let Some(c) = &steer.cancelled {
        acted_by(&mut out, "cancelled-by", "Cancelled", &c.operator, c.at_ms, c.reason.as_deref());
    }
    if let Some(p) = &steer.paused {
        acted_by(&mut out, "paused-by", "Paused", &p.operator, p.at_ms, p.reason.as_deref());
    }
    if !steer.role.may_act() {
        out.push_str(
            r#"<p class="actions-note">Cancel, pause, resume, retry and fork need the role <b>operator</b>.</p>"#,
        );
        return out;
    }
    let ended = w.state.ended();
    let button = |action: &str, label: &str, class: &str, disabled: Option<&str>| match disabled {
        Some(why) => format!(
            r#"<button type="button" data-action="{action}" class="{class}" disabled title="{}">{label}</button>"#,
            esc(why)
        ),
        None => format!(r#"<button type="button" data-action="{action}" class="{class}">{label}</button>"#),
    };
    let failed = w.state == WorkflowState::Failed;
    let (pause_or_resume, pause_label, pause_disabled) = match (&steer.paused, ended) {
        (Some(_), _) => ("resume", "Resume", None),
        (None, true) => ("pause", "Pause", Some("the workflow has ended: there is nothing left to pause")),
        (None, false) => ("pause", "Pause", None),
    };
    let _ = write!(
        out,
        r#"<section class="actions" aria-label="workflow actions" data-instance="{i}" data-workflow="{goal}"><label>Reason <input type="text" name="reason" id="action-reason" maxlength="4096" placeholder="why (recorded in the ledger with your name)"></label> {pause} {retry} {cancel}<output class="result"></output></section>"#,
        i = esc(instance),
        goal = w.goal.id,
        pause = button(pause_or_resume, pause_label, "", pause_disabled),
        retry = button(
            "retry",
            "Retry failed step",
            "",
            (!failed).then_some("only a failed workflow is retried: its failed step gets a new attempt")
        ),
        cancel = button(
            "cancel",
            "Cancel workflow",
            "danger",
            ended.then_some("the workflow has ended: there is nothing left to cancel")
        ),
    );
    out
}

/// A workflow's detail: the action panel, the provenance graph and the claim timeline beside it.
pub fn workflow(
    instance: &str,
    w: &Workflow,
    svg: &str,
    bids: &BTreeMap<sett_core::ClaimId, BTreeMap<sett_core::AgentName, BidType>>,
    steer: &Steering,
    now: i64,
) -> String {
    let i = esc(instance);
    let mut out = format!(
        r#"<h1>Workflow <span class="id">{}</span> <span class="state {}">{}</span></h1>
<p class="goal">{}</p>{}
<p class="legend"><span class="st-Standard">Standard</span> <span class="st-Review">Review</span> <span class="st-Question">Question</span> <span class="st-Answer">Answer</span> <span class="st-Failure">Failure</span> <span class="st-Terminal">Terminal</span> · {} artifacts, {} claims · <a href="/instances/{i}">all workflows</a></p>
<div class="detail"><section class="graph-wrap" aria-label="provenance graph">{svg}</section>
<section class="timeline"><h2>Claim timeline</h2><ol>"#,
        short(&w.goal.id.to_string()),
        w.state.css(),
        w.state.as_str(),
        esc(&w.goal.payload),
        actions_panel(instance, w, steer) + &branches_list(instance, w),
        w.artifacts.len(),
        w.claims.len(),
    );
    for c in &w.claims {
        timeline_entry(&mut out, instance, c, bids.get(&c.id), now);
    }
    out.push_str("</ol></section></div>");
    out.push_str(&usage_paragraph(&w.usage(), "by this workflow's agents"));
    out.push_str(&artifacts_section(instance, w, steer));
    out
}

/// The workflow's branches (`sett fork`), each with its own state: the workflow's state in the
/// heading covers them all.
fn branches_list(instance: &str, w: &Workflow) -> String {
    if w.branches.is_empty() {
        return String::new();
    }
    let i = esc(instance);
    let mut out = format!(r#"<section class="branches"><h2>Branches ({})</h2><ul>"#, w.branches.len());
    for b in &w.branches {
        let _ = write!(
            out,
            r#"<li class="branch" data-branch-root="{root}"><a href="/instances/{i}/artifacts/{root}">{}</a> forked from <a href="/instances/{i}/artifacts/{from}">{}</a> by {} at {}: <span class="state {}">{}</span> · {} artifact{}, {} claim{}</li>"#,
            short(&b.root.to_string()),
            short(&b.forked_from.to_string()),
            esc(b.produced_by.strip_prefix("human:").unwrap_or(&b.produced_by)),
            time(b.created_at_ms),
            b.state.css(),
            b.state.as_str(),
            b.artifacts,
            if b.artifacts == 1 { "" } else { "s" },
            b.claims,
            if b.claims == 1 { "" } else { "s" },
            root = b.root,
            from = b.forked_from,
        );
    }
    out.push_str("</ul></section>");
    out
}

/// Every artifact of the workflow, oldest first, each with "Fork from here" for an operator
/// (work products and Questions; not the goal, a Review, Answer, Terminal or Failure, and not
/// once the workflow was cancelled). A work product's form takes a new payload (console.js
/// fills in the current one when it is opened; empty runs the same payload again), a
/// Question's a different answer; both take a reason. console.js posts it to
/// `POST …/artifacts/{id}/fork`.
fn artifacts_section(instance: &str, w: &Workflow, steer: &Steering) -> String {
    let i = esc(instance);
    let may_fork = steer.role.may_act() && steer.cancelled.is_none();
    let mut out = format!(
        r#"<section class="artifacts" aria-label="artifacts"><h2>Artifacts ({})</h2><table><thead><tr><th>Artifact</th><th>Type</th><th>Version</th><th>Produced by</th><th>Created</th><th></th></tr></thead><tbody>"#,
        w.artifacts.len()
    );
    for a in &w.artifacts {
        let id = a.id.to_string();
        let forked = a
            .forked_from
            .map(|f| {
                format!(
                    r#" <span class="forked-from">forked from <a href="/instances/{i}/artifacts/{f}">{}</a></span>"#,
                    short(&f.to_string())
                )
            })
            .unwrap_or_default();
        let input = match a.structural_type {
            _ if a.id == w.goal.id => None,
            sett_core::StructuralType::Standard => Some("payload"),
            sett_core::StructuralType::Question => Some("answer"),
            _ => None,
        };
        let form = match input {
            Some(input) if may_fork => fork_form(instance, &id, input),
            _ => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr data-artifact-id="{id}"><td><a href="/instances/{i}/artifacts/{id}">{}</a>{forked}</td><td>{} <span class="st st-{st}">{st}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{form}</td></tr>"#,
            short(&id),
            esc(&a.artifact_type),
            a.version,
            esc(&a.produced_by_role),
            time(a.created_at_ms),
            st = a.structural_type,
        );
    }
    out.push_str("</tbody></table>");
    if steer.role.may_act() && steer.cancelled.is_some() {
        out.push_str(r#"<p class="actions-note">A cancelled workflow is not forked.</p>"#);
    }
    out.push_str("</section>");
    out
}

/// "Fork from here" for one artifact: a new payload (`input` = `payload`) or a different answer
/// (`answer`), and a reason.
fn fork_form(instance: &str, id: &str, input: &str) -> String {
    let (label, extra) = if input == "answer" {
        ("Different answer", r#" required placeholder="the answer the branch resumes the asking agent with""#)
    } else {
        ("New payload", r#" placeholder="empty: run the same payload again""#)
    };
    format!(
        r#"<details class="fork"><summary>Fork from here</summary><form class="fork" data-instance="{i}" data-artifact="{id}" data-input="{input}"><label>{label}<textarea name="{input}" rows="4" maxlength="65536"{extra}></textarea></label><label>Reason<input type="text" name="reason" maxlength="4096" placeholder="why (recorded in the ledger with your name)"></label><button type="submit">Fork</button><output class="result"></output></form></details>"#,
        i = esc(instance),
    )
}

/// "Usage …: 1500 tokens (1200 in, 300 out) in 3 runs, 0.0042 USD", or nothing when no run
/// reported usage (docs/agents.md, "Usage").
fn usage_paragraph(u: &sett_core::usage::UsageTotals, whose: &str) -> String {
    if u.runs == 0 {
        return String::new();
    }
    format!(
        r#"<p class="usage">Usage {}: <b>{}</b> tokens ({} in, {} out) in {} runs, <b>{}</b></p>"#,
        esc(whose),
        u.tokens(),
        u.input_tokens,
        u.output_tokens,
        u.runs,
        esc(&u.cost_text())
    )
}

fn timeline_entry(
    out: &mut String,
    instance: &str,
    c: &Claim,
    bids: Option<&BTreeMap<sett_core::AgentName, BidType>>,
    now: i64,
) {
    let i = esc(instance);
    let cid = c.id.to_string();
    let aid = c.artifact_id.to_string();
    let _ = write!(
        out,
        r#"<li class="claim" data-claim-id="{cid}"><div class="head"><b>claim {}</b> on <a href="/instances/{i}/artifacts/{aid}">{}</a> <span class="cstatus s-{}">{}</span></div><ul>"#,
        short(&cid),
        short(&aid),
        c.status.as_str(),
        c.status.as_str()
    );
    let _ = write!(
        out,
        "<li>{} created{}</li>",
        ago(now, c.created_at_ms),
        match c.rework_of {
            Some(r) => format!(" (rework of {})", short(&r.to_string())),
            None => String::new(),
        }
    );
    if let Some(bids) = bids.filter(|b| !b.is_empty()) {
        let list: Vec<String> = bids.iter().map(|(a, b)| format!("{} {}", esc(a.as_str()), b.as_str())).collect();
        let _ = write!(out, "<li>bids: {}</li>", list.join(", "));
    }
    if !c.missing_bids.is_empty() {
        let list: Vec<String> = c.missing_bids.iter().map(|a| esc(a.as_str())).collect();
        let _ = write!(out, "<li>no bid from {}</li>", list.join(", "));
    }
    let mut grants: Vec<_> = c.grants.iter().collect();
    grants.sort_by_key(|(_, g)| g.seq);
    for (agent, g) in grants {
        let _ = write!(
            out,
            "<li>{} granted to <b>{}</b> ({}, seq {}{})</li>",
            ago(now, g.granted_at_ms),
            esc(agent.as_str()),
            g.claim_type.as_str(),
            g.seq,
            if g.via_worker { ", worker" } else { "" }
        );
    }
    for q in c.open_questions.keys() {
        let _ = write!(
            out,
            r#"<li class="waiting">waiting for an answer to <a href="/questions?q={q}#q-{q}">{}</a></li>"#,
            short(&q.to_string())
        );
    }
    if c.status.is_final() {
        let _ = write!(
            out,
            "<li>{} {}{}</li>",
            ago(now, c.updated_at_ms),
            c.status.as_str(),
            c.termination_reason.as_deref().map(|r| format!(": {}", esc(&excerpt(r, 200)))).unwrap_or_default()
        );
    }
    out.push_str("</ul></li>");
}

/// One artifact: payload, producer, claim, timestamps; the answer form of an open question
/// when `role` may answer.
/// The notice on a page read from the archive (the records are no longer in Redis).
pub fn from_archive(instance: &str, segment: &str, goal: &str) -> String {
    let (i, g) = (esc(instance), esc(goal));
    format!(
        r#"<p class="archived" data-archive-segment="{seg}">From the archive (segment <code>{seg}</code>): this is part of workflow <a href="/instances/{i}/workflows/{g}">{short}</a>, archived out of Redis. Bring it back with <code>sett restore {g}</code>.</p>
"#,
        seg = esc(segment),
        short = short(goal),
    )
}

pub fn artifact(instance: &str, v: &ArtifactView, role: Role) -> String {
    let i = esc(instance);
    let a = &v.artifact;
    let id = a.id.to_string();
    let mut out = v.archive.as_ref().map_or_else(String::new, |f| from_archive(instance, &f.segment, &f.workflow));
    out += &format!(
        r#"<h1>{} <span class="st st-{}">{}</span></h1>
<dl class="props" data-artifact-id="{id}">
<dt>Id</dt><dd><code>{id}</code></dd>
<dt>Version</dt><dd>{} (thread <code>{}</code>)</dd>
<dt>Produced by</dt><dd>{}</dd>
<dt>Created</dt><dd>{}</dd>"#,
        esc(&a.artifact_type),
        a.structural_type,
        a.structural_type,
        a.version,
        a.logical_id,
        esc(&a.produced_by_role),
        time(a.created_at_ms),
    );
    if let Some(s) = &a.summary {
        let _ = write!(out, "<dt>Summary</dt><dd>{}</dd>", esc(s));
    }
    if let Some(c) = &v.claim {
        let _ = write!(
            out,
            r#"<dt>Claim</dt><dd><code>{}</code> on <a href="/instances/{i}/artifacts/{}">{}</a>: {}</dd>"#,
            c.id,
            c.artifact_id,
            short(&c.artifact_id.to_string()),
            c.status.as_str()
        );
    }
    if !a.source_artifacts.is_empty() {
        let links: Vec<String> = a
            .source_artifacts
            .iter()
            .map(|s| format!(r#"<a href="/instances/{i}/artifacts/{s}">{}</a>"#, short(&s.to_string())))
            .collect();
        let _ = write!(out, "<dt>Sources</dt><dd>{}</dd>", links.join(" "));
    }
    if let Some(by) = &a.answered_by {
        let _ =
            write!(out, "<dt>Answered by</dt><dd>{}{}</dd>", esc(by), if a.timed_out { " (timed out)" } else { "" });
    }
    if let Some(r) = &v.answer {
        let _ = write!(
            out,
            r#"<dt>Answer</dt><dd><a href="/instances/{i}/artifacts/{}">{}</a> by {} at {}</dd>"#,
            r.answer_id,
            short(&r.answer_id.to_string()),
            esc(&r.answered_by),
            time(r.answered_at_ms)
        );
    }
    if let Some(approval) = &v.approval {
        out.push_str("</dl>");
        out.push_str(&approval_section(instance, approval));
        if v.open_question && role.may_answer() {
            out.push_str(&approval_form(instance, &id));
        }
        let _ = write!(
            out,
            r#"<details class="raw"><summary>Question payload</summary><pre class="payload">{}</pre></details>"#,
            esc(&a.payload)
        );
        return out;
    }
    let _ = write!(out, r#"</dl><h2>Payload</h2><pre class="payload">{}</pre>"#, esc(&a.payload));
    if v.open_question && role.may_answer() {
        let _ = write!(out, "{}", answer_form(instance, &id, &a.payload));
    }
    out
}

/// What an approval asks to approve: the agent, the claim type, the target with its payload
/// and hash, and its context chain with theirs (the hashes a decision binds).
fn approval_section(instance: &str, v: &ApprovalView) -> String {
    let i = esc(instance);
    let s = &v.subject;
    let link = |id: &ArtifactId, t: &str| {
        format!(r#"<a href="/instances/{i}/artifacts/{id}">{} {}</a>"#, esc(t), short(&id.to_string()))
    };
    let mut out = format!(
        r#"<section class="approval" data-approval-id="{q}"><h2>Approval</h2>
<p class="ask">May agent <b class="agent">{agent}</b> run its <b class="claim-type">{ct}</b> claim on {target}? Its tool does not start before a decision; approving binds exactly the hashes below.</p>
<dl class="props"><dt>Agent</dt><dd>{agent}</dd><dt>Claim type</dt><dd>{ct}</dd><dt>Claim</dt><dd><code>{claim}</code></dd>
<dt>Target</dt><dd>{target} <code class="hash" title="content hash">{hash}</code>{changed}</dd></dl>
<h3>Target payload</h3><pre class="payload target">{payload}</pre>"#,
        q = v.question_id,
        agent = esc(s.agent.as_str()),
        ct = s.claim_type,
        claim = s.claim_id,
        target = link(&s.target.id, &s.target.artifact_type),
        hash = esc(&s.target.hash),
        changed = if v.target_unchanged {
            ""
        } else {
            r#" <strong class="bad">its stored hash changed since the approval was asked: a decision is refused (run sett verify)</strong>"#
        },
        payload = esc(v.target.as_ref().map_or("(missing)", |t| t.payload.as_str())),
    );
    let _ = write!(out, r#"<h3>Context chain ({})</h3><ol class="chain approval-context">"#, s.context.len());
    for c in &s.context {
        let payload = v.context.iter().find(|a| a.id == c.id).map(|a| excerpt(&a.payload, 400)).unwrap_or_default();
        let _ = write!(
            out,
            r#"<li>{} <code class="hash">{}</code><pre class="excerpt">{}</pre></li>"#,
            link(&c.id, &c.artifact_type),
            esc(&c.hash),
            esc(&payload)
        );
    }
    out.push_str("</ol></section>");
    out
}

/// The decision form of an approval: a reason, and Approve / Reject buttons (a rejection needs
/// the reason; the server checks it again, and that the target is still what was shown).
fn approval_form(instance: &str, qid: &str) -> String {
    format!(
        r#"<form class="answer structured approval" data-instance="{}" data-question-id="{qid}" data-structured="1" data-approval="1">
<div class="field" data-field="reason"><label><span class="name">Reason</span><input type="text" name="reason" maxlength="{}"></label><small class="help">required to reject; recorded in the ledger with your name</small><output class="problem"></output></div>
<div class="field" data-field="decision"><output class="problem"></output></div>
<button type="submit" name="decision" value="approve" class="approve">Approve</button> <button type="submit" name="decision" value="reject" class="reject">Reject</button><output class="result"></output></form>"#,
        esc(instance),
        sett_core::approval::MAX_REASON_LEN,
    )
}

/// The answer form of a question: a text area for free text; for a structured question its spec
/// as controls (radio buttons or checkboxes for options; per field a select, checkboxes, a
/// checkbox, a number or text input), required marks and defaults filled in. The browser checks
/// what HTML can express (required, min/max, lengths); console.js adds patterns and item counts;
/// the server checks everything again.
fn answer_form(instance: &str, qid: &str, payload: &str) -> String {
    if ApprovalSubject::of_payload(payload).is_some() {
        return format!(
            r#"<p class="approval-link"><a href="/instances/{}/artifacts/{qid}">Review what is to be approved</a> (target payload, context chain, hashes)</p>{}"#,
            esc(instance),
            approval_form(instance, qid)
        );
    }
    let mut out = String::new();
    if let Some(r) = sett_core::review::ReviewSubject::of_payload(payload) {
        // What to review, before the decision form.
        let _ = write!(
            out,
            r#"<p class="review-link">Review <a href="/instances/{i}/artifacts/{t}" class="review-target">{ty} {short}</a> (hash <code class="hash">{h}</code>): approve it, or request changes with comments for its producer.</p>"#,
            i = esc(instance),
            t = r.target.id,
            ty = esc(&r.target.artifact_type),
            short = r.target.id.short(),
            h = esc(&r.target.hash),
        );
    }
    let Ok(Some(q)) = StructuredQuestion::from_payload(payload) else {
        return format!(
            r#"<form class="answer" data-instance="{}" data-question-id="{qid}"><label>Your answer<textarea name="answer" required maxlength="65536" rows="3"></textarea></label><button type="submit">Answer</button><output class="result"></output></form>"#,
            esc(instance)
        );
    };
    let _ = write!(
        out,
        r#"<form class="answer structured" data-instance="{}" data-question-id="{qid}" data-structured="1">"#,
        esc(instance)
    );
    match &q.spec {
        AnswerSpec::Choice(c) => {
            let kind = if c.multiple { "checkbox" } else { "radio" };
            let checked = |o: &str| match &c.default {
                Some(serde_json::Value::String(d)) => d == o,
                Some(serde_json::Value::Array(ds)) => ds.iter().any(|d| d == o),
                _ => false,
            };
            let _ = write!(
                out,
                r#"<fieldset class="field choice" data-field=""{}><legend>{}{}</legend>"#,
                if c.multiple { "" } else { r#" data-required="1""# },
                if c.multiple { "Pick any" } else { "Pick one" },
                if c.multiple { "" } else { r#" <abbr class="req" title="required">*</abbr>"# },
            );
            for (n, o) in c.options.iter().enumerate() {
                let _ = write!(
                    out,
                    r#"<label class="option"><input type="{kind}" name="answer" value="{v}"{req}{chk}> <span class="num">{}</span> {v}</label>"#,
                    n + 1,
                    v = esc(o),
                    req = if c.multiple { "" } else { " required" },
                    chk = if checked(o) { " checked" } else { "" },
                );
            }
            out.push_str(r#"<output class="problem"></output></fieldset>"#);
        }
        AnswerSpec::Form(f) => {
            for field in &f.fields {
                out.push_str(&form_field(field));
            }
        }
    }
    out.push_str(r#"<button type="submit">Answer</button><output class="result"></output></form>"#);
    out
}

/// One field of a form question.
fn form_field(field: &Field) -> String {
    let name = esc(&field.name);
    let req_mark = if field.required { r#" <abbr class="req" title="required">*</abbr>"# } else { "" };
    let req = if field.required { " required" } else { "" };
    let label = format!("{}{req_mark}", esc(field.label()));
    let help =
        field.description.as_deref().map(|d| format!(r#"<small class="help">{}</small>"#, esc(d))).unwrap_or_default();
    let default_str = field.default.as_ref().map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned));
    let control = match &field.kind {
        FieldKind::Boolean => {
            let on = field.default.as_ref().and_then(serde_json::Value::as_bool).unwrap_or(false);
            return format!(
                r#"<div class="field boolean" data-field="{name}"><label><input type="checkbox" name="{name}" value="true"{}> {label}</label>{help}<output class="problem"></output></div>"#,
                if on { " checked" } else { "" }
            );
        }
        FieldKind::OneOf { options } => {
            let mut s = format!(r#"<select name="{name}"{req}>"#);
            if !field.required || default_str.is_none() {
                s.push_str(r#"<option value="">—</option>"#);
            }
            for o in options {
                let sel = if default_str.as_deref() == Some(o.as_str()) { " selected" } else { "" };
                let _ = write!(s, r#"<option value="{v}"{sel}>{v}</option>"#, v = esc(o));
            }
            s.push_str("</select>");
            s
        }
        FieldKind::SomeOf { options, min_items, max_items } => {
            let picked = |o: &str| match &field.default {
                Some(serde_json::Value::Array(ds)) => ds.iter().any(|d| d == o),
                _ => false,
            };
            let mut s = format!(
                r#"<fieldset class="field some" data-field="{name}"{}{}><legend>{label}</legend>"#,
                min_items.map(|n| format!(r#" data-min-items="{n}""#)).unwrap_or_default(),
                max_items.map(|n| format!(r#" data-max-items="{n}""#)).unwrap_or_default(),
            );
            for o in options {
                let _ = write!(
                    s,
                    r#"<label class="option"><input type="checkbox" name="{name}" value="{v}"{}> {v}</label>"#,
                    if picked(o) { " checked" } else { "" },
                    v = esc(o)
                );
            }
            let _ = write!(s, r#"{help}<output class="problem"></output></fieldset>"#);
            return s;
        }
        FieldKind::Number { integer, minimum, maximum } => format!(
            r#"<input type="number" name="{name}" step="{}"{}{}{}{req}>"#,
            if *integer { "1" } else { "any" },
            minimum.map(|m| format!(r#" min="{m}""#)).unwrap_or_default(),
            maximum.map(|m| format!(r#" max="{m}""#)).unwrap_or_default(),
            default_str.as_deref().map(|d| format!(r#" value="{}""#, esc(d))).unwrap_or_default(),
        ),
        FieldKind::Text { min_length, max_length, pattern } => format!(
            r#"<input type="text" name="{name}"{}{}{}{}{req}>"#,
            min_length.map(|m| format!(r#" minlength="{m}""#)).unwrap_or_default(),
            max_length.map(|m| format!(r#" maxlength="{m}""#)).unwrap_or_default(),
            pattern
                .as_deref()
                .map(|p| format!(r#" data-pattern="{}" title="must match {}""#, esc(p), esc(p)))
                .unwrap_or_default(),
            default_str.as_deref().map(|d| format!(r#" value="{}""#, esc(d))).unwrap_or_default(),
        ),
    };
    format!(
        r#"<div class="field" data-field="{name}"><label><span class="name">{label}</span>{control}</label>{help}<output class="problem"></output></div>"#
    )
}

/// The text shown for a question: a structured question's own text, else the payload.
pub fn question_text(payload: &str) -> String {
    match StructuredQuestion::from_payload(payload) {
        Ok(Some(q)) => q.question,
        _ => payload.to_owned(),
    }
}

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
pub fn inbox(p: &InboxPage, answered: &[AnsweredQuestion], errors: &[String], now: i64) -> String {
    let mut out = format!("<h1>Questions <span class=\"count\" id=\"open-count\">{}</span></h1>\n", p.total);
    if let Some(i) = &p.instance {
        let _ = write!(
            out,
            r#"<p class="filter">Instance <b>{}</b> only · <a href="/questions">all instances</a></p>"#,
            esc(i)
        );
    }
    // The "Mine" filter keeps the instance filter, and the other way round.
    let instance_arg = p.instance.as_deref().map(|i| format!("instance={}&", esc(i))).unwrap_or_default();
    let _ = write!(
        out,
        r#"<p class="filter mine">{}</p>"#,
        if p.mine {
            format!(r#"<b id="filter-mine">Mine</b> · <a href="/questions?{instance_arg}" id="filter-all">All</a>"#)
        } else {
            format!(
                r#"<a href="/questions?{instance_arg}mine=1" id="filter-mine">Mine</a> · <b id="filter-all">All</b>"#
            )
        }
    );
    for e in errors {
        let _ = write!(out, r#"<p class="err">{}</p>"#, esc(e));
    }
    let paging = Paging {
        total: p.total,
        number: p.number,
        pages: p.pages,
        per_page: p.per_page,
        base: format!("/questions?{instance_arg}{}", if p.mine { "mine=1&" } else { "" }),
    };
    if p.total == 0 && p.mine {
        out.push_str(r#"<p class="empty">Nothing is addressed to you.</p>"#);
    } else if p.total == 0 {
        out.push_str(r#"<p class="empty">No agent is waiting for an answer.</p>"#);
    } else {
        out.push_str(&range(&paging, p.questions.len(), "open, soonest deadline first"));
    }
    let nav = pager(&paging);
    out.push_str(&nav);
    out.push_str(r#"<div class="questions">"#);
    for q in &p.questions {
        let i = esc(&q.instance);
        let left = match q.time_left_ms {
            None => "never times out".to_owned(),
            Some(l) if l < 0 => format!("overdue by {}", human_ms(-l)),
            Some(l) => format!("{} left", human_ms(l)),
        };
        let _ = write!(
            out,
            r#"<article class="question" id="q-{id}" data-question-id="{id}" data-instance="{i}" data-state="open">
<div class="meta"><b>{agent}</b> asked {asked} · <span class="left">{left}</span> · <a href="/instances/{i}">{i}</a> · <a href="/instances/{i}/artifacts/{id}" class="id">{sid}</a></div>
<pre class="text">{text}</pre>"#,
            id = esc(&q.id),
            agent = esc(&q.agent),
            asked = ago(now, q.asked_at_ms),
            sid = esc(&q.short_id),
            text = esc(&question_text(&q.text)),
        );
        if let Some(g) = &q.goal {
            let _ = write!(
                out,
                r#"<div class="goal">Goal: <a href="/instances/{i}/workflows/{}">{}</a></div>"#,
                esc(&g.id),
                esc(&g.excerpt)
            );
        }
        if q.context_len > 0 {
            // Loaded when opened (assets/console.js): most chains are never looked at.
            let _ = write!(
                out,
                r#"<details class="chain" data-context="/api/v1/instances/{i}/questions/{id}/context"><summary>Context chain ({n})</summary><ol></ol></details>"#,
                id = esc(&q.id),
                n = q.context_len,
            );
        }
        if p.may_answer {
            out.push_str(&answer_form(&q.instance, &q.id, &q.text));
        }
        out.push_str("</article>\n");
    }
    out.push_str("</div>");
    out.push_str(&nav);
    if !answered.is_empty() {
        out.push_str(r#"<h2>Recently answered</h2><div class="answered">"#);
        for a in answered {
            let i = esc(&a.instance);
            let _ = write!(
                out,
                r#"<article class="question done" data-question-id="{id}" data-instance="{i}" data-state="answered"><div class="meta"><b>{agent}</b> · <a href="/instances/{i}/artifacts/{id}" class="id">{sid}</a> · answered by <b class="by">{by}</b> {when}{to}</div><pre class="text">{text}</pre><pre class="answer-text">{answer}</pre></article>"#,
                id = esc(&a.id),
                agent = esc(&a.agent),
                sid = esc(&a.short_id),
                by = esc(&a.record.answered_by),
                when = ago(now, a.record.answered_at_ms),
                to = if a.record.timed_out { " (timed out)" } else { "" },
                text = esc(&excerpt(&question_text(&a.text), 300)),
                answer = esc(&excerpt(&a.answer, 300)),
            );
        }
        out.push_str("</div>");
    }
    out
}

/// Open question ids as a set, for marking graph nodes.
pub fn open_set(qs: &[(ArtifactId, i64)]) -> HashSet<ArtifactId> {
    qs.iter().map(|(id, _)| *id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(esc(r#"<script>alert(1)</script>"#), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(esc(r#""><img src=x onerror=alert(1)>"#), "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(esc("a & 'b'"), "a &amp; &#39;b&#39;");
    }

    #[test]
    fn durations() {
        assert_eq!(human_ms(5_000), "5s");
        assert_eq!(human_ms(185_000), "3m 5s");
        assert_eq!(human_ms(-4), "0s");
        assert!(time(0).starts_with("1970-01-01T00:00:00"));
    }
}
