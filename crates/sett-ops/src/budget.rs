//! The budget watch (`budgets:` in sett.yml; docs/agents.md, "Budgets"), run by the
//! orchestrator daemon: it follows the ledger from its start, adds every agent run's usage to
//! the budget book (sett_core::budget), and when a budget is reached it stops new grants of the
//! workflow with the pause machinery (a pause by operator `budget`: write_claim.lua refuses
//! every grant of a paused workflow; tools already running finish) and asks a person with a
//! `kind: budget` Question. The engine hands it each output with usage before it acts on the
//! output ([`usage_hook`]), so the pause is written before anything the output could lead to
//! is granted: a budget is overrun by at most the work already running when it was reached.
//! The hook first waits until the ledger pass has read the ledger to its end once (after a
//! restart, what was spent before is known before an output is judged). The answer raises the
//! budget and resumes the workflow, or stops it (the cancel path); nobody answering in time
//! applies `budgets.on_timeout`.
//!
//! Every decision is a `budget_decided` event with its action record (`sett verify` checks
//! them). The state is rebuilt from the ledger at each start, and each step is repeatable (derived
//! ids, "already paused/cancelled/answered" taken as done), so a crash between the steps of a
//! decision is finished by the next start.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sett_core::budget::{
    BUDGET_ARTIFACT_TYPE, BUDGET_OPERATOR, BudgetAnswer, BudgetBook, BudgetDecision, BudgetScope, BudgetSubject,
    BudgetsConfig, Exhausted, OnBudgetTimeout, OnExhausted,
};
use sett_core::event::{BudgetDecided, Event, EventData};
use sett_core::{Artifact, ArtifactId, StructuralType, metrics as m};
use sett_store::{AnswerRecord, CreateOutcome, Store, StoreError, now_ms};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cancel::{CancelError, cancel_workflow, goal_of};
use crate::pause::{PauseError, pause, resume};
use crate::workflow::Workflows;
use sett_core::text::short;

/// Events read per page.
const PAGE: u64 = 1_000;
/// How long a read waits for new events; also how often answers' deadlines are looked at.
const BLOCK: Duration = Duration::from_secs(1);

/// One budget in one workflow and period: `(budget, goal, window)`.
type BudgetKey = (String, ArtifactId, i64);

/// A budget question waiting for its decision.
#[derive(Debug, Clone)]
struct Asked {
    key: BudgetKey,
    asked_at_ms: i64,
    /// Its answer, once given: the answer artifact's id.
    answer: Option<ArtifactId>,
}

/// The watch's state, rebuilt from the ledger.
pub struct BudgetWatch {
    store: Store,
    book: BudgetBook,
    agents: HashSet<String>,
    flows: Workflows,
    /// Budgets reached and handled (asked, or stopped): asked again only once raised (or, left
    /// paused, once its workflow is resumed).
    handled: HashSet<BudgetKey>,
    /// Budgets left paused by `on_timeout: pause`, by workflow: a `sett resume` of the workflow
    /// lets them be reached (and asked) again.
    left_paused: HashMap<ArtifactId, Vec<BudgetKey>>,
    /// The decisions taken into the state (by action id): each once, whether this watch made it
    /// or read it from the ledger.
    decided: HashSet<String>,
    /// How many times each budget was raised.
    rounds: HashMap<BudgetKey, u32>,
    /// Budgets reached that are not handled yet (in ledger order).
    reached: Vec<Exhausted>,
    /// Open budget questions by id.
    asked: BTreeMap<ArtifactId, Asked>,
    /// Workflows whose budget was raised (resume them) or stopped (cancel them), with who
    /// decided and why; done again after a restart (both are idempotent).
    to_resume: BTreeMap<ArtifactId, (String, String)>,
    to_cancel: BTreeMap<ArtifactId, (String, String)>,
    ended: HashSet<ArtifactId>,
    /// Artifacts whose usage was counted (by the engine's hook or the ledger, whichever first).
    counted: HashSet<ArtifactId>,
}

impl BudgetWatch {
    /// A watch of `config`'s budgets; `agents` are the team's agent names (only their runs
    /// count).
    pub fn new(store: Store, config: BudgetsConfig, agents: impl IntoIterator<Item = String>) -> Self {
        Self {
            store,
            book: BudgetBook::new(config),
            agents: agents.into_iter().collect(),
            flows: Workflows::new(),
            handled: HashSet::new(),
            left_paused: HashMap::new(),
            decided: HashSet::new(),
            rounds: HashMap::new(),
            reached: Vec::new(),
            asked: BTreeMap::new(),
            to_resume: BTreeMap::new(),
            to_cancel: BTreeMap::new(),
            ended: HashSet::new(),
            counted: HashSet::new(),
        }
    }

    /// Follows the ledger until `stop`: from the start (rebuilding the state), then each new
    /// event. Acts only once it caught up and the engine is `ready` (it holds the instance);
    /// the engine's hook waits for the first catch-up (or for this pass to end).
    pub async fn run(watch: Shared, ready: Arc<AtomicBool>, stop: CancellationToken) {
        let _release = ReadOnDrop(watch.read.clone());
        let store = watch.state.lock().await.store.clone();
        let mut after = "0".to_owned();
        let mut reader = None;
        loop {
            if stop.is_cancelled() {
                return;
            }
            if reader.is_none() {
                match store.event_reader().await {
                    Ok(r) => reader = Some(r),
                    Err(e) => {
                        warn!(error = %e, "budget watch: cannot read the ledger; retrying");
                        tokio::select! { () = stop.cancelled() => return, () = tokio::time::sleep(BLOCK) => {} }
                        continue;
                    }
                }
            }
            let Some(r) = reader.as_ref() else { continue };
            let page = tokio::select! {
                () = stop.cancelled() => return,
                page = r.read_entries_after(&after, PAGE, BLOCK) => page,
            };
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    warn!(error = %e, "budget watch: reading the ledger failed; reconnecting");
                    reader = None;
                    continue;
                }
            };
            let caught_up = (page.len() as u64) < PAGE;
            let mut this = watch.state.lock().await;
            for entry in &page {
                match entry {
                    Ok(e) => {
                        after.clone_from(&e.id);
                        if let Err(err) = this.observe(e).await {
                            warn!(error = %err, event = %e.id, "budget watch: cannot read what an event refers to");
                        }
                    }
                    Err(m) => after.clone_from(&m.id),
                }
            }
            if caught_up {
                // Set under the lock, after the page was taken in: a hook waiting for it sees
                // everything spent before.
                watch.read.send_if_modified(|read| !std::mem::replace(read, true));
                if ready.load(Ordering::SeqCst) {
                    this.act().await;
                }
            }
        }
    }

    /// Takes one event into the state; acts on nothing.
    pub async fn observe(&mut self, e: &Event) -> Result<(), StoreError> {
        self.flows.observe(e);
        match &e.data {
            EventData::ArtifactCreated(a)
                if self.agents.contains(&a.produced_by_role) && !self.counted.contains(&a.artifact_id) =>
            {
                let Some(usage) = self.store.artifact_usage(&a.artifact_id).await? else { return Ok(()) };
                self.counted.insert(a.artifact_id);
                let goal = self.flows.owners_of(e).first().copied().unwrap_or(a.artifact_id);
                self.count(goal, &a.produced_by_role, e.ts_ms, &usage);
            }
            EventData::QuestionAnswered(q) => {
                if let Some(asked) = self.asked.get_mut(&q.question_id) {
                    asked.answer = Some(q.answer_id);
                }
            }
            EventData::WorkflowCancelled(c) => {
                self.ended.insert(c.goal_id);
            }
            EventData::Resumed(r) => {
                // `sett resume` of a workflow left paused at its budget: the budget stays as it
                // was, so its next run with usage reaches it (and asks) again.
                for key in r.goal_id.and_then(|g| self.left_paused.remove(&g)).unwrap_or_default() {
                    self.handled.remove(&key);
                    *self.rounds.entry(key).or_default() += 1;
                }
            }
            EventData::BudgetDecided(d) => self.observe_decision(d, e.ts_ms),
            _ => {}
        }
        if let Some(goal) = self.flows.owners_of(e).first()
            && self.flows.get(goal).is_some_and(|w| w.outcome().is_some())
        {
            self.ended.insert(*goal);
        }
        Ok(())
    }

    /// Adds `usage`, reported by `agent` at `at_ms` in the workflow of `goal`; a budget it
    /// reaches that is not handled already is to be acted on.
    fn count(&mut self, goal: ArtifactId, agent: &str, at_ms: i64, usage: &sett_core::usage::Usage) {
        let reached = self.book.record(goal, agent, at_ms, usage);
        let handled = &self.handled;
        self.reached
            .extend(reached.into_iter().filter(|e| !handled.contains(&(e.scope.to_string(), e.goal, e.window))));
    }

    fn observe_decision(&mut self, d: &BudgetDecided, at_ms: i64) {
        if !self.decided.insert(d.action_id.clone()) {
            // Made by this watch and now read from the ledger (or read twice): taken in once.
            return;
        }
        let key = (d.budget.clone(), d.goal_id, d.window);
        // What reached this budget before the decision is decided by it (after a restart the
        // ledger pass gathers them all before acting).
        self.reached.retain(|e| (e.scope.to_string(), e.goal, e.window) != key);
        let by = || (d.operator.clone(), d.reason.clone().unwrap_or_default());
        match d.decision.as_str() {
            "exhausted" => {
                self.handled.insert(key.clone());
                self.asked.entry(d.question_id).or_insert(Asked { key, asked_at_ms: at_ms, answer: None });
            }
            "raised" => {
                if let Some(scope) = BudgetScope::parse(&d.budget) {
                    self.book.raise(&scope, d.goal_id, d.window, d.limit.clone());
                }
                self.handled.remove(&key);
                *self.rounds.entry(key).or_default() += 1;
                self.asked.remove(&d.question_id);
                self.to_resume.insert(d.goal_id, by());
            }
            "stopped" => {
                self.handled.insert(key);
                self.asked.remove(&d.question_id);
                self.to_cancel.insert(d.goal_id, by());
            }
            "left_paused" => {
                self.asked.remove(&d.question_id);
                self.left_paused.entry(d.goal_id).or_default().push(key);
            }
            _ => {
                self.asked.remove(&d.question_id);
            }
        }
    }

    /// Everything due: budgets reached, answers given, answers late, workflows to resume or
    /// cancel. A step that fails is tried again at the next call.
    pub async fn act(&mut self) {
        self.act_on_reached().await;
        let answered: Vec<(ArtifactId, ArtifactId)> =
            self.asked.iter().filter_map(|(q, a)| a.answer.map(|ans| (*q, ans))).collect();
        for (question, answer) in answered {
            if let Err(err) = self.decide(question, answer).await {
                warn!(error = %err, question_id = %question, "cannot apply the answer to a budget question yet; retrying");
            }
        }
        if let Err(err) = self.time_out().await {
            warn!(error = %err, "cannot apply budgets.on_timeout yet; retrying");
        }
        for (goal, (by, why)) in std::mem::take(&mut self.to_resume) {
            if let Err(err) = self.resume(goal, &by, &why).await {
                warn!(error = %err, goal_id = %goal, "cannot resume a workflow whose budget was raised yet; retrying");
                self.to_resume.insert(goal, (by, why));
            }
        }
        self.cancel_stopped().await;
        self.close_ended_questions().await;
        metrics::gauge!(m::BUDGETS_EXHAUSTED).set(self.asked.len() as f64);
    }

    /// Cancels the workflows whose budget decision was `stopped`; one that cannot be cancelled
    /// yet is tried again at the next call.
    async fn cancel_stopped(&mut self) {
        for (goal, (by, why)) in std::mem::take(&mut self.to_cancel) {
            match cancel_workflow(&self.store, &goal, &by, Some(&why)).await {
                Ok(_) => info!(goal_id = %goal, operator = %by, "a workflow was stopped at its budget"),
                Err(CancelError::AlreadyCancelled { .. } | CancelError::Ended { .. } | CancelError::NotFound(..)) => {}
                Err(err) => {
                    warn!(error = %err, goal_id = %goal, "cannot stop a workflow at its budget yet; retrying");
                    self.to_cancel.insert(goal, (by, why));
                }
            }
        }
    }

    /// Stops the workflow of every budget reached and not handled yet.
    async fn act_on_reached(&mut self) {
        for e in std::mem::take(&mut self.reached) {
            let key = (e.scope.to_string(), e.goal, e.window);
            if self.handled.contains(&key) || self.ended.contains(&e.goal) {
                continue;
            }
            if let Err(err) = self.exhausted(&e, &key).await {
                warn!(error = %err, goal_id = %e.goal, budget = %key.0, "cannot stop a workflow whose budget was reached yet; retrying");
                self.reached.push(e);
            }
        }
    }

    /// The engine's output `a` (with usage), before it acts on it: counted, and a budget it
    /// reaches is acted on now (the engine, which holds the instance, waits for it). Called once
    /// the ledger was read to its end ([`usage_hook`]).
    pub async fn on_usage(&mut self, a: &Artifact) {
        let Some(usage) = a.usage.as_ref().filter(|_| self.agents.contains(&a.produced_by_role)) else { return };
        if !self.counted.contains(&a.id) {
            match goal_of(&self.store, a.clone()).await {
                Ok(goal) => {
                    self.counted.insert(a.id);
                    self.count(goal, &a.produced_by_role, a.created_at_ms, usage);
                }
                // The ledger pass counts it instead.
                Err(e) => warn!(error = %e, artifact_id = %a.id, "budget watch: cannot find the workflow of an output"),
            }
        }
        // Counted here or by the ledger pass (which may have read it first, after a restart):
        // a budget it reached is acted on before the engine goes on.
        self.act_on_reached().await;
    }

    /// A budget was reached: stop the workflow's grants and ask (or, `on_exhausted: stop`,
    /// cancel it).
    async fn exhausted(&mut self, e: &Exhausted, key: &BudgetKey) -> Result<(), BudgetError> {
        let round = self.rounds.get(key).copied().unwrap_or(0);
        let subject = BudgetSubject::of(e, round);
        let question_id = subject.question_id();
        let summary = subject.summary();
        let stop = self.book.config().on_exhausted == OnExhausted::Stop;
        let decision = |decision: &str, reason: String| BudgetDecided {
            action_id: sett_core::derive::budget_action_id(&question_id, decision).to_string(),
            budget: subject.budget.clone(),
            decision: decision.into(),
            goal_id: e.goal,
            limit: e.limit.clone(),
            operator: BUDGET_OPERATOR.into(),
            question_id,
            reason: Some(reason),
            window: e.window,
        };
        if stop {
            let reason = format!("{summary}; stopped (on_exhausted: stop)");
            self.record(&decision("stopped", reason.clone()), false).await?;
            self.handled.insert(key.clone());
            self.to_cancel.insert(e.goal, (BUDGET_OPERATOR.into(), reason));
            // Now, before the engine acts on the output that reached it (the cancellation
            // fences the workflow: nothing of it is granted after).
            self.cancel_stopped().await;
            return Ok(());
        }
        let reason = format!("{summary}; question {} asks whether to continue", short(&question_id.to_string()));
        match pause(&self.store, Some(&e.goal), BUDGET_OPERATOR, Some(&reason)).await {
            Ok(_) | Err(PauseError::AlreadyPaused { .. }) => {}
            Err(PauseError::Ended { .. } | PauseError::NotFound(..)) => {
                // Nothing more of it can be granted anyway.
                self.ended.insert(e.goal);
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
        let mut question = Artifact::new_root(
            question_id,
            StructuralType::Question,
            BUDGET_ARTIFACT_TYPE,
            subject.to_payload(),
            "orchestrator",
            now_ms(),
        );
        question.source_artifacts = vec![e.goal];
        question.summary = Some(format!("budget: {summary}"));
        match self.store.create_artifact(&question).await? {
            CreateOutcome::Created { .. } | CreateOutcome::IdExists => {}
            other => return Err(BudgetError::Refused(format!("the budget question {question_id}: {other:?}"))),
        }
        self.record(&decision("exhausted", reason), true).await?;
        self.handled.insert(key.clone());
        self.asked.entry(question_id).or_insert(Asked { key: key.clone(), asked_at_ms: now_ms(), answer: None });
        info!(goal_id = %e.goal, budget = %key.0, question_id = %question_id, "{summary}: the workflow is paused and a person is asked");
        Ok(())
    }

    /// Records decision `d` (`open`: and opens its question) and takes it into the state.
    async fn record(&mut self, d: &BudgetDecided, open: bool) -> Result<(), StoreError> {
        let at = now_ms();
        if self.store.record_budget_decision(d, at, open).await? {
            metrics::counter!(m::BUDGET_DECISIONS, "decision" => d.decision.clone()).increment(1);
        }
        self.observe_decision(d, at);
        Ok(())
    }

    /// Applies the answer `answer` to budget question `question`.
    async fn decide(&mut self, question: ArtifactId, answer: ArtifactId) -> Result<(), BudgetError> {
        let Some(asked) = self.asked.get(&question).cloned() else { return Ok(()) };
        let (Some(q), Some(a)) = (self.store.get_artifact(&question).await?, self.store.get_artifact(&answer).await?)
        else {
            return Err(BudgetError::Refused(format!("budget question {question} or its answer {answer} is missing")));
        };
        let Some(subject) = BudgetSubject::of_payload(&q.payload) else {
            return Err(BudgetError::Refused(format!("{question} is not a budget question")));
        };
        let by = a.answered_by.clone().unwrap_or_else(|| a.produced_by_role.clone());
        let value: serde_json::Value = serde_json::from_str(&a.payload).unwrap_or_default();
        // `sett answer` checked it; an answer that does not read (written around it) stops.
        let (decision, limit) = match sett_core::budget::parse_answer(&subject, &value) {
            Ok(d) => d,
            Err(_) => match serde_json::from_value::<BudgetAnswer>(value) {
                Ok(BudgetAnswer { decision: BudgetDecision::Pause, .. }) => (BudgetDecision::Pause, None),
                _ => (BudgetDecision::Stop, None),
            },
        };
        let timed_out = a.timed_out;
        let (name, reason, limit) = match (decision, limit) {
            (BudgetDecision::Continue, Some(limit)) => {
                ("raised", format!("{} raised the budget to {}", by, limit.text()), limit)
            }
            (BudgetDecision::Pause, _) => (
                "left_paused",
                "nobody answered in time; the workflow stays paused (on_timeout: pause)".to_owned(),
                subject.limit.clone(),
            ),
            _ if timed_out => {
                ("stopped", "nobody answered in time; stopped (on_timeout: stop)".to_owned(), subject.limit.clone())
            }
            _ => ("stopped", format!("{by} stopped the workflow at its budget"), subject.limit.clone()),
        };
        let d = BudgetDecided {
            action_id: sett_core::derive::budget_action_id(&question, name).to_string(),
            budget: subject.budget.clone(),
            decision: name.into(),
            goal_id: subject.goal_id,
            limit,
            operator: by,
            question_id: question,
            reason: Some(reason),
            window: subject.window,
        };
        self.record(&d, false).await?;
        debug_assert_eq!(asked.key, (d.budget.clone(), d.goal_id, d.window));
        Ok(())
    }

    /// Answers the budget questions nobody answered within `budgets.ask_timeout` with the
    /// `on_timeout` policy (the answer is Sett's own, marked timed out).
    async fn time_out(&mut self) -> Result<(), StoreError> {
        let Some(timeout) = self.book.config().ask_timeout else { return Ok(()) };
        let decision = match self.book.config().on_timeout {
            OnBudgetTimeout::Stop => BudgetDecision::Stop,
            OnBudgetTimeout::Pause => BudgetDecision::Pause,
        };
        let now = now_ms();
        let late: Vec<ArtifactId> = self
            .asked
            .iter()
            .filter(|(_, a)| a.answer.is_none() && now >= a.asked_at_ms.saturating_add(timeout.as_millis() as i64))
            .map(|(q, _)| *q)
            .collect();
        for q in late {
            let Some(question) = self.store.get_artifact(&q).await? else { continue };
            let payload =
                serde_json::to_string(&BudgetAnswer { decision, tokens: None, cost: None }).expect("serialisable");
            let mut answer = Artifact::answer(
                sett_core::derive::budget_timeout_answer_id(&q),
                &question,
                payload,
                "orchestrator",
                "orchestrator",
                now,
            );
            answer.timed_out = true;
            answer.summary = Some(format!("nobody answered in time: {}", budget_word(decision)));
            let record = AnswerRecord::on_timeout(answer.id, now);
            // Answered meanwhile, or its workflow was cancelled: the ledger tells which.
            if let CreateOutcome::Created { .. } = self.store.create_answer(&answer, &q, &record).await? {
                info!(question_id = %q, policy = %budget_word(decision), "a budget question timed out");
            }
        }
        Ok(())
    }

    /// Resumes a workflow whose budget was raised, unless another of its budgets still waits.
    async fn resume(&mut self, goal: ArtifactId, by: &str, why: &str) -> Result<(), PauseError> {
        if self.asked.values().any(|a| a.key.1 == goal) || self.ended.contains(&goal) {
            return Ok(());
        }
        match self.store.pause_of(&sett_store::PauseScope::Workflow(goal)).await? {
            Some(p) if p.operator == BUDGET_OPERATOR => {}
            // Not paused (resumed already), or paused by an operator: theirs to lift.
            _ => return Ok(()),
        }
        match resume(&self.store, Some(&goal), by, Some(why)).await {
            Ok(_) => {
                info!(goal_id = %goal, operator = %by, "a workflow whose budget was raised goes on");
                Ok(())
            }
            Err(PauseError::NotPaused(_) | PauseError::NotFound(..)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A workflow that ended while its budget question was open (cancelled by an operator):
    /// nobody waits for the question any more.
    async fn close_ended_questions(&mut self) {
        let closing: BTreeSet<ArtifactId> =
            self.asked.iter().filter(|(_, a)| self.ended.contains(&a.key.1)).map(|(q, _)| *q).collect();
        for q in closing {
            match self.store.forget_open_question(&q).await {
                Ok(()) => {
                    self.asked.remove(&q);
                }
                Err(e) => warn!(error = %e, question_id = %q, "cannot close the budget question of an ended workflow"),
            }
        }
    }
}

fn budget_word(d: BudgetDecision) -> &'static str {
    match d {
        BudgetDecision::Continue => "continue",
        BudgetDecision::Stop => "stop",
        BudgetDecision::Pause => "pause",
    }
}

/// Why a budget step did not happen (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(transparent)]
    Pause(#[from] PauseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(String),
}

/// What the engine calls with each output that reported usage (the same type as
/// `sett_orchestrator::UsageHook`; this crate does not depend on the engine).
pub type UsageHook = Arc<dyn Fn(Artifact) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A budget watch shared by its ledger pass and the engine's hook.
#[derive(Clone)]
pub struct Shared {
    state: Arc<tokio::sync::Mutex<BudgetWatch>>,
    /// True once the ledger pass read the ledger to its end (or ended).
    read: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Sets the "read to the end" flag when the ledger pass ends, however it ends, so the engine's
/// hook never waits for a pass that is gone.
struct ReadOnDrop(Arc<tokio::sync::watch::Sender<bool>>);

impl Drop for ReadOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// The budget watch of `config` (`None` without budgets: nothing to watch).
pub fn budget_watch(store: Store, config: BudgetsConfig, agents: Vec<String>) -> Option<Shared> {
    (!config.is_empty()).then(|| Shared {
        state: Arc::new(tokio::sync::Mutex::new(BudgetWatch::new(store, config, agents))),
        read: Arc::new(tokio::sync::watch::Sender::new(false)),
    })
}

/// The engine's hook (`Settings::on_usage`): each output with usage goes through the watch
/// before the engine acts on it. It first waits until the ledger pass has read the ledger to its
/// end once: an output the engine reads right after a restart is judged against everything
/// spent before it, and a budget it reaches pauses the workflow before anything is granted.
pub fn usage_hook(watch: Shared) -> UsageHook {
    Arc::new(move |a: Artifact| {
        let watch = watch.clone();
        Box::pin(async move {
            // An error means the pass ended: nothing more to wait for.
            let _ = watch.read.subscribe().wait_for(|read| *read).await;
            watch.state.lock().await.on_usage(&a).await;
        })
    })
}
