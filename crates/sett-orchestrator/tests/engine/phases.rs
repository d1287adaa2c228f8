//! Phases (review → parallel → exclusive) and the feedback loop: a rejecting review sends the
//! artifact back to its producer as a rework claim, up to `max_review_iterations`.

use sett_core::event::{EventData, EventKind};
use sett_core::{Artifact, BidType, ClaimId, ClaimStatus, ClaimType, StructuralType};

use crate::harness::{Cub, Harness, team};

fn writing_team() -> String {
    let agents = [("Writer", ""), ("Reviewer", ""), ("Checker", ""), ("Publisher", "")];
    team("bid_timeout: 1h, max_review_iterations: 1", &agents)
}

struct Team {
    writer: Cub,
    reviewer: Cub,
    checker: Cub,
    publisher: Cub,
}

impl Team {
    fn of(h: &Harness) -> Self {
        Self {
            writer: h.cub("Writer"),
            reviewer: h.cub("Reviewer"),
            checker: h.cub("Checker"),
            publisher: h.cub("Publisher"),
        }
    }

    /// Every cub bids on `artifact` as its strategy would: the Writer takes goals, the others
    /// take commits.
    async fn bid_on(&self, artifact: &Artifact) -> ClaimId {
        let goal = artifact.artifact_type == "GoalDefined";
        let pick = |yes: BidType| if goal { BidType::Ignore } else { yes };
        let claim = self.writer.bid_on(artifact, if goal { BidType::Exclusive } else { BidType::Ignore }).await;
        self.reviewer.bid_on(artifact, pick(BidType::Review)).await;
        self.checker.bid_on(artifact, pick(BidType::Claim)).await;
        self.publisher.bid_on(artifact, pick(BidType::Exclusive)).await;
        claim
    }

    /// The Reviewer rejects `commit` (bid on by everyone) with `issue`; returns the rejected
    /// claim and the rejecting review.
    async fn reject(&self, commit: &Artifact, issue: &str) -> (ClaimId, Artifact) {
        let claim = self.bid_on(commit).await;
        let review = self.reviewer.granted(&claim, 1).await;
        let payload = serde_json::json!({ "issue": issue }).to_string();
        (claim, self.reviewer.complete(&review, StructuralType::Review, "Review", &payload).await)
    }

    /// A goal the Writer turns into a commit; returns the commit.
    async fn commit_for(&self, h: &Harness, goal: &str) -> Artifact {
        let goal = h.forage(goal).await;
        let claim = self.bid_on(&goal).await;
        let grant = self.writer.granted(&claim, 1).await;
        self.writer.complete(&grant, StructuralType::Standard, "CodeCommit", "abc123").await
    }
}

/// The rework claim a rejection of `claim` created.
async fn rework_of(h: &Harness, claim: ClaimId) -> ClaimId {
    let created = h
        .event("the rework claim", |e| matches!(&e.data, EventData::ClaimCreated(c) if c.rework_of == Some(claim)))
        .await;
    created.data.claim_id().expect("a claim id")
}

/// The statuses a claim went through after consensus, from its `claim_created`, `claim_granted`
/// (whose type names the phase it starts), `claim_updated` and ending events (the bids may decide
/// it as it is created, or later).
async fn statuses(h: &Harness, claim: &ClaimId) -> Vec<ClaimStatus> {
    let mut seen: Vec<ClaimStatus> = h
        .all_events()
        .await
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::ClaimCreated(c) if c.claim_id == *claim => Some(c.status),
            EventData::ClaimGranted(g) if g.claim_id == *claim => g.claim_type.granted_status(),
            EventData::ClaimUpdated(u) if u.claim_id == *claim && u.previous_status.is_some() => Some(u.status),
            EventData::ClaimCompleted(c) if c.claim_id == *claim => Some(ClaimStatus::Complete),
            EventData::ClaimTerminated(c) if c.claim_id == *claim => Some(ClaimStatus::Terminated),
            EventData::ClaimDormant(c) if c.claim_id == *claim => Some(ClaimStatus::Dormant),
            _ => None,
        })
        .filter(|s| *s != ClaimStatus::PendingConsensus)
        .collect();
    seen.dedup();
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_artifact_goes_through_review_then_parallel_then_exclusive() {
    let h = Harness::start(&writing_team()).await;
    let team = Team::of(&h);
    let commit = team.commit_for(&h, "build it").await;
    let claim = team.bid_on(&commit).await;

    let review = team.reviewer.granted(&claim, 1).await;
    assert_eq!(review.claim_type, ClaimType::Review);
    assert_eq!(h.claim(&claim).await.status, ClaimStatus::PendingReview);
    team.reviewer.complete(&review, StructuralType::Review, "Review", "{}").await;

    let check = team.checker.granted(&claim, 1).await;
    assert_eq!(check.claim_type, ClaimType::Claim);
    assert_eq!(h.claim(&claim).await.status, ClaimStatus::PendingParallel);
    let report = team.checker.complete(&check, StructuralType::Standard, "CheckReport", "all green").await;

    let publish = team.publisher.granted(&claim, 1).await;
    assert_eq!(publish.claim_type, ClaimType::Exclusive);
    assert_eq!(h.claim(&claim).await.status, ClaimStatus::PendingExclusive);
    let done = team.publisher.complete(&publish, StructuralType::Terminal, "Published", "v1").await;

    let ended = h.ended(&claim).await;
    assert_eq!(ended.status, ClaimStatus::Complete);
    assert_eq!(ended.outcome_artifact, Some(done.id));
    assert_eq!(
        statuses(&h, &claim).await,
        [
            ClaimStatus::PendingReview,
            ClaimStatus::PendingParallel,
            ClaimStatus::PendingExclusive,
            ClaimStatus::Complete
        ]
    );
    // The parallel phase's output is an artifact of its own, claimed like any other.
    let report_claim = h.store.claim_for_artifact(&report.id).await.unwrap();
    assert!(report_claim.is_some(), "the CheckReport got its claim");
    h.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_sends_the_artifact_back_to_its_producer_with_the_review() {
    let h = Harness::start(&writing_team()).await;
    let team = Team::of(&h);
    let v1 = team.commit_for(&h, "build it").await;
    let (claim, rejection) = team.reject(&v1, "add a usage section").await;
    let rejected = h.ended(&claim).await;
    assert_eq!(rejected.status, ClaimStatus::Terminated);
    assert!(rejected.termination_reason.as_deref().unwrap_or("").contains("rework"), "{rejected:?}");
    // The rework claim is assigned to the producer and granted at once, with the review as its
    // context; nobody bids on it.
    let rework = h.claim(&rework_of(&h, claim).await).await;
    assert_eq!(rework.assigned_agent.as_ref().map(|a| a.as_str()), Some("Writer"));
    assert_eq!(rework.additional_context_ids, vec![rejection.id]);
    let grant = team.writer.granted(&rework.id, 1).await;
    assert_eq!(grant.claim_type, ClaimType::Rework);
    let v2 = team.writer.rework(&grant, "CodeCommit", "def456").await;
    assert_eq!(h.ended(&rework.id).await.status, ClaimStatus::Complete);
    assert_eq!((v2.logical_id, v2.version), (v1.logical_id, 2), "the rework is the thread's next version");

    // The new version is reviewed again; approved, it goes on.
    let claim2 = team.bid_on(&v2).await;
    let review2 = team.reviewer.granted(&claim2, 1).await;
    team.reviewer.complete(&review2, StructuralType::Review, "Review", "{}").await;
    let check = team.checker.granted(&claim2, 1).await;
    assert_eq!(check.claim_type, ClaimType::Claim);
    h.stop().await.expect("a clean stop");
}

/// Moved from the end-to-end suite (`the_review_iteration_limit_yields_max_iterations_exceeded`).
#[tokio::test(flavor = "multi_thread")]
async fn the_review_iteration_limit_ends_the_loop_with_max_iterations_exceeded() {
    let h = Harness::start(&writing_team()).await;
    let team = Team::of(&h);
    let v1 = team.commit_for(&h, "impossible").await;
    let (claim, _) = team.reject(&v1, "never good enough").await;
    let grant = team.writer.granted(&rework_of(&h, claim).await, 1).await;
    let v2 = team.writer.rework(&grant, "CodeCommit", "again").await;
    let (claim2, _) = team.reject(&v2, "still not").await;

    let ended = h.ended(&claim2).await;
    assert_eq!(ended.status, ClaimStatus::Terminated);
    let failure_id = ended.outcome_artifact.expect("the claim ended with its Failure");
    let failure = h
        .event("the Failure artifact", |e| {
            e.kind() == EventKind::ArtifactCreated && e.data.artifact_id() == Some(failure_id)
        })
        .await;
    assert_eq!(failure.data.claim_id(), Some(claim2));
    let failure = h.store.get_artifact(&failure_id).await.unwrap().expect("written");
    assert_eq!(
        (failure.structural_type, failure.artifact_type.as_str()),
        (StructuralType::Failure, "MaxIterationsExceeded")
    );
    assert!(failure.payload.contains("max_review_iterations is 1"), "{}", failure.payload);
    // One original and one rework: no third version.
    let commits = h.events_of(EventKind::ArtifactCreated).await.len();
    assert_eq!(commits, 6, "goal, v1, review, v2, review, Failure");
    h.stop().await.expect("a clean stop");
}
