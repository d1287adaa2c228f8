//! Human rendering and filtering of what operators follow: ledger events (`sett watch`,
//! `sett forage --watch`) and the daemons' bunyan JSON log lines (`sett logs`). Pure functions
//! returning strings; the CLI prints them.

use std::collections::HashMap;

use sett_core::event::{Event, EventData};
use sett_core::text::{excerpt, short};
use sett_core::{AgentName, ArtifactId, ClaimId, ClaimStatus};

/// An id's display form (see [`short`]).
fn sh(id: impl std::fmt::Display) -> String {
    short(&id.to_string()).to_owned()
}

/// One line describing an event, without its time: the kind, then the interesting fields.
pub fn event_line(e: &Event) -> String {
    let detail = match &e.data {
        EventData::ArtifactCreated(a) => {
            let mut out = format!(
                "{} {} ({}) v{} by {}",
                sh(a.artifact_id),
                a.artifact_type,
                a.structural_type,
                a.version,
                a.produced_by_role
            );
            if let Some(c) = a.claim_id {
                out.push_str(&format!(" claim {}", sh(c)));
            }
            if !a.source_artifacts.is_empty() {
                let sources: Vec<String> = a.source_artifacts.iter().map(sh).collect();
                out.push_str(&format!(" from {}", sources.join(",")));
            }
            if let Some(sum) = a.summary.as_deref().filter(|x| !x.is_empty()) {
                out.push_str(&format!(" — {}", excerpt(sum, 80)));
            }
            out
        }
        EventData::ClaimCreated(c) => {
            let mut out = format!("claim {} on {} {}", sh(c.claim_id), sh(c.artifact_id), c.status);
            if let Some(r) = c.rework_of {
                out.push_str(&format!(" rework of {}", sh(r)));
            }
            if let Some(a) = &c.agent {
                out.push_str(&format!(" for {a}"));
            }
            if !c.standing_bids.is_empty() {
                // Recorded by the orchestrator for the agents' live cubs (design.md §5).
                let bids: Vec<String> = c.standing_bids.iter().map(|(a, b)| format!("{a} {b}")).collect();
                out.push_str(&format!(", standing bids: {}", bids.join(", ")));
            }
            out
        }
        EventData::BidSubmitted(b) => {
            // A standing bid was recorded by the orchestrator for the agent's live cub.
            let standing = if b.standing { " (standing)" } else { "" };
            format!("claim {} {} bids {}{standing}", sh(b.claim_id), b.agent, b.bid)
        }
        EventData::BidsMissing(m) => {
            let agents: Vec<String> = m.agents.iter().map(|a| short(a.as_str()).to_owned()).collect();
            format!("claim {} no bid from {}", sh(m.claim_id), agents.join(", "))
        }
        EventData::ClaimGranted(g) => {
            let worker = if g.via_worker { ", worker" } else { "" };
            format!("claim {} → {} ({}, seq {}{worker})", sh(g.claim_id), g.agent, g.claim_type, g.seq)
        }
        EventData::ClaimUpdated(u) => {
            let previous = u.previous_status.map_or("?", ClaimStatus::as_str);
            format!("claim {} {previous} → {}", sh(u.claim_id), u.status)
        }
        EventData::ClaimCompleted(c) | EventData::ClaimTerminated(c) | EventData::ClaimDormant(c) => {
            let mut out = format!("claim {} on {}", sh(c.claim_id), sh(c.artifact_id));
            if let Some(o) = c.outcome_artifact {
                out.push_str(&format!(" outcome {}", sh(o)));
            }
            if let Some(r) = c.reason.as_deref().filter(|r| !r.is_empty()) {
                out.push_str(&format!(": {}", excerpt(r, 120)));
            }
            out
        }
        EventData::QuestionAsked(q) => {
            let to = if q.to.is_empty() { String::new() } else { format!(" for {}", q.to.join(", ")) };
            format!("question {} by {} on claim {}{to}", sh(q.artifact_id), q.agent, sh(q.claim_id))
        }
        EventData::QuestionReminded(r) => {
            format!(
                "question {} on claim {} still unanswered (reminder {})",
                sh(r.question_id),
                sh(r.claim_id),
                r.reminder
            )
        }
        EventData::QuestionEscalated(x) => {
            format!("question {} on claim {} escalated to {}", sh(x.question_id), sh(x.claim_id), x.added.join(", "))
        }
        EventData::QuestionAnswered(a) => {
            let timed_out = if a.timed_out { " (timed out)" } else { "" };
            format!("question {} answered by {} with {}{timed_out}", sh(a.question_id), a.answered_by, sh(a.answer_id))
        }
        EventData::QuestionTimedOut(t) => {
            format!(
                "question {} on claim {} timed out (policy {})",
                sh(t.question_id),
                sh(t.claim_id),
                t.policy.as_str()
            )
        }
        EventData::WorkerLaunched(w) => worker_line(w.claim_id, &w.agent, w.seq, w.pid),
        EventData::WorkerExited(w) => worker_line(w.claim_id, &w.agent, w.seq, w.pid),
        EventData::InstanceStarted(i) => format!("run {}", i.run_id),
        EventData::InstanceStopped(i) => format!("run {}", i.run_id),
        EventData::WorkflowCancelled(c) => {
            let mut out = format!(
                "goal {} by {} ({} claim(s) ended, {} question(s) closed)",
                sh(c.goal_id),
                c.operator,
                c.claims.len(),
                c.questions.len()
            );
            if let Some(r) = c.reason.as_deref().filter(|r| !r.is_empty()) {
                out.push_str(&format!(": {}", excerpt(r, 120)));
            }
            out
        }
        EventData::Paused(p) => {
            let scope = p.goal_id.map_or_else(|| "the instance".to_owned(), |g| format!("goal {}", sh(g)));
            with_reason(format!("{scope} by {}: nothing is granted until it is resumed", p.operator), &p.reason)
        }
        EventData::Resumed(r) => {
            let scope = r.goal_id.map_or_else(|| "the instance".to_owned(), |g| format!("goal {}", sh(g)));
            with_reason(
                format!(
                    "{scope} by {} after {} ms ({} claim(s) got their deadlines moved later)",
                    r.operator,
                    r.paused_ms,
                    r.claims.len()
                ),
                &r.reason,
            )
        }
        EventData::WorkflowRetried(r) => {
            let failure = r.failure.map(|f| format!(" (failure {})", sh(f))).unwrap_or_default();
            with_reason(
                format!(
                    "goal {}: claim {} retries failed claim {}{failure} on {} by {}",
                    sh(r.goal_id),
                    sh(r.claim_id),
                    sh(r.failed_claim),
                    sh(r.artifact_id),
                    r.operator
                ),
                &r.reason,
            )
        }
        EventData::ArtifactForked(f) => {
            let claim = f.claim_id.map(|c| format!(", branch claim {}", sh(c))).unwrap_or_default();
            with_reason(
                format!(
                    "{} forked from {} by {} (goal {}{claim})",
                    sh(f.artifact_id),
                    sh(f.forked_from),
                    f.operator,
                    sh(f.goal_id)
                ),
                &f.reason,
            )
        }
        EventData::BudgetDecided(b) => with_reason(
            format!(
                "goal {}: {} budget ({}) {} by {} (question {})",
                sh(b.goal_id),
                b.budget,
                b.limit.text(),
                b.decision.replace('_', " "),
                b.operator,
                sh(b.question_id)
            ),
            &b.reason,
        ),
        EventData::OutputLate(l) => {
            let claim = l.claim_id.map(|c| format!(" of claim {}", sh(c))).unwrap_or_default();
            format!(
                "{}{claim} arrived after goal {} was cancelled; nobody acts on it",
                sh(l.artifact_id),
                sh(l.goal_id)
            )
        }
    };
    format!("{:<18} {detail}", e.kind().as_str())
}

fn worker_line(claim: ClaimId, agent: &AgentName, seq: u64, pid: Option<u32>) -> String {
    let mut out = format!("claim {} {agent} seq {seq}", sh(claim));
    if let Some(p) = pid {
        out.push_str(&format!(" pid {p}"));
    }
    out
}

/// `line`, then `: <reason>` when there is one.
fn with_reason(mut line: String, reason: &Option<String>) -> String {
    if let Some(r) = reason.as_deref().filter(|r| !r.is_empty()) {
        line.push_str(&format!(": {}", excerpt(r, 120)));
    }
    line
}

/// What the filter needs to know about an event it cannot judge from its own data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The type of this artifact.
    ArtifactType(ArtifactId),
    /// The artifact of this claim.
    ClaimArtifact(ClaimId),
}

/// `watch --type T --agent A`. Learns artifact types and claim → artifact links from the events
/// it sees; the caller fills gaps (events whose subject is older than the replay) from the store.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub artifact_type: Option<String>,
    pub agent: Option<String>,
    types: HashMap<ArtifactId, String>,
    /// `None`: the claim is not known (deleted), so its events match no type.
    claim_artifact: HashMap<ClaimId, Option<ArtifactId>>,
}

impl EventFilter {
    pub fn new(artifact_type: Option<String>, agent: Option<String>) -> Self {
        Self { artifact_type, agent, ..Self::default() }
    }

    pub fn is_noop(&self) -> bool {
        self.artifact_type.is_none() && self.agent.is_none()
    }

    /// Records what `e` teaches (call for every event, matching or not).
    pub fn learn(&mut self, e: &Event) {
        match &e.data {
            EventData::ArtifactCreated(a) => {
                self.types.insert(a.artifact_id, a.artifact_type.clone());
            }
            EventData::ClaimCreated(c) => {
                self.claim_artifact.insert(c.claim_id, Some(c.artifact_id));
            }
            _ => {}
        }
    }

    /// The type of `artifact` (the empty type, matching nothing, when it is not known).
    pub fn insert_type(&mut self, artifact: ArtifactId, t: &str) {
        self.types.insert(artifact, t.to_owned());
    }

    /// The artifact of `claim` (`None` when the claim is not known).
    pub fn insert_claim(&mut self, claim: ClaimId, artifact: Option<ArtifactId>) {
        self.claim_artifact.insert(claim, artifact);
    }

    /// The artifact `e` is about, `Ok(None)` when it is about none.
    fn subject(&self, e: &Event) -> Result<Option<ArtifactId>, Missing> {
        if let EventData::QuestionAnswered(a) = &e.data {
            return Ok(Some(a.question_id));
        }
        if let Some(a) = e.data.artifact_id() {
            return Ok(Some(a));
        }
        let Some(claim) = e.data.claim_id() else { return Ok(None) };
        self.claim_artifact.get(&claim).copied().ok_or(Missing::ClaimArtifact(claim))
    }

    /// Whether `e` passes; `Err` names what must be looked up first. Events with no artifact
    /// at all (instance start/stop) never match a `--type` filter.
    pub fn check(&self, e: &Event) -> Result<bool, Missing> {
        if let Some(agent) = &self.agent
            && !names_agent(&e.data, agent)
        {
            return Ok(false);
        }
        let Some(want) = &self.artifact_type else {
            return Ok(true);
        };
        if let EventData::ArtifactCreated(a) = &e.data {
            return Ok(&a.artifact_type == want);
        }
        let Some(subject) = self.subject(e)? else {
            return Ok(false);
        };
        match self.types.get(&subject) {
            Some(t) => Ok(t == want),
            None => Err(Missing::ArtifactType(subject)),
        }
    }
}

/// Whether `agent` is the event's agent, the artifact's producer or the answer's author, among
/// the agents that did not bid, or among those whose standing bids a claim was created with.
fn names_agent(data: &EventData, agent: &str) -> bool {
    match data {
        EventData::ArtifactCreated(a) => a.produced_by_role == agent || a.answered_by.as_deref() == Some(agent),
        EventData::QuestionAnswered(a) => a.answered_by == agent,
        EventData::BidsMissing(m) => m.agents.iter().any(|a| a.as_str() == agent),
        // A rework claim's assignee, or an agent whose standing bid it was created with.
        EventData::ClaimCreated(c) => {
            c.agent.as_ref().is_some_and(|a| a.as_str() == agent) || c.standing_bids.keys().any(|a| a.as_str() == agent)
        }
        other => other.agent().is_some_and(|a| a.as_str() == agent),
    }
}

fn level_name(v: &serde_json::Value) -> String {
    match v.as_i64() {
        Some(..=10) => "TRACE".into(),
        Some(11..=20) => "DEBUG".into(),
        Some(21..=30) => "INFO".into(),
        Some(31..=40) => "WARN".into(),
        Some(41..=50) => "ERROR".into(),
        Some(_) => "FATAL".into(),
        None => v.as_str().unwrap_or("?").to_uppercase(),
    }
}

/// Bunyan bookkeeping fields that add nothing on a human line.
const LOG_NOISE: &[&str] = &["v", "name", "msg", "time", "level", "hostname", "pid", "target", "line", "file"];

/// One human line for a bunyan JSON log line: `time LEVEL msg key=value …`. Anything that is not
/// a JSON object is returned unchanged.
pub fn log_line(raw: &str) -> String {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(raw) else {
        return raw.to_owned();
    };
    let time = m.get("time").and_then(|t| t.as_str()).unwrap_or("");
    let level = m.get("level").map(level_name).unwrap_or_default();
    let msg = m.get("msg").and_then(|t| t.as_str()).unwrap_or("");
    let mut out = format!("{time} {level:<5} {msg}");
    for (k, v) in &m {
        if LOG_NOISE.contains(&k.as_str()) {
            continue;
        }
        match v {
            serde_json::Value::String(x) => out.push_str(&format!(" {k}={x}")),
            other => out.push_str(&format!(" {k}={other}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sett_core::event::EventKind;

    use super::*;

    const A: &str = "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d";
    const C: &str = "0190c2b5-0000-7a1b-9c2d-3e4f5a6b7c8d";

    fn ev(kind: EventKind, data: serde_json::Value) -> Event {
        Event { id: "1-0".into(), ts_ms: 0, data: EventData::from_json(kind, &data.to_string()).unwrap() }
    }

    fn a(s: &str) -> ArtifactId {
        ArtifactId::parse(s).unwrap()
    }

    #[test]
    fn lines_name_the_interesting_fields() {
        let e = ev(
            EventKind::ArtifactCreated,
            json!({"artifact_id": A, "logical_id": A, "type": "GoalDefined", "structural_type": "Standard", "version": 1, "produced_by_role": "user", "source_artifacts": [], "summary": "a goal\nmore"}),
        );
        assert_eq!(event_line(&e), "artifact_created   0190c2b4-7d3e GoalDefined (Standard) v1 by user — a goal …");
        let e = ev(EventKind::ClaimTerminated, json!({"claim_id": C, "artifact_id": A, "reason": "review rejected"}));
        assert_eq!(event_line(&e), "claim_terminated   claim 0190c2b5-0000 on 0190c2b4-7d3e: review rejected");
        let e = ev(
            EventKind::ClaimGranted,
            json!({"claim_id": C, "artifact_id": A, "agent": "Coder", "claim_type": "exclusive", "seq": 2, "via_worker": true}),
        );
        assert!(event_line(&e).ends_with("claim 0190c2b5-0000 → Coder (exclusive, seq 2, worker)"));
        let e = ev(
            EventKind::QuestionAnswered,
            json!({"question_id": A, "artifact_id": A, "answered_by": "alice", "answer_id": C, "timed_out": false}),
        );
        assert!(event_line(&e).ends_with("question 0190c2b4-7d3e answered by alice with 0190c2b5-0000"));
    }

    #[test]
    fn filters_by_agent_and_type() {
        let created = ev(
            EventKind::ArtifactCreated,
            json!({"artifact_id": A, "logical_id": A, "version": 1, "structural_type": "Standard", "type": "Code", "produced_by_role": "Coder"}),
        );
        let claim =
            ev(EventKind::ClaimCreated, json!({"claim_id": C, "artifact_id": A, "status": "pending_consensus"}));
        let bid = ev(EventKind::BidSubmitted, json!({"claim_id": C, "agent": "Rev", "bid": "review"}));
        let mut f = EventFilter::new(Some("Code".into()), None);
        assert_eq!(f.check(&bid), Err(Missing::ClaimArtifact(ClaimId::parse(C).unwrap())));
        assert_eq!(f.check(&claim), Err(Missing::ArtifactType(a(A))));
        f.learn(&created);
        f.learn(&claim);
        assert_eq!(f.check(&created), Ok(true));
        assert_eq!(f.check(&bid), Ok(true));
        f.insert_type(a(A), "Other");
        assert_eq!(f.check(&bid), Ok(false));
        let started = ev(EventKind::InstanceStarted, json!({"run_id": "r", "host": "h", "pid": 1}));
        assert_eq!(f.check(&started), Ok(false));

        let by_agent = EventFilter::new(None, Some("Rev".into()));
        assert_eq!(by_agent.check(&bid), Ok(true));
        let with_standing = ev(
            EventKind::ClaimCreated,
            json!({"claim_id": C, "artifact_id": A, "status": "pending_exclusive", "standing_bids": {"Rev": "review"}}),
        );
        assert_eq!(by_agent.check(&with_standing), Ok(true));
        assert_eq!(by_agent.check(&claim), Ok(false));
        assert!(
            event_line(&with_standing).ends_with("pending_exclusive, standing bids: Rev review"),
            "{}",
            event_line(&with_standing)
        );
        assert_eq!(by_agent.check(&created), Ok(false));
        let missing = ev(EventKind::BidsMissing, json!({"claim_id": C, "artifact_id": A, "agents": ["Rev"]}));
        assert_eq!(by_agent.check(&missing), Ok(true));
        assert!(EventFilter::default().is_noop());
    }

    #[test]
    fn log_lines() {
        let raw = r#"{"v":0,"name":"sett","msg":"claim granted","level":30,"hostname":"h","pid":1,"time":"2026-01-01T00:00:00Z","claim_id":"c1","seq":2}"#;
        assert_eq!(log_line(raw), "2026-01-01T00:00:00Z INFO  claim granted claim_id=c1 seq=2");
        assert_eq!(log_line("not json"), "not json");
        assert!(log_line(r#"{"level":50,"msg":"x"}"#).contains("ERROR x"));
    }
}
