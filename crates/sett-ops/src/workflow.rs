//! Workflow membership from the event stream: which artifacts and claims flow from one goal, and
//! when a workflow ends (a Terminal or Failure artifact, or its goal's claim ending without one). Used by `sett forage --watch` and
//! `sett watch --exit-on-completion`; pure bookkeeping over events, no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use sett_core::event::{Event, EventData};
use sett_core::{ArtifactId, ClaimId, ClaimStatus, StructuralType};

/// How a workflow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A Terminal artifact: the workflow is complete.
    Terminal { artifact_id: ArtifactId },
    /// A Failure artifact; fetch it to show the reason (see [`sett_core::failure::FailurePayload::reason_of`]).
    Failure { artifact_id: ArtifactId, failure_type: String },
    /// The goal's own claim ended without a Terminal or Failure (nobody bid: `dormant`; or it was
    /// terminated, e.g. a reviewer rejected the goal). Nothing can follow: a goal is produced by
    /// `user`, so no rework is ever assigned for it.
    Stopped { claim_id: ClaimId, status: ClaimStatus, reason: Option<String> },
    /// An operator cancelled it (`sett cancel`); whatever its tools wrote after is late.
    Cancelled { operator: String, reason: Option<String> },
}

/// The outcome an artifact sets: a Terminal or a Failure ends what it belongs to.
fn outcome_of(a: &sett_core::event::ArtifactCreated) -> Option<Outcome> {
    match a.structural_type {
        StructuralType::Terminal => Some(Outcome::Terminal { artifact_id: a.artifact_id }),
        StructuralType::Failure => {
            Some(Outcome::Failure { artifact_id: a.artifact_id, failure_type: a.artifact_type.clone() })
        }
        _ => None,
    }
}

/// A branch of a workflow (`sett fork`): the artifacts and claims that follow from its first
/// artifact, and its own outcome; the workflow's own outcome is not changed by it.
#[derive(Debug, Clone)]
pub struct Branch {
    /// The branch's first artifact (a new version, or a different Answer).
    pub root: ArtifactId,
    pub forked_from: ArtifactId,
    pub operator: String,
    artifacts: HashSet<ArtifactId>,
    claims: HashSet<ClaimId>,
    outcome: Option<Outcome>,
}

impl Branch {
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Whether `e` follows from this branch: it names (or derives from) one of its artifacts or
    /// claims. A claim on an artifact from before the fork belongs only when the fork named it.
    fn owns(&self, e: &EventData) -> bool {
        match e {
            EventData::ArtifactCreated(a) => {
                self.artifacts.contains(&a.artifact_id)
                    || a.source_artifacts.iter().any(|s| self.artifacts.contains(s))
                    || a.claim_id.is_some_and(|c| self.claims.contains(&c))
            }
            EventData::ClaimCreated(c) => {
                self.claims.contains(&c.claim_id)
                    || self.artifacts.contains(&c.artifact_id)
                    || c.rework_of.is_some_and(|r| self.claims.contains(&r))
            }
            EventData::WorkflowRetried(r) => self.claims.contains(&r.failed_claim),
            other => match other.claim_id() {
                Some(c) => self.claims.contains(&c),
                None => other.artifact_id().is_some_and(|a| self.artifacts.contains(&a)),
            },
        }
    }

    /// Records what `e` adds to the branch; returns the outcome it set, if any.
    fn absorb(&mut self, e: &EventData) -> Option<Outcome> {
        match e {
            EventData::ArtifactCreated(a) => {
                self.artifacts.insert(a.artifact_id);
                if self.outcome.is_none() {
                    self.outcome = outcome_of(a);
                    return self.outcome.clone();
                }
            }
            EventData::ClaimCreated(c) => {
                self.claims.insert(c.claim_id);
            }
            EventData::WorkflowRetried(r) => {
                self.claims.insert(r.claim_id);
                if matches!(self.outcome, Some(Outcome::Failure { .. } | Outcome::Stopped { .. })) {
                    self.outcome = None;
                }
            }
            _ => {}
        }
        None
    }
}

/// Every artifact and claim of one workflow, grown event by event.
///
/// Membership: the goal belongs; an artifact belongs when any of its `source_artifacts` belongs
/// or its `claim_id` belongs; a claim belongs when its artifact belongs or it is the rework of a
/// claim that belongs.
#[derive(Debug, Clone)]
pub struct Workflow {
    goal: ArtifactId,
    artifacts: HashSet<ArtifactId>,
    claims: HashSet<ClaimId>,
    outcome: Option<Outcome>,
    /// When the outcome was recorded (the `ts` of the event that set it).
    ended_ms: Option<i64>,
    /// Its branches (`sett fork`), oldest first.
    branches: Vec<Branch>,
    /// The outcome set most recently, the workflow's or a branch's.
    last: Option<Outcome>,
}

/// An id an event names: workflows are tracked by both kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Member {
    Artifact(ArtifactId),
    Claim(ClaimId),
}

/// Every id `e` names that membership is judged by (see [`Workflow::observe`]).
fn named_ids(e: &EventData) -> Vec<Member> {
    let mut ids: Vec<Member> = Vec::with_capacity(4);
    ids.extend(e.artifact_id().map(Member::Artifact));
    ids.extend(e.claim_id().map(Member::Claim));
    match e {
        EventData::QuestionAnswered(a) => {
            ids.push(Member::Artifact(a.question_id));
            ids.push(Member::Artifact(a.answer_id));
        }
        EventData::QuestionAsked(q) => ids.push(Member::Artifact(q.question_id)),
        EventData::QuestionTimedOut(t) => ids.push(Member::Artifact(t.question_id)),
        EventData::ClaimCreated(c) => ids.extend(c.rework_of.map(Member::Claim)),
        EventData::WorkflowRetried(r) => {
            ids.push(Member::Artifact(r.goal_id));
            ids.push(Member::Claim(r.failed_claim));
        }
        EventData::ArtifactForked(f) => ids.push(Member::Artifact(f.goal_id)),
        EventData::ArtifactCreated(a) => ids.extend(a.source_artifacts.iter().copied().map(Member::Artifact)),
        _ => {}
    }
    ids
}

impl Workflow {
    pub fn new(goal: ArtifactId) -> Self {
        Self {
            artifacts: HashSet::from([goal]),
            goal,
            claims: HashSet::new(),
            outcome: None,
            ended_ms: None,
            branches: Vec::new(),
            last: None,
        }
    }

    /// Its branches (`sett fork`), oldest first.
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// Whether it and every branch of it have an outcome.
    pub fn ended(&self) -> bool {
        self.outcome.is_some() && self.branches.iter().all(|b| b.outcome.is_some())
    }

    /// When the workflow ended: the time of the event that set its outcome.
    pub fn ended_ms(&self) -> Option<i64> {
        self.ended_ms
    }

    pub fn goal(&self) -> ArtifactId {
        self.goal
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Every artifact of the workflow seen so far.
    pub fn artifacts(&self) -> impl Iterator<Item = &ArtifactId> {
        self.artifacts.iter()
    }

    /// Every claim of the workflow seen so far.
    pub fn claims(&self) -> impl Iterator<Item = &ClaimId> {
        self.claims.iter()
    }

    /// Whether `e` concerns this workflow, as far as the events seen so far tell: it names an
    /// artifact, claim, question or answer of it.
    pub fn concerns(&self, e: &Event) -> bool {
        let d = &e.data;
        d.artifact_id().is_some_and(|a| self.artifacts.contains(&a))
            || d.claim_id().is_some_and(|c| self.claims.contains(&c))
            || d.question_id().is_some_and(|q| self.artifacts.contains(&q))
            || matches!(d, EventData::QuestionAnswered(a) if self.artifacts.contains(&a.answer_id))
    }

    /// Feeds one event; returns true when it belongs to this workflow (and records what it
    /// adds). The first Terminal or Failure artifact that belongs sets the outcome.
    pub fn observe(&mut self, e: &Event) -> bool {
        let open = self.outcome.is_none();
        let belongs = self.observe_inner(e);
        if open && self.outcome.is_some() {
            self.ended_ms = Some(e.ts_ms);
            self.last.clone_from(&self.outcome);
        }
        belongs
    }

    fn observe_inner(&mut self, e: &Event) -> bool {
        if let EventData::ArtifactForked(f) = &e.data {
            if f.goal_id != self.goal {
                return false;
            }
            self.artifacts.insert(f.artifact_id);
            self.claims.extend(f.claim_id);
            self.branches.push(Branch {
                root: f.artifact_id,
                forked_from: f.forked_from,
                operator: f.operator.clone(),
                artifacts: HashSet::from([f.artifact_id]),
                claims: f.claim_id.into_iter().collect(),
                outcome: None,
            });
            return true;
        }
        // The newest branch that owns it takes it (a branch of a branch is newer).
        if let Some(b) = self.branches.iter_mut().rev().find(|b| b.owns(&e.data)) {
            if let Some(o) = b.absorb(&e.data) {
                self.last = Some(o);
            }
            match &e.data {
                EventData::ArtifactCreated(a) => {
                    self.artifacts.insert(a.artifact_id);
                }
                EventData::ClaimCreated(c) => {
                    self.claims.insert(c.claim_id);
                }
                EventData::WorkflowRetried(r) => {
                    self.claims.insert(r.claim_id);
                }
                _ => {}
            }
            return true;
        }
        match &e.data {
            EventData::ArtifactCreated(a) => {
                let belongs = self.artifacts.contains(&a.artifact_id)
                    || a.source_artifacts.iter().any(|s| self.artifacts.contains(s))
                    || a.claim_id.is_some_and(|c| self.claims.contains(&c));
                if !belongs {
                    return false;
                }
                self.artifacts.insert(a.artifact_id);
                if self.outcome.is_none() {
                    self.outcome = outcome_of(a);
                }
                true
            }
            EventData::ClaimCreated(c) => {
                let belongs = self.claims.contains(&c.claim_id)
                    || self.artifacts.contains(&c.artifact_id)
                    || c.rework_of.is_some_and(|r| self.claims.contains(&r));
                if belongs {
                    self.claims.insert(c.claim_id);
                }
                belongs
            }
            EventData::ClaimTerminated(c) | EventData::ClaimDormant(c) => {
                let belongs = self.concerns(e);
                if belongs && self.outcome.is_none() && c.artifact_id == self.goal {
                    self.outcome = Some(Outcome::Stopped {
                        claim_id: c.claim_id,
                        status: if matches!(e.data, EventData::ClaimDormant(_)) {
                            ClaimStatus::Dormant
                        } else {
                            ClaimStatus::Terminated
                        },
                        reason: c.reason.clone().filter(|r| !r.is_empty()),
                    });
                }
                belongs
            }
            EventData::WorkflowRetried(r) => {
                let belongs = r.goal_id == self.goal;
                if belongs {
                    self.claims.insert(r.claim_id);
                    // The failed step gets a new attempt: the workflow is open again and its
                    // next outcome is recorded as the first was (the failure stays in history).
                    if matches!(self.outcome, Some(Outcome::Failure { .. } | Outcome::Stopped { .. })) {
                        self.outcome = None;
                        self.ended_ms = None;
                    }
                }
                belongs
            }
            EventData::WorkflowCancelled(c) => {
                let belongs = c.goal_id == self.goal;
                if belongs {
                    let cancelled = Outcome::Cancelled { operator: c.operator.clone(), reason: c.reason.clone() };
                    // It ends every branch still running too (a cancel after the original
                    // ended acts on them).
                    for b in self.branches.iter_mut().filter(|b| b.outcome.is_none()) {
                        b.outcome = Some(cancelled.clone());
                        self.last = Some(cancelled.clone());
                    }
                    if self.outcome.is_none() {
                        self.outcome = Some(cancelled);
                    }
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
    flows: BTreeMap<ArtifactId, Workflow>,
    /// Which workflows (by goal) each known artifact or claim id belongs to, so an event is
    /// offered only to the workflows it can concern: offering it to every workflow made a
    /// replay of many goals quadratic.
    owners: HashMap<Member, Vec<ArtifactId>>,
    /// Workflows without an outcome yet.
    open: usize,
    /// Outcomes of Terminal/Failure artifacts no known workflow owns (their goal is older than
    /// the replayed window).
    orphan_outcomes: Vec<Outcome>,
    /// The most recent outcome: what `watch --exit-on-completion` reports.
    last: Option<Outcome>,
}

impl Workflow {
    /// The outcome set most recently (the workflow's, or a branch's).
    pub fn last_outcome(&self) -> Option<&Outcome> {
        self.last.as_ref()
    }
}

impl Workflows {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every workflow seen, by goal.
    pub fn iter(&self) -> impl Iterator<Item = &Workflow> {
        self.flows.values()
    }

    /// The workflow of `goal`, if seen.
    pub fn get(&self, goal: &ArtifactId) -> Option<&Workflow> {
        self.flows.get(goal)
    }

    /// The goals of the workflows `e` concerns, as far as the events fed so far tell (call it
    /// after [`Workflows::observe`] of `e`, so an event that starts a workflow names its goal).
    pub fn owners_of(&self, e: &Event) -> Vec<ArtifactId> {
        self.candidates(e)
    }

    /// The goals of the workflows `e` may concern: the owners of every id it names.
    fn candidates(&self, e: &Event) -> Vec<ArtifactId> {
        let mut goals: Vec<ArtifactId> =
            named_ids(&e.data).into_iter().filter_map(|id| self.owners.get(&id)).flatten().copied().collect();
        goals.sort_unstable();
        goals.dedup();
        goals
    }

    fn own(&mut self, id: Member, goal: ArtifactId) {
        let owners = self.owners.entry(id).or_default();
        if !owners.contains(&goal) {
            owners.push(goal);
        }
    }

    /// Feeds one event. Returns the outcome it produced, if it ended a workflow.
    pub fn observe(&mut self, e: &Event) -> Option<Outcome> {
        let mut ended = None;
        let mut owned = false;
        for goal in self.candidates(e) {
            let Some(wf) = self.flows.get_mut(&goal) else { continue };
            let before = wf.ended();
            if wf.observe(e) {
                owned = true;
                if !before && wf.ended() {
                    ended = wf.last_outcome().cloned();
                    self.open -= 1;
                }
                if before && !wf.ended() {
                    // Retried, or forked: open again.
                    self.open += 1;
                }
                // What the event added to the workflow (see `Workflow::observe`).
                let added = match &e.data {
                    EventData::ArtifactCreated(a) => Some(Member::Artifact(a.artifact_id)),
                    EventData::ClaimCreated(c) => Some(Member::Claim(c.claim_id)),
                    EventData::WorkflowRetried(r) => Some(Member::Claim(r.claim_id)),
                    EventData::ArtifactForked(f) => Some(Member::Artifact(f.artifact_id)),
                    _ => None,
                };
                if let Some(id) = added {
                    self.own(id, goal);
                }
                if let EventData::ArtifactForked(f) = &e.data
                    && let Some(c) = f.claim_id
                {
                    self.own(Member::Claim(c), goal);
                }
            }
        }
        if let EventData::ArtifactCreated(a) = &e.data
            && !owned
        {
            let is_root =
                a.source_artifacts.is_empty() && a.claim_id.is_none() && a.structural_type == StructuralType::Standard;
            if is_root {
                let mut wf = Workflow::new(a.artifact_id);
                wf.observe(e);
                if wf.outcome.is_none() {
                    self.open += 1;
                }
                self.flows.insert(a.artifact_id, wf);
                self.own(Member::Artifact(a.artifact_id), a.artifact_id);
            } else {
                let mut probe = Workflow::new(a.artifact_id);
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

    /// Drops the workflow of `goal` and what it owns (an archiving pass that keeps its replay
    /// between passes forgets what it archived); returns whether it was known. Outcomes no
    /// known workflow owned are dropped too: they concern no workflow a pass can act on.
    pub fn forget(&mut self, goal: &ArtifactId) -> bool {
        let Some(wf) = self.flows.remove(goal) else { return false };
        if !wf.ended() {
            self.open -= 1;
        }
        let ids = wf.artifacts.iter().map(|a| Member::Artifact(*a)).chain(wf.claims.iter().map(|c| Member::Claim(*c)));
        for id in ids {
            if let Some(owners) = self.owners.get_mut(&id) {
                owners.retain(|g| g != goal);
                if owners.is_empty() {
                    self.owners.remove(&id);
                }
            }
        }
        self.orphan_outcomes.clear();
        true
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

#[cfg(test)]
mod tests {
    use sett_core::AgentName;
    use sett_core::event::{ArtifactCreated, BidSubmitted, ClaimCreated, ClaimEnded};

    use super::*;

    /// Test ids by name.
    fn aid(name: &str) -> ArtifactId {
        ArtifactId::derived(&"workflow-test", name)
    }
    fn cid(name: &str) -> ClaimId {
        ClaimId::derived(&"workflow-test", name)
    }

    fn ev(data: EventData) -> Event {
        Event { id: "1-0".into(), ts_ms: 0, data }
    }

    fn created(id: &str, st: &str, sources: &[&str], claim: Option<&str>) -> ArtifactCreated {
        ArtifactCreated {
            answered_by: None,
            artifact_id: aid(id),
            claim_id: claim.map(cid),
            hash: None,
            logical_id: aid(id),
            produced_by_role: "A".into(),
            source_artifacts: sources.iter().map(|s| aid(s)).collect(),
            structural_type: st.parse().unwrap(),
            summary: None,
            timed_out: false,
            artifact_type: "T".into(),
            version: 1,
        }
    }

    fn artifact(id: &str, st: &str, sources: &[&str], claim: Option<&str>) -> Event {
        ev(EventData::ArtifactCreated(created(id, st, sources, claim)))
    }

    fn claim(id: &str, artifact: &str, rework_of: Option<&str>) -> Event {
        ev(EventData::ClaimCreated(ClaimCreated {
            agent: None,
            artifact_id: aid(artifact),
            claim_id: cid(id),
            rework_of: rework_of.map(cid),
            standing_bids: Default::default(),
            status: ClaimStatus::PendingConsensus,
        }))
    }

    fn bid(claim: &str) -> Event {
        ev(EventData::BidSubmitted(BidSubmitted {
            agent: AgentName::parse("A").unwrap(),
            bid: sett_core::BidType::Review,
            claim_id: cid(claim),
            standing: false,
        }))
    }

    fn ended(claim: &str, artifact: &str, reason: Option<&str>) -> ClaimEnded {
        ClaimEnded {
            artifact_id: aid(artifact),
            claim_id: cid(claim),
            outcome_artifact: None,
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn membership_follows_sources_claims_and_rework() {
        let mut wf = Workflow::new(aid("g"));
        assert!(wf.observe(&artifact("g", "Standard", &[], None)));
        assert!(!wf.observe(&artifact("other", "Standard", &[], None)));
        assert!(wf.observe(&claim("c1", "g", None)));
        assert!(!wf.observe(&claim("cx", "other", None)));
        assert!(wf.observe(&bid("c1")));
        assert!(!wf.observe(&bid("cx")));
        // Output tied to the claim only by claim_id.
        assert!(wf.observe(&artifact("o1", "Standard", &[], Some("c1"))));
        // A rework claim of a member claim, on an artifact not yet known.
        assert!(wf.observe(&claim("c2", "zz", Some("c1"))));
        assert!(wf.observe(&artifact("o2", "Standard", &[], Some("c2"))));
        assert!(wf.outcome().is_none());
        assert!(!wf.observe(&artifact("t-other", "Terminal", &["other"], None)));
        assert!(wf.outcome().is_none());
        assert!(wf.observe(&artifact("t", "Terminal", &["o2"], None)));
        assert_eq!(wf.outcome(), Some(&Outcome::Terminal { artifact_id: aid("t") }));
        // The first outcome sticks.
        wf.observe(&artifact("f", "Failure", &["o2"], None));
        assert_eq!(wf.outcome(), Some(&Outcome::Terminal { artifact_id: aid("t") }));
    }

    #[test]
    fn the_goal_claim_ending_stops_the_workflow() {
        let mut wf = Workflow::new(aid("g"));
        wf.observe(&claim("c1", "g", None));
        wf.observe(&artifact("o", "Standard", &["g"], Some("c1")));
        wf.observe(&claim("c2", "o", None));
        // Another claim of the workflow terminating (a rework follows) ends nothing.
        assert!(wf.observe(&ev(EventData::ClaimTerminated(ended("c2", "o", Some("rejected"))))));
        assert!(wf.outcome().is_none());
        assert!(wf.observe(&ev(EventData::ClaimDormant(ended("c1", "g", None)))));
        assert_eq!(
            wf.outcome(),
            Some(&Outcome::Stopped { claim_id: cid("c1"), status: ClaimStatus::Dormant, reason: None })
        );
    }

    #[test]
    fn failures_end_a_workflow() {
        let mut wf = Workflow::new(aid("g"));
        let e = ev(EventData::ArtifactCreated(ArtifactCreated {
            artifact_type: "MaxIterationsExceeded".into(),
            ..created("f", "Failure", &["g"], None)
        }));
        assert!(wf.observe(&e));
        assert_eq!(
            wf.outcome(),
            Some(&Outcome::Failure { artifact_id: aid("f"), failure_type: "MaxIterationsExceeded".into() })
        );
    }

    #[test]
    fn a_retried_failure_opens_the_workflow_again_until_its_next_outcome() {
        let mut all = Workflows::new();
        all.observe(&artifact("g", "Standard", &[], None));
        all.observe(&claim("c1", "g", None));
        assert!(all.observe(&artifact("f", "Failure", &[], Some("c1"))).is_some());
        assert!(all.all_ended());
        let retried = ev(EventData::WorkflowRetried(sett_core::event::WorkflowRetried {
            action_id: "a".into(),
            artifact_id: aid("g"),
            claim_id: cid("c2"),
            failed_claim: cid("c1"),
            failure: Some(aid("f")),
            goal_id: aid("g"),
            operator: "ann".into(),
            reason: None,
        }));
        assert_eq!(all.observe(&retried), None);
        assert!(!all.all_ended(), "open again");
        let wf = all.iter().next().unwrap();
        assert!(wf.outcome().is_none() && wf.claims().any(|c| *c == cid("c2")));
        // The new attempt's output, tied to the workflow only by its claim, ends it.
        assert_eq!(
            all.observe(&artifact("t", "Terminal", &[], Some("c2"))),
            Some(Outcome::Terminal { artifact_id: aid("t") })
        );
        assert!(all.all_ended());
    }

    #[test]
    fn a_cancel_after_the_original_ended_ends_the_running_branch() {
        let mut all = Workflows::new();
        all.observe(&artifact("g", "Standard", &[], None));
        all.observe(&claim("c1", "g", None));
        all.observe(&artifact("d", "Standard", &["g"], Some("c1")));
        assert!(all.observe(&artifact("t", "Terminal", &["d"], None)).is_some());
        let forked = ev(EventData::ArtifactForked(sett_core::event::ArtifactForked {
            action_id: "a".into(),
            artifact_id: aid("d2"),
            claim_id: None,
            forked_from: aid("d"),
            goal_id: aid("g"),
            operator: "ann".into(),
            reason: None,
        }));
        all.observe(&artifact("d2", "Standard", &["g"], None));
        all.observe(&forked);
        all.observe(&claim("c2", "d2", None));
        assert!(!all.all_ended(), "the branch runs");
        let wf = all.get(&aid("g")).unwrap();
        assert!(wf.outcome().is_some() && !wf.ended());
        let cancelled = ev(EventData::WorkflowCancelled(sett_core::event::WorkflowCancelled {
            claims: vec![cid("c2")],
            goal_id: aid("g"),
            operator: "ann".into(),
            questions: vec![],
            reason: Some("enough".into()),
        }));
        let ended = all.observe(&cancelled);
        assert!(matches!(ended, Some(Outcome::Cancelled { .. })), "{ended:?}");
        assert!(all.all_ended());
        let wf = all.get(&aid("g")).unwrap();
        assert_eq!(wf.outcome(), Some(&Outcome::Terminal { artifact_id: aid("t") }), "the original keeps its outcome");
        assert!(matches!(wf.branches()[0].outcome(), Some(Outcome::Cancelled { .. })));
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
            Some(Outcome::Terminal { artifact_id: aid("t1") })
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
        assert_eq!(all.observe(&claim("c7", "g7", None)), None);
        // Output tied to goal 7 only through its claim, then the Terminal built on it.
        assert_eq!(all.observe(&artifact("o7", "Standard", &[], Some("c7"))), None);
        assert_eq!(
            all.observe(&artifact("t7", "Terminal", &["o7"], None)),
            Some(Outcome::Terminal { artifact_id: aid("t7") })
        );
        assert!(!all.all_ended());
        for g in (0..5_000).filter(|g| *g != 7) {
            let ended = all.observe(&artifact(&format!("f{g}"), "Failure", &[&format!("g{g}")], None));
            assert!(ended.is_some(), "goal {g}");
        }
        assert!(all.all_ended());
    }

    #[test]
    fn a_forgotten_workflow_owns_nothing_any_more() {
        let mut all = Workflows::new();
        all.observe(&artifact("g1", "Standard", &[], None));
        all.observe(&claim("c1", "g1", None));
        all.observe(&artifact("o1", "Standard", &[], Some("c1")));
        all.observe(&artifact("g2", "Standard", &[], None));
        assert!(all.observe(&artifact("t1", "Terminal", &["o1"], None)).is_some());
        assert_eq!(all.owners_of(&artifact("x", "Standard", &["o1"], None)), vec![aid("g1")]);
        assert!(all.forget(&aid("g1")));
        assert!(!all.forget(&aid("g1")), "forgotten once");
        assert_eq!(all.len(), 1);
        // Its ids concern no workflow now; the others are untouched.
        assert!(all.owners_of(&artifact("x", "Standard", &["o1"], None)).is_empty());
        assert!(all.owners_of(&claim("c9", "o1", Some("c1"))).is_empty());
        assert_eq!(all.owners_of(&claim("c2", "g2", None)), vec![aid("g2")]);
        // The open count follows: forgetting a running workflow leaves every known one ended.
        assert!(!all.all_ended());
        assert!(all.forget(&aid("g2")));
        assert!(all.is_empty());
    }

    #[test]
    fn an_outcome_without_a_known_goal_still_counts() {
        let mut all = Workflows::new();
        assert!(all.observe(&artifact("t", "Terminal", &["unknown"], None)).is_some());
        assert!(all.all_ended());
        assert_eq!(all.last_outcome(), Some(&Outcome::Terminal { artifact_id: aid("t") }));
    }
}
