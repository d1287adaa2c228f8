//! What the MCP tools take and return: plain, documented structs whose JSON Schemas the tools
//! advertise (`inputSchema`, `outputSchema`). They are the MCP API, kept apart from the stored
//! records so a change to a record does not silently change what clients see.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sett_core::{Artifact, Claim};
use sett_store::AnswerRecord;

/// The URI of an artifact resource.
pub fn artifact_uri(instance: &str, id: &str) -> String {
    format!("sett://{instance}/artifacts/{id}")
}

/// The URI of the open-questions resource (subscribe to it to be told when a question is
/// asked or answered).
pub fn questions_uri(instance: &str) -> String {
    format!("sett://{instance}/questions")
}

// ----- inputs -----

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ForageInput {
    /// What the agents should achieve, in plain words (the GoalDefined artifact's payload).
    pub goal: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListWorkflowsInput {
    /// At most this many workflows, newest first (default 50).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShowWorkflowInput {
    /// The goal artifact's id (full, or a unique prefix of at least 6 hex digits), as `forage`
    /// returned it.
    pub goal: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetArtifactInput {
    /// The artifact's id (full, or a unique prefix of at least 6 hex digits).
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AnswerInput {
    /// The question's id (full, or a unique prefix), from `list_questions`.
    pub question: String,
    /// The answer as text (at most 64 KiB): free text, or for a question with an `answer_spec`
    /// an option's text or number, or the form's JSON.
    pub answer: Option<String>,
    /// Or the answer as JSON, for a question with an `answer_spec`: an option (`"Postgres"`),
    /// several (`["lint", "test"]`), or the form's object (`{"replicas": 3}`).
    pub json: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CancelInput {
    /// The workflow: its goal's id, or the id (or a unique prefix) of any artifact in it.
    pub workflow: String,
    /// Why: recorded in the ledger with the operator's name.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct VerifyInput {
    /// A head recorded earlier (`<seq>:<hash>`, as `verify` returned it): it must still be in
    /// the chain.
    pub head: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoInput {}

// ----- outputs -----

#[derive(Debug, Serialize, JsonSchema)]
pub struct Started {
    pub instance: String,
    /// The goal artifact's id: the workflow's id for `show_workflow`.
    pub id: String,
    /// The ledger event that recorded the goal.
    pub event_id: String,
    /// The goal as a resource.
    pub uri: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowSummary {
    pub goal_id: String,
    /// The goal's text.
    pub goal: String,
    /// `running`, `waiting_for_human`, `complete` (a Terminal artifact) or `failed`.
    pub state: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The agents that worked on it.
    pub agents: Vec<String>,
    pub artifacts: usize,
    pub claims: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowList {
    pub instance: String,
    /// Workflows in the instance (the list may be cut at `limit`).
    pub total: usize,
    /// Newest first.
    pub workflows: Vec<WorkflowSummary>,
}

/// One artifact (immutable, content-addressed).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ArtifactOut {
    pub id: String,
    /// `sett://<instance>/artifacts/<id>`.
    pub uri: String,
    pub logical_id: String,
    pub version: u32,
    /// `Standard`, `Review`, `Terminal`, `Failure`, `Question` or `Answer`.
    pub structural_type: String,
    #[serde(rename = "type")]
    pub artifact_type: String,
    pub payload: String,
    pub summary: Option<String>,
    /// The agent (or `user`, `human:<name>`, `orchestrator`) that produced it.
    pub produced_by: String,
    pub source_artifacts: Vec<String>,
    pub claim_id: Option<String>,
    pub created_at_ms: i64,
    /// For Answers: who answered.
    pub answered_by: Option<String>,
    /// For Answers: true when the question timed out and the orchestrator answered.
    pub timed_out: bool,
}

impl ArtifactOut {
    pub fn of(instance: &str, a: &Artifact) -> Self {
        Self {
            id: a.id.to_string(),
            uri: artifact_uri(instance, &a.id.to_string()),
            logical_id: a.logical_id.to_string(),
            version: a.version,
            structural_type: a.structural_type.to_string(),
            artifact_type: a.artifact_type.clone(),
            payload: a.payload.clone(),
            summary: a.summary.clone(),
            produced_by: a.produced_by_role.clone(),
            source_artifacts: a.source_artifacts.iter().map(ToString::to_string).collect(),
            claim_id: a.claim_id.map(|c| c.to_string()),
            created_at_ms: a.created_at_ms,
            answered_by: a.answered_by.clone(),
            timed_out: a.timed_out,
        }
    }
}

/// One claim: the work on one artifact.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ClaimOut {
    pub id: String,
    pub artifact_id: String,
    /// e.g. `pending_consensus`, `pending_review`, `pending_exclusive`, `complete`,
    /// `terminated`, `dormant`.
    pub status: String,
    /// The claim whose review sent this one back for rework.
    pub rework_of: Option<String>,
    /// The agents granted in the current phase.
    pub granted: Vec<String>,
    /// Questions its agents are waiting on.
    pub open_questions: Vec<String>,
    pub termination_reason: Option<String>,
    pub outcome_artifact: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl ClaimOut {
    pub fn of(c: &Claim) -> Self {
        Self {
            id: c.id.to_string(),
            artifact_id: c.artifact_id.to_string(),
            status: c.status.to_string(),
            rework_of: c.rework_of.map(|r| r.to_string()),
            granted: c.grants.keys().map(ToString::to_string).collect(),
            open_questions: c.open_questions.keys().map(ToString::to_string).collect(),
            termination_reason: c.termination_reason.clone(),
            outcome_artifact: c.outcome_artifact.map(|a| a.to_string()),
            created_at_ms: c.created_at_ms,
            updated_at_ms: c.updated_at_ms,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowDetail {
    pub instance: String,
    pub goal_id: String,
    pub goal: String,
    /// `running`, `waiting_for_human`, `complete` or `failed`.
    pub state: String,
    /// Oldest first; the goal is first.
    pub artifacts: Vec<ArtifactOut>,
    /// Oldest first.
    pub claims: Vec<ClaimOut>,
}

/// Who answered a question, and when.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AnswerRecordOut {
    pub answer_id: String,
    pub answered_by: String,
    pub answered_at_ms: i64,
    pub timed_out: bool,
}

impl AnswerRecordOut {
    pub fn of(r: &AnswerRecord) -> Self {
        Self {
            answer_id: r.answer_id.to_string(),
            answered_by: r.answered_by.clone(),
            answered_at_ms: r.answered_at_ms,
            timed_out: r.timed_out,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ArtifactDetail {
    pub artifact: ArtifactOut,
    /// The claim that produced it.
    pub claim: Option<ClaimOut>,
    /// For a Question: its answer record, once answered.
    pub answer: Option<AnswerRecordOut>,
    /// For a Question: whether an agent still waits for its answer.
    pub open_question: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct QuestionOut {
    pub id: String,
    /// The shortest prefix telling it apart from the other open questions.
    pub short_id: String,
    pub uri: String,
    /// The asking agent.
    pub agent: String,
    pub claim_id: Option<String>,
    pub asked_at_ms: i64,
    pub age_ms: i64,
    /// When it times out (`on_question_timeout` then applies); none: it never does.
    pub deadline_ms: Option<i64>,
    pub time_left_ms: Option<i64>,
    /// The question's text.
    pub question: String,
    /// What answer it wants, when it says (options, or a form as a JSON Schema subset; see
    /// docs/human-in-the-loop.md): answer with one of the options or a matching `json`.
    pub answer_spec: Option<serde_json::Value>,
    /// The Question's payload as stored (a structured question's canonical JSON).
    pub text: String,
    /// What it is for: `question` (an agent's) or `approval` (a gated agent waits for a
    /// person's yes: answer with json {"decision": "approve"|"reject", "reason": "…"}).
    pub kind: String,
    /// For an approval: what is to be approved (agent, claim_id, claim_type, target and
    /// context, each with the content hash a decision binds).
    pub approval: Option<serde_json::Value>,
    /// The workflow's goal, when the context chain reaches it.
    pub goal_id: Option<String>,
    pub goal: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct QuestionList {
    pub instance: String,
    /// Oldest first.
    pub questions: Vec<QuestionOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AnsweredOut {
    /// The Answer artifact.
    pub id: String,
    pub question_id: String,
    pub claim_id: Option<String>,
    /// The operator the answer is recorded under.
    pub answered_by: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusOut {
    pub instance: String,
    /// `running`, `degraded`, `stopped` or `destroying`.
    pub health: String,
    /// What to do about it, as `sett status` says (empty when healthy).
    pub advice: Vec<String>,
    pub claims_by_status: BTreeMap<String, u64>,
    pub open_questions: u64,
    pub stuck_claims: u64,
    /// The ledger head (`<seq>:<hash>`).
    pub ledger_head: Option<String>,
    /// Each registered component (orchestrator, `cub:<agent>`) and its health.
    pub components: Vec<ComponentOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ComponentOut {
    pub name: String,
    pub healthy: bool,
    pub problem: Option<String>,
    pub pid: Option<u64>,
    pub heartbeat_age_ms: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyOut {
    pub instance: String,
    pub intact: bool,
    /// The chain's head (`<seq>:<hash>`): record it elsewhere and pass it later as `head`.
    pub head: Option<String>,
    /// The first broken record (`event …`, `artifact …`, `claim …`, `ledger head`).
    pub broken_record: Option<String>,
    pub problem: Option<String>,
    pub events: u64,
    pub artifacts: u64,
    pub answers: u64,
    pub claims: u64,
    /// Whether `head` (when given) was found in the chain.
    pub recorded_head_matches: Option<bool>,
    /// Events written before the ledger existed: the chain starts at this seq.
    pub unverified_before: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CancelledOut {
    pub instance: String,
    pub goal_id: String,
    /// True when it had been cancelled before (by `operator`, at `at_ms`): nothing was done.
    pub already_cancelled: bool,
    /// Who cancelled it.
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    /// The claims this cancellation ended.
    pub claims: Vec<String>,
    /// The questions it closed.
    pub questions: Vec<String>,
}
