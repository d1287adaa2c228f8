//! The claim state machine as pure functions: `step(claim, input, ctx, policy)` returns the new
//! claim and the effects the orchestrator must carry out, or `None` when the input changes
//! nothing. Time and the bids come in the `StepContext`; nothing here reads a clock or touches
//! Redis.
//!
//! Invariants kept by every transition:
//! - a final status (`complete`, `terminated`, `dormant`) never changes again;
//! - `revision` grows by exactly one per transition (the store's compare-and-set key);
//! - each grant gets a fresh `seq`, so a re-delivered grant is recognisable;
//! - persisted agent lists are sorted (they come from `BTreeMap`s or are sorted explicitly).

use std::collections::BTreeMap;

use crate::approval::{Verdict, approval_question_id};
use crate::artifact::{Artifact, StructuralType};
use crate::claim::{AnsweredQuestion, BidType, Claim, ClaimStatus, ClaimType, Grant, HeldGrant, OpenQuestion, Phase};
use crate::ids::{AgentName, ArtifactId, ClaimId};
// `Policy` and `AgentPolicy` are re-exported while callers outside this crate still name them here.
pub use crate::policy::{AgentPolicy, Policy};
use crate::policy::{OnApprovalTimeout, OnQuestionTimeout};
use crate::review::{HumanReview, ReviewDecision, human_review_role, review_artifact_id, review_question_id};

/// How long after an agent's `timeout` the orchestrator gives up on a grant. The cub enforces
/// the timeout itself and reports a `ToolExecutionFailure` with the tool's output tails; the
/// orchestrator's deadline only catches a cub that died or cannot reach Redis, so it must not
/// race the cub's own report.
pub const EXECUTION_GRACE_MS: i64 = 2_000;

/// Something that happened to a claim. Owned, so the orchestrator keeps one across
/// compare-and-set retries; what a step reads besides the claim and the input (the bids, the
/// time) comes in a [`StepContext`].
#[derive(Debug, Clone)]
pub enum Input {
    /// The bid hash (the context's `bids`) changed; consensus is reached once every configured
    /// agent has bid.
    Bids,
    /// Time passed: apply any deadline that is due. The context's `bids` are the current bid hash.
    Tick,
    /// An artifact produced for this claim (its `claim_id` is the claim, or it derives from the
    /// claim's artifact): a Review, a Standard output, a Question, a Failure or a Terminal.
    Output(Box<Artifact>),
    /// A question of this claim was answered (by a human, or by the orchestrator on timeout).
    Answer { question: ArtifactId, answer: ArtifactId },
    /// An approval of this claim was answered, as the orchestrator judged the answer
    /// (`approval::judge`: the decision, and whether it binds the target's current hash).
    Approval { question: ArtifactId, verdict: Verdict },
    /// The human review of this claim was answered (`humans.reviewers`), as the orchestrator
    /// read the answer.
    HumanReview { question: ArtifactId, review: HumanReview },
    /// The worker executing grant `seq` started.
    WorkerLaunched { agent: AgentName, seq: u64 },
    /// The worker executing grant `seq` exited.
    WorkerExited { agent: AgentName, seq: u64, success: bool },
}

/// What a step reads besides the claim and its input, supplied by the caller (sett-core reads
/// no clock and no store).
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The claim's current bid hash; read only by [`Input::Bids`] and [`Input::Tick`].
    pub bids: &'a BTreeMap<AgentName, BidType>,
    /// The time of the step: the new `updated_at_ms`, and the base of every deadline it sets.
    pub now_ms: i64,
}

/// Why the orchestrator ended a claim: the `type` of the Failure artifact it writes (the
/// variant's name, as stored and as `sett hoard` shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FailureType {
    /// A controller worker exited with an error before producing output.
    WorkerFailure,
    /// A question was not answered in time (`on_question_timeout: fail`).
    QuestionTimeout,
    /// The granted agent produced nothing before the grant's deadline.
    ExecutionTimeout,
    /// A review rejected the goal itself (a root artifact cannot be reworked).
    GoalRejected,
    /// The artifact to rework was produced by an agent not in sett.yml.
    MissingAgentConfiguration,
    /// Review rejections exceeded `orchestrator.max_review_iterations`.
    MaxIterationsExceeded,
    /// A person rejected the agent's claim (`agents.<name>.approval`).
    ApprovalRejected,
    /// Nobody approved in time and the agent's `approval.on_timeout` is `reject`.
    ApprovalTimedOut,
    /// An approval did not bind the target as it is stored (a hash differs): no grant.
    ApprovalMismatch,
}

impl FailureType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkerFailure => "WorkerFailure",
            Self::QuestionTimeout => "QuestionTimeout",
            Self::ExecutionTimeout => "ExecutionTimeout",
            Self::GoalRejected => "GoalRejected",
            Self::MissingAgentConfiguration => "MissingAgentConfiguration",
            Self::MaxIterationsExceeded => "MaxIterationsExceeded",
            Self::ApprovalRejected => "ApprovalRejected",
            Self::ApprovalTimedOut => "ApprovalTimedOut",
            Self::ApprovalMismatch => "ApprovalMismatch",
        }
    }
}

impl std::fmt::Display for FailureType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the orchestrator must do after persisting a transition. Serialisable: the effects that
/// need writes of their own (a Failure, a rework claim, an automatic answer, a worker launch) are
/// stored as they are in the claim's outbox, atomically with the transition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Effect {
    /// Hand a grant to an agent (a grant event, and a worker launch when `via_worker`).
    Grant(GrantOrder),
    /// Write a Failure artifact with id `artifact_id` deriving from the claim's artifact.
    Fail {
        artifact_id: ArtifactId,
        failure_type: FailureType,
        reason: String,
    },
    /// Create this rework claim (it already carries its grant; emit `grants` after creating it),
    /// or its approval when its agent is gated (ask `approvals` when creating it).
    CreateClaim {
        claim: Box<Claim>,
        grants: Vec<GrantOrder>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        approvals: Vec<ApprovalOrder>,
    },
    /// Ask a person to approve a grant held back (the Question is written before the
    /// transition that opens it; see the orchestrator's `approvals.rs`).
    ApprovalAsked(ApprovalOrder),
    /// Ask the claim's human reviewers for their decision (the Question is written before the
    /// transition that opens it, as an approval's).
    ReviewAsked {
        question: ArtifactId,
    },
    /// Write the Review artifact `artifact_id` a person's decision on review `question` became
    /// (produced by `human:<name>`; counted by the review phase in the same transition).
    HumanReviewed {
        question: ArtifactId,
        artifact_id: ArtifactId,
        review: HumanReview,
    },
    /// An approval's deadline passed; `on_timeout` says what followed.
    ApprovalTimedOut {
        question: ArtifactId,
        on_timeout: OnApprovalTimeout,
    },
    QuestionOpened {
        question: ArtifactId,
        agent: AgentName,
    },
    QuestionClosed {
        question: ArtifactId,
    },
    /// An open question's `humans.remind_every` came round again: its `reminder`-th reminder.
    QuestionReminded {
        question: ArtifactId,
        reminder: u32,
    },
    /// An open question waited `humans.escalate_after`: `added` (of `humans.escalate_to`) joined
    /// its addressees.
    QuestionEscalated {
        question: ArtifactId,
        added: Vec<String>,
    },
    /// The question timed out under `on_question_timeout: continue` (or `default`): answer it
    /// as the orchestrator with `timed_out: true` — with the spec's default answer when
    /// `use_default` and the question has one.
    AutoAnswer {
        question: ArtifactId,
        #[serde(default)]
        use_default: bool,
    },
    /// Agents that did not bid in time (logged and counted).
    BidsMissing {
        agents: Vec<AgentName>,
    },
}

/// Grant `seq` of a claim to `agent` (the data of its `claim_granted` event).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrantOrder {
    pub agent: AgentName,
    pub claim_type: ClaimType,
    pub seq: u64,
    /// Executed by a worker the orchestrator launches (controller mode), not by a running cub.
    pub via_worker: bool,
    /// The approval this grant followed (`agents.<name>.approval`); `None` for an ungated grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ArtifactId>,
}

/// An approval to ask before grant `seq` of the claim to `agent` (question id
/// [`approval_question_id`]`(claim, seq)`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalOrder {
    pub question: ArtifactId,
    pub agent: AgentName,
    pub claim_type: ClaimType,
}

/// A claim's next state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub claim: Claim,
    pub effects: Vec<Effect>,
}

pub use crate::derive::initial_claim_id;

/// A new claim for a Standard artifact, waiting for bids.
pub fn new_claim(id: ClaimId, artifact: &Artifact, policy: &Policy, now_ms: i64) -> Claim {
    Claim {
        id,
        artifact_id: artifact.id,
        status: ClaimStatus::PendingConsensus,
        revision: 1,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        target_producer: artifact.produced_by_role.clone(),
        target_version: artifact.version,
        rework_of: None,
        bid_deadline_ms: Some(now_ms + policy.bid_timeout_ms),
        missing_bids: Vec::new(),
        granted_review_agents: Vec::new(),
        granted_parallel_agents: Vec::new(),
        granted_exclusive_agent: None,
        human_reviewers: policy.routing.reviewers_of(&artifact.artifact_type),
        assigned_agent: None,
        additional_context_ids: Vec::new(),
        grants: BTreeMap::new(),
        received: BTreeMap::new(),
        rejections: Vec::new(),
        grant_seq: 0,
        question_id: None,
        open_questions: BTreeMap::new(),
        answered_questions: Vec::new(),
        resume_status: None,
        termination_reason: None,
        outcome_artifact: None,
    }
}

/// Applies `input` to `claim` at `ctx.now_ms`. `None` means the input is irrelevant or already
/// applied (inputs are redelivered after restarts, so this is the normal idempotent answer).
pub fn step(claim: &Claim, input: &Input, ctx: StepContext<'_>, policy: &Policy) -> Option<Transition> {
    if claim.status.is_final() {
        return None;
    }
    let StepContext { bids, now_ms } = ctx;
    let mut next = claim.clone();
    let mut effects = Vec::new();
    match input {
        Input::Bids => {
            if claim.status != ClaimStatus::PendingConsensus {
                return None;
            }
            let all_in = policy.agents.keys().all(|a| bids.contains_key(a));
            if !all_in {
                return None;
            }
            consensus(&mut next, bids, policy, now_ms, &mut effects);
        }
        Input::Tick => tick(&mut next, bids, policy, now_ms, &mut effects),
        Input::Output(artifact) => output(&mut next, artifact, policy, now_ms, &mut effects),
        Input::Answer { question, answer } => {
            let (question, answer) = (*question, *answer);
            let open = next.open_questions.get(&question)?;
            if open.approval.is_some() || open.review {
                return None; // decided by `Input::Approval` / `Input::HumanReview`
            }
            let open = next.open_questions.remove(&question)?;
            next.answered_questions.push(AnsweredQuestion { agent: open.agent.clone(), question, answer });
            effects.push(Effect::QuestionClosed { question });
            if next.open_questions.is_empty() {
                next.status = next.resume_status.take().unwrap_or(ClaimStatus::Terminated);
            }
            grant(&mut next, &open.agent, ClaimType::Resume, policy, now_ms, &mut effects);
        }
        Input::Approval { question, verdict } => {
            let question = *question;
            let held = next.open_questions.get(&question)?.approval.clone()?;
            let agent = next.open_questions[&question].agent.clone();
            match verdict {
                Verdict::Approved { .. } => {
                    release_held_grant(&mut next, question, &agent, &held, policy, now_ms, &mut effects)
                }
                Verdict::Rejected { by, reason } => terminate(
                    &mut next,
                    FailureType::ApprovalRejected,
                    format!("{by} rejected agent {agent}'s {} claim: {reason}", held.claim_type),
                    &mut effects,
                ),
                Verdict::Mismatch { why } => terminate(
                    &mut next,
                    FailureType::ApprovalMismatch,
                    format!("agent {agent}'s {} claim was not granted: {why}", held.claim_type),
                    &mut effects,
                ),
            }
        }
        Input::HumanReview { question, review } => {
            human_reviewed(&mut next, *question, review, policy, now_ms, &mut effects)?
        }
        Input::WorkerLaunched { agent, seq } => {
            let timeout = policy.agents.get(agent)?.timeout_ms;
            let g = next.grants.get_mut(agent)?;
            if g.seq != *seq || g.deadline_ms.is_some() || next.received.contains_key(agent) {
                return None;
            }
            g.deadline_ms = Some(now_ms + timeout + EXECUTION_GRACE_MS);
        }
        Input::WorkerExited { agent, seq, success } => {
            let g = next.grants.get(agent)?;
            let waiting = next.open_questions.values().any(|q| &q.agent == agent);
            if *success || g.seq != *seq || next.received.contains_key(agent) || waiting {
                return None;
            }
            terminate(
                &mut next,
                FailureType::WorkerFailure,
                format!("the worker for agent {agent} exited with an error before producing output"),
                &mut effects,
            );
        }
    }
    if next == *claim {
        return None;
    }
    next.revision = claim.revision + 1;
    next.updated_at_ms = now_ms;
    Some(Transition { claim: next, effects })
}

fn consensus(
    c: &mut Claim,
    bids: &BTreeMap<AgentName, BidType>,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    // Bids from agents that are not configured are ignored; missing bids count as `ignore`.
    let known =
        |b: BidType| -> Vec<AgentName> { policy.agents.keys().filter(|a| bids.get(*a) == Some(&b)).cloned().collect() };
    let missing: Vec<AgentName> = policy.agents.keys().filter(|a| !bids.contains_key(*a)).cloned().collect();
    if !missing.is_empty() {
        effects.push(Effect::BidsMissing { agents: missing.clone() });
    }
    c.missing_bids = missing;
    c.bid_deadline_ms = None;
    c.granted_review_agents = known(BidType::Review);
    c.granted_parallel_agents = known(BidType::Claim);
    c.granted_exclusive_agent = known(BidType::Exclusive).into_iter().next();
    match first_phase_from(c, None) {
        Some(phase) => start_phase(c, phase, policy, now_ms, effects),
        None => c.status = ClaimStatus::Dormant,
    }
}

/// The next non-empty phase after `after` (review → parallel → exclusive).
fn first_phase_from(c: &Claim, after: Option<Phase>) -> Option<Phase> {
    let order = [Phase::Review, Phase::Parallel, Phase::Exclusive];
    let start = match after {
        None => 0,
        Some(p) => order.iter().position(|x| *x == p).map_or(order.len(), |i| i + 1),
    };
    order[start..]
        .iter()
        .copied()
        .find(|p| !phase_agents(c, *p).is_empty() || (*p == Phase::Review && !c.human_reviewers.is_empty()))
}

fn phase_agents(c: &Claim, phase: Phase) -> Vec<AgentName> {
    match phase {
        Phase::Review => c.granted_review_agents.clone(),
        Phase::Parallel => c.granted_parallel_agents.clone(),
        Phase::Exclusive => c.granted_exclusive_agent.iter().cloned().collect(),
        Phase::Assignment => c.assigned_agent.iter().cloned().collect(),
    }
}

fn start_phase(c: &mut Claim, phase: Phase, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    c.status = phase.status();
    c.grants.clear();
    c.received.clear();
    for agent in phase_agents(c, phase) {
        grant(c, &agent, phase.claim_type(), policy, now_ms, effects);
    }
    if phase == Phase::Review && !c.human_reviewers.is_empty() {
        ask_human_review(c, policy, now_ms, effects);
    }
}

/// Opens the human review of the claim's artifact, addressed to its `humans.reviewers`: the
/// claim waits (`pending_answer`) for it as well as for its reviewing agents. It has no deadline;
/// reminders and escalation apply as to any question.
fn ask_human_review(c: &mut Claim, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    let question = review_question_id(&c.id);
    if c.status != ClaimStatus::PendingAnswer {
        c.resume_status = Some(c.status);
        c.status = ClaimStatus::PendingAnswer;
    }
    let to = c.human_reviewers.clone();
    c.open_questions.insert(
        question,
        OpenQuestion { review: true, ..routed_question(&human_review_role(), to, now_ms, None, &policy.routing) },
    );
    effects.push(Effect::ReviewAsked { question });
}

/// A person decided the human review `question`: it closes, its Review artifact is written (a
/// follow-up) and counted like an agent's — a request for changes vetoes — and the phase
/// completes once every reviewing agent delivered too. `None` when `question` is not this
/// claim's open review.
fn human_reviewed(
    c: &mut Claim,
    question: ArtifactId,
    review: &HumanReview,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) -> Option<()> {
    if !c.open_questions.get(&question)?.review {
        return None;
    }
    c.open_questions.remove(&question);
    let artifact_id = review_artifact_id(&question);
    if review.decision == ReviewDecision::Changes {
        c.rejections.push(artifact_id);
    }
    effects.push(Effect::QuestionClosed { question });
    effects.push(Effect::HumanReviewed { question, artifact_id, review: review.clone() });
    if c.open_questions.is_empty() {
        c.status = c.resume_status.take().unwrap_or(ClaimStatus::Terminated);
        if c.grants.keys().all(|a| c.received.contains_key(a)) {
            complete_phase(c, policy, now_ms, effects);
        }
    }
    Some(())
}

/// Grants `agent` the claim — or, when the agent's grants of `claim_type` need approval, holds
/// the grant back and asks for it: the claim waits (`pending_answer`) on an approval question.
fn grant(
    c: &mut Claim,
    agent: &AgentName,
    claim_type: ClaimType,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    let gate = policy.agents.get(agent).and_then(|p| p.approval.as_ref()).filter(|g| g.gates(claim_type));
    let Some(gate) = gate else {
        grant_now(c, agent, claim_type, None, policy, now_ms, effects);
        return;
    };
    c.grant_seq += 1;
    let question = approval_question_id(&c.id, c.grant_seq);
    if c.status != ClaimStatus::PendingAnswer {
        c.resume_status = Some(c.status);
        c.status = ClaimStatus::PendingAnswer;
    }
    // An approval is routed like the agent's own questions: to its `questions_to`, reminded
    // and escalated alike.
    let to = policy.routing.questions_to.get(agent).cloned().unwrap_or_default();
    c.open_questions.insert(
        question,
        OpenQuestion {
            approval: Some(HeldGrant { claim_type }),
            ..routed_question(agent, to, now_ms, gate.timeout_ms.map(|t| now_ms + t), &policy.routing)
        },
    );
    effects.push(Effect::ApprovalAsked(ApprovalOrder { question, agent: agent.clone(), claim_type }));
}

/// The approval `question` was given (by a person, or by `on_timeout: approve`): closes it and
/// makes the grant it held back.
fn release_held_grant(
    c: &mut Claim,
    question: ArtifactId,
    agent: &AgentName,
    held: &HeldGrant,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    c.open_questions.remove(&question);
    effects.push(Effect::QuestionClosed { question });
    if c.open_questions.is_empty() {
        c.status = c.resume_status.take().unwrap_or(ClaimStatus::Terminated);
    }
    grant_now(c, agent, held.claim_type, Some(question), policy, now_ms, effects);
}

fn grant_now(
    c: &mut Claim,
    agent: &AgentName,
    claim_type: ClaimType,
    approval: Option<ArtifactId>,
    policy: &Policy,
    now_ms: i64,
    effects: &mut Vec<Effect>,
) {
    let (timeout_ms, via_worker) = policy.agents.get(agent).map_or((0, false), |p| (p.timeout_ms, p.via_worker));
    c.grant_seq += 1;
    let seq = c.grant_seq;
    c.grants.insert(
        agent.clone(),
        Grant {
            claim_type,
            seq,
            granted_at_ms: now_ms,
            // A worker's clock starts when it is launched (it may wait in the queue first).
            deadline_ms: (!via_worker).then_some(now_ms + timeout_ms + EXECUTION_GRACE_MS),
            via_worker,
        },
    );
    effects.push(Effect::Grant(GrantOrder { agent: agent.clone(), claim_type, seq, via_worker, approval }));
}

fn terminate(c: &mut Claim, failure_type: FailureType, reason: String, effects: &mut Vec<Effect>) {
    let artifact_id = crate::derive::failure_artifact_id(&c.id);
    for q in std::mem::take(&mut c.open_questions).into_keys() {
        effects.push(Effect::QuestionClosed { question: q });
    }
    c.status = ClaimStatus::Terminated;
    c.outcome_artifact = Some(artifact_id);
    c.termination_reason = Some(reason.clone());
    effects.push(Effect::Fail { artifact_id, failure_type, reason });
}

fn tick(c: &mut Claim, bids: &BTreeMap<AgentName, BidType>, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    if c.status == ClaimStatus::PendingConsensus {
        if c.bid_deadline_ms.is_some_and(|d| d <= now_ms) {
            consensus(c, bids, policy, now_ms, effects);
        }
        return;
    }
    let due_approvals: Vec<(ArtifactId, AgentName, HeldGrant)> = c
        .open_questions
        .iter()
        .filter(|(_, q)| q.deadline_ms.is_some_and(|d| d <= now_ms))
        .filter_map(|(id, q)| Some((*id, q.agent.clone(), q.approval.clone()?)))
        .collect();
    for (question, agent, held) in due_approvals {
        let gate = policy.agents.get(&agent).and_then(|p| p.approval.as_ref());
        let on_timeout = gate.map_or(OnApprovalTimeout::Reject, |g| g.on_timeout);
        effects.push(Effect::ApprovalTimedOut { question, on_timeout });
        match on_timeout {
            OnApprovalTimeout::Approve => release_held_grant(c, question, &agent, &held, policy, now_ms, effects),
            OnApprovalTimeout::Reject => {
                let waited = gate.and_then(|g| g.timeout_ms).unwrap_or(0);
                terminate(
                    c,
                    FailureType::ApprovalTimedOut,
                    format!(
                        "nobody approved agent {agent}'s {} claim within {waited} ms (approval {question}; on_timeout: reject)",
                        held.claim_type
                    ),
                    effects,
                );
                return;
            }
        }
    }
    let due_questions: Vec<ArtifactId> = c
        .open_questions
        .iter()
        .filter(|(_, q)| q.deadline_ms.is_some_and(|d| d <= now_ms) && q.approval.is_none())
        .map(|(id, _)| *id)
        .collect();
    if let Some(first) = due_questions.first() {
        match policy.on_question_timeout {
            OnQuestionTimeout::Fail => {
                let agent = c.open_questions[first].agent.clone();
                terminate(
                    c,
                    FailureType::QuestionTimeout,
                    format!("question {first} from agent {agent} was not answered in time"),
                    effects,
                );
                return;
            }
            policy @ (OnQuestionTimeout::Continue | OnQuestionTimeout::Default) => {
                for q in due_questions {
                    if let Some(open) = c.open_questions.get_mut(&q) {
                        open.deadline_ms = None;
                    }
                    effects.push(Effect::AutoAnswer { question: q, use_default: policy == OnQuestionTimeout::Default });
                }
            }
        }
    }
    route_due_questions(c, &policy.routing, now_ms, effects);
    let waiting: Vec<&AgentName> = c.open_questions.values().map(|q| &q.agent).collect();
    let overdue = c
        .grants
        .iter()
        .filter(|(a, _)| !c.received.contains_key(*a) && !waiting.contains(a))
        .find(|(_, g)| g.deadline_ms.is_some_and(|d| d <= now_ms))
        .map(|(a, _)| a.clone());
    if let Some(agent) = overdue {
        let timeout = policy.agents.get(&agent).map_or(0, |p| p.timeout_ms);
        terminate(
            c,
            FailureType::ExecutionTimeout,
            format!("agent {agent} produced no output within its timeout of {} ms", timeout),
            effects,
        );
    }
}

/// A question `agent` asks (or an approval held for it) at `now_ms`, addressed to `to`, with its
/// first reminder and its escalation scheduled by `routing`.
fn routed_question(
    agent: &AgentName,
    to: Vec<String>,
    now_ms: i64,
    deadline_ms: Option<i64>,
    routing: &crate::routing::Routing,
) -> OpenQuestion {
    OpenQuestion {
        people: routing.people(&to),
        to,
        remind_at_ms: routing.remind_every_ms.map(|e| now_ms + e),
        escalate_at_ms: routing.escalate_after_ms.map(|e| now_ms + e),
        ..OpenQuestion::new(agent.clone(), now_ms, deadline_ms)
    }
}

/// Escalates and reminds the open questions whose time came: escalation adds
/// `humans.escalate_to` to the addressees once (a question addressed to nobody stays open to
/// anyone; its escalation still tells the list); a reminder is due every `remind_every` from
/// the last one (not from when it was due: after an outage one reminder goes out, not a burst).
fn route_due_questions(c: &mut Claim, routing: &crate::routing::Routing, now_ms: i64, effects: &mut Vec<Effect>) {
    for (id, q) in &mut c.open_questions {
        if q.escalate_at_ms.is_some_and(|d| d <= now_ms) {
            q.escalate_at_ms = None;
            q.escalated = true;
            let added: Vec<String> = routing.escalate_to.iter().filter(|a| !q.to.contains(a)).cloned().collect();
            if !q.to.is_empty() {
                q.to = crate::routing::normalise(q.to.iter().chain(&added).cloned());
                q.people = routing.people(&q.to);
            }
            effects.push(Effect::QuestionEscalated { question: *id, added });
        }
        if q.remind_at_ms.is_some_and(|d| d <= now_ms) {
            q.reminders += 1;
            q.remind_at_ms = routing.remind_every_ms.map(|e| now_ms + e);
            effects.push(Effect::QuestionReminded { question: *id, reminder: q.reminders });
        }
    }
}

fn output(c: &mut Claim, artifact: &Artifact, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    let Some(agent) = artifact.producing_agent() else {
        return;
    };
    let Some(grant) = c.grants.get(&agent) else {
        return;
    };
    if c.received.contains_key(&agent) || c.status == ClaimStatus::PendingConsensus {
        return;
    }
    let asking = c.open_questions.values().any(|q| q.agent == agent);
    let _ = grant;
    match artifact.structural_type {
        StructuralType::Question => {
            if asking {
                return;
            }
            if c.status != ClaimStatus::PendingAnswer {
                c.resume_status = Some(c.status);
                c.status = ClaimStatus::PendingAnswer;
            }
            let deadline_ms = policy.agents.get(&agent).and_then(|p| p.question_timeout_ms).map(|t| now_ms + t);
            let to = crate::routing::addressees_in_payload(&artifact.payload)
                .or_else(|| policy.routing.questions_to.get(&agent).cloned())
                .unwrap_or_default();
            c.open_questions.insert(artifact.id, routed_question(&agent, to, now_ms, deadline_ms, &policy.routing));
            c.question_id = Some(artifact.id);
            if let Some(g) = c.grants.get_mut(&agent) {
                g.deadline_ms = None;
            }
            effects.push(Effect::QuestionOpened { question: artifact.id, agent });
        }
        StructuralType::Answer => {}
        StructuralType::Failure => {
            for q in std::mem::take(&mut c.open_questions).into_keys() {
                effects.push(Effect::QuestionClosed { question: q });
            }
            c.received.insert(agent.clone(), artifact.id);
            c.status = ClaimStatus::Terminated;
            c.outcome_artifact = Some(artifact.id);
            c.termination_reason = Some(format!(
                "agent {agent} reported a failure ({}: artifact {})",
                artifact.artifact_type, artifact.id
            ));
        }
        StructuralType::Terminal => {
            for q in std::mem::take(&mut c.open_questions).into_keys() {
                effects.push(Effect::QuestionClosed { question: q });
            }
            c.received.insert(agent, artifact.id);
            c.status = ClaimStatus::Complete;
            c.outcome_artifact = Some(artifact.id);
        }
        StructuralType::Standard | StructuralType::Review => {
            if asking {
                // The agent answered its own question by producing output; keep the question
                // open for the record but accept the work.
                return;
            }
            c.received.insert(agent, artifact.id);
            let phase = c.status.phase().or(c.resume_status.and_then(ClaimStatus::phase));
            if phase == Some(Phase::Review) && !artifact.is_approval() {
                c.rejections.push(artifact.id);
            }
            if c.status == ClaimStatus::PendingAnswer {
                return; // the phase completes once the remaining questions are answered
            }
            if c.grants.keys().all(|a| c.received.contains_key(a)) {
                complete_phase(c, policy, now_ms, effects);
            }
        }
    }
}

fn complete_phase(c: &mut Claim, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    let Some(phase) = c.status.phase() else {
        return;
    };
    match phase {
        Phase::Assignment | Phase::Exclusive => c.status = ClaimStatus::Complete,
        Phase::Review if !c.rejections.is_empty() => feedback(c, policy, now_ms, effects),
        Phase::Review | Phase::Parallel => match first_phase_from(c, Some(phase)) {
            Some(next) => start_phase(c, next, policy, now_ms, effects),
            None => c.status = ClaimStatus::Complete,
        },
    }
}

fn feedback(c: &mut Claim, policy: &Policy, now_ms: i64, effects: &mut Vec<Effect>) {
    let reviews: Vec<String> = c.rejections.iter().map(ToString::to_string).collect();
    let reviews = reviews.join(", ");
    let Ok(producer) = AgentName::parse(&c.target_producer) else {
        terminate(
            c,
            FailureType::GoalRejected,
            format!(
                "review rejected artifact {} produced by '{}', which no agent can rework (reviews: {reviews})",
                c.artifact_id, c.target_producer
            ),
            effects,
        );
        return;
    };
    if !policy.agents.contains_key(&producer) {
        terminate(
            c,
            FailureType::MissingAgentConfiguration,
            format!(
                "review rejected artifact {} but its producer {producer} is not configured (reviews: {reviews})",
                c.artifact_id
            ),
            effects,
        );
        return;
    }
    let max = policy.max_review_iterations;
    if max > 0 && c.target_version.saturating_sub(1) >= max {
        terminate(
            c,
            FailureType::MaxIterationsExceeded,
            format!(
                "artifact {} was rejected at version {} and max_review_iterations is {max} (reviews: {reviews})",
                c.artifact_id, c.target_version
            ),
            effects,
        );
        return;
    }
    c.status = ClaimStatus::Terminated;
    c.termination_reason = Some(format!("rejected by review; rework assigned to {producer} (reviews: {reviews})"));
    let rework = Claim {
        id: crate::derive::rework_claim_id(&c.id),
        revision: 1,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        status: ClaimStatus::PendingAssignment,
        rework_of: Some(c.id),
        bid_deadline_ms: None,
        missing_bids: Vec::new(),
        granted_review_agents: Vec::new(),
        granted_parallel_agents: Vec::new(),
        granted_exclusive_agent: None,
        human_reviewers: Vec::new(),
        assigned_agent: Some(producer.clone()),
        additional_context_ids: c.rejections.clone(),
        grants: BTreeMap::new(),
        received: BTreeMap::new(),
        rejections: Vec::new(),
        grant_seq: 0,
        question_id: None,
        open_questions: BTreeMap::new(),
        answered_questions: Vec::new(),
        resume_status: None,
        termination_reason: None,
        outcome_artifact: None,
        ..c.clone()
    };
    effects.push(assigned_claim(rework, &producer, ClaimType::Rework, policy, now_ms));
}

/// Creating `claim`, assigned to `agent`, with its first grant (of `claim_type`; or the approval
/// that grant waits for).
fn assigned_claim(mut claim: Claim, agent: &AgentName, claim_type: ClaimType, policy: &Policy, now_ms: i64) -> Effect {
    let mut granted = Vec::new();
    grant(&mut claim, agent, claim_type, policy, now_ms, &mut granted);
    let (mut grants, mut approvals) = (Vec::new(), Vec::new());
    for e in granted {
        match e {
            Effect::Grant(g) => grants.push(g),
            Effect::ApprovalAsked(a) => approvals.push(a),
            _ => {}
        }
    }
    Effect::CreateClaim { claim: Box::new(claim), grants, approvals }
}

/// The claim of a branch that gives `question`, asked by `agent` in claim `asking`, the
/// different `answer` (`sett fork` of a Question): the asking claim as it stood when the question
/// was asked — same artifact and context, the answers given before it — with `answer` in place
/// of the first one, assigned to the agent, which is granted `resume` at once.
pub fn forked_answer_claim(
    asking: &Claim,
    id: ClaimId,
    agent: &AgentName,
    question: ArtifactId,
    answer: ArtifactId,
    policy: &Policy,
    now_ms: i64,
) -> Effect {
    let mut answered: Vec<AnsweredQuestion> =
        asking.answered_questions.iter().take_while(|qa| qa.question != question).cloned().collect();
    answered.push(AnsweredQuestion { agent: agent.clone(), question, answer });
    let branch = Claim {
        id,
        revision: 1,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        status: ClaimStatus::PendingAssignment,
        rework_of: None,
        bid_deadline_ms: None,
        missing_bids: Vec::new(),
        granted_review_agents: Vec::new(),
        granted_parallel_agents: Vec::new(),
        granted_exclusive_agent: None,
        assigned_agent: Some(agent.clone()),
        grants: BTreeMap::new(),
        received: BTreeMap::new(),
        rejections: Vec::new(),
        grant_seq: 0,
        question_id: Some(question),
        open_questions: BTreeMap::new(),
        answered_questions: answered,
        resume_status: None,
        termination_reason: None,
        outcome_artifact: None,
        ..asking.clone()
    };
    assigned_claim(branch, agent, ClaimType::Resume, policy, now_ms)
}

#[cfg(test)]
mod tests;
