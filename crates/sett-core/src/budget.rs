//! Budgets (`budgets:` in sett.yml; docs/agents.md, "Budgets"): limits on the tokens and the
//! cost agents report (see [`crate::usage`]), per workflow and per agent, optionally per period;
//! the book that adds what was spent against them (exact: integers and decimal amounts, never
//! floats); the Question a person is asked when one is reached (`kind: budget`: continue with a
//! raised budget, or stop the workflow) and the reading of its answer. Pure: the budget watch
//! (sett-ops `budget.rs`) reads the ledger and the clock and acts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer_spec::{AnswerSpec, Field, FieldKind, FieldProblem, Form, QuestionKind, StructuredQuestion};
use crate::ids::{AgentName, ArtifactId};
use crate::usage::{Amount, Cost, Currency, Usage};

/// The `type` of a budget Question artifact.
pub const BUDGET_ARTIFACT_TYPE: &str = "Budget";
/// The operator name budget decisions Sett takes itself are recorded under (the pause of a
/// workflow whose budget was reached, a stop on `on_exhausted: stop`).
pub const BUDGET_OPERATOR: &str = "budget";
/// The pattern of a raised cost (a decimal amount in the budget's currency).
const AMOUNT_PATTERN: &str = r"^[0-9]{1,12}(\.[0-9]{1,18})?$";

/// What a budget allows: tokens (input plus output) and/or a cost in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BudgetLimit {
    // Fields in alphabetical order: a ledger event carries it, and event text is canonical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

impl BudgetLimit {
    /// Whether `spent` reached it: as many tokens, or as much cost (in its currency), or more.
    pub fn reached(&self, spent: &Spent) -> bool {
        self.tokens.is_some_and(|t| spent.tokens >= t) || self.cost.as_ref().is_some_and(|c| spent.cost >= c.amount)
    }

    /// `200000 tokens, 5 USD` (what is limited).
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.tokens {
            parts.push(format!("{t} tokens"));
        }
        if let Some(c) = &self.cost {
            parts.push(format!("{} {}", c.amount, c.currency));
        }
        parts.join(", ")
    }

    /// What `spent` is in the terms of this limit: `1234 tokens, 5.2 USD`.
    pub fn spent_text(&self, spent: &Spent) -> String {
        let mut parts = Vec::new();
        if self.tokens.is_some() {
            parts.push(format!("{} tokens", spent.tokens));
        }
        if let Some(c) = &self.cost {
            parts.push(format!("{} {}", spent.cost, c.currency));
        }
        parts.join(", ")
    }

    /// The currency its cost is counted in, if it limits cost.
    pub fn currency(&self) -> Option<&Currency> {
        self.cost.as_ref().map(|c| &c.currency)
    }
}

/// Parses a cost limit as written in sett.yml: `"5.00 USD"`.
pub fn parse_cost(text: &str) -> Result<Cost, String> {
    let mut words = text.split_whitespace();
    let (Some(amount), Some(currency), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("{text:?} is not a cost: write an amount and a currency, as \"5.00 USD\""));
    };
    let amount: Amount = amount.parse().map_err(|e: crate::usage::BadAmount| e.to_string())?;
    Ok(Cost { amount, currency: Currency::parse(currency)? })
}

/// One budget: its limit and, optionally, its period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub limit: BudgetLimit,
    /// `None`: the budget is for all time (a workflow's whole life, an agent's whole instance).
    pub per: Option<Duration>,
}

impl Budget {
    /// The period `at_ms` falls in: periods are fixed windows counted from the Unix epoch (so
    /// `per: 1d` is each UTC day); 0 for a budget without a period.
    pub fn window(&self, at_ms: i64) -> i64 {
        match self.per {
            Some(p) if !p.is_zero() => at_ms.div_euclid(p.as_millis().max(1) as i64),
            _ => 0,
        }
    }
}

/// What happens when a budget is reached (`budgets.on_exhausted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnExhausted {
    /// Pause the workflow and ask a person: continue with a raised budget, or stop it.
    #[default]
    Ask,
    /// Cancel the workflow at once.
    Stop,
}

/// What happens when nobody answers a budget question in time (`budgets.on_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBudgetTimeout {
    /// Cancel the workflow.
    #[default]
    Stop,
    /// Leave it paused, for an operator to `sett resume` or `sett cancel`.
    Pause,
}

/// The validated `budgets:` section (empty when absent: nothing is limited).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetsConfig {
    /// Each workflow's budget.
    pub workflow: Option<Budget>,
    /// Each agent's budget, counted over every workflow.
    pub agents: BTreeMap<AgentName, Budget>,
    pub on_exhausted: OnExhausted,
    /// How long a budget question waits; `None`: forever.
    pub ask_timeout: Option<Duration>,
    pub on_timeout: OnBudgetTimeout,
}

impl BudgetsConfig {
    pub fn is_empty(&self) -> bool {
        self.workflow.is_none() && self.agents.is_empty()
    }

    /// The configured budget of `scope`.
    pub fn budget(&self, scope: &BudgetScope) -> Option<&Budget> {
        match scope {
            BudgetScope::Workflow => self.workflow.as_ref(),
            BudgetScope::Agent(a) => self.agents.get(a),
        }
    }
}

/// Whose budget: the workflow's, or one agent's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BudgetScope {
    Workflow,
    Agent(AgentName),
}

impl fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Workflow => f.write_str("workflow"),
            Self::Agent(a) => write!(f, "agent:{a}"),
        }
    }
}

impl BudgetScope {
    /// Reads `workflow` or `agent:<name>`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.strip_prefix("agent:") {
            Some(name) => AgentName::parse(name).ok().map(Self::Agent),
            None => (s == "workflow").then_some(Self::Workflow),
        }
    }

    /// `the workflow budget` / `agent writer's budget`.
    pub fn describe(&self) -> String {
        match self {
            Self::Workflow => "the workflow budget".to_owned(),
            Self::Agent(a) => format!("agent {a}'s budget"),
        }
    }
}

/// What was spent against a budget: tokens, and the cost in the budget's currency (costs in
/// other currencies do not count against it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spent {
    pub tokens: u64,
    pub cost: Amount,
}

impl Spent {
    fn add(&mut self, usage: &Usage, currency: Option<&Currency>) {
        self.tokens = self.tokens.saturating_add(usage.tokens());
        if let (Some(c), Some(want)) = (&usage.cost, currency)
            && c.currency == *want
        {
            self.cost = self.cost.saturating_add(c.amount);
        }
    }
}

/// A budget reached by a run of the workflow of `goal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub scope: BudgetScope,
    /// The workflow to pause (for an agent's budget: the one whose run reached it).
    pub goal: ArtifactId,
    pub window: i64,
    pub limit: BudgetLimit,
    pub spent: Spent,
}

/// Which budget instance a limit or a sum belongs to: the scope, the workflow (for a workflow
/// budget) and the period.
type BookKey = (BudgetScope, Option<ArtifactId>, i64);

/// What was spent against every budget, and the budgets people raised. Fed every run's usage
/// in ledger order; exact.
#[derive(Debug, Clone)]
pub struct BudgetBook {
    config: BudgetsConfig,
    spent: HashMap<BookKey, Spent>,
    raised: HashMap<BookKey, BudgetLimit>,
}

impl BudgetBook {
    pub fn new(config: BudgetsConfig) -> Self {
        Self { config, spent: HashMap::new(), raised: HashMap::new() }
    }

    pub fn config(&self) -> &BudgetsConfig {
        &self.config
    }

    fn key(scope: &BudgetScope, goal: ArtifactId, window: i64) -> BookKey {
        let goal = matches!(scope, BudgetScope::Workflow).then_some(goal);
        (scope.clone(), goal, window)
    }

    /// The limit in force for `scope` in the workflow of `goal` and period `window`: raised by a
    /// person, or as configured.
    pub fn limit(&self, scope: &BudgetScope, goal: ArtifactId, window: i64) -> Option<BudgetLimit> {
        let configured = self.config.budget(scope)?;
        Some(self.raised.get(&Self::key(scope, goal, window)).cloned().unwrap_or_else(|| configured.limit.clone()))
    }

    /// What was spent against `scope` (in the workflow of `goal`, for a workflow budget) in
    /// period `window`.
    pub fn spent(&self, scope: &BudgetScope, goal: ArtifactId, window: i64) -> Spent {
        self.spent.get(&Self::key(scope, goal, window)).copied().unwrap_or_default()
    }

    /// A person raised `scope`'s budget (in the workflow of `goal`, period `window`) to `limit`.
    pub fn raise(&mut self, scope: &BudgetScope, goal: ArtifactId, window: i64, limit: BudgetLimit) {
        self.raised.insert(Self::key(scope, goal, window), limit);
    }

    /// Adds the usage `agent` reported at `at_ms` in the workflow of `goal`. Returns every
    /// budget that is reached now (reached before too: the caller asks once per budget).
    pub fn record(&mut self, goal: ArtifactId, agent: &str, at_ms: i64, usage: &Usage) -> Vec<Exhausted> {
        let mut scopes = vec![BudgetScope::Workflow];
        if let Ok(a) = AgentName::parse(agent) {
            scopes.push(BudgetScope::Agent(a));
        }
        let mut out = Vec::new();
        for scope in scopes {
            let Some(budget) = self.config.budget(&scope) else { continue };
            let window = budget.window(at_ms);
            let Some(limit) = self.limit(&scope, goal, window) else { continue };
            let spent = self.spent.entry(Self::key(&scope, goal, window)).or_default();
            spent.add(usage, limit.currency());
            if limit.reached(spent) {
                out.push(Exhausted { spent: *spent, scope, goal, window, limit });
            }
        }
        out
    }
}

/// What a budget Question is about (its `subject`): the budget, the workflow, the limit and
/// what was spent when it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSubject {
    /// `workflow` or `agent:<name>`.
    pub budget: String,
    pub goal_id: ArtifactId,
    /// The period (0 for a budget without one).
    pub window: i64,
    pub limit: BudgetLimit,
    pub spent_tokens: u64,
    /// Spent in the limit's currency (absent when the limit is on tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_cost: Option<Amount>,
    /// How many times this budget was reached in this workflow and period before.
    pub round: u32,
}

impl BudgetSubject {
    pub fn of(e: &Exhausted, round: u32) -> Self {
        Self {
            budget: e.scope.to_string(),
            goal_id: e.goal,
            window: e.window,
            spent_tokens: e.spent.tokens,
            spent_cost: e.limit.cost.as_ref().map(|_| e.spent.cost),
            limit: e.limit.clone(),
            round,
        }
    }

    pub fn scope(&self) -> Option<BudgetScope> {
        BudgetScope::parse(&self.budget)
    }

    pub fn spent(&self) -> Spent {
        Spent { tokens: self.spent_tokens, cost: self.spent_cost.unwrap_or_default() }
    }

    /// The Question's id: [`crate::derive::budget_question_id`] (asking again after a crash
    /// writes the same Question).
    pub fn question_id(&self) -> ArtifactId {
        crate::derive::budget_question_id(&self.goal_id, &self.budget, self.window, self.round)
    }

    /// `the workflow budget was reached: 5.2 USD spent of 5 USD`.
    pub fn summary(&self) -> String {
        let scope = self.scope().map_or_else(|| self.budget.clone(), |s| s.describe());
        format!("{scope} was reached: {} spent of {}", self.limit.spent_text(&self.spent()), self.limit.text())
    }

    /// The budget Question.
    pub fn question(&self) -> StructuredQuestion {
        let field = |name: &str, title: &str, description: String, kind: FieldKind| Field {
            name: name.into(),
            title: Some(title.into()),
            description: Some(description),
            required: name == "decision",
            default: None,
            kind,
        };
        let mut fields = vec![field(
            "decision",
            "Decision",
            "continue: the workflow goes on with the budget raised to what you give below; stop: the workflow is cancelled"
                .into(),
            FieldKind::OneOf { options: vec!["continue".into(), "stop".into()] },
        )];
        if let Some(t) = self.limit.tokens {
            fields.push(field(
                "tokens",
                "Raise tokens to",
                format!("the new token budget (now {t}; {} spent)", self.spent_tokens),
                FieldKind::Number { integer: true, minimum: Some(self.spent_tokens as f64 + 1.0), maximum: None },
            ));
        }
        if let Some(c) = &self.limit.cost {
            fields.push(field(
                "cost",
                "Raise cost to",
                format!(
                    "the new cost budget in {} (now {}; {} spent)",
                    c.currency,
                    c.amount,
                    self.spent_cost.unwrap_or_default()
                ),
                FieldKind::Text { min_length: None, max_length: Some(32), pattern: Some(AMOUNT_PATTERN.into()) },
            ));
        }
        StructuredQuestion {
            question: format!("{}. Continue with a raised budget, or stop the workflow?", capitalised(&self.summary())),
            spec: AnswerSpec::Form(Form { fields }),
            kind: QuestionKind::Budget,
            subject: serde_json::to_value(self).ok(),
        }
    }

    pub fn to_payload(&self) -> String {
        self.question().to_payload()
    }

    /// The subject of a budget Question's payload; `None` for any other question.
    pub fn of_payload(payload: &str) -> Option<Self> {
        let q = StructuredQuestion::from_payload(payload).ok().flatten()?;
        if q.kind != QuestionKind::Budget {
            return None;
        }
        serde_json::from_value(q.subject?).ok()
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// What a person (or the timeout policy) decided about a reached budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetDecision {
    /// Go on with the budget raised.
    Continue,
    /// Cancel the workflow.
    Stop,
    /// Nobody answered in time and `on_timeout: pause`: it stays paused.
    Pause,
}

/// A budget answer's payload: `{"decision": "continue", "tokens": 300000, "cost": "7.50"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetAnswer {
    pub decision: BudgetDecision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
}

/// Reads a budget answer (already validated against the question's form): `continue` must
/// raise every part of the limit that was reached above what was spent. Returns the decision
/// and, to continue, the raised limit.
pub fn parse_answer(
    subject: &BudgetSubject,
    value: &Value,
) -> Result<(BudgetDecision, Option<BudgetLimit>), Vec<FieldProblem>> {
    let problem = |field: &str, problem: String| FieldProblem { field: field.into(), problem };
    let answer: BudgetAnswer = serde_json::from_value(value.clone())
        .map_err(|e| vec![problem("decision", format!("expected \"continue\" or \"stop\": {e}"))])?;
    if answer.decision != BudgetDecision::Continue {
        return Ok((answer.decision, None));
    }
    let mut limit = subject.limit.clone();
    let mut problems = Vec::new();
    if let Some(t) = answer.tokens {
        if limit.tokens.is_none() {
            problems.push(problem("tokens", "this budget does not limit tokens".into()));
        }
        limit.tokens = Some(t);
    }
    if let Some(text) = &answer.cost {
        match (text.trim().parse::<Amount>(), &mut limit.cost) {
            (Ok(amount), Some(c)) => c.amount = amount,
            (Ok(_), None) => problems.push(problem("cost", "this budget does not limit cost".into())),
            (Err(e), _) => problems.push(problem("cost", e.to_string())),
        }
    }
    let spent = subject.spent();
    if problems.is_empty() && limit.reached(&spent) {
        if limit.tokens.is_some_and(|t| spent.tokens >= t) {
            problems.push(problem(
                "tokens",
                format!("to continue, raise it above the {} tokens already spent", spent.tokens),
            ));
        }
        if let Some(c) = limit.cost.as_ref().filter(|c| spent.cost >= c.amount) {
            problems.push(problem(
                "cost",
                format!("to continue, raise it above the {} {} already spent", spent.cost, c.currency),
            ));
        }
    }
    if problems.is_empty() { Ok((BudgetDecision::Continue, Some(limit))) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn usage(tokens: u64, cost: &str, currency: &str) -> Usage {
        Usage {
            input_tokens: Some(tokens),
            cost: Some(Cost { amount: cost.parse().unwrap(), currency: Currency::parse(currency).unwrap() }),
            ..Usage::default()
        }
    }

    fn goal(n: u32) -> ArtifactId {
        ArtifactId::derived(&"budget-test", &n.to_string())
    }

    fn config() -> BudgetsConfig {
        BudgetsConfig {
            workflow: Some(Budget {
                limit: BudgetLimit { tokens: None, cost: Some(parse_cost("0.3 USD").unwrap()) },
                per: None,
            }),
            agents: [(
                AgentName::parse("writer").unwrap(),
                Budget { limit: BudgetLimit { tokens: Some(100), cost: None }, per: Some(Duration::from_secs(86_400)) },
            )]
            .into(),
            ..BudgetsConfig::default()
        }
    }

    #[test]
    fn a_workflow_budget_is_reached_exactly_and_only_by_its_currency() {
        let mut book = BudgetBook::new(config());
        // 0.1 three times is exactly 0.3 (a float sum is 0.30000000000000004, or short of it).
        assert!(book.record(goal(1), "coder", 0, &usage(1, "0.1", "USD")).is_empty());
        assert!(book.record(goal(1), "coder", 0, &usage(1, "5", "EUR")).is_empty(), "another currency");
        assert!(book.record(goal(2), "coder", 0, &usage(1, "0.25", "USD")).is_empty(), "another workflow");
        assert!(book.record(goal(1), "coder", 0, &usage(1, "0.1", "USD")).is_empty());
        let reached = book.record(goal(1), "coder", 0, &usage(1, "0.1", "USD"));
        assert_eq!(reached.len(), 1);
        assert_eq!((reached[0].scope.clone(), reached[0].goal), (BudgetScope::Workflow, goal(1)));
        assert_eq!(reached[0].spent.cost.to_string(), "0.3");
        assert_eq!(reached[0].limit.spent_text(&reached[0].spent), "0.3 USD");
    }

    #[test]
    fn an_agent_budget_counts_every_workflow_per_period() {
        let mut book = BudgetBook::new(config());
        let day = 86_400_000;
        assert!(book.record(goal(1), "writer", day + 5, &usage(60, "0", "USD")).is_empty());
        let reached = book.record(goal(2), "writer", 2 * day - 1, &usage(40, "0", "USD"));
        assert_eq!(reached.len(), 1);
        assert_eq!(
            (reached[0].scope.to_string(), reached[0].goal, reached[0].window),
            ("agent:writer".into(), goal(2), 1)
        );
        assert!(book.record(goal(2), "writer", 2 * day, &usage(99, "0", "USD")).is_empty(), "a new day");
        // Raised for the period: no longer reached until the new limit.
        book.raise(&reached[0].scope, goal(2), 1, BudgetLimit { tokens: Some(150), cost: None });
        assert!(book.record(goal(3), "writer", day + 9, &usage(49, "0", "USD")).is_empty());
        assert_eq!(book.record(goal(3), "writer", day + 9, &usage(1, "0", "USD")).len(), 1);
    }

    #[test]
    fn the_question_asks_to_raise_what_was_reached_and_the_answer_must_raise_it() {
        let mut book = BudgetBook::new(config());
        book.record(goal(1), "coder", 0, &usage(1, "0.2", "USD"));
        let e = book.record(goal(1), "coder", 0, &usage(1, "0.15", "USD")).remove(0);
        let subject = BudgetSubject::of(&e, 0);
        let payload = subject.to_payload();
        assert_eq!(QuestionKind::of_payload(&payload), QuestionKind::Budget);
        assert_eq!(BudgetSubject::of_payload(&payload), Some(subject.clone()));
        assert_ne!(subject.question_id(), BudgetSubject { round: 1, ..subject.clone() }.question_id());
        let q = subject.question();
        assert!(q.question.starts_with("The workflow budget was reached: 0.35 USD spent of 0.3 USD"), "{}", q.question);
        let spec = q.spec;
        let ok = spec.validate(&json!({"decision": "continue", "cost": "1.5"})).unwrap();
        let (d, limit) = parse_answer(&subject, &ok).unwrap();
        assert_eq!((d, limit.unwrap().text()), (BudgetDecision::Continue, "1.5 USD".to_owned()));
        let low = spec.validate(&json!({"decision": "continue", "cost": "0.35"})).unwrap();
        let e = parse_answer(&subject, &low).unwrap_err();
        assert!(e[0].problem.contains("above the 0.35 USD already spent"), "{e:?}");
        let none = spec.validate(&json!({"decision": "continue"})).unwrap();
        assert!(parse_answer(&subject, &none).is_err(), "continue without a raise");
        let stop = spec.validate(&json!({"decision": "stop"})).unwrap();
        assert_eq!(parse_answer(&subject, &stop).unwrap(), (BudgetDecision::Stop, None));
        assert!(spec.validate(&json!({"decision": "continue", "cost": "1.0.0"})).is_err());
    }

    #[test]
    fn costs_parse_as_written_in_sett_yml() {
        assert_eq!(parse_cost("5.00 USD").unwrap().amount.to_string(), "5");
        for bad in ["5", "USD 5", "5.00 usd", "-1 USD", "1 USD extra"] {
            assert!(parse_cost(bad).is_err(), "{bad}");
        }
        assert_eq!(BudgetScope::parse("agent:writer"), Some(BudgetScope::Agent(AgentName::parse("writer").unwrap())));
        assert_eq!(BudgetScope::parse("workflow"), Some(BudgetScope::Workflow));
        assert_eq!(BudgetScope::parse("team"), None);
    }
}
