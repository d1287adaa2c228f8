//! The second step of reading `sett.yml` ([`SettConfig::parse`]): the shape (serde, with the
//! key path of any error) and then the meaning of each section, with defaults applied once.
//! One method per section; every error names the file, the key path and the fix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::notifications::parse_notifications;
use super::raw::*;
use super::*;
use crate::claim::ClaimType;
use crate::routing::{Routing, check_addressee, normalise};

/// The longest duration sett.yml accepts (100 years), so deadlines never overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if raw == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(raw).map_err(|e| e.to_string())
}

/// Reads the sections of one file; every error names `file`.
pub(super) struct Parser<'a> {
    file: &'a str,
}

impl<'a> Parser<'a> {
    pub(super) fn new(file: &'a str) -> Self {
        Self { file }
    }

    /// The validated configuration in `value` (the YAML, as a JSON value).
    pub(super) fn settings(&self, value: serde_json::Value) -> Result<SettConfig, ConfigError> {
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let fix = if inner.contains("unknown field") {
                "remove the key or correct its spelling (see docs/configuration.md)"
            } else if inner.contains("missing field") {
                "add the missing key"
            } else {
                "use a value of the expected type"
            };
            self.err(if path == "." { "" } else { &path }, inner, fix)
        })?;

        if raw.version != "1.0" {
            return Err(self.err("version", format!("unsupported version '{}'", raw.version), "set version: \"1.0\""));
        }
        let orchestrator = self.orchestrator(&raw.orchestrator)?;
        if raw.agents.is_empty() {
            return Err(self.err("agents", "at least one agent is required".into(), "add an agent under agents:"));
        }
        let mut agents = BTreeMap::new();
        let mut questions_to = BTreeMap::new();
        for (name, a) in raw.agents {
            let (agent, to) = self.agent(&name, a)?;
            if !to.is_empty() {
                questions_to.insert(agent.name.clone(), to);
            }
            agents.insert(agent.name.clone(), agent);
        }
        let notifications = parse_notifications(raw.notifications, &|key, message, fix| self.err(key, message, fix))?;
        let ledger = self.ledger(raw.ledger)?;
        let routing = self.routing(raw.humans, questions_to)?;
        let retention = self.retention(raw.retention)?;
        let budgets = self.budgets(raw.budgets, &agents)?;
        Ok(SettConfig {
            version: raw.version,
            runtime: raw.runtime,
            orchestrator,
            redis: raw.redis,
            agents,
            notifications,
            ledger,
            routing,
            retention,
            budgets,
        })
    }

    /// An error at `key_path` of this file.
    pub(super) fn err(&self, key_path: &str, message: String, fix: &str) -> ConfigError {
        ConfigError { file: self.file.to_owned(), key_path: key_path.to_owned(), message, fix: fix.to_owned() }
    }

    /// The duration at `key`, `default` when absent.
    fn dur(&self, key: &str, v: &Option<RawDuration>, default: Duration) -> Result<Duration, ConfigError> {
        let d = match v {
            None => Ok(default),
            Some(RawDuration::Seconds(n)) => Ok(Duration::from_secs(*n)),
            Some(RawDuration::Text(s)) => parse_duration(s).map_err(|e| {
                self.err(key, format!("invalid duration '{s}': {e}"), "use a duration such as 30s, 10m or 24h")
            }),
        }?;
        // Deadlines are `now_ms + duration` in i64 milliseconds: an absurd duration would
        // overflow them (found by tests/fuzz.rs). 0 means "never" where that is allowed.
        if d > MAX_DURATION {
            return Err(self.err(
                key,
                format!("duration {} is longer than 100 years", humantime::format_duration(d)),
                "use a duration such as 30s, 10m or 24h (0 where it means never)",
            ));
        }
        Ok(d)
    }

    /// People and groups to address questions to, checked and normalised.
    fn addressees(&self, key: &str, list: Vec<String>) -> Result<Vec<String>, ConfigError> {
        for (i, a) in list.iter().enumerate() {
            check_addressee(a).map_err(|e| {
                self.err(
                    &format!("{key}[{i}]"),
                    e,
                    "name a person (as sett answer or the console knows them) or group:<name>",
                )
            })?;
        }
        Ok(normalise(list))
    }

    /// A period of at least 1s in milliseconds; `None` when 0 or absent (off).
    fn every(&self, key: &str, v: &Option<RawDuration>) -> Result<Option<i64>, ConfigError> {
        let d = self.dur(key, v, Duration::ZERO)?;
        if !d.is_zero() && d < Duration::from_secs(1) {
            return Err(self.err(
                key,
                format!("{} is shorter than 1s", humantime::format_duration(d)),
                "use a duration such as 1h (0 turns it off)",
            ));
        }
        Ok((!d.is_zero()).then_some(d.as_millis() as i64))
    }

    /// The `orchestrator:` section.
    fn orchestrator(&self, orch: &RawOrchestrator) -> Result<OrchestratorConfig, ConfigError> {
        let question_timeout =
            self.dur("orchestrator.question_timeout", &orch.question_timeout, DEFAULT_QUESTION_TIMEOUT)?;
        let bid_timeout = self.dur("orchestrator.bid_timeout", &orch.bid_timeout, DEFAULT_BID_TIMEOUT)?;
        if bid_timeout.is_zero() {
            return Err(self.err(
                "orchestrator.bid_timeout",
                "must be greater than zero".into(),
                "use a duration such as 30s",
            ));
        }
        Ok(OrchestratorConfig {
            max_review_iterations: orch.max_review_iterations.unwrap_or(DEFAULT_MAX_REVIEW_ITERATIONS),
            bid_timeout,
            question_timeout: (!question_timeout.is_zero()).then_some(question_timeout),
            on_question_timeout: orch.on_question_timeout,
            image: orch.image.clone(),
        })
    }

    /// One agent of `agents:`, and who its questions go to (`questions_to`).
    fn agent(&self, name: &str, a: RawAgent) -> Result<(AgentConfig, Vec<String>), ConfigError> {
        let at = |k: &str| format!("agents.{name}.{k}");
        let agent_name = AgentName::parse(name)
            .map_err(|e| self.err(&format!("agents.{name}"), e.to_string(), "rename the agent"))?;
        if name.eq_ignore_ascii_case(crate::review::HUMAN_REVIEW_ROLE) {
            return Err(self.err(
                &format!("agents.{name}"),
                format!("'{name}' is reserved for human reviews (humans.reviewers)"),
                "rename the agent",
            ));
        }
        if a.command.is_empty() || a.command[0].trim().is_empty() {
            return Err(self.err(
                &at("command"),
                "must not be empty".into(),
                "give the tool's argv, e.g. [\"./agents/coder/run.sh\"]",
            ));
        }
        let bidding_strategy = match a.bidding_strategy {
            None => None,
            Some(RawStrategy::Plain(b)) => Some(BiddingStrategy::new(b, Vec::new()).expect("no globs")),
            Some(RawStrategy::Detailed(d)) => Some(BiddingStrategy::new(d.bid, d.target_types).map_err(|e| {
                self.err(
                    &at("bidding_strategy.target_types"),
                    format!("invalid glob: {e}"),
                    "use glob patterns such as \"Goal*\"",
                )
            })?),
        };
        if bidding_strategy.is_none() && a.bid_script.is_none() {
            return Err(self.err(
                &at("bidding_strategy"),
                "the agent has neither bidding_strategy nor bid_script".into(),
                "add bidding_strategy: review|claim|exclusive|ignore (or a bid_script)",
            ));
        }
        if let Some(s) = &a.bid_script
            && s.is_empty()
        {
            return Err(self.err(
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
                return Err(self.err(
                    &format!("{}[{i}]", at("environment")),
                    format!("invalid variable name '{key}'"),
                    "use NAME (copied from the host) or NAME=value",
                ));
            }
            environment.push(entry);
        }
        let timeout = self.dur(&at("timeout"), &a.timeout, DEFAULT_AGENT_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(self.err(&at("timeout"), "must be greater than zero".into(), "use a duration such as 10m"));
        }
        let question_timeout = match &a.question_timeout {
            None => None,
            Some(_) => {
                let d = self.dur(&at("question_timeout"), &a.question_timeout, DEFAULT_QUESTION_TIMEOUT)?;
                Some((!d.is_zero()).then_some(d))
            }
        };
        let worker = match (a.mode, a.worker) {
            (Some(AgentMode::Controller), w) => {
                let w = w.unwrap_or(RawWorker { max_concurrent: None, command: None, image: None });
                let max_concurrent = w.max_concurrent.unwrap_or(1);
                if max_concurrent == 0 {
                    return Err(self.err(
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
                return Err(self.err(
                    &at("worker"),
                    "worker settings need mode: controller".into(),
                    "add mode: controller or remove worker:",
                ));
            }
            (None, None) => None,
        };
        let approval = match a.approval {
            None => None,
            Some(raw_approval) => {
                let timeout = self.dur(&at("approval.timeout"), &raw_approval.timeout, DEFAULT_QUESTION_TIMEOUT)?;
                let claim_types = match raw_approval.claim_types {
                    None => GATED_BY_DEFAULT.to_vec(),
                    Some(list) if list.is_empty() => {
                        return Err(self.err(
                            &at("approval.claim_types"),
                            "is empty, so nothing would need approval".into(),
                            "list claim types (review, claim, exclusive, rework) or remove approval:",
                        ));
                    }
                    Some(list) if list.contains(&ClaimType::Resume) => {
                        return Err(self.err(
                            &at("approval.claim_types"),
                            "resume cannot be gated: a resumed grant continues a claim already approved".into(),
                            "use review, claim, exclusive or rework",
                        ));
                    }
                    Some(mut list) => {
                        list.sort();
                        list.dedup();
                        list
                    }
                };
                Some(ApprovalConfig {
                    timeout: (!timeout.is_zero()).then_some(timeout),
                    on_timeout: raw_approval.on_timeout,
                    claim_types,
                })
            }
        };
        let to = self.addressees(&at("questions_to"), a.questions_to)?;
        let agent = AgentConfig {
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
            approval,
        };
        Ok((agent, to))
    }

    /// The `ledger:` section.
    fn ledger(&self, raw: RawLedger) -> Result<LedgerConfig, ConfigError> {
        let anchor_every = self.dur("ledger.anchor_every", &raw.anchor_every, Duration::ZERO)?;
        if !anchor_every.is_zero() && anchor_every < Duration::from_secs(1) {
            return Err(self.err(
                "ledger.anchor_every",
                format!("{} is shorter than 1s", humantime::format_duration(anchor_every)),
                "use a duration such as 1h (0 turns anchoring off)",
            ));
        }
        let witness_file = match raw.witness_file {
            None => PathBuf::from(DEFAULT_WITNESS_FILE),
            Some(f) if f.trim().is_empty() => {
                return Err(self.err(
                    "ledger.witness_file",
                    "the path is empty".into(),
                    &format!("give a file path, or remove the key for {DEFAULT_WITNESS_FILE}"),
                ));
            }
            Some(f) => PathBuf::from(f),
        };
        Ok(LedgerConfig {
            anchor_every: (!anchor_every.is_zero()).then_some(anchor_every),
            witness_file,
            on_regression: raw.on_regression,
        })
    }

    /// The `humans:` section with the agents' `questions_to`: who answers and reviews.
    fn routing(
        &self,
        humans: RawHumans,
        questions_to: BTreeMap<AgentName, Vec<String>>,
    ) -> Result<Routing, ConfigError> {
        let mut groups = BTreeMap::new();
        for (g, people) in humans.groups {
            if g.trim().is_empty() || g.trim() != g || g.contains(char::is_whitespace) {
                return Err(self.err(
                    &format!("humans.groups.{g}"),
                    format!("invalid group name '{g}'"),
                    "use a name without spaces",
                ));
            }
            let people = self.addressees(&format!("humans.groups.{g}"), people)?;
            if let Some(nested) = people.iter().find(|p| p.starts_with(crate::routing::GROUP_PREFIX)) {
                return Err(self.err(
                    &format!("humans.groups.{g}"),
                    format!("'{nested}' is a group; a group lists people"),
                    "list the group's people themselves",
                ));
            }
            groups.insert(g, people);
        }
        let remind_every_ms = self.every("humans.remind_every", &humans.remind_every)?;
        let escalate_after_ms = self.every("humans.escalate_after", &humans.escalate_after)?;
        let escalate_to = self.addressees("humans.escalate_to", humans.escalate_to)?;
        if escalate_after_ms.is_some() && escalate_to.is_empty() {
            return Err(self.err(
                "humans.escalate_to",
                "escalate_after is set but nobody to escalate to".into(),
                "list the people or groups under humans.escalate_to, or remove escalate_after",
            ));
        }
        let mut reviewers = Vec::new();
        for (i, r) in humans.reviewers.into_iter().enumerate() {
            let key = format!("humans.reviewers[{i}]");
            let artifact_types: Vec<String> = r.artifact_types.iter().map(|t| t.trim().to_owned()).collect();
            if artifact_types.is_empty() || artifact_types.iter().any(String::is_empty) {
                return Err(self.err(
                    &format!("{key}.artifact_types"),
                    "names no artifact type".into(),
                    "list the artifact types these people review, e.g. [Draft]",
                ));
            }
            let people = self.addressees(&format!("{key}.reviewers"), r.reviewers)?;
            if people.is_empty() {
                return Err(self.err(
                    &format!("{key}.reviewers"),
                    "names nobody".into(),
                    "list the people or groups (group:<name>) who review these artifacts",
                ));
            }
            reviewers.push(crate::routing::HumanReviewers { artifact_types, reviewers: people });
        }
        Ok(Routing { questions_to, groups, remind_every_ms, escalate_after_ms, escalate_to, reviewers })
    }

    /// The `retention:` section; `None` when absent.
    fn retention(&self, raw: Option<RawRetention>) -> Result<Option<RetentionConfig>, ConfigError> {
        Ok(match raw {
            None => None,
            Some(r) => {
                let archive_after = self.dur("retention.archive_after", &Some(r.archive_after), Duration::ZERO)?;
                let every = self.dur("retention.every", &r.every, DEFAULT_ARCHIVE_EVERY)?;
                if every < Duration::from_secs(1) {
                    return Err(self.err(
                        "retention.every",
                        format!("{} is shorter than 1s", humantime::format_duration(every)),
                        "use a duration such as 1m",
                    ));
                }
                let archive = match r.archive {
                    None => ArchiveTarget::Dir(DEFAULT_ARCHIVE_DIR.to_owned()),
                    Some(RawArchive { dir: Some(d), s3: None }) if !d.trim().is_empty() => ArchiveTarget::Dir(d),
                    Some(RawArchive { dir: None, s3: Some(s3) }) => {
                        if s3.bucket.trim().is_empty() {
                            return Err(self.err(
                                "retention.archive.s3.bucket",
                                "is empty".into(),
                                "name the bucket the segments go to",
                            ));
                        }
                        if let Some(e) = &s3.endpoint
                            && !(e.starts_with("https://") || (s3.allow_http && e.starts_with("http://")))
                        {
                            return Err(self.err(
                                "retention.archive.s3.endpoint",
                                format!("'{e}' is not an https:// URL"),
                                "use an https:// URL, or set allow_http: true for a plain http:// test server",
                            ));
                        }
                        ArchiveTarget::S3(s3)
                    }
                    Some(_) => {
                        return Err(self.err(
                            "retention.archive",
                            "needs exactly one of dir and s3".into(),
                            "write archive: {dir: .sett/archive} or archive: {s3: {bucket: …}}",
                        ));
                    }
                };
                let max_share = match r.max_share {
                    None => DEFAULT_ARCHIVE_MAX_SHARE,
                    Some(s) => ArchiveShare::new(s).ok_or_else(|| {
                        self.err(
                            "retention.max_share",
                            format!("{s} is not a share between 0 and 1"),
                            "use a number such as 0.1 (archiving takes at most a tenth of the orchestrator's time) or 1 (no limit)",
                        )
                    })?,
                };
                Some(RetentionConfig { archive_after, every, archive, max_share })
            }
        })
    }

    /// The `budgets:` section (each agent budget naming an agent of `agents`).
    fn budgets(
        &self,
        raw: Option<RawBudgets>,
        agents: &BTreeMap<AgentName, AgentConfig>,
    ) -> Result<crate::budget::BudgetsConfig, ConfigError> {
        Ok(match raw {
            None => crate::budget::BudgetsConfig::default(),
            Some(b) => {
                let workflow = b.workflow.map(|w| self.budget("budgets.workflow", w)).transpose()?;
                let mut by_agent = BTreeMap::new();
                for (name, raw_budget) in b.agents {
                    let key = format!("budgets.agents.{name}");
                    let agent = match AgentName::parse(&name) {
                        Ok(a) if agents.contains_key(&a) => a,
                        _ => {
                            return Err(self.err(
                                &key,
                                format!("'{name}' is not an agent of this team"),
                                "name an agent listed under agents:",
                            ));
                        }
                    };
                    by_agent.insert(agent, self.budget(&key, raw_budget)?);
                }
                let ask_timeout = self.dur("budgets.ask_timeout", &b.ask_timeout, DEFAULT_QUESTION_TIMEOUT)?;
                crate::budget::BudgetsConfig {
                    workflow,
                    agents: by_agent,
                    on_exhausted: b.on_exhausted,
                    ask_timeout: (!ask_timeout.is_zero()).then_some(ask_timeout),
                    on_timeout: b.on_timeout,
                }
            }
        })
    }

    /// One budget at `key`.
    fn budget(&self, key: &str, raw: RawBudget) -> Result<crate::budget::Budget, ConfigError> {
        if raw.tokens.is_none() && raw.cost.is_none() {
            return Err(self.err(
                key,
                "limits nothing".into(),
                "give tokens, cost (\"5.00 USD\") or both, or remove it",
            ));
        }
        if raw.tokens == Some(0) {
            return Err(self.err(&format!("{key}.tokens"), "must be at least 1".into(), "give a token count"));
        }
        let cost = raw
            .cost
            .as_deref()
            .map(crate::budget::parse_cost)
            .transpose()
            .map_err(|e| self.err(&format!("{key}.cost"), e, "write an amount and a currency: \"5.00 USD\""))?;
        let per = match &raw.per {
            None => None,
            Some(_) => {
                let d = self.dur(&format!("{key}.per"), &raw.per, Duration::ZERO)?;
                if d < Duration::from_secs(1) {
                    return Err(self.err(
                        &format!("{key}.per"),
                        "a period must be at least 1s".into(),
                        "use a period such as 1d or 1h, or remove per: for a budget for all time",
                    ));
                }
                Some(d)
            }
        };
        Ok(crate::budget::Budget { limit: crate::budget::BudgetLimit { cost, tokens: raw.tokens }, per })
    }
}
