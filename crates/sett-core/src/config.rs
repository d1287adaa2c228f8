//! The `sett.yml` model: parsed with serde-saphyr, unknown keys rejected, every error naming the
//! file, the key path and the fix. Defaulting happens here, once; validation never mutates.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::claim::{BidType, ClaimType};
use crate::ids::AgentName;
// Re-exported while callers outside this crate still name it here.
pub use crate::policy::OnApprovalTimeout;
pub use crate::policy::OnQuestionTimeout;
use crate::policy::{AgentPolicy, ApprovalPolicy, Policy};
use crate::routing::{Routing, check_addressee, normalise};

pub const DEFAULT_BID_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_QUESTION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_MAX_REVIEW_ITERATIONS: u32 = 3;

/// A configuration error: where it is, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub key_path: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key_path.is_empty() {
            write!(f, "{}: {} (fix: {})", self.file, self.message, self.fix)
        } else {
            write!(f, "{}: at '{}': {} (fix: {})", self.file, self.key_path, self.message, self.fix)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where the orchestrator and cubs run: `local` (processes on this machine) or `docker`
/// (containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    #[default]
    Local,
    Docker,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Docker => "docker",
        }
    }
}

/// How sure a write must be before Sett acts on it or reports it (`redis.durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledged by the primary: the fastest; a failover can lose the last writes
    /// (Redis replicates asynchronously). See docs/deployment.md for what is lost and how the
    /// orchestrator reconciles.
    #[default]
    Fast,
    /// Also confirmed by at least one replica (`WAIT 1`) before anyone acts on it; a write that
    /// cannot be confirmed is retried or fails, never assumed.
    Replicated,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Replicated => "replicated",
        }
    }
}

/// The `redis:` section of `sett.yml` (the URL itself comes from `--redis-url`/`SETT_REDIS_URL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `fast` (acknowledged by the primary) or `replicated` (also confirmed by a replica with
    /// `WAIT 1` before anyone acts on it). Default: `replicated` with a Sentinel or Cluster URL
    /// (a deployment that has replicas), `fast` with a single Redis. See docs/deployment.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
}

impl RedisConfig {
    /// The durability writes get on a deployment: the configured one, else `replicated` where
    /// the URL names replicas (Sentinel, Cluster: a write the primary alone acknowledged is
    /// lost whole when it dies before its replica copied it) and `fast` on a single Redis
    /// (nothing to wait for).
    pub fn durability_for(&self, has_replicas: bool) -> Durability {
        self.durability.unwrap_or(if has_replicas { Durability::Replicated } else { Durability::Fast })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// How the agent's tool sees the workspace: `ro` (read-only) or `rw` (read-write).
pub enum WorkspaceMode {
    #[default]
    Ro,
    Rw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// `controller`: each grant runs in a short-lived worker process.
pub enum AgentMode {
    Controller,
}

// ---- raw (as written) ----
//
// These types are also the source of the JSON Schema (`sett config schema`,
// docs/sett.schema.json): their doc comments become the schema's descriptions, and
// `extend("default" = …)` records defaults applied in `SettConfig::parse`.

/// A duration as written: `30s`, `10m`, `24h`, or a bare number of seconds (`0` = never).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
enum RawDuration {
    /// A number of seconds.
    Seconds(u64),
    /// A duration such as `30s`, `10m`, `24h` or `1h 30m`.
    Text(String),
}

/// A Sett configuration file (`sett.yml`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sett.yml")]
struct RawConfig {
    /// The configuration format version; must be "1.0".
    #[schemars(extend("enum" = ["1.0"]))]
    version: String,
    /// Where the orchestrator and cubs run.
    #[serde(default)]
    runtime: RuntimeKind,
    /// Settings of the orchestrator (consensus, reviews, questions).
    #[serde(default)]
    orchestrator: RawOrchestrator,
    /// How Sett uses Redis (durability of writes); the URL comes from `--redis-url`.
    #[serde(default)]
    redis: RedisConfig,
    /// The team: one entry per agent, keyed by the agent's name.
    #[schemars(extend("minProperties" = 1))]
    agents: BTreeMap<String, RawAgent>,
    /// Webhooks told when an agent asks a question or a workflow ends (docs/notifications.md).
    notifications: Option<RawNotifications>,
    /// The tamper-evident ledger (docs/security.md, "Tamper evidence").
    #[serde(default)]
    ledger: RawLedger,
    /// People who answer questions: groups, reminders and escalation
    /// (docs/human-in-the-loop.md, "Routing: who answers").
    #[serde(default)]
    humans: RawHumans,
    /// Archiving finished workflows out of Redis (docs/backup-recovery.md, "Retention and
    /// archive"). Absent: everything stays in Redis.
    retention: Option<RawRetention>,
    /// Budgets on the tokens and cost agents report, per workflow and per agent (docs/agents.md,
    /// "Budgets"). Absent: nothing is limited.
    budgets: Option<RawBudgets>,
}

/// Budgets: when one is reached, nothing more of its workflow is granted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBudgets {
    /// Each workflow's budget (all its agents' runs together).
    workflow: Option<RawBudget>,
    /// Each agent's budget, by agent name, over every workflow.
    #[serde(default)]
    agents: BTreeMap<String, RawBudget>,
    /// When a budget is reached: `ask` pauses the workflow and asks a person (continue with a
    /// raised budget, or stop it); `stop` cancels the workflow at once.
    #[serde(default)]
    on_exhausted: crate::budget::OnExhausted,
    /// How long the budget question waits for an answer (0 = forever).
    #[schemars(extend("default" = "24h"))]
    ask_timeout: Option<RawDuration>,
    /// When nobody answers in time: `stop` cancels the workflow, `pause` leaves it paused for an
    /// operator (`sett resume` or `sett cancel`).
    #[serde(default)]
    on_timeout: crate::budget::OnBudgetTimeout,
}

/// One budget: tokens and/or a cost, optionally per period.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    /// Tokens (input plus output) allowed.
    #[schemars(range(min = 1))]
    tokens: Option<u64>,
    /// Cost allowed: an exact decimal amount and a currency, as a string ("5.00 USD"). Only
    /// costs reported in this currency count against it.
    #[schemars(extend("pattern" = "^[0-9]{1,12}(\\.[0-9]{1,18})? [A-Z][A-Z0-9]{2,7}$"))]
    cost: Option<String>,
    /// A budget per period (`1d`, `12h`) instead of for all time: fixed periods counted from
    /// 1970-01-01T00:00Z, so `1d` is each UTC day. At least 1s.
    per: Option<RawDuration>,
}

/// People in the loop: who questions go to, and when they are reminded and escalated.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHumans {
    /// Groups of people, by name: an addressee `group:<name>` means each of them (the
    /// console's users file can put people in groups too).
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    /// Send a `question_reminder` notification this often while a question is open (0 or
    /// absent: never). At least 1s.
    #[schemars(extend("default" = 0))]
    remind_every: Option<RawDuration>,
    /// After this long unanswered, `escalate_to` joins a question's addressees and a
    /// `question_escalated` notification goes out (0 or absent: never). At least 1s.
    #[schemars(extend("default" = 0))]
    escalate_after: Option<RawDuration>,
    /// People and groups (`group:<name>`) added to an unanswered question's addressees.
    #[serde(default)]
    escalate_to: Vec<String>,
    /// Human reviewers: an artifact of one of these types is also reviewed by a person in its
    /// review phase (approve, or request changes with comments, which drives a rework as an
    /// agent's Review does).
    #[serde(default)]
    reviewers: Vec<RawReviewers>,
}

/// One `humans.reviewers` entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawReviewers {
    /// The artifact types (exact `type` names, e.g. `Draft`) these people review.
    artifact_types: Vec<String>,
    /// People and groups (`group:<name>`); any one of them decides.
    reviewers: Vec<String>,
}

/// Retention: finished workflows are archived to immutable segments and removed from Redis.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    /// How long a workflow stays in Redis after its outcome (Terminal, Failure, cancellation, or
    /// its goal's claim ending) before it is archived and removed (0 = at the next pass).
    archive_after: RawDuration,
    /// How often the orchestrator runs an archiving pass. At least 1s.
    #[schemars(extend("default" = "1m"))]
    every: Option<RawDuration>,
    /// Where the segments go (default: the directory `.sett/archive` of the workspace).
    archive: Option<RawArchive>,
}

/// Where archived segments are written: exactly one of `dir` and `s3`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    /// A local directory (relative paths are relative to the workspace).
    dir: Option<String>,
    /// An S3-compatible bucket; credentials come from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`).
    s3: Option<S3Target>,
}

/// The tamper-evident ledger.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    /// How often the orchestrator records the ledger head in the global audit stream
    /// `sett:audit` (an anchor, as `sett down` and `sett export` write); only when the head
    /// moved. 0 or absent: never. At least 1s.
    #[schemars(extend("default" = 0))]
    anchor_every: Option<RawDuration>,
    /// The witness file: every anchor (periodic, `sett down`, `sett export`, `sett destroy`,
    /// `sett import`) is also appended to it as a JSON line `{instance, seq, hash, at, reason}`,
    /// outside Redis; `sett verify --witness FILE` checks them. Relative to the workspace.
    #[schemars(extend("default" = DEFAULT_WITNESS_FILE))]
    witness_file: Option<String>,
    /// What the orchestrator does when it notices that the ledger went back (docs/operations.md,
    /// "The ledger went back"): `continue` (default: report it and keep granting work) or `pause`
    /// (report it and pause the instance, as `sett pause` does, until an operator has looked
    /// and runs `sett resume`).
    #[serde(default)]
    on_regression: RegressionReaction,
}

/// What the orchestrator does about a ledger regression besides reporting it
/// (`ledger.on_regression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegressionReaction {
    /// Report it (log, metric, status, notification) and keep granting work.
    #[default]
    Continue,
    /// Report it and pause the instance: nothing new is granted until `sett resume`.
    Pause,
}

impl RegressionReaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Pause => "pause",
        }
    }
}

/// The witness file's default path, relative to the workspace.
pub const DEFAULT_WITNESS_FILE: &str = ".sett/ledger/witness.jsonl";

/// Webhook notifications.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    /// Base URL of `sett console` (e.g. https://sett.example.com), so notifications link to it.
    #[schemars(extend("pattern" = "^https?://"))]
    console_url: Option<String>,
    /// The webhooks to post to.
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

/// One webhook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    /// Identifies the webhook in Redis, metrics, logs and `sett status` (default: webhook-<n>).
    #[schemars(extend("pattern" = "^[A-Za-z0-9_-]{1,64}$"))]
    name: Option<String>,
    /// The receiver's http:// or https:// URL.
    #[schemars(extend("pattern" = "^https?://"))]
    url: String,
    /// The events posted to this webhook (default: all but ledger_anchor).
    events: Option<Vec<NotifyEvent>>,
    /// HMAC-SHA256 secret signing each request (prefer secret_env).
    secret: Option<String>,
    /// The orchestrator's environment variable holding the secret.
    secret_env: Option<String>,
    /// The body: Sett's JSON document, or Slack's {"text": ...}.
    #[serde(default)]
    format: WebhookFormat,
}

/// Settings of the orchestrator.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawOrchestrator {
    /// Rework rounds allowed after review rejections before the claim is terminated.
    #[schemars(extend("default" = 3))]
    max_review_iterations: Option<u32>,
    /// How long cubs have to bid on a claim; an agent that has not bid by then counts as `ignore`. Must be more than 0.
    #[schemars(extend("default" = "30s"))]
    bid_timeout: Option<RawDuration>,
    /// How long a question waits for `sett answer` (0 = forever).
    #[schemars(extend("default" = "24h"))]
    question_timeout: Option<RawDuration>,
    /// What happens when a question times out.
    #[serde(default)]
    on_question_timeout: OnQuestionTimeout,
    /// Container image of the orchestrator and the default image of the agents (docker runtime).
    image: Option<String>,
}

/// How an agent bids: a bid type for every artifact, or a bid type for the artifact types that match `target_types`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum RawStrategy {
    /// The same bid for every artifact: `review`, `claim`, `exclusive` or `ignore`.
    Plain(BidType),
    /// A bid for the artifact types matching `target_types` (and `ignore` for the rest).
    Detailed(RawStrategyDetailed),
}

/// A bid type for matching artifact types.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawStrategyDetailed {
    /// The bid for matching artifacts.
    #[serde(rename = "type")]
    bid: BidType,
    /// Glob patterns of artifact types (e.g. `Goal*`); empty = every type.
    #[serde(default)]
    target_types: Vec<String>,
}

/// How the agent's tool sees the workspace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    /// `ro` (read-only) or `rw` (read-write).
    #[serde(default)]
    mode: WorkspaceMode,
}

/// Worker processes of a `mode: controller` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    /// Workers running at once for this agent (at least 1).
    #[schemars(extend("default" = 1), range(min = 1))]
    max_concurrent: Option<u32>,
    /// The worker's argv (default: the agent's `command`).
    command: Option<Vec<String>>,
    /// The worker's container image (default: the agent's `image`; docker runtime).
    image: Option<String>,
}

/// One agent: its tool, how it bids, and its limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    /// The tool's argv, run once per grant (relative paths are relative to the workspace).
    #[schemars(length(min = 1))]
    command: Vec<String>,
    /// The agent's container image (docker runtime; default: the orchestrator's `image`, else Sett's runtime image).
    image: Option<String>,
    /// How the agent bids; required unless `bid_script` is given.
    bidding_strategy: Option<RawStrategy>,
    /// An argv run to decide each bid (prints review, claim, exclusive or ignore).
    bid_script: Option<Vec<String>>,
    /// How the tool sees the workspace.
    workspace: Option<RawWorkspace>,
    /// Environment of the tool: `NAME` copies the host's value, `NAME=value` sets it.
    #[serde(default)]
    environment: Vec<String>,
    /// How long one tool run may take. Must be more than 0.
    #[schemars(extend("default" = "10m"))]
    timeout: Option<RawDuration>,
    /// This agent's question timeout (0 = forever; default: the orchestrator's `question_timeout`).
    question_timeout: Option<RawDuration>,
    /// `controller`: run each grant in a worker process.
    mode: Option<AgentMode>,
    /// Worker settings (needs `mode: controller`).
    worker: Option<RawWorker>,
    /// Whether the agent bids on artifacts it produced itself.
    #[serde(default)]
    bid_on_own_output: bool,
    /// Whether the tool gets the Redis URL (`SETT_REDIS_URL`) in its environment.
    #[serde(default)]
    expose_redis: bool,
    /// Who this agent's questions are addressed to by default (people and `group:<name>`); a
    /// question's own `to` list wins. Absent: anyone may answer.
    #[serde(default)]
    questions_to: Vec<String>,
    /// Require a person's approval (`sett approve`, the console) before this agent is granted a claim: its tool does not start until then.
    approval: Option<RawApproval>,
}

/// An approval gate on an agent's claims (docs/human-in-the-loop.md, "Approvals").
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    /// How long an approval waits for a decision (0 = forever).
    #[schemars(extend("default" = "24h"))]
    timeout: Option<RawDuration>,
    /// What happens when nobody decides in time: `reject` ends the claim with a Failure, `approve` grants it.
    #[serde(default)]
    on_timeout: OnApprovalTimeout,
    /// Which of the agent's claim types need approval: `review`, `claim`, `exclusive`, `rework` (default: all four).
    claim_types: Option<Vec<ClaimType>>,
}

/// The JSON Schema of `sett.yml` (draft 2020-12), generated from the types above. Written by
/// `sett config schema` and committed as `docs/sett.schema.json`.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(RawConfig).to_value()
}

// ---- validated ----

/// A validated `sett.yml`.
#[derive(Debug, Clone)]
pub struct SettConfig {
    pub version: String,
    pub runtime: RuntimeKind,
    pub orchestrator: OrchestratorConfig,
    pub redis: RedisConfig,
    pub agents: BTreeMap<AgentName, AgentConfig>,
    /// The `notifications:` section; empty when absent.
    pub notifications: NotificationsConfig,
    pub ledger: LedgerConfig,
    /// The `humans:` section and each agent's `questions_to`: who answers and reviews.
    pub routing: Routing,
    /// The `retention:` section; `None` = nothing is ever archived.
    pub retention: Option<RetentionConfig>,
    /// The `budgets:` section; empty when absent.
    pub budgets: crate::budget::BudgetsConfig,
}

/// The `retention:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    pub archive_after: Duration,
    pub every: Duration,
    pub archive: ArchiveTarget,
}

/// The default period of the orchestrator's archiving pass (`retention.every`).
pub const DEFAULT_ARCHIVE_EVERY: Duration = Duration::from_secs(60);
/// The default archive directory, relative to the workspace.
pub const DEFAULT_ARCHIVE_DIR: &str = ".sett/archive";

/// Where an archive lives: recorded in Redis by the pass that writes it, so every reader finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveTarget {
    /// A directory (relative to the workspace as written in `sett.yml`; absolute once resolved).
    Dir(String),
    S3(S3Target),
}

/// An S3-compatible bucket (AWS, MinIO, Ceph, moto…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Target {
    /// The bucket name.
    pub bucket: String,
    /// A prefix for every object name (e.g. `sett/`); the instance name follows it.
    #[serde(default)]
    pub prefix: String,
    /// The server's URL for S3-compatible servers other than AWS (e.g. http://minio:9000).
    pub endpoint: Option<String>,
    /// The region (default: `us-east-1`).
    pub region: Option<String>,
    /// Allow a plain http:// endpoint (test servers).
    #[serde(default)]
    pub allow_http: bool,
}

impl fmt::Display for ArchiveTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "directory {d}"),
            Self::S3(s) => {
                write!(f, "s3://{}/{}", s.bucket, s.prefix)?;
                if let Some(e) = &s.endpoint {
                    write!(f, " at {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// The `ledger:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// How often the orchestrator anchors the head in `sett:audit`; `None` = never.
    pub anchor_every: Option<Duration>,
    /// Where anchors are witnessed outside Redis, as written (relative to the workspace unless
    /// absolute): [`LedgerConfig::witness_path`] resolves it.
    pub witness_file: PathBuf,
    /// What the orchestrator does about a ledger regression besides reporting it.
    pub on_regression: RegressionReaction,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            anchor_every: None,
            witness_file: PathBuf::from(DEFAULT_WITNESS_FILE),
            on_regression: RegressionReaction::default(),
        }
    }
}

impl LedgerConfig {
    /// The witness file of a workspace rooted at `workspace`.
    pub fn witness_path(&self, workspace: &Path) -> PathBuf {
        workspace.join(&self.witness_file)
    }
}

/// What a webhook can be told about (`notifications.webhooks[].events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    QuestionAsked,
    QuestionTimedOut,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    // The ledger went back (docs/operations.md, "The ledger went back").
    LedgerRegressed,
    // A ledger head anchored (a witness outside Redis); opt-in: not in the default list.
    LedgerAnchor,
    /// A question is still unanswered after another `humans.remind_every`.
    QuestionReminder,
    /// A question waited `humans.escalate_after`; `humans.escalate_to` joined its addressees.
    QuestionEscalated,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 9] = [
        Self::QuestionAsked,
        Self::QuestionTimedOut,
        Self::WorkflowCompleted,
        Self::WorkflowFailed,
        Self::WorkflowCancelled,
        Self::LedgerRegressed,
        Self::LedgerAnchor,
        Self::QuestionReminder,
        Self::QuestionEscalated,
    ];

    /// Whether a webhook without an `events` key gets this event: all but `ledger_anchor`
    /// (one per anchor, periodic: a webhook asks for it by name).
    pub fn is_default(self) -> bool {
        !matches!(self, Self::LedgerAnchor)
    }

    /// The events of a webhook without an `events` key, in [`NotifyEvent::ALL`]'s order.
    pub fn defaults() -> Vec<NotifyEvent> {
        Self::ALL.into_iter().filter(|e| e.is_default()).collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuestionAsked => "question_asked",
            Self::QuestionTimedOut => "question_timed_out",
            Self::WorkflowCompleted => "workflow_completed",
            Self::WorkflowFailed => "workflow_failed",
            Self::WorkflowCancelled => "workflow_cancelled",
            Self::LedgerRegressed => "ledger_regressed",
            Self::LedgerAnchor => "ledger_anchor",
            Self::QuestionReminder => "question_reminder",
            Self::QuestionEscalated => "question_escalated",
        }
    }
}

impl fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body a webhook receives: Sett's JSON document, or Slack's `{"text": ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

/// Where a webhook's HMAC secret comes from. `Debug` never shows a literal secret.
#[derive(Clone, PartialEq, Eq)]
pub enum WebhookSecret {
    /// Written in sett.yml (`secret:`).
    Literal(String),
    /// Read from this environment variable of the orchestrator when it starts (`secret_env:`).
    Env(String),
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("Literal(***)"),
            Self::Env(name) => write!(f, "Env({name})"),
        }
    }
}

/// One webhook. `name` identifies it in Redis, metrics, logs and `sett status`: the `name:`
/// key, or `webhook-<n>` (its 1-based position) when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    pub events: Vec<NotifyEvent>,
    pub secret: Option<WebhookSecret>,
    pub format: WebhookFormat,
}

impl WebhookConfig {
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.contains(&event)
    }
}

/// The validated `notifications:` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotificationsConfig {
    /// The console's base URL (e.g. `https://sett.example.com`), so a question notification can
    /// link to the question.
    pub console_url: Option<String>,
    pub webhooks: Vec<WebhookConfig>,
}

impl NotificationsConfig {
    pub fn is_enabled(&self) -> bool {
        !self.webhooks.is_empty()
    }
}

/// `http(s)://host…` with a non-empty host and no whitespace.
fn is_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !url.chars().any(char::is_whitespace)
    })
}

fn parse_notifications(
    raw: Option<RawNotifications>,
    err: &dyn Fn(&str, String, &str) -> ConfigError,
) -> Result<NotificationsConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(NotificationsConfig::default());
    };
    if let Some(u) = &raw.console_url
        && !is_http_url(u)
    {
        return Err(err(
            "notifications.console_url",
            format!("'{u}' is not an http(s) URL"),
            "give the console's base URL, e.g. https://sett.example.com",
        ));
    }
    let mut webhooks: Vec<WebhookConfig> = Vec::new();
    for (i, w) in raw.webhooks.into_iter().enumerate() {
        let at = |k: &str| format!("notifications.webhooks[{i}].{k}");
        let name = w.name.unwrap_or_else(|| format!("webhook-{}", i + 1));
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(err(
                &at("name"),
                format!("invalid webhook name '{name}'"),
                "use 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        if webhooks.iter().any(|o| o.name == name) {
            return Err(err(
                &at("name"),
                format!("webhook name '{name}' is used twice"),
                "give each webhook its own name",
            ));
        }
        if !is_http_url(&w.url) {
            return Err(err(
                &at("url"),
                format!("'{}' is not an http(s) URL", w.url),
                "give the receiver's URL, e.g. https://hooks.example.com/sett",
            ));
        }
        let mut events = w.events.unwrap_or_else(NotifyEvent::defaults);
        events.sort();
        events.dedup();
        if events.is_empty() {
            // Named from the one list of events, so a new event is never missing from the hint.
            let known: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
            return Err(err(
                &at("events"),
                "no events".into(),
                &format!("list at least one of {} (or remove the key for all but ledger_anchor)", known.join(", ")),
            ));
        }
        let secret = match (w.secret, w.secret_env) {
            (Some(_), Some(_)) => {
                return Err(err(&at("secret"), "both secret and secret_env are set".into(), "keep one of them"));
            }
            (Some(s), None) if s.is_empty() => {
                return Err(err(&at("secret"), "the secret is empty".into(), "give a secret or remove the key"));
            }
            (Some(s), None) => Some(WebhookSecret::Literal(s)),
            (None, Some(e)) if e.is_empty() => {
                return Err(err(
                    &at("secret_env"),
                    "the variable name is empty".into(),
                    "name an environment variable",
                ));
            }
            (None, Some(e)) => Some(WebhookSecret::Env(e)),
            (None, None) => None,
        };
        webhooks.push(WebhookConfig { name, url: w.url, events, secret, format: w.format });
    }
    Ok(NotificationsConfig { console_url: raw.console_url.map(|u| u.trim_end_matches('/').to_owned()), webhooks })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorConfig {
    /// 0 means unlimited.
    pub max_review_iterations: u32,
    pub bid_timeout: Duration,
    /// `None` means questions never time out.
    pub question_timeout: Option<Duration>,
    pub on_question_timeout: OnQuestionTimeout,
    pub image: Option<String>,
}

/// The static bidding strategy, with its optional artifact-type filter.
#[derive(Debug, Clone)]
pub struct BiddingStrategy {
    pub bid: BidType,
    pub target_types: Vec<String>,
    matcher: Option<GlobSet>,
}

impl BiddingStrategy {
    pub fn new(bid: BidType, target_types: Vec<String>) -> Result<Self, globset::Error> {
        let matcher = if target_types.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for t in &target_types {
                b.add(Glob::new(t)?);
            }
            Some(b.build()?)
        };
        Ok(Self { bid, target_types, matcher })
    }

    /// The bid for an artifact of `artifact_type`: the strategy's bid when the filter matches,
    /// `ignore` otherwise.
    pub fn bid_for(&self, artifact_type: &str) -> BidType {
        match &self.matcher {
            Some(m) if !m.is_match(artifact_type) => BidType::Ignore,
            _ => self.bid,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub max_concurrent: u32,
    pub command: Vec<String>,
    pub image: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: AgentName,
    pub command: Vec<String>,
    pub image: Option<String>,
    pub bidding_strategy: Option<BiddingStrategy>,
    pub bid_script: Option<Vec<String>>,
    pub workspace_mode: WorkspaceMode,
    pub environment: Vec<EnvEntry>,
    pub timeout: Duration,
    /// Per-agent question timeout override: `Some(None)` means "never".
    pub question_timeout: Option<Option<Duration>>,
    /// Present for `mode: controller` agents.
    pub worker: Option<WorkerConfig>,
    pub bid_on_own_output: bool,
    pub expose_redis: bool,
    /// `agents.<name>.approval`: grants wait for a person's approval.
    pub approval: Option<ApprovalConfig>,
}

/// A validated `agents.<name>.approval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalConfig {
    /// `None`: waits forever.
    pub timeout: Option<Duration>,
    pub on_timeout: OnApprovalTimeout,
    /// The gated claim types (never `resume`).
    pub claim_types: Vec<ClaimType>,
}

/// The claim types an approval gates when `claim_types` is not given.
pub const GATED_BY_DEFAULT: [ClaimType; 4] =
    [ClaimType::Review, ClaimType::Claim, ClaimType::Exclusive, ClaimType::Rework];

/// One `environment:` entry: `NAME` copies the host's value, `NAME=value` sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvEntry {
    FromHost(String),
    Set(String, String),
}

impl AgentConfig {
    pub fn is_controller(&self) -> bool {
        self.worker.is_some()
    }
}

/// The longest duration sett.yml accepts (100 years), so deadlines never overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// One error of `sett config check`: the error and the 1-based line of the key it names
/// (or of its nearest enclosing key written in block style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub line: Option<usize>,
    pub error: ConfigError,
}

/// Splits `agents.Coder.environment[1]` into `agents`, `Coder`, `environment`, `[1]`.
fn path_segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        match part.find('[') {
            Some(i) => {
                if i > 0 {
                    out.push(part[..i].to_owned());
                }
                out.extend(part[i..].split_inclusive(']').map(str::to_owned));
            }
            None => out.push(part.to_owned()),
        }
    }
    out
}

/// Whether the key at `path` is `inner` or encloses it (`""` encloses everything).
fn encloses(path: &str, inner: &str) -> bool {
    path.is_empty() || inner == path || inner.starts_with(&format!("{path}.")) || inner.starts_with(&format!("{path}["))
}

/// `agents.Coder.environment[1]` → `agents.Coder.environment` → `agents.Coder` → … → `""`.
fn parent_path(path: &str) -> String {
    match path.rfind(['.', '[']) {
        Some(i) => path[..i].to_owned(),
        None => String::new(),
    }
}

/// Removes the value at `path` from `value`; false when there is nothing there to remove.
fn remove_path(value: &mut serde_json::Value, path: &str) -> bool {
    let segs = path_segments(path);
    let Some((last, parents)) = segs.split_last() else { return false };
    let mut cur = value;
    for seg in parents {
        let next = match seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(i) => i.parse::<usize>().ok().and_then(|i| cur.get_mut(i)),
            None => cur.get_mut(seg.as_str()),
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match last.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(i) => match (cur.as_array_mut(), i.parse::<usize>()) {
            (Some(a), Ok(i)) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        None => cur.as_object_mut().is_some_and(|o| o.remove(last.as_str()).is_some()),
    }
}

/// The line of `path` in block-style YAML `text`: that of the longest prefix of the path
/// written as a `key:` line (flow-style values such as `{type: x}` point at their key).
fn key_line(text: &str, path: &str) -> Option<usize> {
    let want: Vec<String> = path_segments(path).into_iter().filter(|s| !s.starts_with('[')).collect();
    if want.is_empty() {
        return None;
    }
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best: Option<(usize, usize)> = None;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some((key, _)) = trimmed.split_once(':') else { continue };
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        if key.is_empty() || key.contains(' ') || key.contains('{') {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        let depth = stack.len();
        if depth <= want.len()
            && stack.iter().zip(&want).all(|((_, k), w)| k == w)
            && best.is_none_or(|(d, _)| depth > d)
        {
            best = Some((depth, n + 1));
        }
    }
    best.map(|(_, line)| line)
}

/// The line in a YAML syntax error message (`… at line 3, column 5`), if it names one.
fn yaml_error_line(message: &str) -> Option<usize> {
    let at = message.find("line ")?;
    message[at + 5..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// YAML syntax only: `text` as a JSON value, or the error with its line and column.
fn yaml_value(file: &str, text: &str) -> Result<serde_json::Value, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| ConfigError {
        file: file.to_owned(),
        key_path: String::new(),
        message: format!("invalid YAML: {e}"),
        fix: "correct the YAML syntax at the position shown".to_owned(),
    })
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if raw == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(raw).map_err(|e| e.to_string())
}

impl SettConfig {
    /// Parses and validates `text`; `file` names the source in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        // Two steps: YAML syntax (with line and column) first, then the shape, through
        // serde_path_to_error so an unknown or mistyped key is reported with its full path.
        let value = yaml_value(file, text)?;
        Self::from_value(file, value)
    }

    /// The second step of [`SettConfig::parse`]: shape and meaning of the parsed YAML.
    fn from_value(file: &str, value: serde_json::Value) -> Result<Self, ConfigError> {
        let err = |key_path: &str, message: String, fix: &str| ConfigError {
            file: file.to_owned(),
            key_path: key_path.to_owned(),
            message,
            fix: fix.to_owned(),
        };
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let fix = if inner.contains("unknown field") {
                "remove the key or correct its spelling (see docs/configuration.md)"
            } else if inner.contains("missing field") {
                "add the missing key"
            } else {
                "use a value of the expected type"
            };
            err(if path == "." { "" } else { &path }, inner, fix)
        })?;

        if raw.version != "1.0" {
            return Err(err("version", format!("unsupported version '{}'", raw.version), "set version: \"1.0\""));
        }
        let dur = |key: &str, v: &Option<RawDuration>, default: Duration| -> Result<Duration, ConfigError> {
            let d = match v {
                None => Ok(default),
                Some(RawDuration::Seconds(n)) => Ok(Duration::from_secs(*n)),
                Some(RawDuration::Text(s)) => parse_duration(s).map_err(|e| {
                    err(key, format!("invalid duration '{s}': {e}"), "use a duration such as 30s, 10m or 24h")
                }),
            }?;
            // Deadlines are `now_ms + duration` in i64 milliseconds: an absurd duration would
            // overflow them (found by tests/fuzz.rs). 0 means "never" where that is allowed.
            if d > MAX_DURATION {
                return Err(err(
                    key,
                    format!("duration {} is longer than 100 years", humantime::format_duration(d)),
                    "use a duration such as 30s, 10m or 24h (0 where it means never)",
                ));
            }
            Ok(d)
        };
        let orch = &raw.orchestrator;
        let question_timeout = dur("orchestrator.question_timeout", &orch.question_timeout, DEFAULT_QUESTION_TIMEOUT)?;
        let bid_timeout = dur("orchestrator.bid_timeout", &orch.bid_timeout, DEFAULT_BID_TIMEOUT)?;
        if bid_timeout.is_zero() {
            return Err(err(
                "orchestrator.bid_timeout",
                "must be greater than zero".into(),
                "use a duration such as 30s",
            ));
        }
        let orchestrator = OrchestratorConfig {
            max_review_iterations: orch.max_review_iterations.unwrap_or(DEFAULT_MAX_REVIEW_ITERATIONS),
            bid_timeout,
            question_timeout: (!question_timeout.is_zero()).then_some(question_timeout),
            on_question_timeout: orch.on_question_timeout,
            image: orch.image.clone(),
        };
        if raw.agents.is_empty() {
            return Err(err("agents", "at least one agent is required".into(), "add an agent under agents:"));
        }
        let mut agents = BTreeMap::new();
        let mut questions_to = BTreeMap::new();
        let addressees = |key: &str, list: Vec<String>| -> Result<Vec<String>, ConfigError> {
            for (i, a) in list.iter().enumerate() {
                check_addressee(a).map_err(|e| {
                    err(
                        &format!("{key}[{i}]"),
                        e,
                        "name a person (as sett answer or the console knows them) or group:<name>",
                    )
                })?;
            }
            Ok(normalise(list))
        };
        for (name, a) in raw.agents {
            let at = |k: &str| format!("agents.{name}.{k}");
            let agent_name = AgentName::parse(&name)
                .map_err(|e| err(&format!("agents.{name}"), e.to_string(), "rename the agent"))?;
            if name.eq_ignore_ascii_case(crate::review::HUMAN_REVIEW_ROLE) {
                return Err(err(
                    &format!("agents.{name}"),
                    format!("'{name}' is reserved for human reviews (humans.reviewers)"),
                    "rename the agent",
                ));
            }
            if a.command.is_empty() || a.command[0].trim().is_empty() {
                return Err(err(
                    &at("command"),
                    "must not be empty".into(),
                    "give the tool's argv, e.g. [\"./agents/coder/run.sh\"]",
                ));
            }
            let bidding_strategy = match a.bidding_strategy {
                None => None,
                Some(RawStrategy::Plain(b)) => Some(BiddingStrategy::new(b, Vec::new()).expect("no globs")),
                Some(RawStrategy::Detailed(d)) => Some(BiddingStrategy::new(d.bid, d.target_types).map_err(|e| {
                    err(
                        &at("bidding_strategy.target_types"),
                        format!("invalid glob: {e}"),
                        "use glob patterns such as \"Goal*\"",
                    )
                })?),
            };
            if bidding_strategy.is_none() && a.bid_script.is_none() {
                return Err(err(
                    &at("bidding_strategy"),
                    "the agent has neither bidding_strategy nor bid_script".into(),
                    "add bidding_strategy: review|claim|exclusive|ignore (or a bid_script)",
                ));
            }
            if let Some(s) = &a.bid_script
                && s.is_empty()
            {
                return Err(err(
                    &at("bid_script"),
                    "must not be empty".into(),
                    "give the script's argv or remove the key",
                ));
            }
            let mut environment = Vec::new();
            for (i, e) in a.environment.iter().enumerate() {
                let entry = match e.split_once('=') {
                    Some((k, v)) => EnvEntry::Set(k.to_owned(), v.to_owned()),
                    None => EnvEntry::FromHost(e.clone()),
                };
                let key = match &entry {
                    EnvEntry::Set(k, _) | EnvEntry::FromHost(k) => k,
                };
                let valid = !key.is_empty()
                    && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !key.as_bytes()[0].is_ascii_digit();
                if !valid {
                    return Err(err(
                        &format!("{}[{i}]", at("environment")),
                        format!("invalid variable name '{key}'"),
                        "use NAME (copied from the host) or NAME=value",
                    ));
                }
                environment.push(entry);
            }
            let timeout = dur(&at("timeout"), &a.timeout, DEFAULT_AGENT_TIMEOUT)?;
            if timeout.is_zero() {
                return Err(err(&at("timeout"), "must be greater than zero".into(), "use a duration such as 10m"));
            }
            let question_timeout = match &a.question_timeout {
                None => None,
                Some(_) => {
                    let d = dur(&at("question_timeout"), &a.question_timeout, DEFAULT_QUESTION_TIMEOUT)?;
                    Some((!d.is_zero()).then_some(d))
                }
            };
            let worker = match (a.mode, a.worker) {
                (Some(AgentMode::Controller), w) => {
                    let w = w.unwrap_or(RawWorker { max_concurrent: None, command: None, image: None });
                    let max_concurrent = w.max_concurrent.unwrap_or(1);
                    if max_concurrent == 0 {
                        return Err(err(
                            &at("worker.max_concurrent"),
                            "must be at least 1".into(),
                            "set max_concurrent: 1 or more",
                        ));
                    }
                    Some(WorkerConfig {
                        max_concurrent,
                        command: w.command.filter(|c| !c.is_empty()).unwrap_or_else(|| a.command.clone()),
                        image: w.image.or_else(|| a.image.clone()),
                    })
                }
                (None, Some(_)) => {
                    return Err(err(
                        &at("worker"),
                        "worker settings need mode: controller".into(),
                        "add mode: controller or remove worker:",
                    ));
                }
                (None, None) => None,
            };
            let approval = match a.approval {
                None => None,
                Some(raw_approval) => {
                    let timeout = dur(&at("approval.timeout"), &raw_approval.timeout, DEFAULT_QUESTION_TIMEOUT)?;
                    let claim_types = match raw_approval.claim_types {
                        None => GATED_BY_DEFAULT.to_vec(),
                        Some(list) if list.is_empty() => {
                            return Err(err(
                                &at("approval.claim_types"),
                                "is empty, so nothing would need approval".into(),
                                "list claim types (review, claim, exclusive, rework) or remove approval:",
                            ));
                        }
                        Some(list) if list.contains(&ClaimType::Resume) => {
                            return Err(err(
                                &at("approval.claim_types"),
                                "resume cannot be gated: a resumed grant continues a claim already approved".into(),
                                "use review, claim, exclusive or rework",
                            ));
                        }
                        Some(mut list) => {
                            list.sort();
                            list.dedup();
                            list
                        }
                    };
                    Some(ApprovalConfig {
                        timeout: (!timeout.is_zero()).then_some(timeout),
                        on_timeout: raw_approval.on_timeout,
                        claim_types,
                    })
                }
            };
            let to = addressees(&at("questions_to"), a.questions_to)?;
            if !to.is_empty() {
                questions_to.insert(agent_name.clone(), to);
            }
            if raw.runtime == RuntimeKind::Docker && a.image.is_none() && raw.orchestrator.image.is_none() {
                // The docker runtime falls back to Sett's runtime image; nothing to reject.
            }
            agents.insert(
                agent_name.clone(),
                AgentConfig {
                    name: agent_name,
                    command: a.command,
                    image: a.image,
                    bidding_strategy,
                    bid_script: a.bid_script,
                    workspace_mode: a.workspace.map(|w| w.mode).unwrap_or_default(),
                    environment,
                    timeout,
                    question_timeout,
                    worker,
                    bid_on_own_output: a.bid_on_own_output,
                    expose_redis: a.expose_redis,
                    approval,
                },
            );
        }
        let notifications = parse_notifications(raw.notifications, &err)?;
        let anchor_every = dur("ledger.anchor_every", &raw.ledger.anchor_every, Duration::ZERO)?;
        if !anchor_every.is_zero() && anchor_every < Duration::from_secs(1) {
            return Err(err(
                "ledger.anchor_every",
                format!("{} is shorter than 1s", humantime::format_duration(anchor_every)),
                "use a duration such as 1h (0 turns anchoring off)",
            ));
        }
        let witness_file = match raw.ledger.witness_file {
            None => PathBuf::from(DEFAULT_WITNESS_FILE),
            Some(f) if f.trim().is_empty() => {
                return Err(err(
                    "ledger.witness_file",
                    "the path is empty".into(),
                    &format!("give a file path, or remove the key for {DEFAULT_WITNESS_FILE}"),
                ));
            }
            Some(f) => PathBuf::from(f),
        };
        let ledger = LedgerConfig {
            anchor_every: (!anchor_every.is_zero()).then_some(anchor_every),
            witness_file,
            on_regression: raw.ledger.on_regression,
        };
        let humans = raw.humans;
        let mut groups = BTreeMap::new();
        for (g, people) in humans.groups {
            if g.trim().is_empty() || g.trim() != g || g.contains(char::is_whitespace) {
                return Err(err(
                    &format!("humans.groups.{g}"),
                    format!("invalid group name '{g}'"),
                    "use a name without spaces",
                ));
            }
            let people = addressees(&format!("humans.groups.{g}"), people)?;
            if let Some(nested) = people.iter().find(|p| p.starts_with(crate::routing::GROUP_PREFIX)) {
                return Err(err(
                    &format!("humans.groups.{g}"),
                    format!("'{nested}' is a group; a group lists people"),
                    "list the group's people themselves",
                ));
            }
            groups.insert(g, people);
        }
        let every = |key: &str, v: &Option<RawDuration>| -> Result<Option<i64>, ConfigError> {
            let d = dur(key, v, Duration::ZERO)?;
            if !d.is_zero() && d < Duration::from_secs(1) {
                return Err(err(
                    key,
                    format!("{} is shorter than 1s", humantime::format_duration(d)),
                    "use a duration such as 1h (0 turns it off)",
                ));
            }
            Ok((!d.is_zero()).then_some(d.as_millis() as i64))
        };
        let remind_every_ms = every("humans.remind_every", &humans.remind_every)?;
        let escalate_after_ms = every("humans.escalate_after", &humans.escalate_after)?;
        let escalate_to = addressees("humans.escalate_to", humans.escalate_to)?;
        if escalate_after_ms.is_some() && escalate_to.is_empty() {
            return Err(err(
                "humans.escalate_to",
                "escalate_after is set but nobody to escalate to".into(),
                "list the people or groups under humans.escalate_to, or remove escalate_after",
            ));
        }
        let mut reviewers = Vec::new();
        for (i, r) in humans.reviewers.into_iter().enumerate() {
            let key = format!("humans.reviewers[{i}]");
            let artifact_types: Vec<String> = r.artifact_types.iter().map(|t| t.trim().to_owned()).collect();
            if artifact_types.is_empty() || artifact_types.iter().any(String::is_empty) {
                return Err(err(
                    &format!("{key}.artifact_types"),
                    "names no artifact type".into(),
                    "list the artifact types these people review, e.g. [Draft]",
                ));
            }
            let people = addressees(&format!("{key}.reviewers"), r.reviewers)?;
            if people.is_empty() {
                return Err(err(
                    &format!("{key}.reviewers"),
                    "names nobody".into(),
                    "list the people or groups (group:<name>) who review these artifacts",
                ));
            }
            reviewers.push(crate::routing::HumanReviewers { artifact_types, reviewers: people });
        }
        let routing = Routing { questions_to, groups, remind_every_ms, escalate_after_ms, escalate_to, reviewers };
        let retention = match raw.retention {
            None => None,
            Some(r) => {
                let archive_after = dur("retention.archive_after", &Some(r.archive_after), Duration::ZERO)?;
                let every = dur("retention.every", &r.every, DEFAULT_ARCHIVE_EVERY)?;
                if every < Duration::from_secs(1) {
                    return Err(err(
                        "retention.every",
                        format!("{} is shorter than 1s", humantime::format_duration(every)),
                        "use a duration such as 1m",
                    ));
                }
                let archive = match r.archive {
                    None => ArchiveTarget::Dir(DEFAULT_ARCHIVE_DIR.to_owned()),
                    Some(RawArchive { dir: Some(d), s3: None }) if !d.trim().is_empty() => ArchiveTarget::Dir(d),
                    Some(RawArchive { dir: None, s3: Some(s3) }) => {
                        if s3.bucket.trim().is_empty() {
                            return Err(err(
                                "retention.archive.s3.bucket",
                                "is empty".into(),
                                "name the bucket the segments go to",
                            ));
                        }
                        if let Some(e) = &s3.endpoint
                            && !(e.starts_with("https://") || (s3.allow_http && e.starts_with("http://")))
                        {
                            return Err(err(
                                "retention.archive.s3.endpoint",
                                format!("'{e}' is not an https:// URL"),
                                "use an https:// URL, or set allow_http: true for a plain http:// test server",
                            ));
                        }
                        ArchiveTarget::S3(s3)
                    }
                    Some(_) => {
                        return Err(err(
                            "retention.archive",
                            "needs exactly one of dir and s3".into(),
                            "write archive: {dir: .sett/archive} or archive: {s3: {bucket: …}}",
                        ));
                    }
                };
                Some(RetentionConfig { archive_after, every, archive })
            }
        };
        let budgets = match raw.budgets {
            None => crate::budget::BudgetsConfig::default(),
            Some(b) => {
                let budget = |key: &str, raw: RawBudget| -> Result<crate::budget::Budget, ConfigError> {
                    if raw.tokens.is_none() && raw.cost.is_none() {
                        return Err(err(
                            key,
                            "limits nothing".into(),
                            "give tokens, cost (\"5.00 USD\") or both, or remove it",
                        ));
                    }
                    if raw.tokens == Some(0) {
                        return Err(err(&format!("{key}.tokens"), "must be at least 1".into(), "give a token count"));
                    }
                    let cost =
                        raw.cost.as_deref().map(crate::budget::parse_cost).transpose().map_err(|e| {
                            err(&format!("{key}.cost"), e, "write an amount and a currency: \"5.00 USD\"")
                        })?;
                    let per = match &raw.per {
                        None => None,
                        Some(_) => {
                            let d = dur(&format!("{key}.per"), &raw.per, Duration::ZERO)?;
                            if d < Duration::from_secs(1) {
                                return Err(err(
                                    &format!("{key}.per"),
                                    "a period must be at least 1s".into(),
                                    "use a period such as 1d or 1h, or remove per: for a budget for all time",
                                ));
                            }
                            Some(d)
                        }
                    };
                    Ok(crate::budget::Budget { limit: crate::budget::BudgetLimit { cost, tokens: raw.tokens }, per })
                };
                let workflow = b.workflow.map(|w| budget("budgets.workflow", w)).transpose()?;
                let mut by_agent = BTreeMap::new();
                for (name, raw_budget) in b.agents {
                    let key = format!("budgets.agents.{name}");
                    let agent = match AgentName::parse(&name) {
                        Ok(a) if agents.contains_key(&a) => a,
                        _ => {
                            return Err(err(
                                &key,
                                format!("'{name}' is not an agent of this team"),
                                "name an agent listed under agents:",
                            ));
                        }
                    };
                    by_agent.insert(agent, budget(&key, raw_budget)?);
                }
                let ask_timeout = dur("budgets.ask_timeout", &b.ask_timeout, DEFAULT_QUESTION_TIMEOUT)?;
                crate::budget::BudgetsConfig {
                    workflow,
                    agents: by_agent,
                    on_exhausted: b.on_exhausted,
                    ask_timeout: (!ask_timeout.is_zero()).then_some(ask_timeout),
                    on_timeout: b.on_timeout,
                }
            }
        };
        Ok(Self {
            version: raw.version,
            runtime: raw.runtime,
            orchestrator,
            redis: raw.redis,
            agents,
            notifications,
            ledger,
            routing,
            retention,
            budgets,
        })
    }

    /// Every error in `text`, each with the line of the key it is about (`sett config check`),
    /// in the order found. Empty when the file is valid. After an error the offending key is
    /// set aside and the rest checked again, so independent mistakes are all reported; errors
    /// that only follow from a key set aside (a required key now missing) are not.
    pub fn check(file: &str, text: &str) -> Vec<ConfigIssue> {
        let mut value = match yaml_value(file, text) {
            Ok(v) => v,
            Err(e) => {
                let line = yaml_error_line(&e.message);
                return vec![ConfigIssue { line, error: e }];
            }
        };
        let mut issues = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        // Each round removes one key, so the loop ends; the bound is for safety only.
        for _ in 0..500 {
            let Err(e) = Self::from_value(file, value.clone()) else { break };
            let mut path = e.key_path.clone();
            let consequence = removed.iter().any(|r| encloses(&path, r));
            if !consequence {
                issues.push(ConfigIssue { line: key_line(text, &path), error: e });
            }
            // Set the key aside; if it is gone already (the error follows from an earlier
            // removal), set aside what encloses it.
            while !path.is_empty() && !remove_path(&mut value, &path) {
                path = parent_path(&path);
            }
            if path.is_empty() {
                break;
            }
            removed.push(path);
        }
        // In file order, as an editor shows them.
        issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
        issues
    }

    /// The question timeout for `agent`: its own override, else the orchestrator's.
    pub fn question_timeout_for(&self, agent: &AgentName) -> Option<Duration> {
        match self.agents.get(agent).and_then(|a| a.question_timeout) {
            Some(over) => over,
            None => self.orchestrator.question_timeout,
        }
    }

    /// The state machine's view of this configuration.
    pub fn policy(&self) -> Policy {
        Policy {
            agents: self
                .agents
                .values()
                .map(|a| {
                    (
                        a.name.clone(),
                        AgentPolicy {
                            timeout_ms: a.timeout.as_millis() as i64,
                            question_timeout_ms: self.question_timeout_for(&a.name).map(|d| d.as_millis() as i64),
                            via_worker: a.is_controller(),
                            approval: a.approval.as_ref().map(|g| ApprovalPolicy {
                                timeout_ms: g.timeout.map(|d| d.as_millis() as i64),
                                on_timeout: g.on_timeout,
                                claim_types: g.claim_types.clone(),
                            }),
                        },
                    )
                })
                .collect(),
            max_review_iterations: self.orchestrator.max_review_iterations,
            bid_timeout_ms: self.orchestrator.bid_timeout.as_millis() as i64,
            on_question_timeout: self.orchestrator.on_question_timeout,
            routing: self.routing.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: "1.0"
orchestrator:
  max_review_iterations: 2
  bid_timeout: 5s
  question_timeout: 0
agents:
  Coder:
    command: ["./run.sh"]
    bidding_strategy: {type: exclusive, target_types: ["Goal*"]}
    workspace: {mode: rw}
    environment: ["HOME", "MODE=fast"]
    timeout: 1m
    question_timeout: 10s
  Reviewer:
    command: ["./review.sh"]
    bidding_strategy: review
  Builder:
    command: ["./build.sh"]
    bidding_strategy: exclusive
    mode: controller
    worker: {max_concurrent: 2}
"#;

    #[test]
    fn parses_a_full_config() {
        let c = SettConfig::parse("sett.yml", GOOD).unwrap();
        assert_eq!(c.orchestrator.max_review_iterations, 2);
        assert_eq!(c.orchestrator.bid_timeout, Duration::from_secs(5));
        assert_eq!(c.orchestrator.question_timeout, None);
        let coder = &c.agents[&AgentName::parse("Coder").unwrap()];
        assert_eq!(coder.workspace_mode, WorkspaceMode::Rw);
        assert_eq!(coder.environment[1], EnvEntry::Set("MODE".into(), "fast".into()));
        let s = coder.bidding_strategy.as_ref().unwrap();
        assert_eq!(s.bid_for("GoalDefined"), BidType::Exclusive);
        assert_eq!(s.bid_for("CodeCommit"), BidType::Ignore);
        assert_eq!(c.question_timeout_for(&coder.name), Some(Duration::from_secs(10)));
        let builder = &c.agents[&AgentName::parse("Builder").unwrap()];
        assert_eq!(builder.worker.as_ref().unwrap().max_concurrent, 2);
        assert_eq!(builder.worker.as_ref().unwrap().command, vec!["./build.sh".to_owned()]);
    }

    #[test]
    fn retention_is_off_by_default_and_names_one_archive() {
        assert_eq!(SettConfig::parse("sett.yml", GOOD).unwrap().retention, None);
        let with =
            |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("retention: {v}\nagents:\n")));
        let r = with("{archive_after: 7d}").unwrap().retention.unwrap();
        assert_eq!(r.archive_after, Duration::from_secs(7 * 86400));
        assert_eq!(r.every, DEFAULT_ARCHIVE_EVERY);
        assert_eq!(r.archive, ArchiveTarget::Dir(DEFAULT_ARCHIVE_DIR.to_owned()));
        let r =
            with("{archive_after: 0, every: 5s, archive: {s3: {bucket: b, endpoint: 'http://x:1', allow_http: true}}}")
                .unwrap()
                .retention
                .unwrap();
        assert!(matches!(r.archive, ArchiveTarget::S3(ref s) if s.bucket == "b" && s.prefix.is_empty()));
        assert_eq!(
            with("{archive_after: 1h, archive: {dir: a, s3: {bucket: b}}}").unwrap_err().key_path,
            "retention.archive"
        );
        assert_eq!(
            with("{archive_after: 1h, archive: {s3: {bucket: b, endpoint: 'http://x'}}}").unwrap_err().key_path,
            "retention.archive.s3.endpoint"
        );
        assert_eq!(with("{archive_after: 1h, every: 10ms}").unwrap_err().key_path, "retention.every");
        assert_eq!(with("{every: 1m}").unwrap_err().key_path, "retention");
    }

    #[test]
    fn budgets_are_off_by_default_and_each_limits_something_for_a_known_agent() {
        assert!(SettConfig::parse("sett.yml", GOOD).unwrap().budgets.is_empty());
        let with =
            |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("budgets: {v}\nagents:\n")));
        let b = with(r#"{workflow: {cost: "5.00 USD", tokens: 200000}, agents: {Coder: {cost: "1 EUR", per: 1d}}, on_exhausted: stop, ask_timeout: 1h, on_timeout: pause}"#)
            .unwrap()
            .budgets;
        let w = b.workflow.unwrap();
        assert_eq!((w.limit.text(), w.per), ("200000 tokens, 5 USD".to_owned(), None));
        let coder = &b.agents[&AgentName::parse("Coder").unwrap()];
        assert_eq!((coder.limit.text(), coder.per), ("1 EUR".to_owned(), Some(Duration::from_secs(86_400))));
        assert_eq!(
            (b.on_exhausted, b.on_timeout),
            (crate::budget::OnExhausted::Stop, crate::budget::OnBudgetTimeout::Pause)
        );
        assert_eq!(b.ask_timeout, Some(Duration::from_secs(3600)));
        let defaults = with("{workflow: {tokens: 5}}").unwrap().budgets;
        assert_eq!(defaults.ask_timeout, Some(DEFAULT_QUESTION_TIMEOUT));
        assert_eq!(with("{workflow: {tokens: 5}, ask_timeout: 0}").unwrap().budgets.ask_timeout, None);
        for (bad, key) in [
            ("{workflow: {}}", "budgets.workflow"),
            ("{workflow: {tokens: 0}}", "budgets.workflow.tokens"),
            ("{workflow: {cost: 5}}", "budgets.workflow.cost"),
            ("{workflow: {cost: \"5 dollars\"}}", "budgets.workflow.cost"),
            ("{workflow: {tokens: 5, per: 0}}", "budgets.workflow.per"),
            ("{agents: {Nobody: {tokens: 5}}}", "budgets.agents.Nobody"),
            ("{workflow: {tokens: 5}, on_exhausted: wait}", "budgets.on_exhausted"),
        ] {
            assert_eq!(with(bad).unwrap_err().key_path, key, "{bad}");
        }
    }

    #[test]
    fn ledger_anchor_every_is_off_by_default_and_at_least_a_second() {
        assert_eq!(SettConfig::parse("sett.yml", GOOD).unwrap().ledger.anchor_every, None);
        let with = |v: &str| {
            SettConfig::parse(
                "sett.yml",
                &GOOD.replace("agents:\n", &format!("ledger: {{anchor_every: {v}}}\nagents:\n")),
            )
        };
        assert_eq!(with("1h").unwrap().ledger.anchor_every, Some(Duration::from_secs(3600)));
        assert_eq!(with("0").unwrap().ledger.anchor_every, None);
        assert_eq!(with("500ms").unwrap_err().key_path, "ledger.anchor_every");
        assert_eq!(with("soon").unwrap_err().key_path, "ledger.anchor_every");
    }

    #[test]
    fn the_witness_file_is_in_the_workspace_by_default() {
        let ledger =
            |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("ledger: {v}\nagents:\n")));
        let d = SettConfig::parse("sett.yml", GOOD).unwrap().ledger;
        assert_eq!(d.witness_path(Path::new("/ws")), Path::new("/ws/.sett/ledger/witness.jsonl"));
        let c = ledger("{witness_file: /var/lib/sett/w.jsonl}").unwrap().ledger;
        assert_eq!(c.witness_path(Path::new("/ws")), Path::new("/var/lib/sett/w.jsonl"));
        assert_eq!(ledger("{witness_file: ''}").unwrap_err().key_path, "ledger.witness_file");
        assert_eq!(d.on_regression, RegressionReaction::Continue, "reporting alone is the default");
        assert_eq!(ledger("{on_regression: pause}").unwrap().ledger.on_regression, RegressionReaction::Pause);
        let bad = ledger("{on_regression: stop}").unwrap_err();
        assert!(bad.key_path.starts_with("ledger.on_regression"), "{bad}");
    }

    #[test]
    fn human_reviewers_are_parsed_and_checked() {
        let with =
            |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("humans: {v}\nagents:\n")));
        let c = with("{groups: {legal: [carol]}, reviewers: [{artifact_types: [Draft, Contract], reviewers: [group:legal, alice]}]}")
            .unwrap();
        assert_eq!(c.routing.reviewers_of("Contract"), vec!["alice".to_owned(), "group:legal".to_owned()]);
        assert!(c.routing.reviewers_of("Code").is_empty());
        assert_eq!(
            with("{reviewers: [{artifact_types: [], reviewers: [a]}]}").unwrap_err().key_path,
            "humans.reviewers[0].artifact_types"
        );
        assert_eq!(
            with("{reviewers: [{artifact_types: [D], reviewers: []}]}").unwrap_err().key_path,
            "humans.reviewers[0].reviewers"
        );
        assert_eq!(
            with("{reviewers: [{artifact_types: [D], reviewers: ['group:']}]}").unwrap_err().key_path,
            "humans.reviewers[0].reviewers[0]"
        );
        let reserved = GOOD.replace("  Reviewer:\n", "  human-review:\n");
        assert_eq!(SettConfig::parse("sett.yml", &reserved).unwrap_err().key_path, "agents.human-review");
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let text = GOOD.replace("timeout: 1m", "timeout: 1m\n    role: coder");
        let e = SettConfig::parse("sett.yml", &text).unwrap_err();
        assert_eq!(e.key_path, "agents.Coder.role");
        assert!(e.message.contains("unknown field `role`"), "{e}");
        assert!(e.to_string().starts_with("sett.yml: at 'agents.Coder.role'"), "{e}");
    }

    #[test]
    fn redis_durability_defaults_by_deployment_and_rejects_unknown_values() {
        let default = SettConfig::parse("sett.yml", GOOD).unwrap().redis;
        assert_eq!(default.durability, None);
        assert_eq!(default.durability_for(false), Durability::Fast, "a single Redis");
        assert_eq!(default.durability_for(true), Durability::Replicated, "Sentinel or Cluster");
        let text = GOOD.replace("agents:\n", "redis: {durability: replicated}\nagents:\n");
        assert_eq!(SettConfig::parse("sett.yml", &text).unwrap().redis.durability_for(false), Durability::Replicated);
        let text = GOOD.replace("agents:\n", "redis: {durability: fast}\nagents:\n");
        assert_eq!(SettConfig::parse("sett.yml", &text).unwrap().redis.durability_for(true), Durability::Fast);
        let e = SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", "redis: {durability: safe}\nagents:\n"))
            .unwrap_err();
        assert!(e.key_path.starts_with("redis.durability"), "{e}");
        let e = SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", "redis: {url: x}\nagents:\n")).unwrap_err();
        assert_eq!(e.key_path, "redis.url", "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_text(s in "\\PC*") {
            let _ = SettConfig::parse("fuzz.yml", &s);
        }

        #[test]
        fn parser_never_panics_on_yaml_shaped_text(
            keys in proptest::collection::vec("[a-z_]{1,12}", 0..6),
            vals in proptest::collection::vec("[A-Za-z0-9 :\\[\\]{}\"*-]{0,16}", 0..6),
        ) {
            let mut text = String::from("version: \"1.0\"\nagents:\n  A:\n    command: [x]\n");
            for (k, v) in keys.iter().zip(vals.iter()) {
                text.push_str(&format!("    {k}: {v}\n"));
            }
            if let Err(e) = SettConfig::parse("fuzz.yml", &text) {
                proptest::prop_assert!(!e.message.is_empty() && !e.fix.is_empty());
            }
        }
    }

    #[test]
    fn notifications_are_parsed_and_checked() {
        let text = format!(
            "{GOOD}notifications:\n  console_url: https://sett.example.com/\n  webhooks:\n    - url: http://127.0.0.1:9/hook\n      secret_env: HOOK_SECRET\n    - name: chat\n      url: https://hooks.slack.com/services/x\n      events: [question_asked]\n      format: slack\n      secret: s3cret\n"
        );
        let c = SettConfig::parse("sett.yml", &text).unwrap();
        let n = &c.notifications;
        assert_eq!(n.console_url.as_deref(), Some("https://sett.example.com"));
        assert_eq!(n.webhooks[0].name, "webhook-1");
        assert_eq!(n.webhooks[0].events, NotifyEvent::defaults());
        assert!(!n.webhooks[0].wants(NotifyEvent::LedgerAnchor), "ledger_anchor is opt-in");
        assert_eq!(n.webhooks[0].secret, Some(WebhookSecret::Env("HOOK_SECRET".into())));
        assert_eq!(n.webhooks[1].format, WebhookFormat::Slack);
        assert!(n.webhooks[1].wants(NotifyEvent::QuestionAsked) && !n.webhooks[1].wants(NotifyEvent::WorkflowFailed));
        assert!(!format!("{:?}", n.webhooks[1]).contains("s3cret"), "Debug must not show the secret");
        assert!(!SettConfig::parse("sett.yml", GOOD).unwrap().notifications.is_enabled());

        let bad = |yml: &str| SettConfig::parse("sett.yml", &format!("{GOOD}notifications:\n{yml}")).unwrap_err();
        assert_eq!(bad("  webhooks:\n    - url: ftp://x\n").key_path, "notifications.webhooks[0].url");
        assert!(bad("  webhooks:\n    - url: http://x\n      events: [lunch]\n").key_path.starts_with("notifications"));
        assert_eq!(
            bad("  webhooks:\n    - {name: a, url: http://x}\n    - {name: a, url: http://y}\n").key_path,
            "notifications.webhooks[1].name"
        );
        assert_eq!(
            bad("  webhooks:\n    - {url: http://x, secret: a, secret_env: B}\n").key_path,
            "notifications.webhooks[0].secret"
        );
        assert_eq!(bad("  hooks: []\n").key_path, "notifications.hooks");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = SettConfig::parse("x.yml", &GOOD.replace("bid_timeout: 5s", "bid_timeout: soon")).unwrap_err();
        assert_eq!(e.key_path, "orchestrator.bid_timeout");
        let e = SettConfig::parse("x.yml", &GOOD.replace("bidding_strategy: review", "bidding_strategy: maybe"))
            .unwrap_err();
        assert!(e.key_path.starts_with("agents.Reviewer"), "{e}");
        let e = SettConfig::parse("x.yml", "version: \"1.0\"\nagents: {}\n").unwrap_err();
        assert_eq!(e.key_path, "agents");
        let e = SettConfig::parse("x.yml", "version: [").unwrap_err();
        assert!(e.message.contains("invalid YAML"), "{e}");
        let e = SettConfig::parse("x.yml", &GOOD.replace("Reviewer:", "user:")).unwrap_err();
        assert_eq!(e.key_path, "agents.user");
    }

    #[test]
    fn check_reports_every_independent_error_with_its_line() {
        let text = "version: \"1.0\"\norchestrator:\n  bid_timeout: soon\n  colour: blue\nagents:\n  Coder:\n    command: [\"./run.sh\"]\n    bidding_strategy: maybe\n    timeout: 1m\n    role: coder\n  Reviewer:\n    bidding_strategy: review\n";
        let issues = SettConfig::check("sett.yml", text);
        let got: Vec<(Option<usize>, &str)> = issues.iter().map(|i| (i.line, i.error.key_path.as_str())).collect();
        assert_eq!(
            got,
            [
                (Some(3), "orchestrator.bid_timeout"),
                (Some(4), "orchestrator.colour"),
                (Some(8), "agents.Coder.bidding_strategy"),
                (Some(10), "agents.Coder.role"),
                (Some(11), "agents.Reviewer"),
            ],
            "{issues:#?}"
        );
        assert!(issues.iter().all(|i| !i.error.fix.is_empty()));
        assert!(SettConfig::check("sett.yml", GOOD).is_empty());
        let syntax = SettConfig::check("x.yml", "version: \"1.0\"\nagents:\n  A: [\n");
        assert_eq!(syntax.len(), 1);
        assert!(syntax[0].line.is_some(), "{syntax:?}");
    }

    #[test]
    fn the_schema_describes_every_key_and_rejects_unknown_ones() {
        let schema = json_schema();
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], serde_json::json!(["version", "agents"]));
        let text = schema.to_string();
        for key in
            ["bid_timeout", "on_question_timeout", "bidding_strategy", "target_types", "max_concurrent", "expose_redis"]
        {
            assert!(text.contains(&format!("\"{key}\"")), "{key} missing from the schema");
        }
    }
}
