//! Logs and metrics of a written transition: the one place that reads a transition (old claim,
//! new claim, effects) for observability, as `ledger` reads it for the audit ledger and
//! `followup` for the outbox.

use sett_core::answer_spec::QuestionKind;
use sett_core::approval::Verdict;
use sett_core::config::OnApprovalTimeout;
use sett_core::machine::{Effect, FailureType, GrantOrder, Input, StepContext, Transition};
use sett_core::usage::OTHER_LABEL;
use sett_core::{AgentName, Artifact, BidType, Claim, ClaimStatus, metrics as m};
use sett_store::now_ms;
use tracing::{info, warn};

use crate::engine::Engine;

impl Engine {
    /// Counts the usage an artifact reports (docs/metrics.md): by agent (one of sett.yml, else
    /// `other`) and by model and currency, both capped (`UsageLabels`).
    pub(crate) fn observe_usage(&self, a: &Artifact) {
        let Some(u) = &a.usage else { return };
        let agent = match AgentName::parse(&a.produced_by_role) {
            Ok(name) if self.policy.agents.contains_key(&name) => a.produced_by_role.clone(),
            _ => OTHER_LABEL.to_owned(),
        };
        let (model, currency) = {
            let mut labels = self.usage_labels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let model = labels.models.label(u.model.as_deref());
            let currency = u.cost.as_ref().map(|c| labels.currencies.label(Some(c.currency.as_str())));
            (model, currency)
        };
        metrics::counter!(m::USAGE_RUNS, "agent" => agent.clone(), "model" => model.clone()).increment(1);
        for (direction, n) in [("input", u.input_tokens), ("output", u.output_tokens)] {
            if let Some(n) = n {
                metrics::counter!(m::USAGE_TOKENS, "agent" => agent.clone(), "model" => model.clone(), "direction" => direction)
                    .increment(n);
            }
        }
        if let (Some(cost), Some(currency)) = (&u.cost, currency) {
            metrics::counter!(m::USAGE_COST, "agent" => agent, "model" => model, "currency" => currency)
                .increment(cost.amount.nanos());
        }
    }

    pub(crate) async fn refresh_open_questions_gauge(&self) {
        if let Ok(n) = self.store.open_question_count().await {
            metrics::gauge!(m::OPEN_QUESTIONS).set(n as f64);
        }
        if let Ok(oldest) = self.store.oldest_open_question_ms().await {
            metrics::gauge!(m::OLDEST_OPEN_QUESTION).set(oldest.map_or(0.0, |ms| ms as f64 / 1000.0));
        }
        self.refresh_question_age_gauge().await;
    }

    /// Sets `sett_question_age_seconds` for every kind: the oldest open one's wait, 0 for none.
    pub(crate) async fn refresh_question_age_gauge(&self) {
        let Ok(open) = self.store.open_question_deadlines().await else {
            return;
        };
        let now = now_ms();
        for kind in QuestionKind::ALL {
            let oldest = open.iter().filter(|q| q.kind == kind).map(|q| q.asked_at_ms).min();
            metrics::gauge!(m::QUESTION_AGE, "kind" => kind.as_str()).set(oldest.map_or(0.0, |at| secs(now - at)));
        }
    }

    /// Logs and metrics of a written transition (the step of `input` in `ctx`).
    pub(crate) fn observe(&self, old: &Claim, t: &Transition, input: &Input, ctx: StepContext<'_>) {
        let StepContext { bids, now_ms: now } = ctx;
        let new = &t.claim;
        if old.status == ClaimStatus::PendingConsensus && new.status != ClaimStatus::PendingConsensus {
            for agent in self.policy.agents.keys() {
                let bid = bids.get(agent).copied().unwrap_or(BidType::Ignore);
                if new.missing_bids.contains(agent) {
                    continue;
                }
                metrics::counter!(m::BIDS, "bid" => bid.as_str()).increment(1);
            }
            // A consensus that grants is told by its `granted` lines, which carry the status
            // (issue 29: a log line less per lifecycle).
            if !t.effects.iter().any(|e| matches!(e, Effect::Grant(_))) {
                info!(claim_id = %new.id, artifact_id = %new.artifact_id, status = %new.status, "consensus reached");
            }
        }
        if let Some(phase) = old.status.phase()
            && old.status != new.status
            && let Some(start) = old.grants.values().map(|g| g.granted_at_ms).min()
        {
            metrics::histogram!(m::CLAIM_PHASE_SECONDS, "phase" => phase.as_str()).record(secs(now - start));
        }
        for e in &t.effects {
            match e {
                Effect::Grant(GrantOrder { agent, claim_type, seq, via_worker, .. }) => {
                    metrics::counter!(m::GRANTS, "claim_type" => claim_type.as_str()).increment(1);
                    info!(claim_id = %new.id, artifact_id = %new.artifact_id, status = %new.status, agent = %agent, claim_type = %claim_type, seq, via_worker, "granted");
                }
                Effect::BidsMissing { agents } => {
                    metrics::counter!(m::BIDS_MISSING).increment(agents.len() as u64);
                    let names: Vec<&str> = agents.iter().map(AgentName::as_str).collect();
                    warn!(claim_id = %new.id, agents = ?names, "agents did not bid before bid_timeout; counted as ignore");
                }
                Effect::QuestionOpened { question, agent } => {
                    info!(claim_id = %new.id, question_id = %question, agent = %agent, "question asked; claim waits for an answer");
                }
                Effect::AutoAnswer { question, use_default } => {
                    let policy = if *use_default { "default" } else { "continue" };
                    metrics::counter!(m::QUESTION_TIMEOUTS, "policy" => policy).increment(1);
                    warn!(claim_id = %new.id, question_id = %question, policy, "question timed out; answered by the orchestrator");
                }
                Effect::Fail { failure_type, reason, .. } => {
                    if *failure_type == FailureType::QuestionTimeout {
                        metrics::counter!(m::QUESTION_TIMEOUTS, "policy" => "fail").increment(1);
                    }
                    warn!(claim_id = %new.id, failure_type = failure_type.as_str(), reason, "claim failed");
                }
                Effect::ApprovalAsked(_) | Effect::ReviewAsked { .. } => {}
                Effect::HumanReviewed { question, review, .. } => {
                    metrics::counter!(m::HUMAN_REVIEWS, "decision" => review.decision.as_str()).increment(1);
                    if let Some(open) = old.open_questions.get(question) {
                        metrics::histogram!(m::QUESTION_ANSWER_SECONDS).record(secs(now - open.asked_at_ms));
                    }
                    info!(claim_id = %new.id, question_id = %question, by = %review.by, decision = %review.decision, "human review decided");
                }
                Effect::ApprovalTimedOut { question, on_timeout } => {
                    let outcome = match on_timeout {
                        OnApprovalTimeout::Approve => "timed_out_approved",
                        OnApprovalTimeout::Reject => "timed_out_rejected",
                    };
                    metrics::counter!(m::APPROVALS, "outcome" => outcome).increment(1);
                    warn!(claim_id = %new.id, question_id = %question, outcome, "approval timed out");
                }
                Effect::QuestionReminded { question, reminder } => {
                    metrics::counter!(m::QUESTION_REMINDERS).increment(1);
                    info!(claim_id = %new.id, question_id = %question, reminder, "question still unanswered; reminder sent");
                }
                Effect::QuestionEscalated { question, added } => {
                    metrics::counter!(m::QUESTION_ESCALATIONS).increment(1);
                    warn!(claim_id = %new.id, question_id = %question, added = ?added, "question unanswered past escalate_after; escalated");
                }
                Effect::QuestionClosed { .. } | Effect::CreateClaim { .. } => {}
            }
        }
        if let Input::Approval { question, verdict } = input
            && let Some(open) = old.open_questions.get(question)
        {
            let outcome = match verdict {
                Verdict::Approved { .. } => "approved",
                Verdict::Rejected { .. } => "rejected",
                Verdict::Mismatch { .. } => "mismatch",
            };
            metrics::counter!(m::APPROVALS, "outcome" => outcome).increment(1);
            metrics::histogram!(m::QUESTION_ANSWER_SECONDS).record(secs(now - open.asked_at_ms));
            info!(claim_id = %new.id, question_id = %question, agent = %open.agent, outcome, "approval decided");
        }
        if let Input::Answer { question, .. } = input
            && let Some(open) = old.open_questions.get(question)
        {
            metrics::histogram!(m::QUESTION_ANSWER_SECONDS).record(secs(now - open.asked_at_ms));
            info!(claim_id = %new.id, question_id = %question, agent = %open.agent, "question answered; resuming the agent");
        }
        if new.status.is_final() {
            metrics::counter!(m::CLAIMS_FINISHED, "status" => new.status.as_str()).increment(1);
            metrics::histogram!(m::CLAIM_SECONDS).record(secs(now - new.created_at_ms));
            info!(
                claim_id = %new.id, artifact_id = %new.artifact_id, status = %new.status,
                reason = new.termination_reason.as_deref().unwrap_or(""), "claim finished"
            );
        }
    }
}

fn secs(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}
