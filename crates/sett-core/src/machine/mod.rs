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
//!
//! By concern: this file holds the inputs, effects and `step`; `phases.rs` consensus, the phase
//! order, human review and the feedback loop; `grant.rs` grants (held for approval) and
//! termination; `tick.rs` deadlines and question routing; `output.rs` what an artifact produced
//! for the claim does; `assign.rs` claims created already assigned (rework, a forked answer).

mod assign;
mod grant;
mod output;
mod phases;
mod tick;

use std::collections::BTreeMap;

use crate::approval::Verdict;
use crate::artifact::Artifact;
use crate::claim::{AnsweredQuestion, BidType, Claim, ClaimStatus, ClaimType};
use crate::ids::{AgentName, ArtifactId, ClaimId};
// `Policy` and `AgentPolicy` are re-exported while callers outside this crate still name them here.
use crate::policy::OnApprovalTimeout;
pub use crate::policy::{AgentPolicy, Policy};
use crate::review::HumanReview;

pub use self::assign::forked_answer_claim;
use self::grant::{grant, release_held_grant, terminate};
use self::output::output;
use self::phases::{consensus, human_reviewed};
use self::tick::tick;

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

#[cfg(test)]
mod tests;
