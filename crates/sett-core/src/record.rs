//! Records the daemons leave on the blackboard beside the claims and artifacts: a component's
//! health record (who runs, where, last heartbeat), the record of a grant taken for execution,
//! and the names components register under. Plain data; sett-store reads and writes them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::AgentName;

/// The component name of the orchestrator.
pub const ORCHESTRATOR_COMPONENT: &str = "orchestrator";

const CUB_PREFIX: &str = "cub:";

/// The component name (and event-stream consumer group) of `agent`'s cub: `cub:<agent>`.
pub fn cub_component(agent: impl fmt::Display) -> String {
    format!("{CUB_PREFIX}{agent}")
}

/// The agent of a cub's component name (`cub:<agent>` → `<agent>`); `None` for the others.
pub fn cub_agent(component: &str) -> Option<&str> {
    component.strip_prefix(CUB_PREFIX)
}

/// A component's health record (`components` hash): every field is optional when read, as a
/// record written by hand or by an older version may lack any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    /// The health server's address (`/healthz`, `/readyz`, `/metrics`).
    #[serde(default)]
    pub addr: Option<String>,
    /// A cub's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<i64>,
    /// The orchestrator's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The orchestrator's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// A cub's standing bid: the terms of its agent's static bid
    /// ([`crate::config::AgentConfig::standing_bid_terms`]), offered while its heartbeat is
    /// fresh; the orchestrator records the bid for it when a claim is created (design.md §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing_bid: Option<String>,
    /// The orchestrator's: it records the standing bids cubs offer, so they need not bid on a
    /// new artifact themselves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub records_standing_bids: bool,
    /// The orchestrator's: its claim writes ring the bell of each cub they grant to, and every
    /// cub's bell when a claim waits for bids (sett-store presence.rs), so a cub whose standing
    /// bid it records may wait on its bell instead of reading every event as it comes. False
    /// when its Redis user may not publish to the instance's channels.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rings_bells: bool,
}

/// Who took grant `(claim, seq)` for execution, and when (`executions` hash). Unique to one
/// attempt (pid and time), so a retried take recognises its own record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    #[serde(default)]
    pub agent: Option<AgentName>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub taken_at_ms: i64,
    /// Microseconds, so benchmarks can time artifact → grant taken below the millisecond.
    #[serde(default)]
    pub taken_at_us: u64,
    /// True when a controller's worker took it.
    #[serde(default)]
    pub worker: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cub_names() {
        let a = AgentName::parse("Coder").unwrap();
        assert_eq!(cub_component(&a), "cub:Coder");
        assert_eq!(cub_agent("cub:Coder"), Some("Coder"));
        assert_eq!(cub_agent(ORCHESTRATOR_COMPONENT), None);
    }

    /// The records as the daemons wrote them before they were typed (`json!`, sorted keys).
    #[test]
    fn records_keep_their_stored_form() {
        let cub = ComponentRecord {
            addr: Some("127.0.0.1:9".into()),
            agent: Some(AgentName::parse("Coder").unwrap()),
            heartbeat_ms: Some(5),
            pid: Some(7),
            started_at_ms: Some(1),
            ..ComponentRecord::default()
        };
        assert_eq!(
            serde_json::to_string(&cub).unwrap(),
            serde_json::json!({"pid": 7, "agent": "Coder", "addr": "127.0.0.1:9", "started_at_ms": 1, "heartbeat_ms": 5})
                .to_string()
        );
        let orchestrator = ComponentRecord {
            addr: None,
            host: Some("h".into()),
            heartbeat_ms: Some(5),
            pid: Some(7),
            run_id: Some("r".into()),
            started_at_ms: Some(1),
            ..ComponentRecord::default()
        };
        assert_eq!(
            serde_json::to_string(&orchestrator).unwrap(),
            serde_json::json!({"pid": 7, "host": "h", "addr": null, "run_id": "r", "started_at_ms": 1, "heartbeat_ms": 5})
                .to_string()
        );
        let taken = ExecutionRecord {
            agent: Some(AgentName::parse("Coder").unwrap()),
            pid: Some(7),
            worker: true,
            taken_at_ms: 3,
            taken_at_us: 3001,
        };
        assert_eq!(
            serde_json::to_string(&taken).unwrap(),
            serde_json::json!({"agent": "Coder", "pid": 7, "worker": true, "taken_at_ms": 3, "taken_at_us": 3001})
                .to_string()
        );
        // Read back whatever a hand-written record holds.
        let sparse: ComponentRecord = serde_json::from_str(r#"{"pid":1,"heartbeat_ms":2}"#).unwrap();
        assert_eq!((sparse.pid, sparse.heartbeat_ms, sparse.addr), (Some(1), Some(2), None));
        assert_eq!(serde_json::from_str::<ExecutionRecord>(r#"{"pid":1}"#).unwrap().pid, Some(1));
    }
}
