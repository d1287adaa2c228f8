//! The `sett.yml` model: parsed with serde-saphyr, unknown keys rejected, every error naming the
//! file, the key path and the fix. Defaulting happens here, once; validation never mutates.
//!
//! - [`raw`]: the file as written (serde input and the JSON Schema's source);
//! - [`parse`]: from that to the validated model, one method per section;
//! - [`deployment`], [`agents`], [`notifications`], [`retention`]: the validated sections;
//! - [`check`]: `sett config check`'s error lines and its setting aside of bad keys.

mod agents;
mod check;
mod deployment;
mod notifications;
mod parse;
mod raw;
mod retention;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use agents::*;
pub use check::ConfigIssue;
use check::{encloses, key_line, parent_path, remove_path, yaml_error_line, yaml_value};
pub use deployment::*;
pub use notifications::*;
pub use retention::*;

use crate::ids::AgentName;
pub use crate::policy::OnApprovalTimeout;
pub use crate::policy::OnQuestionTimeout;
use crate::policy::{AgentPolicy, ApprovalPolicy, Policy};
use crate::routing::Routing;

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

/// The JSON Schema of `sett.yml` (draft 2020-12), generated from the types above. Written by
/// `sett config schema` and committed as `docs/sett.schema.json`.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(raw::RawConfig).to_value()
}

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

impl SettConfig {
    /// Parses and validates `text`; `file` names the source in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        // Two steps: YAML syntax (with line and column) first, then the shape, through
        // serde_path_to_error so an unknown or mistyped key is reported with its full path.
        let value = yaml_value(file, text)?;
        parse::Parser::new(file).settings(value)
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
            let Err(e) = parse::Parser::new(file).settings(value.clone()) else { break };
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
