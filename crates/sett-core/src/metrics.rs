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
/// Counter, label `outcome` (`recorded` | `cub_gone` | `cub_bid_otherwise`): standing bids the
/// orchestrator recorded with a claim's creation, or did not (design.md §5).
pub const STANDING_BIDS: &str = "sett_standing_bids_total";
/// Counter, label `claim_type`: grants issued.
pub const GRANTS: &str = "sett_grants_total";
/// Counter, labels `agent`, `outcome` (`success` | `question` | `failure` | `timeout` |
/// `invalid_output`): tool runs by a cub or worker.
pub const TOOL_EXECUTIONS: &str = "sett_tool_executions_total";
/// Histogram (seconds), label `agent`: tool run duration.
pub const TOOL_SECONDS: &str = "sett_tool_execution_duration_seconds";
/// Counter, label `method` (`clone3` | `posix_spawn`): programs (tools, bid scripts) a cub started.
pub const PROGRAM_STARTS: &str = "sett_program_starts_total";
/// Gauge: questions waiting for an answer.
pub const OPEN_QUESTIONS: &str = "sett_open_questions";
/// Histogram (seconds): question asked to answered.
pub const QUESTION_ANSWER_SECONDS: &str = "sett_question_time_to_answer_seconds";
/// Counter, label `policy` (`fail` | `continue` | `default`): questions that timed out.
pub const QUESTION_TIMEOUTS: &str = "sett_question_timeouts_total";
/// Counter, label `outcome` (`asked` | `approved` | `rejected` | `mismatch` | `timed_out_approved` |
/// `timed_out_rejected`): approval gates (`agents.<name>.approval`).
pub const APPROVALS: &str = "sett_approvals_total";
/// Counter, label `decision` (`approve` | `changes`): human reviews decided (`humans.reviewers`).
pub const HUMAN_REVIEWS: &str = "sett_human_reviews_total";
/// Gauge (seconds), label `kind` (`question` | `approval` | `review`): how long the oldest open
/// question of each kind has waited (0 when none is open).
pub const QUESTION_AGE: &str = "sett_question_age_seconds";
/// Counter: `question_reminder`s sent (`humans.remind_every`).
pub const QUESTION_REMINDERS: &str = "sett_question_reminders_total";
/// Counter: questions escalated (`humans.escalate_after`).
pub const QUESTION_ESCALATIONS: &str = "sett_question_escalations_total";
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
/// Gauge, label `component` (`orchestrator` | `cub`): 1 while `/readyz` answers 200, else 0.
pub const READY: &str = "sett_ready";
/// Counter: times the orchestrator lost the instance lock to another process (it then exits).
pub const LOCK_LOST: &str = "sett_lock_lost_total";
/// Counter, label `component`: ledger regressions noticed (the ledger head went back below, or
/// away from, the highest head this component had seen; docs/operations.md).
pub const LEDGER_REGRESSIONS: &str = "sett_ledger_regressions_total";
/// Gauge, label `component`: the highest ledger `seq` this component has seen.
pub const LEDGER_SEEN_SEQ: &str = "sett_ledger_seen_seq";
/// Gauge (Unix seconds): when the oldest open question was asked (0 when none is open).
pub const OLDEST_OPEN_QUESTION: &str = "sett_open_question_oldest_timestamp_seconds";
/// Gauge (Unix seconds): the earliest claim deadline not yet applied (0 when there is none).
pub const NEXT_CLAIM_DEADLINE: &str = "sett_claim_deadline_next_timestamp_seconds";

/// Counter, labels `webhook`, `event`: notifications queued for delivery (one per webhook).
pub const NOTIFICATIONS_QUEUED: &str = "sett_notifications_queued_total";
/// Counter, labels `webhook`, `event`, `outcome` (`delivered` | `failed` | `given_up`): webhook
/// delivery attempts.
pub const NOTIFICATION_ATTEMPTS: &str = "sett_notification_attempts_total";
/// Histogram (seconds), label `webhook`: ledger event written → the endpoint answered 2xx.
pub const NOTIFICATION_DELIVERY_SECONDS: &str = "sett_notification_delivery_seconds";
/// Gauge, label `webhook`: notifications waiting for a (next) attempt.
pub const NOTIFICATIONS_PENDING: &str = "sett_notifications_pending";
/// Counter, labels `route`, `status`: requests served by `sett console`.
pub const CONSOLE_REQUESTS: &str = "sett_console_requests_total";
/// Histogram (seconds), label `route`: the console's own time per request (`server-timing`).
pub const CONSOLE_REQUEST_SECONDS: &str = "sett_console_request_duration_seconds";
/// Counter, label `reason` (`no_token` | `wrong_token` | `expired_session` | `csrf` | `role`):
/// refused console requests.
pub const CONSOLE_AUTH_FAILURES: &str = "sett_console_auth_failures_total";
/// Counter, label `outcome` (`answered` | `already_answered` | `rejected`): answers posted to the
/// console.
pub const CONSOLE_ANSWERS: &str = "sett_console_answers_total";
/// Counter, labels `action` (`cancel` | `pause` | `resume` | `retry` | `fork`) and `outcome`
/// (`done` | `no_op` | `refused` | `rejected`): workflow actions posted to the console.
pub const CONSOLE_ACTIONS: &str = "sett_console_actions_total";
/// Gauge: browsers (and scripts) following an event stream of the console.
pub const CONSOLE_EVENT_STREAMS: &str = "sett_console_event_streams";
/// Counter: outputs of cancelled grants that arrived after their workflow was cancelled.
pub const LATE_OUTPUTS: &str = "sett_late_outputs_total";
/// Counter, label `result` (`ok` | `error`): archiving passes of the orchestrator (`retention:`).
pub const ARCHIVE_RUNS: &str = "sett_archive_runs_total";
/// Counter: workflows archived and removed from Redis.
pub const ARCHIVE_WORKFLOWS: &str = "sett_archive_workflows_total";
/// Counter: bytes of archive segments written.
pub const ARCHIVE_BYTES: &str = "sett_archive_bytes_total";
/// Counter: events trimmed from the stream once archived.
pub const ARCHIVE_TRIMMED: &str = "sett_archive_events_trimmed_total";
/// Counter: archiving passes that waited before they started so that passes take at most
/// `retention.max_share` of the orchestrator's time.
pub const ARCHIVE_REST: &str = "sett_archive_rests_total";
/// Gauge (Unix seconds): when the last archiving pass succeeded.
pub const ARCHIVE_LAST_SUCCESS: &str = "sett_archive_last_success_timestamp_seconds";

/// Counter, labels `agent`, `model`, `direction` (`input` | `output`): tokens agents reported
/// (docs/agents.md, "Usage"); `model` is normalised and capped (sett_core::usage::LabelCap).
pub const USAGE_TOKENS: &str = "sett_usage_tokens_total";
/// Counter, labels `agent`, `model`, `currency`: the cost agents reported, in billionths of
/// the currency's unit (Prometheus counters here are integers; `sett usage` sums exactly).
pub const USAGE_COST: &str = "sett_usage_cost_nanos_total";
/// Counter, labels `agent`, `model`: tool outputs that reported usage.
pub const USAGE_RUNS: &str = "sett_usage_runs_total";
/// Gauge: 1 while the instance is paused (`sett pause`), else 0.
pub const PAUSED: &str = "sett_paused";
/// Gauge: workflows paused one by one (`sett pause <workflow>`).
pub const PAUSED_WORKFLOWS: &str = "sett_paused_workflows";
/// Gauge: claims whose grant waits for a pause to be lifted.
pub const HELD_CLAIMS: &str = "sett_held_claims";
/// Counter: granting transitions a pause refused (each is applied again on resume).
pub const GRANTS_HELD: &str = "sett_grants_held_total";
/// Gauge: budgets reached whose workflow is paused waiting for a person's decision.
pub const BUDGETS_EXHAUSTED: &str = "sett_budgets_exhausted";
/// Counter, label `decision` (`exhausted` | `raised` | `stopped` | `left_paused`): budget
/// decisions recorded.
pub const BUDGET_DECISIONS: &str = "sett_budget_decisions_total";

/// What kind of Prometheus metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric of the contract: its name, kind and `# HELP` text (the meaning column of
/// `docs/metrics.md` without markdown; a test keeps the two equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// Every metric of the contract. Daemons describe them all at start-up so `/metrics` carries
/// HELP text for each (`promtool check metrics` requires it). A new metric goes here, with
/// its meaning, and in the table of `docs/metrics.md`.
pub const ALL: &[Metric] = &[
    Metric {
        name: ARTIFACTS_CREATED,
        kind: Kind::Counter,
        help: "Artifacts created on the blackboard, counted when the orchestrator handles their artifact_created event (goals, tool outputs, reviews, failures, questions, answers).",
    },
    Metric {
        name: CLAIMS_CREATED,
        kind: Kind::Counter,
        help: "Claims created: one per claim-creating artifact, plus rework claims after a rejecting review and the new attempts of retried steps (sett retry).",
    },
    Metric { name: CLAIMS_FINISHED, kind: Kind::Counter, help: "Claims reaching a final status." },
    Metric {
        name: CLAIM_PHASE_SECONDS,
        kind: Kind::Histogram,
        help: "Time from the first grant of a phase to the claim leaving that phase.",
    },
    Metric { name: CLAIM_SECONDS, kind: Kind::Histogram, help: "End-to-end claim latency: creation to final status." },
    Metric {
        name: BIDS,
        kind: Kind::Counter,
        help: "Bids counted when consensus is reached (one per agent and claim; an agent that did not bid in time is counted in sett_bids_missing_total instead).",
    },
    Metric {
        name: BIDS_MISSING,
        kind: Kind::Counter,
        help: "Agents that had not bid when bid_timeout expired (treated as ignore).",
    },
    Metric {
        name: STANDING_BIDS,
        kind: Kind::Counter,
        help: "Standing bids at claim creation: recorded for a live cub, or not because its cub was gone or had bid otherwise.",
    },
    Metric { name: GRANTS, kind: Kind::Counter, help: "Grants issued (including grants to controller workers)." },
    Metric { name: TOOL_EXECUTIONS, kind: Kind::Counter, help: "Tool runs by the cub of agent, by how they ended." },
    Metric { name: TOOL_SECONDS, kind: Kind::Histogram, help: "Tool run duration (process start to exit)." },
    Metric {
        name: PROGRAM_STARTS,
        kind: Kind::Counter,
        help: "Programs a cub started, by how: clone3 leaves its event loop running; posix_spawn (where clone3 is refused) suspends it while each one execs.",
    },
    Metric {
        name: LATE_OUTPUTS,
        kind: Kind::Counter,
        help: "Outputs of cancelled grants that arrived after their workflow was cancelled (recorded as output_late, acted on by nobody).",
    },
    Metric {
        name: ARCHIVE_RUNS,
        kind: Kind::Counter,
        help: "Archiving passes of the orchestrator (retention), by result; an error leaves everything in Redis.",
    },
    Metric { name: ARCHIVE_WORKFLOWS, kind: Kind::Counter, help: "Workflows archived and removed from Redis." },
    Metric { name: ARCHIVE_BYTES, kind: Kind::Counter, help: "Bytes of archive segments written." },
    Metric { name: ARCHIVE_TRIMMED, kind: Kind::Counter, help: "Events trimmed from the event stream once archived." },
    Metric {
        name: ARCHIVE_REST,
        kind: Kind::Counter,
        help: "Archiving passes that waited before they started so that passes take at most retention.max_share of the orchestrator's time; growing with the archive lag: archiving is held back by that limit.",
    },
    Metric {
        name: ARCHIVE_LAST_SUCCESS,
        kind: Kind::Gauge,
        help: "When the last archiving pass succeeded (Unix seconds); archive lag is now minus this.",
    },
    Metric {
        name: USAGE_TOKENS,
        kind: Kind::Counter,
        help: "Tokens agents reported in their outputs' usage, by agent, model and direction (input or output), counted when the orchestrator handles the output.",
    },
    Metric {
        name: USAGE_COST,
        kind: Kind::Counter,
        help: "Cost agents reported in their outputs' usage, in billionths (1e-9) of the currency label's unit: divide by 1e9 (exact sums: sett usage).",
    },
    Metric { name: USAGE_RUNS, kind: Kind::Counter, help: "Tool outputs that reported usage, by agent and model." },
    Metric {
        name: PAUSED,
        kind: Kind::Gauge,
        help: "1 while the instance is paused (sett pause): nothing is granted.",
    },
    Metric { name: PAUSED_WORKFLOWS, kind: Kind::Gauge, help: "Workflows paused one by one (sett pause <workflow>)." },
    Metric { name: HELD_CLAIMS, kind: Kind::Gauge, help: "Claims whose grant waits for a pause to be lifted." },
    Metric {
        name: GRANTS_HELD,
        kind: Kind::Counter,
        help: "Granting transitions a pause refused (each is applied again on resume).",
    },
    Metric {
        name: BUDGETS_EXHAUSTED,
        kind: Kind::Gauge,
        help: "Budgets reached whose workflow is paused, waiting for a person to raise the budget or stop it.",
    },
    Metric {
        name: BUDGET_DECISIONS,
        kind: Kind::Counter,
        help: "Budget decisions recorded in the ledger, by decision (exhausted, raised, stopped, left_paused).",
    },
    Metric {
        name: OPEN_QUESTIONS,
        kind: Kind::Gauge,
        help: "Questions waiting for sett answer, from the open-question index (set when the orchestrator becomes ready, refreshed when a question opens or closes).",
    },
    Metric {
        name: QUESTION_ANSWER_SECONDS,
        kind: Kind::Histogram,
        help: "Question asked → answer applied to its claim.",
    },
    Metric {
        name: QUESTION_REMINDERS,
        kind: Kind::Counter,
        help: "Reminders sent for questions still unanswered after humans.remind_every (each a question_reminder notification).",
    },
    Metric {
        name: QUESTION_ESCALATIONS,
        kind: Kind::Counter,
        help: "Questions unanswered after humans.escalate_after whose addressees grew by humans.escalate_to (each a question_escalated notification).",
    },
    Metric {
        name: QUESTION_TIMEOUTS,
        kind: Kind::Counter,
        help: "Questions whose question_timeout expired, by the on_question_timeout policy applied.",
    },
    Metric {
        name: APPROVALS,
        kind: Kind::Counter,
        help: "Approval gates: approvals asked, and how each was decided (by a person, by a hash that no longer matched, or on timeout).",
    },
    Metric { name: WORKER_LAUNCHES, kind: Kind::Counter, help: "Worker processes launched for controller agents." },
    Metric {
        name: WORKER_FAILURES,
        kind: Kind::Counter,
        help: "Workers that could not be launched or exited non-zero.",
    },
    Metric {
        name: REDIS_ERRORS,
        kind: Kind::Counter,
        help: "Redis calls that failed (event reads, acknowledgements, lock renewals, heartbeats, handler calls retried).",
    },
    Metric {
        name: REDIS_RECONNECTS,
        kind: Kind::Counter,
        help: "Reconnections of the daemon's Redis connection after it was lost.",
    },
    Metric {
        name: EVENT_LAG_SECONDS,
        kind: Kind::Histogram,
        help: "Event written to the ledger → event handled by this daemon (a cub's: the events it acts on, its bids, grants and cancellations; the others a cub waiting on its bell reads up to a second late, by design).",
    },
    Metric { name: EVENTS_HANDLED, kind: Kind::Counter, help: "Ledger events handled by this daemon." },
    Metric {
        name: READY,
        kind: Kind::Gauge,
        help: "1 while the daemon is ready (its /readyz answers 200), else 0; set when /metrics is scraped.",
    },
    Metric {
        name: LOCK_LOST,
        kind: Kind::Counter,
        help: "Times the orchestrator lost the instance lock to another process; it stops right after, so alert on it together with orchestrator down.",
    },
    Metric {
        name: LEDGER_REGRESSIONS,
        kind: Kind::Counter,
        help: "Ledger regressions noticed: the ledger head went back below, or away from, the highest head this component had seen (acknowledged events were lost; see docs/operations.md).",
    },
    Metric {
        name: LEDGER_SEEN_SEQ,
        kind: Kind::Gauge,
        help: "The highest ledger seq this component has seen (its regression checks compare the head with it).",
    },
    Metric {
        name: HUMAN_REVIEWS,
        kind: Kind::Counter,
        help: "Human reviews (humans.reviewers) decided, by decision: approve, or changes (which drives a rework).",
    },
    Metric {
        name: QUESTION_AGE,
        kind: Kind::Gauge,
        help: "How long the oldest open question of each kind (question, approval, review) has waited for a person, in seconds (0 when none is open); refreshed every 5 s and whenever a question opens or closes.",
    },
    Metric {
        name: OLDEST_OPEN_QUESTION,
        kind: Kind::Gauge,
        help: "Unix time at which the oldest open question was asked (0 when none is open); time() minus it is how long a human has kept an agent waiting.",
    },
    Metric {
        name: NEXT_CLAIM_DEADLINE,
        kind: Kind::Gauge,
        help: "Unix time of the earliest claim deadline not yet applied (0 when none); far in the past means claims are stuck past their deadline.",
    },
    Metric {
        name: NOTIFICATIONS_QUEUED,
        kind: Kind::Counter,
        help: "Webhook notifications queued in Redis for delivery, one per webhook and event (docs/notifications.md).",
    },
    Metric {
        name: NOTIFICATION_ATTEMPTS,
        kind: Kind::Counter,
        help: "Webhook delivery attempts by outcome: delivered = the endpoint answered 2xx; failed = any other answer, no answer within 10 s, or no connection (retried with backoff); given_up = the last attempt of a delivery that failed for 24 h.",
    },
    Metric {
        name: NOTIFICATION_DELIVERY_SECONDS,
        kind: Kind::Histogram,
        help: "Ledger event written → the webhook endpoint answered 2xx (including any retries).",
    },
    Metric {
        name: NOTIFICATIONS_PENDING,
        kind: Kind::Gauge,
        help: "Webhook notifications waiting for their first or next delivery attempt.",
    },
    Metric {
        name: CONSOLE_REQUESTS,
        kind: Kind::Counter,
        help: "Requests served by sett console, by route (page or API endpoint, never the instance or artifact named) and HTTP status.",
    },
    Metric {
        name: CONSOLE_REQUEST_SECONDS,
        kind: Kind::Histogram,
        help: "The console's own time per request (its server-timing header), by route; an event stream counts until its headers are sent.",
    },
    Metric {
        name: CONSOLE_AUTH_FAILURES,
        kind: Kind::Counter,
        help: "Console requests refused: no_token and wrong_token (401), expired_session (401, the session outlived its lifetime), csrf (403, a cookie POST without the CSRF proof or from another origin), role (403, the user's role does not allow the request).",
    },
    Metric {
        name: CONSOLE_ANSWERS,
        kind: Kind::Counter,
        help: "Answers posted to the console: answered (recorded), already_answered (409, someone else was first or the claim ended), rejected (400, 404 or 413).",
    },
    Metric {
        name: CONSOLE_ACTIONS,
        kind: Kind::Counter,
        help: "Workflow actions posted to the console, by action: done (recorded), no_op (it was so already, e.g. cancelled twice), refused (409, the workflow has ended or is not in the state the action needs), rejected (400 or 404).",
    },
    Metric {
        name: CONSOLE_EVENT_STREAMS,
        kind: Kind::Gauge,
        help: "Event streams (server-sent events) the console is serving to browsers and scripts right now.",
    },
];
