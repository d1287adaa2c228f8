//! The audit ledger's event model. Every state change on the blackboard appends one event to the
//! instance's event stream in the same atomic step; `watch` replays them and daemons consume them.
//!
//! Each [`EventKind`] has one payload struct and one [`EventData`] variant. The payload's JSON
//! text (the stream entry's `data` field) is hashed into the ledger (`ledger::event_digest`),
//! so it must stay byte for byte what earlier versions wrote: fields are declared in byte order
//! of their names (the order `serde_json::Value` objects serialise in, which is how the payloads
//! were built before they were typed), optional fields are written as `null` unless they were
//! left out before, and the tests below pin every kind's text. Reading accepts what every
//! earlier version wrote (fields added later are optional, `seq` may be a string).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::approval::Decision;
use crate::artifact::{Artifact, StructuralType};
use crate::claim::{BidType, Claim, ClaimStatus, ClaimType};
use crate::ids::{AgentName, ArtifactId, ClaimId};
use crate::policy::TimeoutPolicy;

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
    QuestionReminded,
    QuestionEscalated,
    WorkerLaunched,
    WorkerExited,
    InstanceStarted,
    InstanceStopped,
    WorkflowCancelled,
    OutputLate,
    Paused,
    Resumed,
    WorkflowRetried,
    ArtifactForked,
    BudgetDecided,
}

impl EventKind {
    pub const ALL: [EventKind; 25] = [
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
        Self::QuestionReminded,
        Self::QuestionEscalated,
        Self::WorkerLaunched,
        Self::WorkerExited,
        Self::InstanceStarted,
        Self::InstanceStopped,
        Self::WorkflowCancelled,
        Self::OutputLate,
        Self::Paused,
        Self::Resumed,
        Self::WorkflowRetried,
        Self::ArtifactForked,
        Self::BudgetDecided,
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
            Self::QuestionReminded => "question_reminded",
            Self::QuestionEscalated => "question_escalated",
            Self::WorkerLaunched => "worker_launched",
            Self::WorkerExited => "worker_exited",
            Self::InstanceStarted => "instance_started",
            Self::InstanceStopped => "instance_stopped",
            Self::WorkflowCancelled => "workflow_cancelled",
            Self::OutputLate => "output_late",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::WorkflowRetried => "workflow_retried",
            Self::ArtifactForked => "artifact_forked",
            Self::BudgetDecided => "budget_decided",
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

/// A grant's `seq`: written as a JSON number, also read from a decimal string.
fn seq_number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(u64),
        String(String),
    }
    match NumberOrString::deserialize(d)? {
        NumberOrString::Number(n) => Ok(n),
        NumberOrString::String(s) => s.parse().map_err(|_| de::Error::custom(format!("seq '{s}' is not a number"))),
    }
}

/// `artifact_created`: an artifact was written (copies of its immutable fields but the payload,
/// and its ledger hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactCreated {
    /// Absent in events written before answers were recorded on artifacts.
    #[serde(default)]
    pub answered_by: Option<String>,
    pub artifact_id: ArtifactId,
    #[serde(default)]
    pub claim_id: Option<ClaimId>,
    /// The artifact's ledger hash; absent in events written before the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub logical_id: ArtifactId,
    pub produced_by_role: String,
    #[serde(default)]
    pub source_artifacts: Vec<ArtifactId>,
    pub structural_type: StructuralType,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(rename = "type")]
    pub artifact_type: String,
    pub version: u32,
}

impl ArtifactCreated {
    /// The event of writing `a` with ledger hash `hash`.
    pub fn new(a: &Artifact, hash: &str) -> Self {
        Self {
            answered_by: a.answered_by.clone(),
            artifact_id: a.id,
            claim_id: a.claim_id,
            hash: Some(hash.to_owned()),
            logical_id: a.logical_id,
            produced_by_role: a.produced_by_role.clone(),
            source_artifacts: a.source_artifacts.clone(),
            structural_type: a.structural_type,
            summary: a.summary.clone(),
            timed_out: a.timed_out,
            artifact_type: a.artifact_type.clone(),
            version: a.version,
        }
    }
}

/// `claim_created`: a claim (initial, or a rework claim assigned to `agent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCreated {
    /// The agent a rework claim is assigned to.
    #[serde(default)]
    pub agent: Option<AgentName>,
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    #[serde(default)]
    pub rework_of: Option<ClaimId>,
    /// The standing bids of live cubs (design.md §5) the orchestrator recorded with the claim's
    /// creation, by agent. Absent when none were (and in events written before issue 29, when
    /// each had its own `bid_submitted` marked `standing`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub standing_bids: std::collections::BTreeMap<AgentName, BidType>,
    pub status: ClaimStatus,
}

impl ClaimCreated {
    pub fn new(c: &Claim) -> Self {
        Self {
            agent: c.assigned_agent.clone(),
            artifact_id: c.artifact_id,
            claim_id: c.id,
            rework_of: c.rework_of,
            standing_bids: Default::default(),
            status: c.status,
        }
    }
}

/// `bid_submitted`: one agent's bid on a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidSubmitted {
    pub agent: AgentName,
    pub bid: BidType,
    pub claim_id: ClaimId,
    /// Recorded by the orchestrator, with the claim's creation, from the standing bid the
    /// agent's live cub offers, rather than submitted by the cub on this claim: written before
    /// issue 29 only; standing bids are now listed by the claim's `claim_created`
    /// ([`ClaimCreated::standing_bids`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standing: bool,
}

/// `bids_missing`: agents that did not bid before the bid deadline (counted as `ignore`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidsMissing {
    pub agents: Vec<AgentName>,
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
}

/// `claim_granted`: grant `seq` of a claim to `agent` (run by a worker when `via_worker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimGranted {
    pub agent: AgentName,
    /// The approval question this grant followed (`agents.<name>.approval`); absent for an
    /// ungated grant (and in events written before approvals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ArtifactId>,
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    pub claim_type: ClaimType,
    #[serde(deserialize_with = "seq_number")]
    pub seq: u64,
    #[serde(default)]
    pub via_worker: bool,
}

/// `claim_updated`: a claim's status changed (or, without `artifact_id` and `previous_status`,
/// a write that changed no status: the store records every claim write with an event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_id: Option<ArtifactId>,
    pub claim_id: ClaimId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<ClaimStatus>,
    pub revision: u64,
    pub status: ClaimStatus,
}

impl ClaimUpdated {
    /// The status change `old → new`.
    pub fn transition(old: &Claim, new: &Claim) -> Self {
        Self {
            artifact_id: Some(new.artifact_id),
            claim_id: new.id,
            previous_status: Some(old.status),
            revision: new.revision,
            status: new.status,
        }
    }

    /// A write of `c` that is not a status change.
    pub fn written(c: &Claim) -> Self {
        Self { artifact_id: None, claim_id: c.id, previous_status: None, revision: c.revision, status: c.status }
    }
}

/// `claim_completed`, `claim_terminated` and `claim_dormant`: a claim reached a final status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimEnded {
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    #[serde(default)]
    pub outcome_artifact: Option<ArtifactId>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl ClaimEnded {
    pub fn new(c: &Claim) -> Self {
        Self {
            artifact_id: c.artifact_id,
            claim_id: c.id,
            outcome_artifact: c.outcome_artifact,
            reason: c.termination_reason.clone(),
        }
    }
}

/// `question_asked`: `agent` asked question `question_id` (also `artifact_id`) on a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionAsked {
    pub agent: AgentName,
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    /// `None` when the question never times out.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    pub question_id: ArtifactId,
    /// Who it is addressed to (people and `group:<name>`); absent: anyone may answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
}

/// `question_answered`: written with the answer, in the same atomic step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionAnswered {
    pub answer_id: ArtifactId,
    pub answered_by: String,
    /// The question (as `question_id`).
    pub artifact_id: ArtifactId,
    /// The claim that asked; absent in events written before it was recorded.
    #[serde(default)]
    pub claim_id: Option<ClaimId>,
    /// An approval's decision (absent for any other question).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    pub question_id: ArtifactId,
    /// The hash of the artifact an approval approved or rejected, as the approver was shown it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_hash: Option<String>,
    #[serde(default)]
    pub timed_out: bool,
}

/// `question_timed_out`: a question's deadline passed; `policy` says what followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionTimedOut {
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    pub policy: TimeoutPolicy,
    pub question_id: ArtifactId,
}

/// `question_reminded`: an open question's `humans.remind_every` came round (`reminder` counts
/// from 1); `to` is who it is addressed to now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionReminded {
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    pub question_id: ArtifactId,
    pub reminder: u32,
    #[serde(default)]
    pub to: Vec<String>,
}

/// `question_escalated`: an open question waited `humans.escalate_after`; `added` (of
/// `humans.escalate_to`) joined its addressees, now `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionEscalated {
    pub added: Vec<String>,
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    pub question_id: ArtifactId,
    #[serde(default)]
    pub to: Vec<String>,
}

/// `worker_launched`: a controller grant's worker started (a process, or a container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerLaunched {
    pub agent: AgentName,
    pub claim_id: ClaimId,
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(deserialize_with = "seq_number")]
    pub seq: u64,
}

/// `worker_exited`: a controller grant's worker ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerExited {
    pub agent: AgentName,
    pub claim_id: ClaimId,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(deserialize_with = "seq_number")]
    pub seq: u64,
    pub success: bool,
}

/// `instance_started`: an orchestrator run took the instance over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStarted {
    pub host: String,
    pub pid: u32,
    pub run_id: String,
}

/// `instance_stopped`: the orchestrator run `run_id` stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStopped {
    pub run_id: String,
}

/// `workflow_cancelled`: `operator` cancelled the workflow of goal `goal_id`. Written in the
/// same atomic step that terminated its open `claims` (each with its own `claim_terminated`,
/// after this event) and closed its open `questions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowCancelled {
    pub claims: Vec<ClaimId>,
    pub goal_id: ArtifactId,
    pub operator: String,
    pub questions: Vec<ArtifactId>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `output_late`: an artifact arrived for a claim of a cancelled workflow after the
/// cancellation; it is kept (the ledger loses nothing) and nobody acts on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLate {
    pub artifact_id: ArtifactId,
    #[serde(default)]
    pub claim_id: Option<ClaimId>,
    pub goal_id: ArtifactId,
}

/// `paused`: `operator` stopped granting for the whole instance (`goal_id` null) or for the
/// workflow of `goal_id`. Bids are still collected and running tools finish; deadlines stand
/// still until the matching `resumed`. `action_id` names the record `sett verify` checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    pub action_id: String,
    #[serde(default)]
    pub goal_id: Option<ArtifactId>,
    pub operator: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `resumed`: `operator` lifted the pause of the instance (`goal_id` null) or of one workflow,
/// after `paused_ms`; the deadlines of `claims` moved later by the time they stood still (each
/// claim's own `claim_updated` follows in the same atomic step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    pub action_id: String,
    pub claims: Vec<ClaimId>,
    #[serde(default)]
    pub goal_id: Option<ArtifactId>,
    pub operator: String,
    pub paused_ms: i64,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `workflow_retried`: `operator` gave the failed step of the workflow of `goal_id` a new
/// attempt: claim `claim_id` on the same `artifact_id` as the failed claim `failed_claim`, whose
/// outcome was `failure` (none when nobody bid). The failed claim and its Failure stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRetried {
    pub action_id: String,
    pub artifact_id: ArtifactId,
    pub claim_id: ClaimId,
    pub failed_claim: ClaimId,
    #[serde(default)]
    pub failure: Option<ArtifactId>,
    pub goal_id: ArtifactId,
    pub operator: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `artifact_forked`: `operator` started a branch at `forked_from`: `artifact_id` is its new
/// version (produced by `human:<operator>`), or, for a Question, the different answer; then
/// `claim_id` is the branch's claim that resumes the asking agent with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactForked {
    pub action_id: String,
    pub artifact_id: ArtifactId,
    #[serde(default)]
    pub claim_id: Option<ClaimId>,
    pub forked_from: ArtifactId,
    pub goal_id: ArtifactId,
    pub operator: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `budget_decided`: a budget (`budget`: `workflow` or `agent:<name>`, in period `window`) of
/// the workflow of `goal_id` was reached (`decision: exhausted`: the workflow was paused and
/// `question_id` asked, or, with `on_exhausted: stop`, `stopped` at once), raised by a person
/// (`raised`: `limit` is the new limit), stopped (`stopped`: the workflow was cancelled) or left
/// paused (`left_paused`: nobody answered in time and `on_timeout: pause`). `operator` decided
/// (`budget` for Sett itself); `reason` says it in words; `action_id` names the record `sett
/// verify` checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetDecided {
    pub action_id: String,
    pub budget: String,
    pub decision: String,
    pub goal_id: ArtifactId,
    pub limit: crate::budget::BudgetLimit,
    pub operator: String,
    pub question_id: ArtifactId,
    #[serde(default)]
    pub reason: Option<String>,
    pub window: i64,
}

macro_rules! event_data {
    ($($variant:ident($payload:ty)),+ $(,)?) => {
        /// One event's typed data: the variant is the kind.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum EventData {
            $($variant($payload)),+
        }

        impl EventData {
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Self::$variant(_) => EventKind::$variant),+
                }
            }

            /// The stream entry's `data` text: exactly what is hashed into the ledger.
            pub fn to_json(&self) -> String {
                match self {
                    $(Self::$variant(p) => serde_json::to_string(p)),+
                }
                .expect("event payloads serialise")
            }

            /// Reads the `data` text of an event of `kind`.
            pub fn from_json(kind: EventKind, data: &str) -> Result<Self, serde_json::Error> {
                match kind {
                    $(EventKind::$variant => parse(data).map(Self::$variant)),+
                }
            }

            fn serialize_payload<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Self::$variant(p) => p.serialize(s)),+
                }
            }

            fn from_value(kind: EventKind, data: serde_json::Value) -> Result<Self, serde_json::Error> {
                match kind {
                    $(EventKind::$variant => serde_json::from_value(data).map(Self::$variant)),+
                }
            }
        }
    };
}

event_data!(
    ArtifactCreated(ArtifactCreated),
    ClaimCreated(ClaimCreated),
    BidSubmitted(BidSubmitted),
    BidsMissing(BidsMissing),
    ClaimGranted(ClaimGranted),
    ClaimUpdated(ClaimUpdated),
    ClaimCompleted(ClaimEnded),
    ClaimTerminated(ClaimEnded),
    ClaimDormant(ClaimEnded),
    QuestionAsked(QuestionAsked),
    QuestionAnswered(QuestionAnswered),
    QuestionTimedOut(QuestionTimedOut),
    QuestionReminded(QuestionReminded),
    QuestionEscalated(QuestionEscalated),
    WorkerLaunched(WorkerLaunched),
    WorkerExited(WorkerExited),
    InstanceStarted(InstanceStarted),
    InstanceStopped(InstanceStopped),
    WorkflowCancelled(WorkflowCancelled),
    OutputLate(OutputLate),
    Paused(Paused),
    Resumed(Resumed),
    WorkflowRetried(WorkflowRetried),
    ArtifactForked(ArtifactForked),
    BudgetDecided(BudgetDecided),
);

fn parse<T: DeserializeOwned>(data: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(data)
}

impl Serialize for EventData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_payload(s)
    }
}

impl EventData {
    /// The claim the event is about, if any.
    pub fn claim_id(&self) -> Option<ClaimId> {
        match self {
            Self::ArtifactCreated(e) => e.claim_id,
            Self::QuestionAnswered(e) => e.claim_id,
            Self::ClaimCreated(e) => Some(e.claim_id),
            Self::BidSubmitted(e) => Some(e.claim_id),
            Self::BidsMissing(e) => Some(e.claim_id),
            Self::ClaimGranted(e) => Some(e.claim_id),
            Self::ClaimUpdated(e) => Some(e.claim_id),
            Self::ClaimCompleted(e) | Self::ClaimTerminated(e) | Self::ClaimDormant(e) => Some(e.claim_id),
            Self::QuestionAsked(e) => Some(e.claim_id),
            Self::QuestionTimedOut(e) => Some(e.claim_id),
            Self::QuestionReminded(e) => Some(e.claim_id),
            Self::QuestionEscalated(e) => Some(e.claim_id),
            Self::WorkerLaunched(e) => Some(e.claim_id),
            Self::WorkerExited(e) => Some(e.claim_id),
            Self::OutputLate(e) => e.claim_id,
            Self::WorkflowRetried(e) => Some(e.claim_id),
            Self::ArtifactForked(e) => e.claim_id,
            Self::InstanceStarted(_)
            | Self::InstanceStopped(_)
            | Self::WorkflowCancelled(_)
            | Self::Paused(_)
            | Self::Resumed(_)
            | Self::BudgetDecided(_) => None,
        }
    }

    /// The artifact the event is about: the artifact created, the claim's artifact, or the
    /// question asked, answered or timed out.
    pub fn artifact_id(&self) -> Option<ArtifactId> {
        match self {
            Self::ArtifactCreated(e) => Some(e.artifact_id),
            Self::ClaimCreated(e) => Some(e.artifact_id),
            Self::BidsMissing(e) => Some(e.artifact_id),
            Self::ClaimGranted(e) => Some(e.artifact_id),
            Self::ClaimUpdated(e) => e.artifact_id,
            Self::ClaimCompleted(e) | Self::ClaimTerminated(e) | Self::ClaimDormant(e) => Some(e.artifact_id),
            Self::QuestionAsked(e) => Some(e.artifact_id),
            Self::QuestionAnswered(e) => Some(e.artifact_id),
            Self::QuestionTimedOut(e) => Some(e.artifact_id),
            Self::QuestionReminded(e) => Some(e.artifact_id),
            Self::QuestionEscalated(e) => Some(e.artifact_id),
            Self::WorkflowCancelled(e) => Some(e.goal_id),
            Self::OutputLate(e) => Some(e.artifact_id),
            Self::Paused(e) => e.goal_id,
            Self::Resumed(e) => e.goal_id,
            Self::WorkflowRetried(e) => Some(e.artifact_id),
            Self::ArtifactForked(e) => Some(e.artifact_id),
            Self::BudgetDecided(e) => Some(e.goal_id),
            Self::BidSubmitted(_)
            | Self::WorkerLaunched(_)
            | Self::WorkerExited(_)
            | Self::InstanceStarted(_)
            | Self::InstanceStopped(_) => None,
        }
    }

    /// The question the event is about (asked, answered or timed out).
    pub fn question_id(&self) -> Option<ArtifactId> {
        match self {
            Self::QuestionAsked(e) => Some(e.question_id),
            Self::QuestionAnswered(e) => Some(e.question_id),
            Self::QuestionTimedOut(e) => Some(e.question_id),
            Self::QuestionReminded(e) => Some(e.question_id),
            Self::QuestionEscalated(e) => Some(e.question_id),
            _ => None,
        }
    }

    /// The agent the event names (bidder, grantee, asker, worker's agent, rework assignee).
    pub fn agent(&self) -> Option<&AgentName> {
        match self {
            Self::ClaimCreated(e) => e.agent.as_ref(),
            Self::BidSubmitted(e) => Some(&e.agent),
            Self::ClaimGranted(e) => Some(&e.agent),
            Self::QuestionAsked(e) => Some(&e.agent),
            Self::WorkerLaunched(e) => Some(&e.agent),
            Self::WorkerExited(e) => Some(&e.agent),
            _ => None,
        }
    }
}

/// One event as read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The stream entry id (`<ms>-<seq>`): the event's position in the ledger.
    pub id: String,
    pub ts_ms: i64,
    pub data: EventData,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.data.kind()
    }
}

/// As served to scripts (`sett watch -o json`, the console's event stream):
/// `{"id", "kind", "ts_ms", "data"}`.
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("kind", &self.kind())?;
        m.serialize_entry("ts_ms", &self.ts_ms)?;
        m.serialize_entry("data", &self.data)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            id: String,
            kind: EventKind,
            ts_ms: i64,
            data: serde_json::Value,
        }
        let w = Wire::deserialize(d)?;
        let data = EventData::from_value(w.kind, w.data).map_err(de::Error::custom)?;
        Ok(Self { id: w.id, ts_ms: w.ts_ms, data })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const A: &str = "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d";
    const B: &str = "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8e";
    const C: &str = "0190c2b5-0000-7a1b-9c2d-3e4f5a6b7c8d";
    const R: &str = "0190c2b5-0000-7a1b-9c2d-3e4f5a6b7c8e";

    fn a(s: &str) -> ArtifactId {
        ArtifactId::parse(s).unwrap()
    }
    fn c(s: &str) -> ClaimId {
        ClaimId::parse(s).unwrap()
    }
    fn agent(s: &str) -> AgentName {
        AgentName::parse(s).unwrap()
    }

    /// Every kind with its data as the writers built it before the payloads were typed (a
    /// `json!` object, serialised with sorted keys): the typed payload must write the very same
    /// text, or ledgers written before would no longer verify against new writers' events.
    fn every_kind_then_and_now() -> Vec<(EventData, serde_json::Value)> {
        let root = Artifact {
            id: a(A),
            logical_id: a(A),
            version: 1,
            structural_type: StructuralType::Standard,
            artifact_type: "Goal".into(),
            payload: "p".into(),
            source_artifacts: vec![],
            produced_by_role: "user".into(),
            claim_id: None,
            created_at_ms: 1,
            summary: None,
            answered_by: None,
            timed_out: false,
            usage: None,
            forked_from: None,
        };
        let artifact = Artifact {
            id: a(B),
            logical_id: a(A),
            version: 2,
            structural_type: StructuralType::Answer,
            artifact_type: "Answer".into(),
            payload: "yes".into(),
            source_artifacts: vec![a(A)],
            produced_by_role: "human:ann".into(),
            claim_id: Some(c(C)),
            created_at_ms: 7,
            summary: Some("s".into()),
            answered_by: Some("ann".into()),
            timed_out: true,
            usage: None,
            forked_from: None,
        };
        let policy = crate::machine::Policy {
            agents: Default::default(),
            max_review_iterations: 3,
            bid_timeout_ms: 1000,
            on_question_timeout: crate::policy::OnQuestionTimeout::Fail,
            routing: Default::default(),
        };
        let claim = crate::machine::new_claim(c(C), &root, &policy, 5);
        let mut rework = claim.clone();
        rework.rework_of = Some(c(R));
        rework.assigned_agent = Some(agent("Coder"));
        rework.status = ClaimStatus::PendingAssignment;
        let mut ended = claim.clone();
        ended.status = ClaimStatus::Terminated;
        ended.revision = 4;
        ended.termination_reason = Some("review rejected".into());
        ended.outcome_artifact = Some(a(B));
        vec![
            (
                EventData::ArtifactCreated(ArtifactCreated::new(&artifact, "h1")),
                json!({
                    "artifact_id": artifact.id, "logical_id": artifact.logical_id, "version": artifact.version,
                    "structural_type": artifact.structural_type, "type": artifact.artifact_type,
                    "produced_by_role": artifact.produced_by_role, "claim_id": artifact.claim_id,
                    "source_artifacts": artifact.source_artifacts, "summary": artifact.summary,
                    "answered_by": artifact.answered_by, "timed_out": artifact.timed_out, "hash": "h1",
                }),
            ),
            (
                EventData::ArtifactCreated(ArtifactCreated::new(&root, "h0")),
                json!({
                    "artifact_id": root.id, "logical_id": root.logical_id, "version": root.version,
                    "structural_type": root.structural_type, "type": root.artifact_type,
                    "produced_by_role": root.produced_by_role, "claim_id": root.claim_id,
                    "source_artifacts": root.source_artifacts, "summary": root.summary,
                    "answered_by": root.answered_by, "timed_out": root.timed_out, "hash": "h0",
                }),
            ),
            (
                EventData::ClaimCreated(ClaimCreated::new(&claim)),
                json!({"claim_id": claim.id, "artifact_id": claim.artifact_id, "status": claim.status,
                       "rework_of": claim.rework_of, "agent": claim.assigned_agent}),
            ),
            (
                EventData::ClaimCreated(ClaimCreated::new(&rework)),
                json!({"claim_id": rework.id, "artifact_id": rework.artifact_id, "status": rework.status,
                       "rework_of": rework.rework_of, "agent": rework.assigned_agent}),
            ),
            (
                EventData::BidSubmitted(BidSubmitted {
                    agent: agent("Coder"),
                    bid: BidType::Exclusive,
                    claim_id: c(C),
                    standing: false,
                }),
                json!({"claim_id": c(C), "agent": agent("Coder"), "bid": BidType::Exclusive}),
            ),
            (
                EventData::BidsMissing(BidsMissing {
                    agents: vec![agent("Silent"), agent("Slow")],
                    artifact_id: a(A),
                    claim_id: c(C),
                }),
                json!({"claim_id": c(C), "artifact_id": a(A), "agents": [agent("Silent"), agent("Slow")]}),
            ),
            (
                EventData::ClaimGranted(ClaimGranted {
                    agent: agent("Coder"),
                    artifact_id: a(A),
                    claim_id: c(C),
                    claim_type: ClaimType::Rework,
                    seq: 3,
                    via_worker: true,
                    approval: None,
                }),
                json!({"claim_id": c(C), "artifact_id": a(A), "agent": agent("Coder"),
                       "claim_type": ClaimType::Rework, "seq": 3u64, "via_worker": true}),
            ),
            (
                EventData::ClaimUpdated(ClaimUpdated::transition(&claim, &ended)),
                json!({"claim_id": ended.id, "artifact_id": ended.artifact_id, "status": ended.status,
                       "previous_status": claim.status, "revision": ended.revision}),
            ),
            (
                EventData::ClaimUpdated(ClaimUpdated::written(&claim)),
                json!({"claim_id": claim.id, "status": claim.status, "revision": claim.revision}),
            ),
            (
                EventData::ClaimCompleted(ClaimEnded::new(&claim)),
                json!({"claim_id": claim.id, "artifact_id": claim.artifact_id,
                       "reason": claim.termination_reason, "outcome_artifact": claim.outcome_artifact}),
            ),
            (
                EventData::ClaimTerminated(ClaimEnded::new(&ended)),
                json!({"claim_id": ended.id, "artifact_id": ended.artifact_id,
                       "reason": ended.termination_reason, "outcome_artifact": ended.outcome_artifact}),
            ),
            (
                EventData::ClaimDormant(ClaimEnded::new(&claim)),
                json!({"claim_id": claim.id, "artifact_id": claim.artifact_id,
                       "reason": claim.termination_reason, "outcome_artifact": claim.outcome_artifact}),
            ),
            (
                EventData::QuestionAsked(QuestionAsked {
                    agent: agent("Coder"),
                    artifact_id: a(B),
                    claim_id: c(C),
                    deadline_ms: Some(99),
                    question_id: a(B),
                    to: Vec::new(),
                }),
                json!({"claim_id": c(C), "artifact_id": a(B), "question_id": a(B), "agent": agent("Coder"),
                       "deadline_ms": Some(99i64)}),
            ),
            (
                EventData::QuestionAsked(QuestionAsked {
                    agent: agent("Coder"),
                    artifact_id: a(B),
                    claim_id: c(C),
                    deadline_ms: None,
                    question_id: a(B),
                    to: Vec::new(),
                }),
                json!({"claim_id": c(C), "artifact_id": a(B), "question_id": a(B), "agent": agent("Coder"),
                       "deadline_ms": None::<i64>}),
            ),
            (
                EventData::QuestionReminded(QuestionReminded {
                    artifact_id: a(B),
                    claim_id: c(C),
                    question_id: a(B),
                    reminder: 2,
                    to: vec!["alice".into(), "group:legal".into()],
                }),
                json!({"claim_id": c(C), "artifact_id": a(B), "question_id": a(B), "reminder": 2,
                       "to": ["alice", "group:legal"]}),
            ),
            (
                EventData::QuestionEscalated(QuestionEscalated {
                    added: vec!["group:leads".into()],
                    artifact_id: a(B),
                    claim_id: c(C),
                    question_id: a(B),
                    to: vec!["alice".into(), "group:leads".into()],
                }),
                json!({"claim_id": c(C), "artifact_id": a(B), "question_id": a(B), "added": ["group:leads"],
                       "to": ["alice", "group:leads"]}),
            ),
            (
                EventData::QuestionAnswered(QuestionAnswered {
                    answer_id: a(A),
                    answered_by: "ann".into(),
                    artifact_id: a(B),
                    claim_id: Some(c(C)),
                    decision: None,
                    question_id: a(B),
                    target_hash: None,
                    timed_out: false,
                }),
                json!({"question_id": a(B), "answer_id": a(A), "answered_by": "ann", "timed_out": false,
                       "artifact_id": a(B), "claim_id": Some(c(C))}),
            ),
            (
                EventData::QuestionTimedOut(QuestionTimedOut {
                    artifact_id: a(B),
                    claim_id: c(C),
                    policy: TimeoutPolicy::Continue,
                    question_id: a(B),
                }),
                json!({"claim_id": c(C), "artifact_id": a(B), "question_id": a(B), "policy": "continue"}),
            ),
            (
                EventData::QuestionTimedOut(QuestionTimedOut {
                    artifact_id: a(B),
                    claim_id: c(C),
                    policy: TimeoutPolicy::Fail,
                    question_id: a(B),
                }),
                json!({"claim_id": c(C), "artifact_id": a(B), "question_id": a(B), "policy": "fail"}),
            ),
            (
                EventData::WorkerLaunched(WorkerLaunched {
                    agent: agent("Coder"),
                    claim_id: c(C),
                    container: Some("sett-x".into()),
                    pid: Some(42),
                    seq: 2,
                }),
                json!({"claim_id": c(C), "agent": agent("Coder"), "seq": 2u64, "pid": Some(42u32),
                       "container": Some("sett-x")}),
            ),
            (
                EventData::WorkerLaunched(WorkerLaunched {
                    agent: agent("Coder"),
                    claim_id: c(C),
                    container: None,
                    pid: None,
                    seq: 2,
                }),
                json!({"claim_id": c(C), "agent": agent("Coder"), "seq": 2u64, "pid": None::<u32>,
                       "container": None::<String>}),
            ),
            (
                EventData::WorkerExited(WorkerExited {
                    agent: agent("Coder"),
                    claim_id: c(C),
                    pid: Some(42),
                    seq: 2,
                    success: false,
                }),
                json!({"claim_id": c(C), "agent": agent("Coder"), "seq": 2u64, "pid": Some(42u32), "success": false}),
            ),
            (
                EventData::InstanceStarted(InstanceStarted { host: "h".into(), pid: 7, run_id: "r1".into() }),
                json!({"run_id": "r1", "host": "h", "pid": 7u32}),
            ),
            (EventData::InstanceStopped(InstanceStopped { run_id: "r1".into() }), json!({"run_id": "r1"})),
            (
                EventData::WorkflowCancelled(WorkflowCancelled {
                    claims: vec![c(C)],
                    goal_id: a(A),
                    operator: "ann".into(),
                    questions: vec![a(B)],
                    reason: Some("wrong goal".into()),
                }),
                json!({"goal_id": a(A), "operator": "ann", "reason": "wrong goal", "claims": [c(C)],
                       "questions": [a(B)]}),
            ),
            (
                EventData::OutputLate(OutputLate { artifact_id: a(B), claim_id: Some(c(C)), goal_id: a(A) }),
                json!({"artifact_id": a(B), "claim_id": c(C), "goal_id": a(A)}),
            ),
            (
                EventData::Paused(Paused { action_id: R.into(), goal_id: None, operator: "ann".into(), reason: None }),
                json!({"action_id": R, "goal_id": null, "operator": "ann", "reason": null}),
            ),
            (
                EventData::Resumed(Resumed {
                    action_id: R.into(),
                    claims: vec![c(C)],
                    goal_id: Some(a(A)),
                    operator: "ann".into(),
                    paused_ms: 5,
                    reason: Some("fixed".into()),
                }),
                json!({"action_id": R, "claims": [c(C)], "goal_id": a(A), "operator": "ann", "paused_ms": 5,
                       "reason": "fixed"}),
            ),
            (
                EventData::WorkflowRetried(WorkflowRetried {
                    action_id: R.into(),
                    artifact_id: a(A),
                    claim_id: c(R),
                    failed_claim: c(C),
                    failure: Some(a(B)),
                    goal_id: a(A),
                    operator: "ann".into(),
                    reason: None,
                }),
                json!({"action_id": R, "artifact_id": a(A), "claim_id": c(R), "failed_claim": c(C),
                       "failure": a(B), "goal_id": a(A), "operator": "ann", "reason": null}),
            ),
            (
                EventData::ArtifactForked(ArtifactForked {
                    action_id: R.into(),
                    artifact_id: a(B),
                    claim_id: None,
                    forked_from: a(A),
                    goal_id: a(A),
                    operator: "ann".into(),
                    reason: None,
                }),
                json!({"action_id": R, "artifact_id": a(B), "claim_id": null, "forked_from": a(A),
                       "goal_id": a(A), "operator": "ann", "reason": null}),
            ),
            (
                EventData::BudgetDecided(BudgetDecided {
                    action_id: R.into(),
                    budget: "workflow".into(),
                    decision: "raised".into(),
                    goal_id: a(A),
                    limit: crate::budget::BudgetLimit {
                        cost: Some(crate::budget::parse_cost("7.5 USD").unwrap()),
                        tokens: Some(9),
                    },
                    operator: "ann".into(),
                    question_id: a(B),
                    reason: Some("raised".into()),
                    window: 0,
                }),
                json!({"action_id": R, "budget": "workflow", "decision": "raised", "goal_id": a(A),
                       "limit": {"cost": {"amount": "7.5", "currency": "USD"}, "tokens": 9}, "operator": "ann",
                       "question_id": a(B), "reason": "raised", "window": 0}),
            ),
        ]
    }

    #[test]
    fn every_kind_writes_the_text_it_wrote_before_it_was_typed() {
        let cases = every_kind_then_and_now();
        let kinds: std::collections::HashSet<EventKind> = cases.iter().map(|(d, _)| d.kind()).collect();
        assert_eq!(kinds.len(), EventKind::ALL.len(), "a kind has no pinned form");
        for (data, then) in cases {
            assert_eq!(data.to_json(), then.to_string(), "{}", data.kind());
        }
    }

    /// The exact text of one event, spelled out (a check independent of `json!`'s key order).
    #[test]
    fn a_grant_is_written_as_before() {
        let g = EventData::ClaimGranted(ClaimGranted {
            agent: agent("Coder"),
            artifact_id: a(A),
            claim_id: c(C),
            claim_type: ClaimType::Exclusive,
            seq: 1,
            via_worker: false,
            approval: None,
        });
        assert_eq!(
            g.to_json(),
            format!(
                r#"{{"agent":"Coder","artifact_id":"{A}","claim_id":"{C}","claim_type":"exclusive","seq":1,"via_worker":false}}"#
            )
        );
    }

    #[test]
    fn every_kind_reads_back_what_it_wrote() {
        for (data, _) in every_kind_then_and_now() {
            let back = EventData::from_json(data.kind(), &data.to_json()).unwrap();
            assert_eq!(back, data);
            let event = Event { id: "1-0".into(), ts_ms: 3, data };
            let text = serde_json::to_string(&event).unwrap();
            assert!(text.starts_with(r#"{"id":"1-0","kind":""#), "{text}");
            assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
        }
    }

    #[test]
    fn older_forms_are_still_read() {
        // Before the ledger: no hash; before answers on artifacts: no answered_by/timed_out.
        let old = format!(
            r#"{{"artifact_id":"{A}","logical_id":"{A}","version":1,"structural_type":"Standard","type":"Goal","produced_by_role":"user","claim_id":null,"source_artifacts":[],"summary":null}}"#
        );
        let EventData::ArtifactCreated(e) = EventData::from_json(EventKind::ArtifactCreated, &old).unwrap() else {
            panic!("not an artifact_created")
        };
        assert_eq!((e.hash, e.answered_by, e.timed_out), (None, None, false));
        // A grant's seq as a string.
        let g = format!(r#"{{"agent":"Coder","artifact_id":"{A}","claim_id":"{C}","claim_type":"claim","seq":"4"}}"#);
        let EventData::ClaimGranted(g) = EventData::from_json(EventKind::ClaimGranted, &g).unwrap() else {
            panic!("not a claim_granted")
        };
        assert_eq!((g.seq, g.via_worker), (4, false));
        // An answer recorded before its claim was.
        let q = format!(
            r#"{{"question_id":"{B}","answer_id":"{A}","answered_by":"ann","timed_out":false,"artifact_id":"{B}"}}"#
        );
        assert!(matches!(
            EventData::from_json(EventKind::QuestionAnswered, &q).unwrap(),
            EventData::QuestionAnswered(QuestionAnswered { claim_id: None, .. })
        ));
        // Not an event of its kind.
        assert!(EventData::from_json(EventKind::ClaimGranted, r#"{"claim_id":"bad"}"#).is_err());
        assert!(EventData::from_json(EventKind::InstanceStopped, "{").is_err());
    }

    #[test]
    fn subjects() {
        let e = EventData::QuestionTimedOut(QuestionTimedOut {
            artifact_id: a(B),
            claim_id: c(C),
            policy: TimeoutPolicy::Fail,
            question_id: a(B),
        });
        assert_eq!((e.claim_id(), e.artifact_id(), e.question_id()), (Some(c(C)), Some(a(B)), Some(a(B))));
        let s = EventData::InstanceStopped(InstanceStopped { run_id: "r".into() });
        assert_eq!((s.claim_id(), s.artifact_id(), s.agent()), (None, None, None));
    }
}
