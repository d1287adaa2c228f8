//! The validated `orchestrator:` and `agents:` sections: bidding, workspaces, workers,
//! approval gates and environment.

use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::OnApprovalTimeout;
use super::OnQuestionTimeout;
use crate::claim::{BidType, ClaimType};
use crate::ids::AgentName;

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

    /// The agent's bid on an artifact of `artifact_type` written by `produced_by_role`, when it
    /// bids without a script: its static strategy's bid (`ignore` without one), then the loop
    /// guard (no `claim`/`exclusive` on its own output unless `bid_on_own_output`).
    pub fn static_bid(&self, artifact_type: &str, produced_by_role: &str) -> BidType {
        self.guard_own_output(produced_by_role, self.strategy_bid(artifact_type))
    }

    /// The static strategy's bid for an artifact type, before the loop guard (`ignore` without
    /// a strategy).
    pub fn strategy_bid(&self, artifact_type: &str) -> BidType {
        self.bidding_strategy.as_ref().map_or(BidType::Ignore, |s| s.bid_for(artifact_type))
    }

    /// The loop guard on any bid of this agent (a script's too): `ignore` instead of `claim` or
    /// `exclusive` on an artifact it wrote itself, unless it is configured with
    /// `bid_on_own_output: true`.
    pub fn guard_own_output(&self, produced_by_role: &str, bid: BidType) -> BidType {
        let own = produced_by_role == self.name.as_str();
        if own && !self.bid_on_own_output && matches!(bid, BidType::Claim | BidType::Exclusive) {
            BidType::Ignore
        } else {
            bid
        }
    }

    /// The terms of the agent's standing bid (design.md §5): everything [`AgentConfig::static_bid`]
    /// depends on, as one line a cub publishes in its component record and the orchestrator
    /// compares with its own configuration before it records the bid for the cub. `None` for an
    /// agent with a `bid_script`: its bid is not known before the script runs.
    pub fn standing_bid_terms(&self) -> Option<String> {
        if self.bid_script.is_some() {
            return None;
        }
        let strategy = match &self.bidding_strategy {
            None => "ignore".to_owned(),
            Some(s) => format!("{} {}", s.bid, serde_json::to_string(&s.target_types).expect("strings serialise")),
        };
        Some(format!("v1 {strategy} own_output={}", self.bid_on_own_output))
    }
}
