//! An artifact's page (`/instances/{name}/artifacts/{id}`): payload, producer, claim, answer,
//! an approval's subject, and the answer form of an open question; and the notice on pages
//! read from the archive.

use maud::{Markup, html};
use sett_core::ArtifactId;
use sett_core::text::{excerpt, short};
use sett_ops::approval::ApprovalView;

use super::forms::{answer_form, approval_form};
use super::time;
use crate::auth::Role;
use crate::data::ArtifactView;

/// The notice on a page read from the archive (the records are no longer in Redis).
pub fn from_archive(instance: &str, segment: &str, goal: &str) -> Markup {
    html! {
        p class="archived" data-archive-segment=(segment) {
            "From the archive (segment " code { (segment) } "): this is part of workflow "
            a href={ "/instances/" (instance) "/workflows/" (goal) } { (short(goal)) }
            ", archived out of Redis. Bring it back with " code { "sett restore " (goal) } "."
        }
    }
}

/// One artifact: payload, producer, claim, timestamps; the answer form of an open question
/// when `role` may answer.
pub fn artifact(instance: &str, v: &ArtifactView, role: Role) -> Markup {
    let i = instance;
    let a = &v.artifact;
    let id = a.id.to_string();
    let may_answer = v.open_question && role.may_answer();
    html! {
        @if let Some(f) = &v.archive { (from_archive(instance, &f.segment, &f.workflow)) }
        h1 { (a.artifact_type) " " span class={ "st st-" (a.structural_type) } { (a.structural_type) } }
        dl class="props" data-artifact-id=(id) {
            dt { "Id" } dd { code { (id) } }
            dt { "Version" } dd { (a.version) " (thread " code { (a.logical_id) } ")" }
            dt { "Produced by" } dd { (a.produced_by_role) }
            dt { "Created" } dd { (time(a.created_at_ms)) }
            @if let Some(s) = &a.summary { dt { "Summary" } dd { (s) } }
            @if let Some(c) = &v.claim {
                dt { "Claim" }
                dd {
                    code { (c.id) } " on "
                    a href={ "/instances/" (i) "/artifacts/" (c.artifact_id) } { (short(&c.artifact_id.to_string())) }
                    ": " (c.status.as_str())
                }
            }
            @if !a.source_artifacts.is_empty() {
                dt { "Sources" }
                dd {
                    @for (k, s) in a.source_artifacts.iter().enumerate() {
                        @if k > 0 { " " }
                        a href={ "/instances/" (i) "/artifacts/" (s) } { (short(&s.to_string())) }
                    }
                }
            }
            @if let Some(by) = &a.answered_by { dt { "Answered by" } dd { (by) @if a.timed_out { " (timed out)" } } }
            @if let Some(r) = &v.answer {
                dt { "Answer" }
                dd {
                    a href={ "/instances/" (i) "/artifacts/" (r.answer_id) } { (short(&r.answer_id.to_string())) }
                    " by " (r.answered_by) " at " (time(r.answered_at_ms))
                }
            }
        }
        @if let Some(approval) = &v.approval {
            (approval_section(instance, approval))
            @if may_answer { (approval_form(instance, &id)) }
            details class="raw" { summary { "Question payload" } pre class="payload" { (a.payload) } }
        } @else {
            h2 { "Payload" }
            pre class="payload" { (a.payload) }
            @if may_answer { (answer_form(instance, &id, &a.payload)) }
        }
    }
}

/// What an approval asks to approve: the agent, the claim type, the target with its payload
/// and hash, and its context chain with theirs (the hashes a decision binds).
fn approval_section(instance: &str, v: &ApprovalView) -> Markup {
    let s = &v.subject;
    let link = |id: &ArtifactId, t: &str| {
        html! { a href={ "/instances/" (instance) "/artifacts/" (id) } { (t) " " (short(&id.to_string())) } }
    };
    let target = link(&s.target.id, &s.target.artifact_type);
    html! {
        section class="approval" data-approval-id=(v.question_id) {
            h2 { "Approval" }
            p class="ask" {
                "May agent " b class="agent" { (s.agent.as_str()) } " run its " b class="claim-type" { (s.claim_type) }
                " claim on " (target) "? Its tool does not start before a decision; approving binds exactly the hashes below."
            }
            dl class="props" {
                dt { "Agent" } dd { (s.agent.as_str()) }
                dt { "Claim type" } dd { (s.claim_type) }
                dt { "Claim" } dd { code { (s.claim_id) } }
                dt { "Target" }
                dd {
                    (target) " " code class="hash" title="content hash" { (s.target.hash) }
                    @if !v.target_unchanged {
                        " " strong class="bad" { "its stored hash changed since the approval was asked: a decision is refused (run sett verify)" }
                    }
                }
            }
            h3 { "Target payload" }
            pre class="payload target" { (v.target.as_ref().map_or("(missing)", |t| t.payload.as_str())) }
            h3 { "Context chain (" (s.context.len()) ")" }
            ol class="chain approval-context" {
                @for c in &s.context {
                    @let payload = v.context.iter().find(|a| a.id == c.id).map(|a| excerpt(&a.payload, 400)).unwrap_or_default();
                    li { (link(&c.id, &c.artifact_type)) " " code class="hash" { (c.hash) } pre class="excerpt" { (payload) } }
                }
            }
        }
    }
}
