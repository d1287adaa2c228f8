//! Prometheus metric names and label keys: a public contract, documented in `docs/metrics.md`.
//! Only names live here (this crate records nothing); daemons record them with the `metrics`
//! macros and serve them on `/metrics`.

/// Counter, label `structural_type`: artifacts seen by the orchestrator.
pub const ARTIFACTS_CREATED: &str = "sett_artifacts_created_total";
/// Counter, label `kind` (`initial` | `rework`): claims created.
pub const CLAIMS_CREATED: &str = "sett_claims_created_total";
/// Counter, label `status` (`complete` | `terminated` | `dormant`): claims reaching a final status.
pub const CLAIMS_FINISHED: &str = "sett_claims_finished_total";
/// Histogram (seconds), label `phase`: time a claim spends in one phase.
pub const CLAIM_PHASE_SECONDS: &str = "sett_claim_phase_duration_seconds";
/// Histogram (seconds): claim creation to final status.
pub const CLAIM_SECONDS: &str = "sett_claim_duration_seconds";
/// Counter, label `bid` (`review` | `claim` | `exclusive` | `ignore`): bids counted at consensus.
pub const BIDS: &str = "sett_bids_total";
/// Counter: agents that did not bid before `bid_timeout`.
pub const BIDS_MISSING: &str = "sett_bids_missing_total";
/// Counter, label `claim_type`: grants issued.
pub const GRANTS: &str = "sett_grants_total";
/// Counter, labels `agent`, `outcome` (`success` | `question` | `failure` | `timeout` |
/// `invalid_output`): tool runs by a cub or worker.
pub const TOOL_EXECUTIONS: &str = "sett_tool_executions_total";
/// Histogram (seconds), label `agent`: tool run duration.
pub const TOOL_SECONDS: &str = "sett_tool_execution_duration_seconds";
/// Gauge: questions waiting for an answer.
pub const OPEN_QUESTIONS: &str = "sett_open_questions";
/// Histogram (seconds): question asked to answered.
pub const QUESTION_ANSWER_SECONDS: &str = "sett_question_time_to_answer_seconds";
/// Counter, label `policy` (`fail` | `continue`): questions that timed out.
pub const QUESTION_TIMEOUTS: &str = "sett_question_timeouts_total";
/// Counter, label `agent`: worker processes launched.
pub const WORKER_LAUNCHES: &str = "sett_worker_launches_total";
/// Counter, label `agent`: workers that failed (non-zero exit or launch error).
pub const WORKER_FAILURES: &str = "sett_worker_failures_total";
/// Counter, label `component`: Redis commands that failed.
pub const REDIS_ERRORS: &str = "sett_redis_errors_total";
/// Counter, label `component`: Redis reconnections.
pub const REDIS_RECONNECTS: &str = "sett_redis_reconnects_total";
/// Histogram (seconds), label `component`: event written → event handled.
pub const EVENT_LAG_SECONDS: &str = "sett_event_lag_seconds";
/// Counter, labels `component`, `kind`: events handled.
pub const EVENTS_HANDLED: &str = "sett_events_handled_total";
