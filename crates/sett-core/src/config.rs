//! The `sett.yml` model: parsed with serde-saphyr, unknown keys rejected, every error naming the
//! file, the key path and the fix. Defaulting happens here, once; validation never mutates.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::claim::BidType;
use crate::ids::AgentName;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    #[default]
    Local,
    Docker,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Docker => "docker",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnQuestionTimeout {
    #[default]
    Fail,
    Continue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceMode {
    #[default]
    Ro,
    Rw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    Controller,
}

// ---- raw (as written) ----

/// A duration as written: `30s`, `10m`, `24h`, or a bare number of seconds (`0` = never).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: String,
    #[serde(default)]
    runtime: RuntimeKind,
    #[serde(default)]
    orchestrator: RawOrchestrator,
    agents: BTreeMap<String, RawAgent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrchestrator {
    max_review_iterations: Option<u32>,
    bid_timeout: Option<RawDuration>,
    question_timeout: Option<RawDuration>,
    #[serde(default)]
    on_question_timeout: OnQuestionTimeout,
    image: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawStrategy {
    Plain(BidType),
    Detailed(RawStrategyDetailed),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStrategyDetailed {
    #[serde(rename = "type")]
    bid: BidType,
    #[serde(default)]
    target_types: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    #[serde(default)]
    mode: WorkspaceMode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    max_concurrent: Option<u32>,
    command: Option<Vec<String>>,
    image: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    command: Vec<String>,
    image: Option<String>,
    bidding_strategy: Option<RawStrategy>,
    bid_script: Option<Vec<String>>,
    workspace: Option<RawWorkspace>,
    #[serde(default)]
    environment: Vec<String>,
    timeout: Option<RawDuration>,
    question_timeout: Option<RawDuration>,
    mode: Option<AgentMode>,
    worker: Option<RawWorker>,
    #[serde(default)]
    bid_on_own_output: bool,
    #[serde(default)]
    expose_redis: bool,
}

// ---- validated ----

/// A validated `sett.yml`.
#[derive(Debug, Clone)]
pub struct SettConfig {
    pub version: String,
    pub runtime: RuntimeKind,
    pub orchestrator: OrchestratorConfig,
    pub agents: BTreeMap<AgentName, AgentConfig>,
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
}

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
}

/// The longest duration sett.yml accepts (100 years), so deadlines never overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if raw == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(raw).map_err(|e| e.to_string())
}

impl SettConfig {
    /// Parses and validates `text`; `file` names the source in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let err = |key_path: &str, message: String, fix: &str| ConfigError {
            file: file.to_owned(),
            key_path: key_path.to_owned(),
            message,
            fix: fix.to_owned(),
        };
        // Two steps: YAML syntax (with line and column) first, then the shape, through
        // serde_path_to_error so an unknown or mistyped key is reported with its full path.
        let value: serde_json::Value = serde_saphyr::from_str(text)
            .map_err(|e| err("", format!("invalid YAML: {e}"), "correct the YAML syntax at the position shown"))?;
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let fix = if inner.contains("unknown field") {
                "remove the key or correct its spelling (see the sett.yml reference in docs/agents.md)"
            } else if inner.contains("missing field") {
                "add the missing key"
            } else {
                "use a value of the expected type"
            };
            err(if path == "." { "" } else { &path }, inner, fix)
        })?;

        if raw.version != "1.0" {
            return Err(err("version", format!("unsupported version '{}'", raw.version), "set version: \"1.0\""));
        }
        let dur = |key: &str, v: &Option<RawDuration>, default: Duration| -> Result<Duration, ConfigError> {
            let d = match v {
                None => Ok(default),
                Some(RawDuration::Seconds(n)) => Ok(Duration::from_secs(*n)),
                Some(RawDuration::Text(s)) => parse_duration(s).map_err(|e| {
                    err(key, format!("invalid duration '{s}': {e}"), "use a duration such as 30s, 10m or 24h")
                }),
            }?;
            // Deadlines are `now_ms + duration` in i64 milliseconds: an absurd duration would
            // overflow them (found by tests/fuzz.rs). 0 means "never" where that is allowed.
            if d > MAX_DURATION {
                return Err(err(
                    key,
                    format!("duration {} is longer than 100 years", humantime::format_duration(d)),
                    "use a duration such as 30s, 10m or 24h (0 where it means never)",
                ));
            }
            Ok(d)
        };
        let orch = &raw.orchestrator;
        let question_timeout = dur("orchestrator.question_timeout", &orch.question_timeout, DEFAULT_QUESTION_TIMEOUT)?;
        let bid_timeout = dur("orchestrator.bid_timeout", &orch.bid_timeout, DEFAULT_BID_TIMEOUT)?;
        if bid_timeout.is_zero() {
            return Err(err(
                "orchestrator.bid_timeout",
                "must be greater than zero".into(),
                "use a duration such as 30s",
            ));
        }
        let orchestrator = OrchestratorConfig {
            max_review_iterations: orch.max_review_iterations.unwrap_or(DEFAULT_MAX_REVIEW_ITERATIONS),
            bid_timeout,
            question_timeout: (!question_timeout.is_zero()).then_some(question_timeout),
            on_question_timeout: orch.on_question_timeout,
            image: orch.image.clone(),
        };
        if raw.agents.is_empty() {
            return Err(err("agents", "at least one agent is required".into(), "add an agent under agents:"));
        }
        let mut agents = BTreeMap::new();
        for (name, a) in raw.agents {
            let at = |k: &str| format!("agents.{name}.{k}");
            let agent_name = AgentName::parse(&name)
                .map_err(|e| err(&format!("agents.{name}"), e.to_string(), "rename the agent"))?;
            if a.command.is_empty() || a.command[0].trim().is_empty() {
                return Err(err(
                    &at("command"),
                    "must not be empty".into(),
                    "give the tool's argv, e.g. [\"./agents/coder/run.sh\"]",
                ));
            }
            let bidding_strategy = match a.bidding_strategy {
                None => None,
                Some(RawStrategy::Plain(b)) => Some(BiddingStrategy::new(b, Vec::new()).expect("no globs")),
                Some(RawStrategy::Detailed(d)) => Some(BiddingStrategy::new(d.bid, d.target_types).map_err(|e| {
                    err(
                        &at("bidding_strategy.target_types"),
                        format!("invalid glob: {e}"),
                        "use glob patterns such as \"Goal*\"",
                    )
                })?),
            };
            if bidding_strategy.is_none() && a.bid_script.is_none() {
                return Err(err(
                    &at("bidding_strategy"),
                    "the agent has neither bidding_strategy nor bid_script".into(),
                    "add bidding_strategy: review|claim|exclusive|ignore (or a bid_script)",
                ));
            }
            if let Some(s) = &a.bid_script
                && s.is_empty()
            {
                return Err(err(
                    &at("bid_script"),
                    "must not be empty".into(),
                    "give the script's argv or remove the key",
                ));
            }
            let mut environment = Vec::new();
            for (i, e) in a.environment.iter().enumerate() {
                let entry = match e.split_once('=') {
                    Some((k, v)) => EnvEntry::Set(k.to_owned(), v.to_owned()),
                    None => EnvEntry::FromHost(e.clone()),
                };
                let key = match &entry {
                    EnvEntry::Set(k, _) | EnvEntry::FromHost(k) => k,
                };
                let valid = !key.is_empty()
                    && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !key.as_bytes()[0].is_ascii_digit();
                if !valid {
                    return Err(err(
                        &format!("{}[{i}]", at("environment")),
                        format!("invalid variable name '{key}'"),
                        "use NAME (copied from the host) or NAME=value",
                    ));
                }
                environment.push(entry);
            }
            let timeout = dur(&at("timeout"), &a.timeout, DEFAULT_AGENT_TIMEOUT)?;
            if timeout.is_zero() {
                return Err(err(&at("timeout"), "must be greater than zero".into(), "use a duration such as 10m"));
            }
            let question_timeout = match &a.question_timeout {
                None => None,
                Some(_) => {
                    let d = dur(&at("question_timeout"), &a.question_timeout, DEFAULT_QUESTION_TIMEOUT)?;
                    Some((!d.is_zero()).then_some(d))
                }
            };
            let worker = match (a.mode, a.worker) {
                (Some(AgentMode::Controller), w) => {
                    let w = w.unwrap_or(RawWorker { max_concurrent: None, command: None, image: None });
                    let max_concurrent = w.max_concurrent.unwrap_or(1);
                    if max_concurrent == 0 {
                        return Err(err(
                            &at("worker.max_concurrent"),
                            "must be at least 1".into(),
                            "set max_concurrent: 1 or more",
                        ));
                    }
                    Some(WorkerConfig {
                        max_concurrent,
                        command: w.command.filter(|c| !c.is_empty()).unwrap_or_else(|| a.command.clone()),
                        image: w.image.or_else(|| a.image.clone()),
                    })
                }
                (None, Some(_)) => {
                    return Err(err(
                        &at("worker"),
                        "worker settings need mode: controller".into(),
                        "add mode: controller or remove worker:",
                    ));
                }
                (None, None) => None,
            };
            if raw.runtime == RuntimeKind::Docker && a.image.is_none() && raw.orchestrator.image.is_none() {
                // The docker runtime falls back to Sett's runtime image; nothing to reject.
            }
            agents.insert(
                agent_name.clone(),
                AgentConfig {
                    name: agent_name,
                    command: a.command,
                    image: a.image,
                    bidding_strategy,
                    bid_script: a.bid_script,
                    workspace_mode: a.workspace.map(|w| w.mode).unwrap_or_default(),
                    environment,
                    timeout,
                    question_timeout,
                    worker,
                    bid_on_own_output: a.bid_on_own_output,
                    expose_redis: a.expose_redis,
                },
            );
        }
        Ok(Self { version: raw.version, runtime: raw.runtime, orchestrator, agents })
    }

    /// The question timeout for `agent`: its own override, else the orchestrator's.
    pub fn question_timeout_for(&self, agent: &AgentName) -> Option<Duration> {
        match self.agents.get(agent).and_then(|a| a.question_timeout) {
            Some(over) => over,
            None => self.orchestrator.question_timeout,
        }
    }

    /// The state machine's view of this configuration.
    pub fn policy(&self) -> crate::machine::Policy {
        crate::machine::Policy {
            agents: self
                .agents
                .values()
                .map(|a| {
                    (
                        a.name.clone(),
                        crate::machine::AgentPolicy {
                            timeout_ms: a.timeout.as_millis() as i64,
                            question_timeout_ms: self.question_timeout_for(&a.name).map(|d| d.as_millis() as i64),
                            via_worker: a.is_controller(),
                        },
                    )
                })
                .collect(),
            max_review_iterations: self.orchestrator.max_review_iterations,
            bid_timeout_ms: self.orchestrator.bid_timeout.as_millis() as i64,
            on_question_timeout: self.orchestrator.on_question_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: "1.0"
orchestrator:
  max_review_iterations: 2
  bid_timeout: 5s
  question_timeout: 0
agents:
  Coder:
    command: ["./run.sh"]
    bidding_strategy: {type: exclusive, target_types: ["Goal*"]}
    workspace: {mode: rw}
    environment: ["HOME", "MODE=fast"]
    timeout: 1m
    question_timeout: 10s
  Reviewer:
    command: ["./review.sh"]
    bidding_strategy: review
  Builder:
    command: ["./build.sh"]
    bidding_strategy: exclusive
    mode: controller
    worker: {max_concurrent: 2}
"#;

    #[test]
    fn parses_a_full_config() {
        let c = SettConfig::parse("sett.yml", GOOD).unwrap();
        assert_eq!(c.orchestrator.max_review_iterations, 2);
        assert_eq!(c.orchestrator.bid_timeout, Duration::from_secs(5));
        assert_eq!(c.orchestrator.question_timeout, None);
        let coder = &c.agents[&AgentName::parse("Coder").unwrap()];
        assert_eq!(coder.workspace_mode, WorkspaceMode::Rw);
        assert_eq!(coder.environment[1], EnvEntry::Set("MODE".into(), "fast".into()));
        let s = coder.bidding_strategy.as_ref().unwrap();
        assert_eq!(s.bid_for("GoalDefined"), BidType::Exclusive);
        assert_eq!(s.bid_for("CodeCommit"), BidType::Ignore);
        assert_eq!(c.question_timeout_for(&coder.name), Some(Duration::from_secs(10)));
        let builder = &c.agents[&AgentName::parse("Builder").unwrap()];
        assert_eq!(builder.worker.as_ref().unwrap().max_concurrent, 2);
        assert_eq!(builder.worker.as_ref().unwrap().command, vec!["./build.sh".to_owned()]);
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let text = GOOD.replace("timeout: 1m", "timeout: 1m\n    role: coder");
        let e = SettConfig::parse("sett.yml", &text).unwrap_err();
        assert_eq!(e.key_path, "agents.Coder.role");
        assert!(e.message.contains("unknown field `role`"), "{e}");
        assert!(e.to_string().starts_with("sett.yml: at 'agents.Coder.role'"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_text(s in "\\PC*") {
            let _ = SettConfig::parse("fuzz.yml", &s);
        }

        #[test]
        fn parser_never_panics_on_yaml_shaped_text(
            keys in proptest::collection::vec("[a-z_]{1,12}", 0..6),
            vals in proptest::collection::vec("[A-Za-z0-9 :\\[\\]{}\"*-]{0,16}", 0..6),
        ) {
            let mut text = String::from("version: \"1.0\"\nagents:\n  A:\n    command: [x]\n");
            for (k, v) in keys.iter().zip(vals.iter()) {
                text.push_str(&format!("    {k}: {v}\n"));
            }
            if let Err(e) = SettConfig::parse("fuzz.yml", &text) {
                proptest::prop_assert!(!e.message.is_empty() && !e.fix.is_empty());
            }
        }
    }

    #[test]
    fn bad_values_are_explained() {
        let e = SettConfig::parse("x.yml", &GOOD.replace("bid_timeout: 5s", "bid_timeout: soon")).unwrap_err();
        assert_eq!(e.key_path, "orchestrator.bid_timeout");
        let e = SettConfig::parse("x.yml", &GOOD.replace("bidding_strategy: review", "bidding_strategy: maybe"))
            .unwrap_err();
        assert!(e.key_path.starts_with("agents.Reviewer"), "{e}");
        let e = SettConfig::parse("x.yml", "version: \"1.0\"\nagents: {}\n").unwrap_err();
        assert_eq!(e.key_path, "agents");
        let e = SettConfig::parse("x.yml", "version: [").unwrap_err();
        assert!(e.message.contains("invalid YAML"), "{e}");
        let e = SettConfig::parse("x.yml", &GOOD.replace("Reviewer:", "user:")).unwrap_err();
        assert_eq!(e.key_path, "agents.user");
    }
}
