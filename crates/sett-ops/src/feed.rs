//! Human rendering and filtering of what operators follow: ledger events (`sett watch`,
//! `sett forage --watch`) and the daemons' bunyan JSON log lines (`sett logs`). Pure functions
//! returning strings; the CLI prints them.

use std::collections::HashMap;

use sett_core::event::{Event, EventKind};

/// An id's display form: the first 13 characters (`0190c2b4-7d3e`, the creation millisecond of a
/// UUID v7, itself a valid short id); other strings unchanged. Eight characters are not enough:
/// v7 ids created within the same minute share them.
pub fn short(id: &str) -> &str {
    if id.len() == 36 && id.as_bytes()[8] == b'-' { &id[..13] } else { id }
}

fn s<'e>(e: &'e Event, f: &str) -> &'e str {
    e.field(f).unwrap_or("?")
}

fn sh<'e>(e: &'e Event, f: &str) -> &'e str {
    short(s(e, f))
}

fn list(e: &Event, f: &str) -> Vec<String> {
    e.data
        .get(f)
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).map(|v| short(v).to_owned()).collect())
        .unwrap_or_default()
}

fn num(e: &Event, f: &str) -> Option<i64> {
    e.data.get(f).and_then(serde_json::Value::as_i64)
}

/// One line describing an event, without its time: the kind, then the interesting fields.
pub fn event_line(e: &Event) -> String {
    let detail = match e.kind {
        EventKind::ArtifactCreated => {
            let mut out = format!(
                "{} {} ({}) v{} by {}",
                sh(e, "artifact_id"),
                s(e, "type"),
                s(e, "structural_type"),
                num(e, "version").unwrap_or(1),
                s(e, "produced_by_role")
            );
            if let Some(c) = e.field("claim_id") {
                out.push_str(&format!(" claim {}", short(c)));
            }
            let sources = list(e, "source_artifacts");
            if !sources.is_empty() {
                out.push_str(&format!(" from {}", sources.join(",")));
            }
            if let Some(sum) = e.field("summary").filter(|x| !x.is_empty()) {
                out.push_str(&format!(" — {}", excerpt(sum, 80)));
            }
            out
        }
        EventKind::ClaimCreated => {
            let mut out = format!("claim {} on {} {}", sh(e, "claim_id"), sh(e, "artifact_id"), s(e, "status"));
            if let Some(r) = e.field("rework_of") {
                out.push_str(&format!(" rework of {}", short(r)));
            }
            if let Some(a) = e.field("agent") {
                out.push_str(&format!(" for {a}"));
            }
            out
        }
        EventKind::BidSubmitted => format!("claim {} {} bids {}", sh(e, "claim_id"), s(e, "agent"), s(e, "bid")),
        EventKind::BidsMissing => format!("claim {} no bid from {}", sh(e, "claim_id"), list(e, "agents").join(", ")),
        EventKind::ClaimGranted => {
            let worker = if e.data.get("via_worker").and_then(|v| v.as_bool()) == Some(true) { ", worker" } else { "" };
            format!(
                "claim {} → {} ({}, seq {}{worker})",
                sh(e, "claim_id"),
                s(e, "agent"),
                s(e, "claim_type"),
                num(e, "seq").unwrap_or(0)
            )
        }
        EventKind::ClaimUpdated => {
            format!("claim {} {} → {}", sh(e, "claim_id"), s(e, "previous_status"), s(e, "status"))
        }
        EventKind::ClaimCompleted | EventKind::ClaimTerminated | EventKind::ClaimDormant => {
            let mut out = format!("claim {} on {}", sh(e, "claim_id"), sh(e, "artifact_id"));
            if let Some(o) = e.field("outcome_artifact") {
                out.push_str(&format!(" outcome {}", short(o)));
            }
            if let Some(r) = e.field("reason").filter(|r| !r.is_empty()) {
                out.push_str(&format!(": {}", excerpt(r, 120)));
            }
            out
        }
        EventKind::QuestionAsked => {
            format!("question {} by {} on claim {}", sh(e, "artifact_id"), s(e, "agent"), sh(e, "claim_id"))
        }
        EventKind::QuestionAnswered => {
            let timed_out =
                if e.data.get("timed_out").and_then(|v| v.as_bool()) == Some(true) { " (timed out)" } else { "" };
            format!(
                "question {} answered by {} with {}{timed_out}",
                sh(e, "question_id"),
                s(e, "answered_by"),
                sh(e, "answer_id")
            )
        }
        EventKind::QuestionTimedOut => {
            format!(
                "question {} on claim {} timed out (policy {})",
                sh(e, "question_id"),
                sh(e, "claim_id"),
                s(e, "policy")
            )
        }
        EventKind::WorkerLaunched | EventKind::WorkerExited => {
            let mut out = format!("claim {} {} seq {}", sh(e, "claim_id"), s(e, "agent"), num(e, "seq").unwrap_or(0));
            if let Some(p) = num(e, "pid") {
                out.push_str(&format!(" pid {p}"));
            }
            if let Some(c) = num(e, "exit_code") {
                out.push_str(&format!(" exit {c}"));
            }
            out
        }
        EventKind::InstanceStarted | EventKind::InstanceStopped => {
            format!("run {}", s(e, "run_id"))
        }
    };
    format!("{:<18} {detail}", e.kind.as_str())
}

/// The first line of `text`, cut to `max` characters.
pub fn excerpt(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let multi = text.trim().lines().nth(1).is_some();
    if first.chars().count() > max {
        format!("{}…", first.chars().take(max.saturating_sub(1)).collect::<String>())
    } else if multi {
        format!("{first} …")
    } else {
        first.to_owned()
    }
}

/// What the filter needs to know about an event it cannot judge from its own data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The type of this artifact.
    ArtifactType(String),
    /// The artifact of this claim.
    ClaimArtifact(String),
}

/// `watch --type T --agent A`. Learns artifact types and claim → artifact links from the events
/// it sees; the caller fills gaps (events whose subject is older than the replay) from the store.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub artifact_type: Option<String>,
    pub agent: Option<String>,
    types: HashMap<String, String>,
    claim_artifact: HashMap<String, String>,
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
        match e.kind {
            EventKind::ArtifactCreated => {
                if let (Some(id), Some(t)) = (e.field("artifact_id"), e.field("type")) {
                    self.types.insert(id.to_owned(), t.to_owned());
                }
            }
            EventKind::ClaimCreated => {
                if let (Some(c), Some(a)) = (e.field("claim_id"), e.field("artifact_id")) {
                    self.claim_artifact.insert(c.to_owned(), a.to_owned());
                }
            }
            _ => {}
        }
    }

    pub fn insert_type(&mut self, artifact: &str, t: &str) {
        self.types.insert(artifact.to_owned(), t.to_owned());
    }

    pub fn insert_claim(&mut self, claim: &str, artifact: &str) {
        self.claim_artifact.insert(claim.to_owned(), artifact.to_owned());
    }

    fn subject(&self, e: &Event) -> Result<String, Missing> {
        if e.kind == EventKind::QuestionAnswered {
            return e.field("question_id").map(str::to_owned).ok_or(Missing::ArtifactType(String::new()));
        }
        if let Some(a) = e.field("artifact_id") {
            return Ok(a.to_owned());
        }
        let claim = e.field("claim_id").ok_or(Missing::ArtifactType(String::new()))?;
        self.claim_artifact.get(claim).cloned().ok_or_else(|| Missing::ClaimArtifact(claim.to_owned()))
    }

    /// Whether `e` passes; `Err` names what must be looked up first. Events with no artifact
    /// at all (instance start/stop) never match a `--type` filter.
    pub fn check(&self, e: &Event) -> Result<bool, Missing> {
        if let Some(agent) = &self.agent {
            let direct =
                ["agent", "produced_by_role", "answered_by"].iter().any(|f| e.field(f) == Some(agent.as_str()));
            let listed = e
                .data
                .get("agents")
                .and_then(|v| v.as_array())
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(agent)));
            if !direct && !listed {
                return Ok(false);
            }
        }
        let Some(want) = &self.artifact_type else {
            return Ok(true);
        };
        if e.kind == EventKind::ArtifactCreated {
            return Ok(e.field("type") == Some(want.as_str()));
        }
        let subject = match self.subject(e) {
            Ok(s) => s,
            Err(Missing::ArtifactType(_)) => return Ok(false),
            Err(m) => return Err(m),
        };
        match self.types.get(&subject) {
            Some(t) => Ok(t == want),
            None => Err(Missing::ArtifactType(subject)),
        }
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
    use super::*;
    use serde_json::json;

    const A: &str = "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d";
    const C: &str = "0190c2b5-0000-7a1b-9c2d-3e4f5a6b7c8d";

    fn ev(kind: EventKind, data: serde_json::Value) -> Event {
        Event { id: "1-0".into(), kind, ts_ms: 0, data }
    }

    #[test]
    fn lines_name_the_interesting_fields() {
        let e = ev(
            EventKind::ArtifactCreated,
            json!({"artifact_id": A, "type": "GoalDefined", "structural_type": "Standard", "version": 1, "produced_by_role": "user", "source_artifacts": [], "summary": "a goal\nmore"}),
        );
        assert_eq!(event_line(&e), "artifact_created   0190c2b4-7d3e GoalDefined (Standard) v1 by user — a goal …");
        let e = ev(EventKind::ClaimTerminated, json!({"claim_id": C, "artifact_id": A, "reason": "review rejected"}));
        assert_eq!(event_line(&e), "claim_terminated   claim 0190c2b5-0000 on 0190c2b4-7d3e: review rejected");
        let e = ev(
            EventKind::ClaimGranted,
            json!({"claim_id": C, "agent": "Coder", "claim_type": "exclusive", "seq": 2, "via_worker": true}),
        );
        assert!(event_line(&e).ends_with("claim 0190c2b5-0000 → Coder (exclusive, seq 2, worker)"));
        let e = ev(
            EventKind::QuestionAnswered,
            json!({"question_id": A, "answered_by": "alice", "answer_id": C, "timed_out": false}),
        );
        assert!(event_line(&e).ends_with("question 0190c2b4-7d3e answered by alice with 0190c2b5-0000"));
    }

    #[test]
    fn filters_by_agent_and_type() {
        let created =
            ev(EventKind::ArtifactCreated, json!({"artifact_id": A, "type": "Code", "produced_by_role": "Coder"}));
        let claim = ev(EventKind::ClaimCreated, json!({"claim_id": C, "artifact_id": A}));
        let bid = ev(EventKind::BidSubmitted, json!({"claim_id": C, "agent": "Rev", "bid": "review"}));
        let mut f = EventFilter::new(Some("Code".into()), None);
        assert_eq!(f.check(&bid), Err(Missing::ClaimArtifact(C.into())));
        assert_eq!(f.check(&claim), Err(Missing::ArtifactType(A.into())));
        f.learn(&created);
        f.learn(&claim);
        assert_eq!(f.check(&created), Ok(true));
        assert_eq!(f.check(&bid), Ok(true));
        f.insert_type(A, "Other");
        assert_eq!(f.check(&bid), Ok(false));
        let started = ev(EventKind::InstanceStarted, json!({"run_id": "r"}));
        assert_eq!(f.check(&started), Ok(false));

        let by_agent = EventFilter::new(None, Some("Rev".into()));
        assert_eq!(by_agent.check(&bid), Ok(true));
        assert_eq!(by_agent.check(&created), Ok(false));
        let missing = ev(EventKind::BidsMissing, json!({"claim_id": C, "agents": ["Rev"]}));
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

    #[test]
    fn excerpts_and_short_ids() {
        assert_eq!(excerpt("abcdef", 4), "abc…");
        assert_eq!(short(A), "0190c2b4-7d3e");
        assert_eq!(short("user"), "user");
    }
}
