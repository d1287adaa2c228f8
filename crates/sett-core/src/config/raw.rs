//! `sett.yml` as written: the serde input model, also the source of the JSON Schema (`sett
//! config schema`, docs/sett.schema.json): doc comments become the schema's descriptions, and
//! `extend("default" = …)` records the defaults [`super::parse`] applies.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;
use crate::claim::{BidType, ClaimType};

/// A duration as written: `30s`, `10m`, `24h`, or a bare number of seconds (`0` = never).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(super) enum RawDuration {
    /// A number of seconds.
    Seconds(u64),
    /// A duration such as `30s`, `10m`, `24h` or `1h 30m`.
    Text(String),
}

/// A Sett configuration file (`sett.yml`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sett.yml")]
pub(super) struct RawConfig {
    /// The configuration format version; must be "1.0".
    #[schemars(extend("enum" = ["1.0"]))]
    pub(super) version: String,
    /// Where the orchestrator and cubs run.
    #[serde(default)]
    pub(super) runtime: RuntimeKind,
    /// Settings of the orchestrator (consensus, reviews, questions).
    #[serde(default)]
    pub(super) orchestrator: RawOrchestrator,
    /// How Sett uses Redis (durability of writes); the URL comes from `--redis-url`.
    #[serde(default)]
    pub(super) redis: RedisConfig,
    /// The team: one entry per agent, keyed by the agent's name.
    #[schemars(extend("minProperties" = 1))]
    pub(super) agents: BTreeMap<String, RawAgent>,
    /// Webhooks told when an agent asks a question or a workflow ends (docs/notifications.md).
    pub(super) notifications: Option<RawNotifications>,
    /// The tamper-evident ledger (docs/security.md, "Tamper evidence").
    #[serde(default)]
    pub(super) ledger: RawLedger,
    /// People who answer questions: groups, reminders and escalation
    /// (docs/human-in-the-loop.md, "Routing: who answers").
    #[serde(default)]
    pub(super) humans: RawHumans,
    /// Archiving finished workflows out of Redis (docs/backup-recovery.md, "Retention and
    /// archive"). Absent: everything stays in Redis.
    pub(super) retention: Option<RawRetention>,
    /// Budgets on the tokens and cost agents report, per workflow and per agent (docs/agents.md,
    /// "Budgets"). Absent: nothing is limited.
    pub(super) budgets: Option<RawBudgets>,
}

/// Budgets: when one is reached, nothing more of its workflow is granted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudgets {
    /// Each workflow's budget (all its agents' runs together).
    pub(super) workflow: Option<RawBudget>,
    /// Each agent's budget, by agent name, over every workflow.
    #[serde(default)]
    pub(super) agents: BTreeMap<String, RawBudget>,
    /// When a budget is reached: `ask` pauses the workflow and asks a person (continue with a
    /// raised budget, or stop it); `stop` cancels the workflow at once.
    #[serde(default)]
    pub(super) on_exhausted: crate::budget::OnExhausted,
    /// How long the budget question waits for an answer (0 = forever).
    #[schemars(extend("default" = "24h"))]
    pub(super) ask_timeout: Option<RawDuration>,
    /// When nobody answers in time: `stop` cancels the workflow, `pause` leaves it paused for an
    /// operator (`sett resume` or `sett cancel`).
    #[serde(default)]
    pub(super) on_timeout: crate::budget::OnBudgetTimeout,
}

/// One budget: tokens and/or a cost, optionally per period.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    /// Tokens (input plus output) allowed.
    #[schemars(range(min = 1))]
    pub(super) tokens: Option<u64>,
    /// Cost allowed: an exact decimal amount and a currency, as a string ("5.00 USD"). Only
    /// costs reported in this currency count against it.
    #[schemars(extend("pattern" = "^[0-9]{1,12}(\\.[0-9]{1,18})? [A-Z][A-Z0-9]{2,7}$"))]
    pub(super) cost: Option<String>,
    /// A budget per period (`1d`, `12h`) instead of for all time: fixed periods counted from
    /// 1970-01-01T00:00Z, so `1d` is each UTC day. At least 1s.
    pub(super) per: Option<RawDuration>,
}

/// People in the loop: who questions go to, and when they are reminded and escalated.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHumans {
    /// Groups of people, by name: an addressee `group:<name>` means each of them (the
    /// console's users file can put people in groups too).
    #[serde(default)]
    pub(super) groups: BTreeMap<String, Vec<String>>,
    /// Send a `question_reminder` notification this often while a question is open (0 or
    /// absent: never). At least 1s.
    #[schemars(extend("default" = 0))]
    pub(super) remind_every: Option<RawDuration>,
    /// After this long unanswered, `escalate_to` joins a question's addressees and a
    /// `question_escalated` notification goes out (0 or absent: never). At least 1s.
    #[schemars(extend("default" = 0))]
    pub(super) escalate_after: Option<RawDuration>,
    /// People and groups (`group:<name>`) added to an unanswered question's addressees.
    #[serde(default)]
    pub(super) escalate_to: Vec<String>,
    /// Human reviewers: an artifact of one of these types is also reviewed by a person in its
    /// review phase (approve, or request changes with comments, which drives a rework as an
    /// agent's Review does).
    #[serde(default)]
    pub(super) reviewers: Vec<RawReviewers>,
}

/// One `humans.reviewers` entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReviewers {
    /// The artifact types (exact `type` names, e.g. `Draft`) these people review.
    pub(super) artifact_types: Vec<String>,
    /// People and groups (`group:<name>`); any one of them decides.
    pub(super) reviewers: Vec<String>,
}

/// Retention: finished workflows are archived to immutable segments and removed from Redis.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    /// How long a workflow stays in Redis after its outcome (Terminal, Failure, cancellation, or
    /// its goal's claim ending) before it is archived and removed (0 = at the next pass).
    pub(super) archive_after: RawDuration,
    /// How often the orchestrator runs an archiving pass. At least 1s.
    #[schemars(extend("default" = "1m"))]
    pub(super) every: Option<RawDuration>,
    /// Where the segments go (default: the directory `.sett/archive` of the workspace).
    pub(super) archive: Option<RawArchive>,
    /// The largest share of the orchestrator's time archiving passes may take, in (0, 1]: after
    /// a pass that took d, the next waits until passes are at most this share of the time.
    /// Under full load archiving then costs the engine at most about this share and falls
    /// behind instead (the lag shows in `sett status`); 1 lets passes run back to back.
    #[schemars(extend("default" = 1.0))]
    pub(super) max_share: Option<f64>,
}

/// Where archived segments are written: exactly one of `dir` and `s3`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArchive {
    /// A local directory (relative paths are relative to the workspace).
    pub(super) dir: Option<String>,
    /// An S3-compatible bucket; credentials come from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`).
    pub(super) s3: Option<S3Target>,
}

/// The tamper-evident ledger.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    /// How often the orchestrator records the ledger head in the global audit stream
    /// `sett:audit` (an anchor, as `sett down` and `sett export` write); only when the head
    /// moved. 0 or absent: never. At least 1s.
    #[schemars(extend("default" = 0))]
    pub(super) anchor_every: Option<RawDuration>,
    /// The witness file: every anchor (periodic, `sett down`, `sett export`, `sett destroy`,
    /// `sett import`) is also appended to it as a JSON line `{instance, seq, hash, at, reason}`,
    /// outside Redis; `sett verify --witness FILE` checks them. Relative to the workspace.
    #[schemars(extend("default" = DEFAULT_WITNESS_FILE))]
    pub(super) witness_file: Option<String>,
    /// What the orchestrator does when it notices that the ledger went back (docs/operations.md,
    /// "The ledger went back"): `continue` (default: report it and keep granting work) or `pause`
    /// (report it and pause the instance, as `sett pause` does, until an operator has looked
    /// and runs `sett resume`).
    #[serde(default)]
    pub(super) on_regression: RegressionReaction,
}

/// Webhook notifications.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifications {
    /// Base URL of `sett console` (e.g. https://sett.example.com), so notifications link to it.
    #[schemars(extend("pattern" = "^https?://"))]
    pub(super) console_url: Option<String>,
    /// The webhooks to post to.
    #[serde(default)]
    pub(super) webhooks: Vec<RawWebhook>,
}

/// One webhook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    /// Identifies the webhook in Redis, metrics, logs and `sett status` (default: webhook-<n>).
    #[schemars(extend("pattern" = "^[A-Za-z0-9_-]{1,64}$"))]
    pub(super) name: Option<String>,
    /// The receiver's http:// or https:// URL.
    #[schemars(extend("pattern" = "^https?://"))]
    pub(super) url: String,
    /// The events posted to this webhook (default: all but ledger_anchor).
    pub(super) events: Option<Vec<NotifyEvent>>,
    /// HMAC-SHA256 secret signing each request (prefer secret_env).
    pub(super) secret: Option<String>,
    /// The orchestrator's environment variable holding the secret.
    pub(super) secret_env: Option<String>,
    /// The body: Sett's JSON document, or Slack's {"text": ...}.
    #[serde(default)]
    pub(super) format: WebhookFormat,
}

/// Settings of the orchestrator.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrchestrator {
    /// Rework rounds allowed after review rejections before the claim is terminated.
    #[schemars(extend("default" = 3))]
    pub(super) max_review_iterations: Option<u32>,
    /// How long cubs have to bid on a claim; an agent that has not bid by then counts as `ignore`. Must be more than 0.
    #[schemars(extend("default" = "30s"))]
    pub(super) bid_timeout: Option<RawDuration>,
    /// How long a question waits for `sett answer` (0 = forever).
    #[schemars(extend("default" = "24h"))]
    pub(super) question_timeout: Option<RawDuration>,
    /// What happens when a question times out.
    #[serde(default)]
    pub(super) on_question_timeout: OnQuestionTimeout,
    /// Container image of the orchestrator and the default image of the agents (docker runtime).
    pub(super) image: Option<String>,
}

/// How an agent bids: a bid type for every artifact, or a bid type for the artifact types that match `target_types`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(super) enum RawStrategy {
    /// The same bid for every artifact: `review`, `claim`, `exclusive` or `ignore`.
    Plain(BidType),
    /// A bid for the artifact types matching `target_types` (and `ignore` for the rest).
    Detailed(RawStrategyDetailed),
}

/// A bid type for matching artifact types.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStrategyDetailed {
    /// The bid for matching artifacts.
    #[serde(rename = "type")]
    pub(super) bid: BidType,
    /// Glob patterns of artifact types (e.g. `Goal*`); empty = every type.
    #[serde(default)]
    pub(super) target_types: Vec<String>,
}

/// How the agent's tool sees the workspace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkspace {
    /// `ro` (read-only) or `rw` (read-write).
    #[serde(default)]
    pub(super) mode: WorkspaceMode,
}

/// Worker processes of a `mode: controller` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorker {
    /// Workers running at once for this agent (at least 1).
    #[schemars(extend("default" = 1), range(min = 1))]
    pub(super) max_concurrent: Option<u32>,
    /// The worker's argv (default: the agent's `command`).
    pub(super) command: Option<Vec<String>>,
    /// The worker's container image (default: the agent's `image`; docker runtime).
    pub(super) image: Option<String>,
}

/// One agent: its tool, how it bids, and its limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    /// The tool's argv, run once per grant (relative paths are relative to the workspace).
    #[schemars(length(min = 1))]
    pub(super) command: Vec<String>,
    /// The agent's container image (docker runtime; default: the orchestrator's `image`, else Sett's runtime image).
    pub(super) image: Option<String>,
    /// How the agent bids; required unless `bid_script` is given.
    pub(super) bidding_strategy: Option<RawStrategy>,
    /// An argv run to decide each bid (prints review, claim, exclusive or ignore).
    pub(super) bid_script: Option<Vec<String>>,
    /// How the tool sees the workspace.
    pub(super) workspace: Option<RawWorkspace>,
    /// Environment of the tool: `NAME` copies the host's value, `NAME=value` sets it.
    #[serde(default)]
    pub(super) environment: Vec<String>,
    /// How long one tool run may take. Must be more than 0.
    #[schemars(extend("default" = "10m"))]
    pub(super) timeout: Option<RawDuration>,
    /// This agent's question timeout (0 = forever; default: the orchestrator's `question_timeout`).
    pub(super) question_timeout: Option<RawDuration>,
    /// `controller`: run each grant in a worker process.
    pub(super) mode: Option<AgentMode>,
    /// Worker settings (needs `mode: controller`).
    pub(super) worker: Option<RawWorker>,
    /// Whether the agent bids on artifacts it produced itself.
    #[serde(default)]
    pub(super) bid_on_own_output: bool,
    /// Whether the tool gets the Redis URL (`SETT_REDIS_URL`) in its environment.
    #[serde(default)]
    pub(super) expose_redis: bool,
    /// Who this agent's questions are addressed to by default (people and `group:<name>`); a
    /// question's own `to` list wins. Absent: anyone may answer.
    #[serde(default)]
    pub(super) questions_to: Vec<String>,
    /// Require a person's approval (`sett approve`, the console) before this agent is granted a claim: its tool does not start until then.
    pub(super) approval: Option<RawApproval>,
}

/// An approval gate on an agent's claims (docs/human-in-the-loop.md, "Approvals").
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    /// How long an approval waits for a decision (0 = forever).
    #[schemars(extend("default" = "24h"))]
    pub(super) timeout: Option<RawDuration>,
    /// What happens when nobody decides in time: `reject` ends the claim with a Failure, `approve` grants it.
    #[serde(default)]
    pub(super) on_timeout: OnApprovalTimeout,
    /// Which of the agent's claim types need approval: `review`, `claim`, `exclusive`, `rework` (default: all four).
    pub(super) claim_types: Option<Vec<ClaimType>>,
}
