//! The audit ledger's event model. Every state change on the blackboard appends one event to the
//! instance's event stream in the same atomic step; `watch` replays them and daemons consume them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Event kinds, as written in the stream's `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ArtifactCreated,
    ClaimCreated,
    BidSubmitted,
    BidsMissing,
    ClaimGranted,
    ClaimUpdated,
    ClaimCompleted,
    ClaimTerminated,
    ClaimDormant,
    QuestionAsked,
    QuestionAnswered,
    QuestionTimedOut,
    WorkerLaunched,
    WorkerExited,
    InstanceStarted,
    InstanceStopped,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        Self::ArtifactCreated,
        Self::ClaimCreated,
        Self::BidSubmitted,
        Self::BidsMissing,
        Self::ClaimGranted,
        Self::ClaimUpdated,
        Self::ClaimCompleted,
        Self::ClaimTerminated,
        Self::ClaimDormant,
        Self::QuestionAsked,
        Self::QuestionAnswered,
        Self::QuestionTimedOut,
        Self::WorkerLaunched,
        Self::WorkerExited,
        Self::InstanceStarted,
        Self::InstanceStopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ArtifactCreated => "artifact_created",
            Self::ClaimCreated => "claim_created",
            Self::BidSubmitted => "bid_submitted",
            Self::BidsMissing => "bids_missing",
            Self::ClaimGranted => "claim_granted",
            Self::ClaimUpdated => "claim_updated",
            Self::ClaimCompleted => "claim_completed",
            Self::ClaimTerminated => "claim_terminated",
            Self::ClaimDormant => "claim_dormant",
            Self::QuestionAsked => "question_asked",
            Self::QuestionAnswered => "question_answered",
            Self::QuestionTimedOut => "question_timed_out",
            Self::WorkerLaunched => "worker_launched",
            Self::WorkerExited => "worker_exited",
            Self::InstanceStarted => "instance_started",
            Self::InstanceStopped => "instance_stopped",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown event kind '{s}'"))
    }
}

/// One event as read back from the stream. `data` is a JSON object whose fields depend on the
/// kind (ids as canonical strings; `artifact_id`, `claim_id` and `agent` where relevant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The stream entry id (`<ms>-<seq>`): the event's position in the ledger.
    pub id: String,
    pub kind: EventKind,
    pub ts_ms: i64,
    pub data: serde_json::Value,
}

impl Event {
    /// A string field of `data`, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.data.get(name).and_then(|v| v.as_str())
    }
}
