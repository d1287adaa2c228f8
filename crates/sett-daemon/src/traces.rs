//! A workflow's OpenTelemetry spans, told from the ledger: the orchestrator daemon follows the
//! event stream (when traces are on, `crate::otel`) and turns each workflow into one trace —
//! the root `workflow` span (goal to outcome), a `claim` span per claim (`rework` for a rework
//! claim, linked to the claim it reworks), its `bidding` (creation to first grant), one `grant`
//! span per grant (grant to the output it produced: a cub's `tool_run` span is its child), and
//! `wait_for_human` for each question or approval (asked to answered or timed out). Times are the
//! ledger's own; span ids are derived (`sett_core::trace`), so a span recorded here and one a
//! cub records name the same parents without talking to each other.
//!
//! [`SpanBook`] is the bookkeeping (events in, finished spans out, no I/O); [`follow`] feeds it
//! from the stream. It follows from the stream's end when it starts: what was open before a
//! restart is not traced.

use std::collections::HashMap;
use std::time::Duration;

use sett_core::event::{ClaimEnded, Event, EventData};
use sett_core::trace::{SpanSubject, workflow_trace};
use sett_core::{AgentName, ArtifactId, ClaimId, StructuralType};
use sett_store::Store;
use tokio_util::sync::CancellationToken;

use crate::otel::{SpanRecord, Traces};

/// How many events one read takes.
const BATCH: u64 = 256;
/// How long one read blocks while the stream is quiet.
const BLOCK: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct GoalState {
    start_ms: i64,
    /// Every artifact mapped to this goal, forgotten with it when the workflow ends.
    artifacts: Vec<ArtifactId>,
}

#[derive(Debug)]
struct ClaimState {
    goal: ArtifactId,
    start_ms: i64,
    artifact: ArtifactId,
    rework_of: Option<ClaimId>,
    agent: Option<AgentName>,
    bids: u32,
    missing: Vec<AgentName>,
    /// Open until the first grant (or the claim's end).
    bidding_open: bool,
    grants: HashMap<u64, GrantState>,
}

#[derive(Debug)]
struct GrantState {
    start_ms: i64,
    agent: AgentName,
    via_worker: bool,
}

#[derive(Debug)]
struct WaitState {
    goal: ArtifactId,
    claim: ClaimId,
    start_ms: i64,
    agent: AgentName,
    to: Vec<String>,
}

/// Open workflows, claims, grants and questions; events in, finished spans out.
#[derive(Debug, Default)]
pub struct SpanBook {
    goals: HashMap<ArtifactId, GoalState>,
    /// Which goal an artifact belongs to (its sources' or its claim's).
    artifact_goal: HashMap<ArtifactId, ArtifactId>,
    claims: HashMap<ClaimId, ClaimState>,
    waits: HashMap<ArtifactId, WaitState>,
}

fn attr(name: &'static str, value: impl ToString) -> (&'static str, String) {
    (name, value.to_string())
}

impl SpanBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many workflows, claims and questions are open (bounded by what is running).
    pub fn open(&self) -> (usize, usize, usize) {
        (self.goals.len(), self.claims.len(), self.waits.len())
    }

    /// Feeds one event; returns the spans it finished.
    pub fn observe(&mut self, e: &Event) -> Vec<SpanRecord> {
        let mut out = Vec::new();
        match &e.data {
            EventData::ArtifactCreated(a) => {
                let goal = a
                    .claim_id
                    .and_then(|c| self.claims.get(&c).map(|c| c.goal))
                    .or_else(|| a.source_artifacts.iter().find_map(|s| self.artifact_goal.get(s).copied()));
                let goal = match goal {
                    Some(g) => g,
                    None if a.source_artifacts.is_empty() && a.claim_id.is_none() => {
                        self.goals.insert(a.artifact_id, GoalState { start_ms: e.ts_ms, artifacts: Vec::new() });
                        a.artifact_id
                    }
                    None => return out,
                };
                self.artifact_goal.insert(a.artifact_id, goal);
                if let Some(g) = self.goals.get_mut(&goal) {
                    g.artifacts.push(a.artifact_id);
                }
                if let Some(claim) = a.claim_id {
                    out.extend(self.end_grant_with_output(&claim, &a.artifact_id, e.ts_ms, a.structural_type));
                }
                match a.structural_type {
                    StructuralType::Terminal => {
                        out.extend(self.end_workflow(goal, e.ts_ms, "completed", a.artifact_id.to_string()))
                    }
                    StructuralType::Failure if a.claim_id.is_some_and(|c| self.is_goal_claim(&c, goal)) => {
                        // A Failure of the goal's own claim ends the workflow; a Failure
                        // further down may still be reworked.
                        out.extend(self.end_workflow(goal, e.ts_ms, "failed", a.artifact_id.to_string()));
                    }
                    _ => {}
                }
            }
            EventData::ClaimCreated(c) => {
                let goal = self
                    .artifact_goal
                    .get(&c.artifact_id)
                    .copied()
                    .or_else(|| c.rework_of.and_then(|r| self.claims.get(&r).map(|s| s.goal)));
                if let Some(goal) = goal {
                    self.claims.insert(
                        c.claim_id,
                        ClaimState {
                            goal,
                            start_ms: e.ts_ms,
                            artifact: c.artifact_id,
                            rework_of: c.rework_of,
                            agent: c.agent.clone(),
                            // The standing bids it was created with; cubs' own bids follow.
                            bids: c.standing_bids.len() as u32,
                            missing: Vec::new(),
                            bidding_open: true,
                            grants: HashMap::new(),
                        },
                    );
                }
            }
            EventData::BidSubmitted(b) => {
                if let Some(c) = self.claims.get_mut(&b.claim_id) {
                    c.bids += 1;
                }
            }
            EventData::BidsMissing(m) => {
                if let Some(c) = self.claims.get_mut(&m.claim_id) {
                    c.missing.clone_from(&m.agents);
                }
            }
            EventData::ClaimGranted(g) => {
                if let Some(c) = self.claims.get_mut(&g.claim_id) {
                    let bidding = c.bidding_open.then(|| bidding_span(&g.claim_id, c, e.ts_ms));
                    c.bidding_open = false;
                    c.grants.insert(
                        g.seq,
                        GrantState { start_ms: e.ts_ms, agent: g.agent.clone(), via_worker: g.via_worker },
                    );
                    out.extend(bidding);
                }
            }
            EventData::ClaimCompleted(x) => out.extend(self.end_claim(x, e.ts_ms, "complete")),
            EventData::ClaimTerminated(x) => out.extend(self.end_claim(x, e.ts_ms, "terminated")),
            EventData::ClaimDormant(x) => out.extend(self.end_claim(x, e.ts_ms, "dormant")),
            EventData::QuestionAsked(q) => {
                if let Some(c) = self.claims.get(&q.claim_id) {
                    self.waits.insert(
                        q.question_id,
                        WaitState {
                            goal: c.goal,
                            claim: q.claim_id,
                            start_ms: e.ts_ms,
                            agent: q.agent.clone(),
                            to: q.to.clone(),
                        },
                    );
                }
            }
            EventData::QuestionAnswered(a) => {
                if let Some(w) = self.waits.remove(&a.question_id) {
                    let mut attrs = vec![attr("sett.answered_by", &a.answered_by), attr("sett.answer_id", a.answer_id)];
                    if let Some(d) = a.decision {
                        attrs.push(attr("sett.decision", d.as_str()));
                    }
                    attrs.push(attr("sett.timed_out", a.timed_out));
                    out.push(wait_span(&a.question_id, &w, e.ts_ms, attrs));
                }
            }
            EventData::QuestionTimedOut(t) => {
                if let Some(w) = self.waits.remove(&t.question_id) {
                    let attrs = vec![attr("sett.timed_out", true), attr("sett.policy", t.policy.as_str())];
                    out.push(wait_span(&t.question_id, &w, e.ts_ms, attrs));
                }
            }
            EventData::WorkflowCancelled(c) if self.goals.contains_key(&c.goal_id) => {
                let mut spans = self.end_workflow(c.goal_id, e.ts_ms, "cancelled", c.goal_id.to_string());
                if let Some(root) = spans.first_mut() {
                    root.attributes.push(attr("sett.operator", &c.operator));
                }
                out.extend(spans);
            }
            _ => {}
        }
        out
    }

    fn is_goal_claim(&self, claim: &ClaimId, goal: ArtifactId) -> bool {
        self.claims.get(claim).is_some_and(|c| c.artifact == goal)
    }

    /// The grant of `claim` whose output is `output` (its id is derived from `(claim, seq)`).
    fn end_grant_with_output(
        &mut self,
        claim: &ClaimId,
        output: &ArtifactId,
        ts: i64,
        structural_type: StructuralType,
    ) -> Option<SpanRecord> {
        let c = self.claims.get_mut(claim)?;
        let seq = *c.grants.keys().find(|seq| ArtifactId::grant_output(claim, **seq) == *output)?;
        let g = c.grants.remove(&seq)?;
        let mut s = grant_span(claim, seq, c, &g, ts);
        s.attributes.push(attr("sett.output_artifact", output));
        s.attributes.push(attr("sett.structural_type", structural_type));
        if structural_type == StructuralType::Failure {
            s.error = Some("the tool run failed".to_owned());
        }
        Some(s)
    }

    fn end_claim(&mut self, x: &ClaimEnded, ts: i64, status: &'static str) -> Vec<SpanRecord> {
        let Some(c) = self.claims.remove(&x.claim_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if c.bidding_open {
            out.push(bidding_span(&x.claim_id, &c, ts));
        }
        for (seq, g) in &c.grants {
            out.push(grant_span(&x.claim_id, *seq, &c, g, ts));
        }
        let trace = workflow_trace(&c.goal);
        let mut attributes = vec![
            attr("sett.claim_id", x.claim_id),
            attr("sett.artifact_id", c.artifact),
            attr("sett.goal_id", c.goal),
            attr("sett.status", status),
        ];
        if let Some(o) = x.outcome_artifact {
            attributes.push(attr("sett.outcome_artifact", o));
        }
        if let Some(r) = &x.reason {
            attributes.push(attr("sett.reason", r));
        }
        if let Some(a) = &c.agent {
            attributes.push(attr("sett.agent", a));
        }
        if let Some(r) = c.rework_of {
            attributes.push(attr("sett.rework_of", r));
        }
        out.push(SpanRecord {
            trace,
            span: SpanSubject::Claim(&x.claim_id).span_id(),
            parent: Some(SpanSubject::Workflow(&c.goal).span_id()),
            name: if c.rework_of.is_some() { "rework" } else { "claim" },
            start_ms: c.start_ms,
            end_ms: ts,
            attributes,
            links: c.rework_of.iter().map(|r| SpanSubject::Claim(r).span_id()).collect(),
            // Not an error: a terminated claim is often the normal path (a review asked for
            // rework); `sett.status` and `sett.reason` tell.
            error: None,
        });
        // A goal's claim that ends without a Terminal or Failure stops its workflow (nobody bid,
        // or a reviewer rejected the goal).
        if c.artifact == c.goal && status != "complete" {
            out.extend(self.end_workflow(c.goal, ts, "stopped", x.claim_id.to_string()));
        }
        out
    }

    /// The root span, once: the workflow's goal is forgotten with its artifacts (claims still
    /// open keep their goal and end into the same trace).
    fn end_workflow(&mut self, goal: ArtifactId, ts: i64, outcome: &'static str, by: String) -> Vec<SpanRecord> {
        let Some(g) = self.goals.remove(&goal) else {
            return Vec::new();
        };
        for a in &g.artifacts {
            self.artifact_goal.remove(a);
        }
        self.artifact_goal.remove(&goal);
        vec![SpanRecord {
            trace: workflow_trace(&goal),
            span: SpanSubject::Workflow(&goal).span_id(),
            parent: None,
            name: "workflow",
            start_ms: g.start_ms,
            end_ms: ts,
            attributes: vec![
                attr("sett.goal_id", goal),
                attr("sett.artifact_id", goal),
                attr("sett.outcome", outcome),
                attr("sett.outcome_id", by),
            ],
            links: Vec::new(),
            error: (outcome == "failed").then(|| "the workflow failed".to_owned()),
        }]
    }
}

fn bidding_span(claim: &ClaimId, c: &ClaimState, end_ms: i64) -> SpanRecord {
    let mut attributes =
        vec![attr("sett.claim_id", claim), attr("sett.artifact_id", c.artifact), attr("sett.bids", c.bids)];
    if !c.missing.is_empty() {
        let names: Vec<&str> = c.missing.iter().map(AgentName::as_str).collect();
        attributes.push(attr("sett.bids_missing", names.join(",")));
    }
    SpanRecord {
        trace: workflow_trace(&c.goal),
        span: SpanSubject::Bidding(claim).span_id(),
        parent: Some(SpanSubject::Claim(claim).span_id()),
        name: "bidding",
        start_ms: c.start_ms,
        end_ms,
        attributes,
        links: Vec::new(),
        error: None,
    }
}

fn grant_span(claim: &ClaimId, seq: u64, c: &ClaimState, g: &GrantState, end_ms: i64) -> SpanRecord {
    SpanRecord {
        trace: workflow_trace(&c.goal),
        span: SpanSubject::Grant(claim, seq).span_id(),
        parent: Some(SpanSubject::Claim(claim).span_id()),
        name: "grant",
        start_ms: g.start_ms,
        end_ms,
        attributes: vec![
            attr("sett.claim_id", claim),
            attr("sett.artifact_id", c.artifact),
            attr("sett.agent", &g.agent),
            attr("sett.seq", seq),
            attr("sett.via_worker", g.via_worker),
        ],
        links: Vec::new(),
        error: None,
    }
}

fn wait_span(question: &ArtifactId, w: &WaitState, end_ms: i64, mut extra: Vec<(&'static str, String)>) -> SpanRecord {
    let mut attributes = vec![
        attr("sett.question_id", question),
        attr("sett.artifact_id", question),
        attr("sett.claim_id", w.claim),
        attr("sett.agent", &w.agent),
    ];
    if !w.to.is_empty() {
        attributes.push(attr("sett.to", w.to.join(",")));
    }
    attributes.append(&mut extra);
    SpanRecord {
        trace: workflow_trace(&w.goal),
        span: SpanSubject::Wait(question).span_id(),
        parent: Some(SpanSubject::Claim(&w.claim).span_id()),
        name: "wait_for_human",
        start_ms: w.start_ms,
        end_ms,
        attributes,
        links: Vec::new(),
        error: None,
    }
}

/// Follows the event stream from its end and records each finished span to `traces`, until
/// `stop`. A failed read is logged and retried after a pause.
pub async fn follow(store: Store, traces: &'static Traces, stop: CancellationToken) {
    let mut book = SpanBook::new();
    let mut after: Option<String> = None;
    let mut pause = Duration::from_millis(100);
    while !stop.is_cancelled() {
        match follow_once(&store, traces, &mut book, &mut after, &stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "traces: reading the event stream failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn follow_once(
    store: &Store,
    traces: &Traces,
    book: &mut SpanBook,
    after: &mut Option<String>,
    stop: &CancellationToken,
) -> Result<(), sett_store::StoreError> {
    if after.is_none() {
        *after = Some(store.last_event_id().await?.unwrap_or_else(|| "0".to_owned()));
    }
    let reader = store.event_reader().await?;
    let result = async {
        while !stop.is_cancelled() {
            let from = after.clone().unwrap_or_else(|| "0".to_owned());
            let entries = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                r = reader.read_entries_after(&from, BATCH, BLOCK) => r?,
            };
            for entry in entries {
                let id = match &entry {
                    Ok(e) => e.id.clone(),
                    Err(m) => m.id.clone(),
                };
                if let Ok(e) = entry {
                    for span in book.observe(&e) {
                        traces.record(span);
                    }
                }
                *after = Some(id);
            }
        }
        Ok(())
    }
    .await;
    reader.quit().await;
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sett_core::event::EventKind;
    use sett_core::trace::SpanId;

    use super::*;

    fn aid(name: &str) -> ArtifactId {
        ArtifactId::derived(&"traces-test", name)
    }
    fn cid(name: &str) -> ClaimId {
        ClaimId::derived(&"traces-test", name)
    }

    /// An event of `kind` at `ts` from its JSON payload.
    fn ev(kind: EventKind, ts: i64, data: serde_json::Value) -> Event {
        let data = EventData::from_json(kind, &data.to_string()).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        Event { id: format!("{ts}-0"), ts_ms: ts, data }
    }

    fn artifact(ts: i64, id: ArtifactId, st: &str, sources: &[ArtifactId], claim: Option<ClaimId>) -> Event {
        ev(
            EventKind::ArtifactCreated,
            ts,
            json!({"answered_by": null, "artifact_id": id, "claim_id": claim, "hash": null, "logical_id": id,
                   "produced_by_role": "A", "source_artifacts": sources, "structural_type": st, "summary": null,
                   "timed_out": false, "type": "T", "version": 1}),
        )
    }

    fn claim_created(ts: i64, claim: ClaimId, artifact: ArtifactId) -> Event {
        ev(
            EventKind::ClaimCreated,
            ts,
            json!({"agent": null, "artifact_id": artifact, "claim_id": claim, "rework_of": null, "status": "pending_consensus"}),
        )
    }

    fn ended(kind: EventKind, ts: i64, claim: ClaimId, artifact: ArtifactId) -> Event {
        ev(kind, ts, json!({"artifact_id": artifact, "claim_id": claim, "outcome_artifact": null, "reason": "why"}))
    }

    /// Feeds a goal `g` (at 10) and its claim `c` (at 11), then `events`.
    fn feed(book: &mut SpanBook, (g, c): (ArtifactId, ClaimId), events: &[Event]) -> Vec<SpanRecord> {
        let start = [artifact(10, g, "Standard", &[], None), claim_created(11, c, g)];
        start.iter().chain(events).flat_map(|e| book.observe(e)).collect()
    }

    fn names(spans: &[SpanRecord]) -> Vec<&'static str> {
        spans.iter().map(|s| s.name).collect()
    }

    #[test]
    fn a_goal_nobody_bids_on_stops_its_workflow_in_one_trace() {
        let (g, c) = (aid("g"), cid("c"));
        let mut book = SpanBook::new();
        let spans = feed(
            &mut book,
            (g, c),
            &[
                ev(EventKind::BidsMissing, 20, json!({"agents": ["A"], "artifact_id": g, "claim_id": c})),
                ended(EventKind::ClaimDormant, 21, c, g),
            ],
        );
        assert_eq!(names(&spans), ["bidding", "claim", "workflow"]);
        assert!(spans.iter().all(|s| s.trace == workflow_trace(&g)));
        let root = SpanSubject::Workflow(&g).span_id();
        assert_eq!((spans[2].parent, spans[2].span, spans[2].start_ms, spans[2].end_ms), (None, root, 10, 21));
        assert_eq!(spans[1].parent, Some(root));
        assert_eq!(spans[0].parent, Some(SpanSubject::Claim(&c).span_id()));
        assert!(spans[0].attributes.contains(&("sett.bids_missing", "A".to_owned())));
        assert!(spans[2].attributes.contains(&("sett.outcome", "stopped".to_owned())));
        assert_eq!(book.open(), (0, 0, 0), "nothing is kept after the workflow ended");
    }

    #[test]
    fn the_standing_bids_a_claim_was_created_with_count_as_its_bids() {
        let (g, c) = (aid("g"), cid("c"));
        let mut book = SpanBook::new();
        let events = [
            artifact(10, g, "Standard", &[], None),
            ev(
                EventKind::ClaimCreated,
                11,
                json!({"artifact_id": g, "claim_id": c, "standing_bids": {"A": "exclusive", "B": "ignore"}, "status": "pending_exclusive"}),
            ),
            ev(
                EventKind::ClaimGranted,
                11,
                json!({"agent": "A", "artifact_id": g, "claim_id": c, "claim_type": "exclusive", "seq": 1, "via_worker": false}),
            ),
        ];
        let spans: Vec<SpanRecord> = events.iter().flat_map(|e| book.observe(e)).collect();
        assert_eq!(names(&spans), ["bidding"]);
        assert!(spans[0].attributes.contains(&("sett.bids", "2".to_owned())), "{:?}", spans[0].attributes);
    }

    #[test]
    fn grants_end_with_their_output_and_a_timed_out_question_ends_its_wait() {
        let (g, c, q) = (aid("g"), cid("c"), ArtifactId::grant_output(&cid("c"), 1));
        let mut book = SpanBook::new();
        let spans = feed(
            &mut book,
            (g, c),
            &[
                ev(EventKind::BidSubmitted, 12, json!({"agent": "A", "bid": "exclusive", "claim_id": c})),
                ev(
                    EventKind::ClaimGranted,
                    13,
                    json!({"agent": "A", "artifact_id": g, "claim_id": c, "claim_type": "exclusive", "seq": 1, "via_worker": false}),
                ),
                artifact(14, q, "Question", &[g], Some(c)),
                ev(
                    EventKind::QuestionAsked,
                    15,
                    json!({"agent": "A", "artifact_id": q, "claim_id": c, "deadline_ms": 99, "question_id": q}),
                ),
                ev(
                    EventKind::QuestionTimedOut,
                    99,
                    json!({"artifact_id": q, "claim_id": c, "policy": "fail", "question_id": q}),
                ),
            ],
        );
        assert_eq!(names(&spans), ["bidding", "grant", "wait_for_human"]);
        assert_eq!((spans[0].start_ms, spans[0].end_ms), (11, 13));
        assert!(spans[0].attributes.contains(&("sett.bids", "1".to_owned())));
        assert_eq!((spans[1].span, spans[1].start_ms, spans[1].end_ms), (SpanSubject::Grant(&c, 1).span_id(), 13, 14));
        assert!(spans[1].attributes.contains(&("sett.output_artifact", q.to_string())));
        assert_eq!((spans[2].start_ms, spans[2].end_ms), (15, 99));
        assert_eq!(spans[2].parent, Some(SpanSubject::Claim(&c).span_id()));
        assert!(spans[2].attributes.contains(&("sett.timed_out", "true".to_owned())));
    }

    #[test]
    fn a_cancelled_workflow_ends_its_root_and_its_claims_still_end_in_its_trace() {
        let (g, c) = (aid("g"), cid("c"));
        let mut book = SpanBook::new();
        let spans = feed(
            &mut book,
            (g, c),
            &[
                ev(
                    EventKind::WorkflowCancelled,
                    30,
                    json!({"claims": [c], "goal_id": g, "operator": "ops", "questions": [], "reason": "enough"}),
                ),
                ended(EventKind::ClaimTerminated, 30, c, g),
            ],
        );
        assert_eq!(names(&spans), ["workflow", "bidding", "claim"]);
        assert!(spans[0].attributes.contains(&("sett.outcome", "cancelled".to_owned())));
        assert!(spans[0].attributes.contains(&("sett.operator", "ops".to_owned())));
        assert_eq!(spans[2].trace, workflow_trace(&g));
        assert!(spans[2].attributes.contains(&("sett.status", "terminated".to_owned())));
        assert!(spans[2].attributes.contains(&("sett.reason", "why".to_owned())));
    }

    #[test]
    fn a_rework_claim_is_a_rework_span_linked_to_the_claim_it_reworks() {
        let (g, c, out, r) = (aid("g"), cid("c"), ArtifactId::grant_output(&cid("c"), 1), cid("r"));
        let mut book = SpanBook::new();
        let spans = feed(
            &mut book,
            (g, c),
            &[
                artifact(12, out, "Standard", &[g], Some(c)),
                ev(
                    EventKind::ClaimCreated,
                    13,
                    json!({"agent": "A", "artifact_id": out, "claim_id": r, "rework_of": c, "status": "pending_assignment"}),
                ),
                ended(EventKind::ClaimCompleted, 20, r, out),
            ],
        );
        assert_eq!(names(&spans), ["bidding", "rework"]);
        assert_eq!(spans[1].links, vec![SpanSubject::Claim(&c).span_id()]);
        assert_eq!(spans[1].parent, Some(SpanSubject::Workflow(&g).span_id()));
        assert!(spans[1].attributes.contains(&("sett.rework_of", c.to_string())));
        assert_ne!(spans[1].span, SpanId([0; 8]));
    }
}
