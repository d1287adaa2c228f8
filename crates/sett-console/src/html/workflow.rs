//! A workflow's page: the action panel, the provenance graph (see [`crate::graph`]) beside the
//! claim timeline, its branches and its artifacts with "Fork from here".

use std::collections::BTreeMap;

use maud::{Markup, html};
use sett_core::text::{excerpt, short};
use sett_core::{BidType, Claim};

use super::{ago, time, usage_paragraph};
use crate::auth::Role;
use crate::data::{Workflow, WorkflowState};

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
fn acted_by(class: &str, what: &str, operator: &str, at_ms: i64, reason: Option<&str>) -> Markup {
    html! {
        p class=(class) {
            (what) " by " b { (operator) } " at " (time(at_ms))
            @if let Some(r) = reason { ": " (r) }
        }
    }
}

/// One action button, disabled (saying why) when `disabled` gives a reason.
fn button(action: &str, label: &str, class: &str, disabled: Option<&str>) -> Markup {
    html! {
        button type="button" data-action=(action) class=(class) disabled[disabled.is_some()] title=[disabled] { (label) }
    }
}

/// The workflow's actions: a reason field and a button per action, each disabled (saying why)
/// when the workflow's state does not allow it; for a role that may not act, a line saying
/// which role may. console.js posts a button's action with the reason.
fn actions_panel(instance: &str, w: &Workflow, steer: &Steering) -> Markup {
    let ended = w.state.ended();
    let failed = w.state == WorkflowState::Failed;
    let (pause_or_resume, pause_label, pause_disabled) = match (&steer.paused, ended) {
        (Some(_), _) => ("resume", "Resume", None),
        (None, true) => ("pause", "Pause", Some("the workflow has ended: there is nothing left to pause")),
        (None, false) => ("pause", "Pause", None),
    };
    html! {
        @if let Some(c) = &steer.cancelled {
            (acted_by("cancelled-by", "Cancelled", &c.operator, c.at_ms, c.reason.as_deref()))
        }
        @if let Some(p) = &steer.paused {
            (acted_by("paused-by", "Paused", &p.operator, p.at_ms, p.reason.as_deref()))
        }
        @if !steer.role.may_act() {
            p class="actions-note" { "Cancel, pause, resume, retry and fork need the role " b { "operator" } "." }
        } @else {
            section class="actions" aria-label="workflow actions" data-instance=(instance) data-workflow=(w.goal.id) {
                label { "Reason " input type="text" name="reason" id="action-reason" maxlength="4096" placeholder="why (recorded in the ledger with your name)"; }
                " " (button(pause_or_resume, pause_label, "", pause_disabled))
                " " (button("retry", "Retry failed step", "",
                    (!failed).then_some("only a failed workflow is retried: its failed step gets a new attempt")))
                " " (button("cancel", "Cancel workflow", "danger",
                    ended.then_some("the workflow has ended: there is nothing left to cancel")))
                output class="result" {}
            }
        }
    }
}

/// A workflow's detail: the action panel, the provenance graph and the claim timeline beside it.
pub fn workflow(
    instance: &str,
    w: &Workflow,
    svg: Markup,
    bids: &BTreeMap<sett_core::ClaimId, BTreeMap<sett_core::AgentName, BidType>>,
    steer: &Steering,
    now: i64,
) -> Markup {
    let i = instance;
    html! {
        h1 {
            "Workflow " span class="id" { (short(&w.goal.id.to_string())) } " "
            span class={ "state " (w.state.css()) } { (w.state.as_str()) }
        }
        p class="goal" { (w.goal.payload) }
        (actions_panel(instance, w, steer))
        (branches_list(instance, w))
        p class="legend" {
            span class="st-Standard" { "Standard" } " " span class="st-Review" { "Review" } " "
            span class="st-Question" { "Question" } " " span class="st-Answer" { "Answer" } " "
            span class="st-Failure" { "Failure" } " " span class="st-Terminal" { "Terminal" }
            " · " (w.artifacts.len()) " artifacts, " (w.claims.len()) " claims · "
            a href={ "/instances/" (i) } { "all workflows" }
        }
        div class="detail" {
            section class="graph-wrap" aria-label="provenance graph" { (svg) }
            section class="timeline" {
                h2 { "Claim timeline" }
                ol { @for c in &w.claims { (timeline_entry(instance, c, bids.get(&c.id), now)) } }
            }
        }
        (usage_paragraph(&w.usage(), "by this workflow's agents"))
        (artifacts_section(instance, w, steer))
    }
}

/// The workflow's branches (`sett fork`), each with its own state: the workflow's state in the
/// heading covers them all.
fn branches_list(instance: &str, w: &Workflow) -> Markup {
    let i = instance;
    html! {
        @if !w.branches.is_empty() {
            section class="branches" {
                h2 { "Branches (" (w.branches.len()) ")" }
                ul {
                    @for b in &w.branches {
                        li class="branch" data-branch-root=(b.root) {
                            a href={ "/instances/" (i) "/artifacts/" (b.root) } { (short(&b.root.to_string())) }
                            " forked from "
                            a href={ "/instances/" (i) "/artifacts/" (b.forked_from) } { (short(&b.forked_from.to_string())) }
                            " by " (b.produced_by.strip_prefix("human:").unwrap_or(&b.produced_by))
                            " at " (time(b.created_at_ms)) ": "
                            span class={ "state " (b.state.css()) } { (b.state.as_str()) }
                            " · " (b.artifacts) " artifact" @if b.artifacts != 1 { "s" }
                            ", " (b.claims) " claim" @if b.claims != 1 { "s" }
                        }
                    }
                }
            }
        }
    }
}

/// Every artifact of the workflow, oldest first, each with "Fork from here" for an operator
/// (work products and Questions; not the goal, a Review, Answer, Terminal or Failure, and not
/// once the workflow was cancelled). A work product's form takes a new payload (console.js
/// fills in the current one when it is opened; empty runs the same payload again), a
/// Question's a different answer; both take a reason. console.js posts it to
/// `POST …/artifacts/{id}/fork`.
fn artifacts_section(instance: &str, w: &Workflow, steer: &Steering) -> Markup {
    let i = instance;
    let may_fork = steer.role.may_act() && steer.cancelled.is_none();
    html! {
        section class="artifacts" aria-label="artifacts" {
            h2 { "Artifacts (" (w.artifacts.len()) ")" }
            table {
                thead { tr { th { "Artifact" } th { "Type" } th { "Version" } th { "Produced by" } th { "Created" } th {} } }
                tbody {
                    @for a in &w.artifacts {
                        @let id = a.id.to_string();
                        @let input = match a.structural_type {
                            _ if a.id == w.goal.id => None,
                            sett_core::StructuralType::Standard => Some("payload"),
                            sett_core::StructuralType::Question => Some("answer"),
                            _ => None,
                        };
                        tr data-artifact-id=(id) {
                            td {
                                a href={ "/instances/" (i) "/artifacts/" (id) } { (short(&id)) }
                                @if let Some(f) = a.forked_from {
                                    " " span class="forked-from" {
                                        "forked from " a href={ "/instances/" (i) "/artifacts/" (f) } { (short(&f.to_string())) }
                                    }
                                }
                            }
                            td { (a.artifact_type) " " span class={ "st st-" (a.structural_type) } { (a.structural_type) } }
                            td { (a.version) }
                            td { (a.produced_by_role) }
                            td { (time(a.created_at_ms)) }
                            td {
                                @if let Some(input) = input.filter(|_| may_fork) { (fork_form(instance, &id, input)) }
                            }
                        }
                    }
                }
            }
            @if steer.role.may_act() && steer.cancelled.is_some() {
                p class="actions-note" { "A cancelled workflow is not forked." }
            }
        }
    }
}

/// "Fork from here" for one artifact: a new payload (`input` = `payload`) or a different answer
/// (`answer`), and a reason.
fn fork_form(instance: &str, id: &str, input: &str) -> Markup {
    let answer = input == "answer";
    html! {
        details class="fork" {
            summary { "Fork from here" }
            form class="fork" data-instance=(instance) data-artifact=(id) data-input=(input) {
                label {
                    @if answer { "Different answer" } @else { "New payload" }
                    @if answer {
                        textarea name=(input) rows="4" maxlength="65536" required placeholder="the answer the branch resumes the asking agent with" {}
                    } @else {
                        textarea name=(input) rows="4" maxlength="65536" placeholder="empty: run the same payload again" {}
                    }
                }
                label { "Reason" input type="text" name="reason" maxlength="4096" placeholder="why (recorded in the ledger with your name)"; }
                button type="submit" { "Fork" }
                output class="result" {}
            }
        }
    }
}

/// One claim in the timeline: created, bids, grants, waits, its end.
fn timeline_entry(
    instance: &str,
    c: &Claim,
    bids: Option<&BTreeMap<sett_core::AgentName, BidType>>,
    now: i64,
) -> Markup {
    let cid = c.id.to_string();
    let aid = c.artifact_id.to_string();
    let mut grants: Vec<_> = c.grants.iter().collect();
    grants.sort_by_key(|(_, g)| g.seq);
    html! {
        li class="claim" data-claim-id=(cid) {
            div class="head" {
                b { "claim " (short(&cid)) } " on "
                a href={ "/instances/" (instance) "/artifacts/" (aid) } { (short(&aid)) } " "
                span class={ "cstatus s-" (c.status.as_str()) } { (c.status.as_str()) }
            }
            ul {
                li {
                    (ago(now, c.created_at_ms)) " created"
                    @if let Some(r) = c.rework_of { " (rework of " (short(&r.to_string())) ")" }
                }
                @if let Some(bids) = bids.filter(|b| !b.is_empty()) {
                    li {
                        "bids: "
                        @for (k, (a, b)) in bids.iter().enumerate() { @if k > 0 { ", " } (a.as_str()) " " (b.as_str()) }
                    }
                }
                @if !c.missing_bids.is_empty() {
                    li {
                        "no bid from "
                        @for (k, a) in c.missing_bids.iter().enumerate() { @if k > 0 { ", " } (a.as_str()) }
                    }
                }
                @for (agent, g) in grants {
                    li {
                        (ago(now, g.granted_at_ms)) " granted to " b { (agent.as_str()) }
                        " (" (g.claim_type.as_str()) ", seq " (g.seq) @if g.via_worker { ", worker" } ")"
                    }
                }
                @for q in c.open_questions.keys() {
                    li class="waiting" {
                        "waiting for an answer to "
                        a href={ "/questions?q=" (q) "#q-" (q) } { (short(&q.to_string())) }
                    }
                }
                @if c.status.is_final() {
                    li {
                        (ago(now, c.updated_at_ms)) " " (c.status.as_str())
                        @if let Some(r) = c.termination_reason.as_deref() { ": " (excerpt(r, 200)) }
                    }
                }
            }
        }
    }
}

/// A workflow read from the archive: the notice saying so, then the workflow (no actions).
pub fn archived_workflow(
    instance: &str,
    segment: &str,
    w: &Workflow,
    svg: Markup,
    steer: &Steering,
    now: i64,
) -> Markup {
    html! {
        (super::from_archive(instance, segment, &w.goal.id.to_string()))
        (workflow(instance, w, svg, &BTreeMap::new(), steer, now))
    }
}
