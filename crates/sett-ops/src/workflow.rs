//! Workflow membership from the event stream: which artifacts and claims flow from one goal, and
//! when a workflow ends (a Terminal or Failure artifact, or its goal's claim ending without one). Used by `sett forage --watch` and
//! `sett watch --exit-on-completion`; pure bookkeeping over events, no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use sett_core::StructuralType;
use sett_core::event::{Event, EventKind};

/// How a workflow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A Terminal artifact: the workflow is complete.
    Terminal { artifact_id: String },
    /// A Failure artifact; fetch it to show the reason (see [`failure_reason`]).
    Failure { artifact_id: String, failure_type: String },
    /// The goal's own claim ended without a Terminal or Failure (nobody bid: `dormant`; or it was
    /// terminated, e.g. a reviewer rejected the goal). Nothing can follow: a goal is produced by
    /// `user`, so no rework is ever assigned for it.
    Stopped { claim_id: String, status: String, reason: Option<String> },
}

/// Every artifact and claim of one workflow, grown event by event.
///
/// Membership: the goal belongs; an artifact belongs when any of its `source_artifacts` belongs
/// or its `claim_id` belongs; a claim belongs when its artifact belongs or it is the rework of a
/// claim that belongs.
#[derive(Debug, Clone)]
pub struct Workflow {
    goal: String,
    artifacts: HashSet<String>,
    claims: HashSet<String>,
    outcome: Option<Outcome>,
}

fn strs<'e>(e: &'e Event, field: &str) -> impl Iterator<Item = &'e str> {
    e.data.get(field).and_then(|v| v.as_array()).into_iter().flatten().filter_map(|v| v.as_str())
}

impl Workflow {
    pub fn new(goal: impl Into<String>) -> Self {
        let goal = goal.into();
        Self { artifacts: HashSet::from([goal.clone()]), goal, claims: HashSet::new(), outcome: None }
    }

    pub fn goal(&self) -> &str {
        &self.goal
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn has_artifact(&self, id: &str) -> bool {
        self.artifacts.contains(id)
    }

    /// Whether `e` concerns this workflow, as far as the events seen so far tell.
    pub fn concerns(&self, e: &Event) -> bool {
        let by = |f: &str| e.field(f).is_some_and(|v| self.artifacts.contains(v) || self.claims.contains(v));
        by("artifact_id") || by("claim_id") || by("question_id") || by("answer_id")
    }

    /// Feeds one event; returns true when it belongs to this workflow (and records what it
    /// adds). The first Terminal or Failure artifact that belongs sets the outcome.
    pub fn observe(&mut self, e: &Event) -> bool {
        match e.kind {
            EventKind::ArtifactCreated => {
                let Some(id) = e.field("artifact_id") else {
                    return false;
                };
                let belongs = self.artifacts.contains(id)
                    || strs(e, "source_artifacts").any(|s| self.artifacts.contains(s))
                    || e.field("claim_id").is_some_and(|c| self.claims.contains(c));
                if !belongs {
                    return false;
                }
                self.artifacts.insert(id.to_owned());
                if self.outcome.is_none() {
                    let st = e.field("structural_type").and_then(|s| s.parse::<StructuralType>().ok());
                    self.outcome = match st {
                        Some(StructuralType::Terminal) => Some(Outcome::Terminal { artifact_id: id.to_owned() }),
                        Some(StructuralType::Failure) => Some(Outcome::Failure {
                            artifact_id: id.to_owned(),
                            failure_type: e.field("type").unwrap_or("Failure").to_owned(),
                        }),
                        _ => None,
                    };
                }
                true
            }
            EventKind::ClaimCreated => {
                let Some(claim) = e.field("claim_id") else {
                    return false;
                };
                let belongs = self.claims.contains(claim)
                    || e.field("artifact_id").is_some_and(|a| self.artifacts.contains(a))
                    || e.field("rework_of").is_some_and(|r| self.claims.contains(r));
                if belongs {
                    self.claims.insert(claim.to_owned());
                }
                belongs
            }
            EventKind::ClaimTerminated | EventKind::ClaimDormant => {
                let belongs = self.concerns(e);
                if belongs && self.outcome.is_none() && e.field("artifact_id") == Some(&self.goal) {
                    self.outcome = Some(Outcome::Stopped {
                        claim_id: e.field("claim_id").unwrap_or_default().to_owned(),
                        status: if e.kind == EventKind::ClaimDormant { "dormant" } else { "terminated" }.to_owned(),
                        reason: e.field("reason").filter(|r| !r.is_empty()).map(str::to_owned),
                    });
                }
                belongs
            }
            _ => self.concerns(e),
        }
    }
}

/// Every workflow seen in a stream (each root artifact — no sources, no claim — starts one), for
/// `watch --exit-on-completion`.
#[derive(Debug, Clone, Default)]
pub struct Workflows {
    flows: BTreeMap<String, Workflow>,
    /// Which workflows (by goal) each known artifact or claim id belongs to, so an event is
    /// offered only to the workflows it can concern: offering it to every workflow made a
    /// replay of many goals quadratic.
    owners: HashMap<String, Vec<String>>,
    /// Workflows without an outcome yet.
    open: usize,
    /// Outcomes of Terminal/Failure artifacts no known workflow owns (their goal is older than
    /// the replayed window).
    orphan_outcomes: Vec<Outcome>,
    /// The most recent outcome: what `watch --exit-on-completion` reports.
    last: Option<Outcome>,
}

impl Workflows {
    pub fn new() -> Self {
        Self::default()
    }

    /// The goals of the workflows `e` may concern: the owners of every id it names (the fields
    /// [`Workflow::observe`] judges membership by).
    fn candidates(&self, e: &Event) -> Vec<String> {
        let mut goals: Vec<String> = ["artifact_id", "claim_id", "question_id", "answer_id", "rework_of"]
            .iter()
            .filter_map(|f| e.field(f))
            .chain(strs(e, "source_artifacts"))
            .filter_map(|id| self.owners.get(id))
            .flatten()
            .cloned()
            .collect();
        goals.sort_unstable();
        goals.dedup();
        goals
    }

    fn own(&mut self, id: &str, goal: &str) {
        let owners = self.owners.entry(id.to_owned()).or_default();
        if !owners.iter().any(|g| g == goal) {
            owners.push(goal.to_owned());
        }
    }

    /// Feeds one event. Returns the outcome it produced, if it ended a workflow.
    pub fn observe(&mut self, e: &Event) -> Option<Outcome> {
        let mut ended = None;
        let mut owned = false;
        for goal in self.candidates(e) {
            let Some(wf) = self.flows.get_mut(&goal) else { continue };
            let before = wf.outcome.is_some();
            if wf.observe(e) {
                owned = true;
                if !before && let Some(o) = wf.outcome() {
                    ended = Some(o.clone());
                    self.open -= 1;
                }
                // What the event added to the workflow (see `Workflow::observe`).
                let added = match e.kind {
                    EventKind::ArtifactCreated => e.field("artifact_id"),
                    EventKind::ClaimCreated => e.field("claim_id"),
                    _ => None,
                };
                if let Some(id) = added {
                    self.own(id, &goal);
                }
            }
        }
        if e.kind == EventKind::ArtifactCreated && !owned {
            let is_root = strs(e, "source_artifacts").next().is_none()
                && e.field("claim_id").is_none()
                && e.field("structural_type") == Some("Standard");
            if let (true, Some(id)) = (is_root, e.field("artifact_id")) {
                let mut wf = Workflow::new(id);
                wf.observe(e);
                if wf.outcome.is_none() {
                    self.open += 1;
                }
                self.flows.insert(id.to_owned(), wf);
                self.own(id, id);
            } else {
                let mut probe = Workflow::new(e.field("artifact_id").unwrap_or_default());
                probe.observe(e);
                if let Some(o) = probe.outcome {
                    self.orphan_outcomes.push(o.clone());
                    ended = Some(o);
                }
            }
        }
        if ended.is_some() {
            self.last.clone_from(&ended);
        }
        ended
    }

    /// True when at least one workflow was seen and every known one has ended.
    pub fn all_ended(&self) -> bool {
        let any = !self.flows.is_empty() || !self.orphan_outcomes.is_empty();
        any && self.open == 0
    }

    /// How the most recently ended workflow ended.
    pub fn last_outcome(&self) -> Option<&Outcome> {
        self.last.as_ref()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// The human reason of a Failure artifact: its payload's `reason` field when the payload is a
/// JSON object that has one, else the payload itself.
pub fn failure_reason(payload: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(v) => match v.get("reason").and_then(|r| r.as_str()) {
            Some(r) => r.to_owned(),
            None => payload.trim().to_owned(),
        },
        Err(_) => payload.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: EventKind, data: serde_json::Value) -> Event {
        Event { id: "1-0".into(), kind, ts_ms: 0, data }
    }

    fn artifact(id: &str, st: &str, sources: &[&str], claim: Option<&str>) -> Event {
        ev(
            EventKind::ArtifactCreated,
            json!({"artifact_id": id, "structural_type": st, "type": "T", "source_artifacts": sources, "claim_id": claim}),
        )
    }

    #[test]
    fn membership_follows_sources_claims_and_rework() {
        let mut wf = Workflow::new("g");
        assert!(wf.observe(&artifact("g", "Standard", &[], None)));
        assert!(!wf.observe(&artifact("other", "Standard", &[], None)));
        assert!(wf.observe(&ev(EventKind::ClaimCreated, json!({"claim_id": "c1", "artifact_id": "g"}))));
        assert!(!wf.observe(&ev(EventKind::ClaimCreated, json!({"claim_id": "cx", "artifact_id": "other"}))));
        assert!(wf.observe(&ev(EventKind::BidSubmitted, json!({"claim_id": "c1", "agent": "A"}))));
        assert!(!wf.observe(&ev(EventKind::BidSubmitted, json!({"claim_id": "cx", "agent": "A"}))));
        // Output tied to the claim only by claim_id.
        assert!(wf.observe(&artifact("o1", "Standard", &[], Some("c1"))));
        // A rework claim of a member claim, on an artifact not yet known.
        assert!(
            wf.observe(&ev(EventKind::ClaimCreated, json!({"claim_id": "c2", "artifact_id": "zz", "rework_of": "c1"})))
        );
        assert!(wf.observe(&artifact("o2", "Standard", &[], Some("c2"))));
        assert!(wf.outcome().is_none());
        assert!(!wf.observe(&artifact("t-other", "Terminal", &["other"], None)));
        assert!(wf.outcome().is_none());
        assert!(wf.observe(&artifact("t", "Terminal", &["o2"], None)));
        assert_eq!(wf.outcome(), Some(&Outcome::Terminal { artifact_id: "t".into() }));
        // The first outcome sticks.
        wf.observe(&artifact("f", "Failure", &["o2"], None));
        assert_eq!(wf.outcome(), Some(&Outcome::Terminal { artifact_id: "t".into() }));
    }

    #[test]
    fn the_goal_claim_ending_stops_the_workflow() {
        let mut wf = Workflow::new("g");
        wf.observe(&ev(EventKind::ClaimCreated, json!({"claim_id": "c1", "artifact_id": "g"})));
        wf.observe(&artifact("o", "Standard", &["g"], Some("c1")));
        wf.observe(&ev(EventKind::ClaimCreated, json!({"claim_id": "c2", "artifact_id": "o"})));
        // Another claim of the workflow terminating (a rework follows) ends nothing.
        assert!(wf.observe(&ev(
            EventKind::ClaimTerminated,
            json!({"claim_id": "c2", "artifact_id": "o", "reason": "rejected"})
        )));
        assert!(wf.outcome().is_none());
        assert!(wf.observe(&ev(EventKind::ClaimDormant, json!({"claim_id": "c1", "artifact_id": "g"}))));
        assert_eq!(
            wf.outcome(),
            Some(&Outcome::Stopped { claim_id: "c1".into(), status: "dormant".into(), reason: None })
        );
    }

    #[test]
    fn failures_end_a_workflow() {
        let mut wf = Workflow::new("g");
        let mut e = artifact("f", "Failure", &["g"], None);
        e.data["type"] = json!("MaxIterationsExceeded");
        assert!(wf.observe(&e));
        assert_eq!(
            wf.outcome(),
            Some(&Outcome::Failure { artifact_id: "f".into(), failure_type: "MaxIterationsExceeded".into() })
        );
    }

    #[test]
    fn workflows_track_every_goal() {
        let mut all = Workflows::new();
        assert!(!all.all_ended());
        assert_eq!(all.observe(&artifact("g1", "Standard", &[], None)), None);
        assert_eq!(all.observe(&artifact("g2", "Standard", &[], None)), None);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all.observe(&artifact("t1", "Terminal", &["g1"], None)),
            Some(Outcome::Terminal { artifact_id: "t1".into() })
        );
        assert!(!all.all_ended());
        assert!(all.observe(&artifact("f2", "Failure", &["g2"], None)).is_some());
        assert!(all.all_ended());
        assert!(matches!(all.last_outcome(), Some(Outcome::Failure { .. })));
    }

    #[test]
    fn many_goals_each_end_on_their_own() {
        let mut all = Workflows::new();
        for g in 0..5_000 {
            assert_eq!(all.observe(&artifact(&format!("g{g}"), "Standard", &[], None)), None);
        }
        let claim = ev(EventKind::ClaimCreated, json!({"claim_id": "c7", "artifact_id": "g7"}));
        assert_eq!(all.observe(&claim), None);
        // Output tied to goal 7 only through its claim, then the Terminal built on it.
        assert_eq!(all.observe(&artifact("o7", "Standard", &[], Some("c7"))), None);
        assert_eq!(
            all.observe(&artifact("t7", "Terminal", &["o7"], None)),
            Some(Outcome::Terminal { artifact_id: "t7".into() })
        );
        assert!(!all.all_ended());
        for g in (0..5_000).filter(|g| *g != 7) {
            let ended = all.observe(&artifact(&format!("f{g}"), "Failure", &[&format!("g{g}")], None));
            assert!(ended.is_some(), "goal {g}");
        }
        assert!(all.all_ended());
    }

    #[test]
    fn an_outcome_without_a_known_goal_still_counts() {
        let mut all = Workflows::new();
        assert!(all.observe(&artifact("t", "Terminal", &["unknown"], None)).is_some());
        assert!(all.all_ended());
        assert_eq!(all.last_outcome(), Some(&Outcome::Terminal { artifact_id: "t".into() }));
    }

    #[test]
    fn failure_reasons() {
        assert_eq!(failure_reason(r#"{"reason":"tool exited 3","exit_code":3}"#), "tool exited 3");
        assert_eq!(failure_reason(" plain text "), "plain text");
        assert_eq!(failure_reason(r#"{"x":1}"#), r#"{"x":1}"#);
    }
}
