//! Usage views over the blackboard: what agents reported (sett_core::usage) summed by workflow,
//! agent or model, for `sett usage`, the console and the notifications. The numbers are read
//! from the artifacts themselves (the ledger's records), so they are exact and survive restarts.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use sett_core::usage::UsageTotals;
use sett_core::{Artifact, ArtifactId};
use sett_store::{Store, StoreError};

/// What a usage row groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grouping {
    #[default]
    Workflow,
    Agent,
    Model,
}

impl Grouping {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workflow => "workflow",
            Self::Agent => "agent",
            Self::Model => "model",
        }
    }
}

/// The model shown for usage that named none.
pub const NO_MODEL: &str = "-";

/// One row of a usage view: a workflow (by its goal), an agent or a model, with its totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The goal's id, the agent's name or the model's name.
    pub key: String,
    /// For workflows: the goal's text (its first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// Every reporting run's usage, with what it can be grouped by.
#[derive(Debug, Clone, Default)]
pub struct UsageLedger {
    /// (goal, agent, model, created_at_ms, totals of that one run).
    runs: Vec<(ArtifactId, String, String, i64, UsageTotals)>,
    goals: HashMap<ArtifactId, String>,
}

impl UsageLedger {
    /// The usage reported by `artifacts` (any order; artifacts without usage only place the
    /// others in their workflows).
    pub fn from_artifacts(artifacts: &[Artifact]) -> Self {
        let by_id: HashMap<ArtifactId, &Artifact> = artifacts.iter().map(|a| (a.id, a)).collect();
        let mut out = Self::default();
        for a in artifacts {
            let Some(u) = &a.usage else { continue };
            let goal = goal_of(a, &by_id);
            if let Some(g) = by_id.get(&goal) {
                out.goals.entry(goal).or_insert_with(|| first_line(&g.payload));
            }
            let mut one = UsageTotals::default();
            one.add(u);
            let model = u.model.clone().unwrap_or_else(|| NO_MODEL.to_owned());
            out.runs.push((goal, a.produced_by_role.clone(), model, a.created_at_ms, one));
        }
        out
    }

    /// Reads every artifact of the instance.
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        Ok(Self::from_artifacts(&store.all_artifacts().await?))
    }

    /// Only the runs reported at or after `since_ms`.
    pub fn since(mut self, since_ms: i64) -> Self {
        self.runs.retain(|(_, _, _, at, _)| *at >= since_ms);
        self
    }

    /// Everything, summed.
    pub fn total(&self) -> UsageTotals {
        let mut t = UsageTotals::default();
        for (_, _, _, _, one) in &self.runs {
            t.merge(one);
        }
        t
    }

    /// One workflow's usage (zero when it reported none).
    pub fn workflow(&self, goal: &ArtifactId) -> UsageTotals {
        let mut t = UsageTotals::default();
        for (_, _, _, _, one) in self.runs.iter().filter(|r| r.0 == *goal) {
            t.merge(one);
        }
        t
    }

    /// Rows by `grouping`, the largest token count first (then by key).
    pub fn rows(&self, grouping: Grouping) -> Vec<UsageRow> {
        let mut groups: BTreeMap<String, UsageTotals> = BTreeMap::new();
        for (goal, agent, model, _, one) in &self.runs {
            let key = match grouping {
                Grouping::Workflow => goal.to_string(),
                Grouping::Agent => agent.clone(),
                Grouping::Model => model.clone(),
            };
            groups.entry(key).or_default().merge(one);
        }
        let mut rows: Vec<UsageRow> = groups
            .into_iter()
            .map(|(key, totals)| UsageRow {
                goal: (grouping == Grouping::Workflow)
                    .then(|| ArtifactId::parse(&key).ok().and_then(|g| self.goals.get(&g).cloned()))
                    .flatten(),
                key,
                totals,
            })
            .collect();
        rows.sort_by(|a, b| b.totals.tokens().cmp(&a.totals.tokens()).then_with(|| a.key.cmp(&b.key)));
        rows
    }
}

/// The goal of `a`'s workflow: follow the first source back to an artifact without one (a goal,
/// or the root of what is known). Cycles and missing sources stop the walk.
fn goal_of(a: &Artifact, by_id: &HashMap<ArtifactId, &Artifact>) -> ArtifactId {
    let mut at = a;
    let mut seen = HashSet::from([a.id]);
    while let Some(src) = at.source_artifacts.first() {
        match by_id.get(src) {
            Some(next) if seen.insert(next.id) => at = next,
            Some(_) => break,
            None => return *src,
        }
    }
    at.id
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    sett_core::text::excerpt(line, 80)
}

#[cfg(test)]
mod tests {
    use sett_core::StructuralType;
    use sett_core::usage::Usage;

    use super::*;

    fn art(n: u32, sources: &[&Artifact], by: &str, usage: Option<&str>, at: i64) -> Artifact {
        let mut a = Artifact::new_root(
            ArtifactId::derived(&"usage-test", &n.to_string()),
            StructuralType::Standard,
            "T",
            "goal text\nmore",
            by,
            at,
        );
        a.source_artifacts = sources.iter().map(|s| s.id).collect();
        a.usage = usage.map(|u| Usage::from_tool_json(&serde_json::from_str(u).unwrap()).unwrap().unwrap());
        a
    }

    #[test]
    fn usage_is_summed_by_workflow_agent_and_model() {
        let g1 = art(1, &[], "user", None, 1);
        let g2 = art(2, &[], "user", None, 1);
        let a = art(
            3,
            &[&g1],
            "Coder",
            Some(r#"{"model":"m1","input_tokens":10,"cost":{"amount":"0.1","currency":"USD"}}"#),
            5,
        );
        let b = art(4, &[&a], "Reviewer", Some(r#"{"model":"m2","output_tokens":5}"#), 6);
        let c = art(5, &[&g2], "Coder", Some(r#"{"input_tokens":1,"cost":{"amount":"0.2","currency":"USD"}}"#), 7);
        let ledger = UsageLedger::from_artifacts(&[c.clone(), b, a, g1.clone(), g2.clone()]);
        assert_eq!(ledger.total().tokens(), 16);
        assert_eq!(ledger.total().cost_text(), "0.3 USD");
        let w = ledger.rows(Grouping::Workflow);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].key.clone(), w[0].totals.tokens(), w[0].goal.as_deref()),
            (g1.id.to_string(), 15, Some("goal text"))
        );
        assert_eq!(ledger.workflow(&g2.id).cost_text(), "0.2 USD");
        let agents: Vec<(String, u64)> =
            ledger.rows(Grouping::Agent).into_iter().map(|r| (r.key, r.totals.runs)).collect();
        assert_eq!(agents, [("Coder".to_owned(), 2), ("Reviewer".to_owned(), 1)]);
        let models: Vec<String> = ledger.rows(Grouping::Model).into_iter().map(|r| r.key).collect();
        assert_eq!(models, ["m1", "m2", NO_MODEL]);
        assert_eq!(ledger.clone().since(6).total().runs, 2);
    }
}
