//! The instances page (`/`) and an instance's workflows table (`/instances/{name}`).

use maud::{Markup, html};
use sett_core::text::{excerpt, short};
use sett_ops::status::StatusReport;

use super::{Paging, ago, human_ms, pager, range, usage_paragraph};
use crate::data::WorkflowRow;

fn health_class(h: &str) -> &'static str {
    match h {
        "running" => "ok",
        "degraded" => "warn",
        _ => "off",
    }
}

/// The instances page.
pub fn instances(reports: &[Result<StatusReport, String>], names: &[String]) -> Markup {
    if names.is_empty() {
        return html! {
            h1 { "Instances" }
            p { "No instance is registered in this Redis. Start one with " code { "sett up" } "." }
        };
    }
    html! {
        h1 { "Instances" }
        @for (n, r) in names.iter().zip(reports) {
            @if let Ok(s) = r {
                @for g in &s.ledger_regressions {
                    p class="err ledger-regressed" data-instance=(n) {
                        strong { "Ledger regression" } " in " a href={ "/instances/" (n) } { (n) }
                        ": the ledger went back from " code { (g.seen) } " to " code { (g.found.as_deref().unwrap_or("nothing")) }
                        "; at least " (g.lost_at_least) " event(s) are gone (noticed by " (g.detected_by)
                        "). Follow the runbook \"The ledger went back\", then run " code { "sett ledger ack -n " (n) } "."
                    }
                }
                @for p in &s.pauses {
                    p class="warn paused" data-instance=(n) {
                        strong { "Paused" } ": "
                        @match p.goal_id.as_deref() {
                            None => a href={ "/instances/" (n) } { (n) },
                            Some(g) => { "the workflow of goal " code { (g) } " in " a href={ "/instances/" (n) } { (n) } },
                        }
                        " by " (p.operator)
                        @if let Some(r) = &p.reason { " (" (r) ")" }
                        "; nothing new is granted until it is resumed (" code { "sett resume -n " (n) } ")."
                    }
                }
            }
        }
        table class="instances" {
            thead { tr { th { "Instance" } th { "Status" } th { "Components" } th { "Claims" } th { "Open questions" } } }
            tbody {
                @for (n, r) in names.iter().zip(reports) {
                    tr data-instance=(n) {
                        td { a href={ "/instances/" (n) } { (n) } }
                        @match r {
                            Err(e) => td colspan="4" class="err" { (e) },
                            Ok(s) => {
                                td { span class={ "health " (health_class(s.health.as_str())) } { (s.health.as_str()) } }
                                td {
                                    @if s.components.is_empty() { "—" }
                                    @for (k, c) in s.components.iter().enumerate() {
                                        @if k > 0 { " " }
                                        @if c.healthy {
                                            span class="comp ok" title="healthy" { (c.name) }
                                        } @else {
                                            span class="comp bad" title=(c.problem.as_deref().unwrap_or("")) { (c.name) }
                                        }
                                    }
                                }
                                td {
                                    @if s.claims_by_status.is_empty() { "—" }
                                    @for (k, (status, count)) in s.claims_by_status.iter().enumerate() {
                                        @if k > 0 { ", " }
                                        (status) " " (count)
                                    }
                                }
                                td {
                                    @if s.open_questions > 0 {
                                        a href={ "/questions?instance=" (n) } class="badge" { (s.open_questions) }
                                    } @else { "0" }
                                }
                            },
                        }
                    }
                }
            }
        }
    }
}

/// One page of the workflows of an instance, newest goal first.
pub fn workflows(instance: &str, rows: &[WorkflowRow], p: &Paging, now: i64) -> Markup {
    let i = instance;
    let heading = html! { h1 { "Workflows of " (i) " " span class="count" { (p.total) } } };
    if p.total == 0 {
        return html! {
            (heading)
            p { "No workflow yet. Start one with " code { "sett forage --goal \"…\" -n " (i) } "." }
        };
    }
    let mut total = sett_core::usage::UsageTotals::default();
    for w in rows {
        total.merge(&w.usage);
    }
    let nav = pager(p);
    html! {
        (heading)
        (usage_paragraph(&total, "on this page"))
        (range(p, rows.len(), "workflows, newest goal first"))
        (nav)
        table class="workflows" {
            thead { tr { th { "Goal" } th { "State" } th { "Age" } th { "Last change" } th { "Artifacts" } th { "Agents" } } }
            tbody {
                @for w in rows {
                    @let id = w.goal_id.to_string();
                    tr data-goal-id=(id) {
                        td { a href={ "/instances/" (i) "/workflows/" (id) } { (excerpt(&w.goal, 90)) } " " span class="id" { (short(&id)) } }
                        td { span class={ "state " (w.state.css()) } { (w.state.as_str()) } }
                        td { (human_ms(now - w.created_at_ms)) }
                        td { (ago(now, w.updated_at_ms)) }
                        td { (w.artifacts) }
                        td { (w.agents.iter().cloned().collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
        (nav)
    }
}
