//! Webhook notifications (`notifications:` in sett.yml): humans are told when an agent asks a
//! question, when a question times out and when a workflow completes or fails.
//!
//! Durable and never in the engine's way:
//! - the notifier follows the instance's event stream through its own consumer group
//!   (`notifier`, created at the end of the stream the first time, so history is not replayed);
//! - for each event worth telling, it renders one body per interested webhook and queues it in
//!   Redis with one Lua call, keyed `<event id>:<webhook>` (`HSETNX`), before acknowledging the
//!   event: an event re-read after a crash never queues a second copy, and a delivery already
//!   made is never queued again;
//! - one task per webhook posts its due deliveries in order and records each attempt's outcome
//!   (delivered → out of the queue, in the same write; failed → rescheduled with exponential
//!   backoff) for at least [`RETRY_FOR`], then gives up;
//! - the only window for a duplicate is a crash between the endpoint's 2xx and that write (a
//!   few Redis round trips); every request carries `X-Sett-Delivery` so a receiver can drop it.
//!
//! It runs inside the orchestrator daemon, under the orchestrator's instance lock (one notifier
//! per instance). Libraries never print: everything is logged through tracing and counted in
//! metrics (`docs/metrics.md`).

pub mod http;
pub mod payload;
pub mod sign;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::Retryable;
use rand::Rng;
use sett_core::config::{NotificationsConfig, NotifyEvent, WebhookFormat, WebhookSecret};
use sett_core::event::{Event, EventData};
use sett_core::metrics as m;
use sett_core::regression::RegressionRecord;
use sett_core::witness::WitnessRecord;
use sett_core::{ArtifactId, StructuralType};
use sett_store::{
    CancellableSleep, ConsumerDriver, DeliveryRecord, DeliveryStatus, EndpointState, GroupAcks, GroupStart,
    NewDelivery, Store, StoreError, now_ms,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::http::{Attempt, HttpClient};
use crate::payload::{CancelFacts, Envelope, Notification, QuestionFacts, WorkflowFacts};

/// The notifier's consumer group on the event stream.
pub const GROUP: &str = "notifier";
/// Its one consumer: a fixed name, so a restarted notifier re-reads what its predecessor left
/// pending.
const CONSUMER: &str = "notifier";
/// How long a failing delivery is retried before it is given up.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// First retry delay; doubled per failed attempt up to [`MAX_BACKOFF`], ±20 % jitter.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
const BATCH: u64 = 256;
const BLOCK: Duration = Duration::from_secs(5);
/// Longest idle wait of a webhook task (new deliveries wake it at once).
const IDLE: Duration = Duration::from_secs(5);

/// Why the notifier cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "webhook '{webhook}': the environment variable {var} named by its secret_env is not set: export it for the orchestrator (before 'sett up'), or remove secret_env"
    )]
    MissingSecret { webhook: String, var: String },
    #[error(
        "cannot set up TLS for webhooks: {0} (install the system's CA certificates, e.g. apt-get install ca-certificates)"
    )]
    Tls(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One configured webhook, secret resolved.
struct Hook {
    name: String,
    url: String,
    events: Vec<NotifyEvent>,
    secret: Option<Vec<u8>>,
    format: WebhookFormat,
    /// Woken when a delivery for this webhook is queued.
    wake: Notify,
}

/// The delay before retry number `attempts` (1 = after the first failure).
pub fn backoff(attempts: u32) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let base = exp.min(MAX_BACKOFF);
    base.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (ms).
    RetryAt(i64),
    /// It has been failing for [`RETRY_FOR`]: this was the last attempt.
    GiveUp,
}

/// The retry policy. A delivery queued at `created_ms` whose attempt number `attempts` failed
/// at `now_ms` is tried again after [`backoff`] as long as it has been failing for less than
/// [`RETRY_FOR`]; the first failure at or after that is its last. So it never gives up before
/// 24 hours, and its last attempt is at most one backoff (5 min ± 20 %) plus one attempt after.
pub fn after_failure(created_ms: i64, attempts: u32, now_ms: i64) -> AfterFailure {
    if now_ms - created_ms >= RETRY_FOR.as_millis() as i64 {
        AfterFailure::GiveUp
    } else {
        AfterFailure::RetryAt(now_ms + backoff(attempts).as_millis() as i64)
    }
}

/// Fails when a webhook's `secret_env` names a variable that `env` does not have (checked by the
/// daemon before it starts, so the operator sees the error at once).
pub fn check_secrets(config: &NotificationsConfig, env: impl Fn(&str) -> Option<String>) -> Result<(), NotifyError> {
    for w in &config.webhooks {
        if let Some(WebhookSecret::Env(var)) = &w.secret
            && env(var).filter(|v| !v.is_empty()).is_none()
        {
            return Err(NotifyError::MissingSecret { webhook: w.name.clone(), var: var.clone() });
        }
    }
    Ok(())
}

/// Delivers notifications for one instance. Build with [`Notifier::new`], call
/// [`Notifier::prepare`] before the orchestrator starts, then run it.
pub struct Notifier {
    store: Store,
    hooks: Vec<Arc<Hook>>,
    console_url: Option<String>,
    client: HttpClient,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URLs (a Slack webhook URL is a credential) nor the secrets.
        f.debug_struct("Notifier").field("webhooks", &self.hooks.iter().map(|h| &h.name).collect::<Vec<_>>()).finish()
    }
}

impl Notifier {
    /// Resolves the webhooks' secrets (`secret_env` through `env`) and builds the HTTP client.
    pub fn new(
        store: Store,
        config: &NotificationsConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, NotifyError> {
        let mut hooks = Vec::new();
        for w in &config.webhooks {
            let secret = match &w.secret {
                None => None,
                Some(WebhookSecret::Literal(s)) => Some(s.clone().into_bytes()),
                Some(WebhookSecret::Env(var)) => match env(var).filter(|v| !v.is_empty()) {
                    Some(v) => Some(v.into_bytes()),
                    None => return Err(NotifyError::MissingSecret { webhook: w.name.clone(), var: var.clone() }),
                },
            };
            hooks.push(Arc::new(Hook {
                name: w.name.clone(),
                url: w.url.clone(),
                events: w.events.clone(),
                secret,
                format: w.format,
                wake: Notify::new(),
            }));
        }
        Ok(Self { store, hooks, console_url: config.console_url.clone(), client: HttpClient::new()? })
    }

    /// Creates the consumer group at the end of the stream if it does not exist yet, so that
    /// every event from now on is seen (call it before the orchestrator starts writing).
    pub async fn prepare(&self) -> Result<(), NotifyError> {
        let stream = self.store.group_consumer(GROUP, CONSUMER, GroupStart::End).await?;
        let made = stream.ensure_group().await;
        stream.quit().await;
        Ok(made?)
    }

    /// Waits until `ready` (the orchestrator holds the instance lock), then runs until `stop`.
    pub async fn run_when_ready(self, ready: Arc<AtomicBool>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while !ready.load(Ordering::SeqCst) {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
        }
        self.run(stop).await;
    }

    /// Follows the event stream and delivers, until `stop`. An attempt in flight is finished
    /// and recorded before returning, so a graceful stop never causes a duplicate.
    pub async fn run(self, stop: CancellationToken) {
        let me = Arc::new(self);
        info!(webhooks = ?me.hooks.iter().map(|h| &h.name).collect::<Vec<_>>(), "notifier started");
        let mut tasks = tokio::task::JoinSet::new();
        for hook in &me.hooks {
            let (me, hook, stop) = (me.clone(), hook.clone(), stop.clone());
            tasks.spawn(async move { me.webhook_loop(&hook, &stop).await });
        }
        let follower = me.clone();
        let stop_follow = stop.clone();
        tasks.spawn(async move { follower.follow(&stop_follow).await });
        while tasks.join_next().await.is_some() {}
        info!("notifier stopped");
    }

    // ---- following the ledger ----

    async fn follow(&self, stop: &CancellationToken) {
        // The consumer's connection, retried with the store's backoff until Redis answers.
        let stream = (|| self.store.group_consumer(GROUP, CONSUMER, GroupStart::End))
            .retry(sett_store::backoff(Duration::from_secs(5)))
            .sleep(CancellableSleep(stop.clone()))
            .when(|_| !stop.is_cancelled())
            .notify(|e, pause| {
                metrics::counter!(m::REDIS_ERRORS, "component" => "notifier").increment(1);
                warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "notifier: cannot connect to read the event stream; retrying");
            })
            .await;
        let Ok(stream) = stream else { return };
        // `End` only matters the first time: `prepare` normally made the group already.
        let mut driver = ConsumerDriver::new(stream, "notifier", BATCH, BLOCK);
        if driver.attach(stop).await {
            let acks = driver.acks();
            let acks = &acks;
            // The store's failure policy: a failed event stays pending and is read again (with
            // everything after it) after the backoff.
            driver.run(stop, move |events| self.handle_batch(acks, events)).await;
        }
        driver.quit().await;
    }

    /// Queues the notifications of a batch in order, acknowledging what was handled; stops at
    /// the first failure (that event and those after it stay pending). Returns whether all were.
    async fn handle_batch(&self, acks: &GroupAcks, events: Vec<Event>) -> bool {
        let mut done = Vec::with_capacity(events.len());
        let mut all = true;
        for e in &events {
            match self.handle(e).await {
                Ok(()) => done.push(e.id.clone()),
                Err(err) => {
                    metrics::counter!(m::REDIS_ERRORS, "component" => "notifier").increment(1);
                    warn!(event_id = %e.id, error = %err, "notifier: handling an event failed; it will be read again");
                    all = false;
                    break;
                }
            }
        }
        if let Err(err) = acks.ack(&done).await {
            warn!(error = %err, "notifier: cannot acknowledge handled events; they will be read again");
            return false;
        }
        all
    }

    /// Which notification an event is, before reading anything else.
    fn kind_of(e: &Event) -> Option<NotifyEvent> {
        match &e.data {
            EventData::QuestionAsked(_) => Some(NotifyEvent::QuestionAsked),
            EventData::QuestionTimedOut(_) => Some(NotifyEvent::QuestionTimedOut),
            EventData::QuestionReminded(_) => Some(NotifyEvent::QuestionReminder),
            EventData::QuestionEscalated(_) => Some(NotifyEvent::QuestionEscalated),
            EventData::ArtifactCreated(a) => match a.structural_type {
                StructuralType::Terminal => Some(NotifyEvent::WorkflowCompleted),
                StructuralType::Failure => Some(NotifyEvent::WorkflowFailed),
                _ => None,
            },
            EventData::WorkflowCancelled(_) => Some(NotifyEvent::WorkflowCancelled),
            _ => None,
        }
    }

    /// Queues the notifications of one event (idempotent).
    async fn handle(&self, e: &Event) -> Result<(), NotifyError> {
        let Some(kind) = Self::kind_of(e) else {
            return Ok(());
        };
        let targets: Vec<&Arc<Hook>> = self.hooks.iter().filter(|h| h.events.contains(&kind)).collect();
        if targets.is_empty() {
            return Ok(());
        }
        let (notification, outcome) = match kind {
            NotifyEvent::QuestionAsked => {
                let Some(q) = self.question(e, e.data.artifact_id()).await? else {
                    return Ok(());
                };
                (Notification::QuestionAsked(q), None)
            }
            NotifyEvent::QuestionTimedOut => {
                let Some(q) = self.question(e, e.data.question_id()).await? else {
                    return Ok(());
                };
                let policy = match &e.data {
                    EventData::QuestionTimedOut(t) => t.policy,
                    _ => sett_core::policy::TimeoutPolicy::Fail,
                };
                let policy = policy.as_str().to_owned();
                (Notification::QuestionTimedOut { question: q, policy }, None)
            }
            NotifyEvent::QuestionReminder => {
                let EventData::QuestionReminded(r) = &e.data else { return Ok(()) };
                let Some(q) = self.question(e, Some(r.question_id)).await? else {
                    return Ok(());
                };
                (Notification::QuestionReminder { question: q, reminder: r.reminder }, None)
            }
            NotifyEvent::QuestionEscalated => {
                let EventData::QuestionEscalated(x) = &e.data else { return Ok(()) };
                let Some(q) = self.question(e, Some(x.question_id)).await? else {
                    return Ok(());
                };
                (Notification::QuestionEscalated { question: q, added: x.added.clone() }, None)
            }
            NotifyEvent::WorkflowCompleted | NotifyEvent::WorkflowFailed => {
                let Some(w) = self.workflow(e).await? else {
                    return Ok(());
                };
                let key = (w.goal_id.clone(), w.outcome_id.clone());
                let n = if kind == NotifyEvent::WorkflowCompleted {
                    Notification::WorkflowCompleted(w)
                } else {
                    Notification::WorkflowFailed(w)
                };
                (n, Some(key))
            }
            NotifyEvent::WorkflowCancelled => {
                let EventData::WorkflowCancelled(c) = &e.data else { return Ok(()) };
                let goal = self.store.get_artifact(&c.goal_id).await?;
                let facts = CancelFacts {
                    goal_id: c.goal_id.to_string(),
                    goal_type: goal.as_ref().map(|g| g.artifact_type.clone()).unwrap_or_default(),
                    goal_text: goal.map(|g| g.payload).unwrap_or_default(),
                    operator: c.operator.clone(),
                    reason: c.reason.clone(),
                };
                // The cancellation is the workflow's one outcome: a Terminal or Failure its
                // tools write after it is late and never notified.
                (Notification::WorkflowCancelled(facts), Some((c.goal_id.to_string(), e.id.clone())))
            }
            // Not events of the ledger: sent through `Alerts`.
            NotifyEvent::LedgerRegressed | NotifyEvent::LedgerAnchor => return Ok(()),
        };
        let outcome_ref = outcome.as_ref().map(|(g, o)| (g.as_str(), o.as_str()));
        queue(&self.store, &targets, &notification, (&e.id, e.ts_ms), self.console_url.as_deref(), outcome_ref).await
    }

    /// A handle that queues notifications not read from the ledger (a ledger regression),
    /// delivered by this notifier's webhook loops once it runs.
    pub fn alerts(&self) -> Alerts {
        Alerts { store: self.store.clone(), hooks: self.hooks.clone(), console_url: self.console_url.clone() }
    }

    async fn question(&self, e: &Event, id: Option<ArtifactId>) -> Result<Option<QuestionFacts>, NotifyError> {
        let Some(id) = id else {
            warn!(event_id = %e.id, kind = %e.kind(), "event without a valid question id: no notification");
            return Ok(None);
        };
        let Some(artifact) = self.store.get_artifact(&id).await? else {
            warn!(event_id = %e.id, question = %id, "question artifact not found: no notification");
            return Ok(None);
        };
        // The short id `sett questions` shows: unique among the open questions.
        let mut open: Vec<ArtifactId> = self.store.open_questions().await?.into_iter().map(|(q, _)| q).collect();
        if !open.contains(&id) {
            open.push(id);
        }
        let short_id = sett_core::text::unique_prefixes(&open, 8).remove(&id).unwrap_or_else(|| id.to_string());
        let agent = e.data.agent().map_or_else(|| artifact.produced_by_role.clone(), ToString::to_string);
        Ok(Some(QuestionFacts {
            id: id.to_string(),
            short_id,
            text: artifact.payload,
            agent,
            claim_id: artifact.claim_id.or_else(|| e.data.claim_id()).map(|c| c.to_string()),
            asked_at_ms: artifact.created_at_ms,
            deadline_ms: match &e.data {
                EventData::QuestionAsked(q) => q.deadline_ms,
                _ => None,
            },
            to: match &e.data {
                EventData::QuestionAsked(q) => q.to.clone(),
                EventData::QuestionReminded(r) => r.to.clone(),
                EventData::QuestionEscalated(x) => x.to.clone(),
                _ => Vec::new(),
            },
        }))
    }

    /// The goal of the workflow an outcome artifact ends: follow its first source (or, for an
    /// output with none, its claim's artifact) back to an artifact that has neither.
    async fn workflow(&self, e: &Event) -> Result<Option<WorkflowFacts>, NotifyError> {
        let Some(id) = e.data.artifact_id() else {
            return Ok(None);
        };
        let Some(outcome) = self.store.get_artifact(&id).await? else {
            return Ok(None);
        };
        if self.store.fenced(&id.to_string()).await?.is_some() {
            // Written after its workflow was cancelled (a cancellation is refused once a
            // workflow has ended): the cancellation was its outcome, notified on its own.
            return Ok(None);
        }
        let mut goal = outcome.clone();
        let mut seen = HashSet::from([goal.id]);
        loop {
            let next = match (goal.source_artifacts.first(), goal.claim_id) {
                (Some(src), _) => Some(*src),
                (None, Some(claim)) => self.store.get_claim(&claim).await?.map(|c| c.artifact_id),
                (None, None) => None,
            };
            let Some(next) = next.filter(|n| seen.insert(*n)) else { break };
            match self.store.get_artifact(&next).await? {
                Some(a) => goal = a,
                None => break,
            }
        }
        let reason = (outcome.structural_type == StructuralType::Failure)
            .then(|| sett_core::failure::FailurePayload::reason_of(&outcome.payload));
        // Every run's usage counts, whoever reported it: the workflow's total is summed from the
        // artifacts themselves (exact, and the same as `sett usage --by workflow`).
        let usage = sett_ops::usage::UsageLedger::read(&self.store).await?.workflow(&goal.id);
        Ok(Some(WorkflowFacts {
            usage,
            goal_id: goal.id.to_string(),
            goal_type: goal.artifact_type,
            goal_text: goal.payload,
            outcome_id: outcome.id.to_string(),
            outcome_type: outcome.artifact_type,
            reason,
        }))
    }

    // ---- delivering ----

    async fn webhook_loop(&self, hook: &Hook, stop: &CancellationToken) {
        let mut state = loop {
            match self.store.notify_endpoints().await {
                Ok(mut all) => break all.remove(&hook.name).unwrap_or_default(),
                Err(e) => {
                    warn!(webhook = %hook.name, error = %e, "notifier: cannot read the webhook's state; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        while !stop.is_cancelled() {
            match self.store.notify_due(&hook.name, now_ms(), 32).await {
                Ok(due) if !due.is_empty() => {
                    for id in due {
                        if stop.is_cancelled() {
                            break;
                        }
                        if let Err(e) = self.attempt(hook, &id, &mut state).await {
                            warn!(webhook = %hook.name, delivery_id = %id, error = %e, "notifier: delivery bookkeeping failed; retrying");
                            break;
                        }
                    }
                }
                Ok(_) => {
                    let wait = match self.store.notify_next_due(&hook.name).await {
                        Ok(Some(at)) => Duration::from_millis((at - now_ms()).max(0) as u64).min(IDLE),
                        _ => IDLE,
                    };
                    if let Ok(n) = self.store.notify_pending(&hook.name).await {
                        metrics::gauge!(m::NOTIFICATIONS_PENDING, "webhook" => hook.name.clone()).set(n as f64);
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = hook.wake.notified() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => {
                    warn!(webhook = %hook.name, error = %e, "notifier: cannot read the delivery queue; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// One attempt of delivery `id`, recorded in Redis before the next one.
    async fn attempt(&self, hook: &Hook, id: &str, state: &mut EndpointState) -> Result<(), StoreError> {
        let rec = self.store.notify_delivery(id).await?;
        let Some(mut rec) = rec.filter(|r| r.status == DeliveryStatus::Pending && r.body.is_some()) else {
            return self.store.notify_dequeue(&hook.name, id).await;
        };
        let body = rec.body.clone().unwrap_or_default();
        let ts = now_ms() / 1000;
        let mut headers = vec![
            ("user-agent", format!("sett/{}", env!("CARGO_PKG_VERSION"))),
            ("x-sett-event", rec.event.clone()),
            ("x-sett-delivery", id.to_owned()),
            ("x-sett-timestamp", ts.to_string()),
        ];
        if let Some(secret) = &hook.secret {
            headers.push(("x-sett-signature", sign::signature(secret, ts, body.as_bytes())));
        }
        let started = std::time::Instant::now();
        let result = self.client.post(&hook.url, &headers, body).await;
        let now = now_ms();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        rec.attempts += 1;
        state.last_attempt_ms = Some(now);
        let next = match result {
            Attempt::Delivered { status } => {
                rec.status = DeliveryStatus::Delivered;
                rec.body = None;
                rec.finished_ms = Some(now);
                rec.next_attempt_ms = None;
                rec.last_error = None;
                state.last_success_ms = Some(now);
                state.last_error = None;
                state.consecutive_failures = 0;
                state.delivered += 1;
                let outcome = "delivered";
                metrics::counter!(m::NOTIFICATION_ATTEMPTS, "webhook" => hook.name.clone(), "event" => rec.event.clone(), "outcome" => outcome).increment(1);
                metrics::histogram!(m::NOTIFICATION_DELIVERY_SECONDS, "webhook" => hook.name.clone())
                    .record((now - rec.event_ts_ms).max(0) as f64 / 1000.0);
                info!(webhook = %hook.name, event = %rec.event, delivery_id = %id, attempt = rec.attempts, status, elapsed_ms, outcome, "notification delivered");
                None
            }
            Attempt::Failed { status, error } => {
                state.consecutive_failures += 1;
                state.last_error = Some(error.clone());
                rec.last_error = Some(error.clone());
                if let AfterFailure::RetryAt(at) = after_failure(rec.created_ms, rec.attempts, now) {
                    rec.next_attempt_ms = Some(at);
                    let outcome = "failed";
                    metrics::counter!(m::NOTIFICATION_ATTEMPTS, "webhook" => hook.name.clone(), "event" => rec.event.clone(), "outcome" => outcome).increment(1);
                    warn!(webhook = %hook.name, event = %rec.event, delivery_id = %id, attempt = rec.attempts, status, error, elapsed_ms, outcome,
                        retry_in_ms = at - now, "notification attempt failed; will retry");
                    Some(at)
                } else {
                    rec.status = DeliveryStatus::GivenUp;
                    rec.body = None;
                    rec.finished_ms = Some(now);
                    rec.next_attempt_ms = None;
                    state.given_up += 1;
                    let outcome = "given_up";
                    metrics::counter!(m::NOTIFICATION_ATTEMPTS, "webhook" => hook.name.clone(), "event" => rec.event.clone(), "outcome" => outcome).increment(1);
                    error!(webhook = %hook.name, event = %rec.event, delivery_id = %id, attempt = rec.attempts, status, error, elapsed_ms, outcome,
                        "notification given up after failing for {}", humantime::format_duration(RETRY_FOR));
                    None
                }
            }
        };
        // Recording the outcome is what prevents a second send: keep trying through a short
        // Redis outage rather than leave a delivered notification due.
        let mut pause = Duration::from_millis(100);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.store.notify_finish(id, &rec, next, state).await {
                Ok(()) => return Ok(()),
                Err(e) if std::time::Instant::now() + pause < until => {
                    warn!(webhook = %hook.name, delivery_id = %id, error = %e, "cannot record the delivery attempt yet; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Queues `notification` for each of `targets` (idempotent: one delivery per event and webhook)
/// and wakes their delivery loops.
async fn queue(
    store: &Store,
    targets: &[&Arc<Hook>],
    notification: &Notification,
    (event_id, event_ts_ms): (&str, i64),
    console_url: Option<&str>,
    outcome: Option<(&str, &str)>,
) -> Result<(), NotifyError> {
    let kind = notification.event();
    let now = now_ms();
    let instance = store.instance().to_string();
    let deliveries: Vec<NewDelivery> = targets
        .iter()
        .map(|h| {
            let id = format!("{event_id}:{}", h.name);
            let envelope = Envelope { instance: &instance, event_id, event_ts_ms, delivery_id: &id, console_url };
            let body = notification.render(&envelope, h.format);
            NewDelivery {
                record: DeliveryRecord {
                    webhook: h.name.clone(),
                    event: kind.as_str().to_owned(),
                    event_id: event_id.to_owned(),
                    event_ts_ms,
                    created_ms: now,
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    body: Some(body),
                    next_attempt_ms: Some(now),
                    last_error: None,
                    finished_ms: None,
                },
                id,
            }
        })
        .collect();
    let queued = store.notify_enqueue(outcome, &deliveries, now).await?;
    if queued > 0 {
        for h in targets {
            metrics::counter!(m::NOTIFICATIONS_QUEUED, "webhook" => h.name.clone(), "event" => kind.as_str())
                .increment(1);
            h.wake.notify_one();
        }
        info!(event = kind.as_str(), event_id = %event_id, webhooks = targets.len(), "notification queued");
    }
    Ok(())
}

/// Queues notifications that do not come from a ledger event: see [`Notifier::alerts`].
#[derive(Clone)]
pub struct Alerts {
    store: Store,
    hooks: Vec<Arc<Hook>>,
    console_url: Option<String>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").field("webhooks", &self.hooks.iter().map(|h| &h.name).collect::<Vec<_>>()).finish()
    }
}

impl Alerts {
    /// Queues `ledger_regressed` for every webhook that wants it. Its event id names the lost
    /// head, so the same loss noticed twice is notified once.
    pub async fn ledger_regressed(&self, r: &RegressionRecord) -> Result<(), NotifyError> {
        let targets: Vec<&Arc<Hook>> =
            self.hooks.iter().filter(|h| h.events.contains(&NotifyEvent::LedgerRegressed)).collect();
        if targets.is_empty() {
            return Ok(());
        }
        let event_id = format!("ledger-regression-{}", r.seen.replace(':', "-"));
        let n = Notification::LedgerRegressed(r.clone());
        queue(&self.store, &targets, &n, (&event_id, r.detected_at_ms), self.console_url.as_deref(), None).await
    }

    /// Queues `ledger_anchor` for every webhook that asked for it (opt-in): the head just
    /// anchored, a witness kept outside Redis by whoever receives it. Its event id names the
    /// head, so one head is notified once.
    pub async fn ledger_anchor(&self, w: &WitnessRecord) -> Result<(), NotifyError> {
        let targets: Vec<&Arc<Hook>> =
            self.hooks.iter().filter(|h| h.events.contains(&NotifyEvent::LedgerAnchor)).collect();
        if targets.is_empty() {
            return Ok(());
        }
        let event_id = format!("ledger-anchor-{}-{}", w.seq, w.hash);
        let n = Notification::LedgerAnchor(w.clone());
        queue(&self.store, &targets, &n, (&event_id, now_ms()), self.console_url.as_deref(), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        for (attempts, base) in [(1u32, 500u64), (2, 1_000), (3, 2_000), (10, 256_000), (11, 300_000), (400, 300_000)] {
            let d = backoff(attempts).as_millis() as u64;
            assert!(d >= base * 8 / 10 && d <= base * 12 / 10, "attempt {attempts}: {d} ms, base {base} ms");
        }
        // At the cap, 24 hours take hundreds of attempts: retries go on for the whole period.
        let mut total = Duration::ZERO;
        let mut n = 0;
        while total < RETRY_FOR {
            n += 1;
            total += backoff(n);
        }
        assert!(n > 200, "{n} attempts");
    }

    /// The real policy, driven attempt by attempt over simulated time: retries go on for 24
    /// hours and stop soon after, whether attempts fail at once (connection refused) or only
    /// after the 10 s request timeout.
    #[test]
    fn retries_never_give_up_before_24_hours() {
        let day = RETRY_FOR.as_millis() as i64;
        assert_eq!(day, 86_400_000, "the documented period");
        for attempt_ms in [0i64, 10_000] {
            for _ in 0..20 {
                let created = 1_700_000_000_000;
                let (mut now, mut attempts, mut longest_wait) = (created, 0u32, 0);
                let gave_up_at = loop {
                    attempts += 1;
                    now += attempt_ms;
                    match after_failure(created, attempts, now) {
                        AfterFailure::RetryAt(at) => {
                            assert!(now - created < day, "retried after 24 h");
                            assert!(at > now);
                            longest_wait = longest_wait.max(at - now);
                            now = at;
                        }
                        AfterFailure::GiveUp => break now,
                    }
                };
                let failing_for = gave_up_at - created;
                assert!(failing_for >= day, "gave up after {failing_for} ms");
                let cap = MAX_BACKOFF.as_millis() as i64 * 12 / 10;
                assert!(failing_for <= day + cap + attempt_ms, "went on {failing_for} ms");
                assert!(longest_wait <= cap, "waits stay under the 5 min cap (+20 %)");
                assert!(attempts > 200, "{attempts} attempts in 24 h");
            }
        }
        // The boundary itself: one millisecond before 24 h it is retried, at 24 h it is not.
        assert!(matches!(after_failure(0, 400, day - 1), AfterFailure::RetryAt(_)));
        assert_eq!(after_failure(0, 400, day), AfterFailure::GiveUp);
    }
}
