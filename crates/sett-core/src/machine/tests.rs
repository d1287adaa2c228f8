//! State-machine tests: the workflows of design.md §4 and §7 step by step, plus property tests over
//! random input sequences.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;

use super::*;
use crate::approval::approval_question_id;
use crate::artifact::StructuralType;
use crate::policy::OnQuestionTimeout;

/// Ids from a counter: sett-core mints no ids (no clock, no randomness); its callers do.
fn next_uuid() -> uuid::Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    uuid::Uuid::from_u128(u128::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

fn claim_id() -> ClaimId {
    ClaimId::from_uuid(next_uuid())
}

fn artifact_id() -> ArtifactId {
    ArtifactId::from_uuid(next_uuid())
}

fn agent(n: &str) -> AgentName {
    AgentName::parse(n).unwrap()
}

fn policy(names: &[&str]) -> Policy {
    Policy {
        agents: names
            .iter()
            .map(|n| {
                (
                    agent(n),
                    AgentPolicy {
                        timeout_ms: 1_000,
                        question_timeout_ms: Some(5_000),
                        via_worker: false,
                        approval: None,
                    },
                )
            })
            .collect(),
        max_review_iterations: 2,
        bid_timeout_ms: 100,
        on_question_timeout: OnQuestionTimeout::Fail,
        routing: Default::default(),
    }
}

fn goal() -> Artifact {
    Artifact::new_root(artifact_id(), StructuralType::Standard, "GoalDefined", "build it", "user", 0)
}

fn out(from: &str, st: StructuralType, payload: &str, claim: &Claim) -> Artifact {
    let mut a = Artifact::new_root(
        artifact_id(),
        st,
        if st == StructuralType::Review { "Review" } else { "Work" },
        payload,
        from,
        0,
    );
    a.claim_id = Some(claim.id);
    a.source_artifacts = vec![claim.artifact_id];
    a
}

fn bids(pairs: &[(&str, BidType)]) -> BTreeMap<AgentName, BidType> {
    pairs.iter().map(|(n, b)| (agent(n), *b)).collect()
}

/// A step at `now_ms` with the bid hash `bids`.
fn ctx(now_ms: i64, bids: &BTreeMap<AgentName, BidType>) -> StepContext<'_> {
    StepContext { bids, now_ms }
}

/// A step at `now_ms` with no bids (the input reads none, or nobody bid).
fn at(now_ms: i64) -> StepContext<'static> {
    static NO_BIDS: BTreeMap<AgentName, BidType> = BTreeMap::new();
    StepContext { bids: &NO_BIDS, now_ms }
}

fn apply(c: &Claim, i: &Input, ctx: StepContext<'_>, p: &Policy) -> Transition {
    let t = step(c, i, ctx, p).expect("input should change the claim");
    assert_eq!(t.claim.revision, c.revision + 1);
    t
}

#[test]
fn full_three_phase_workflow() {
    let p = policy(&["Coder", "Linter", "Reviewer"]);
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let b = bids(&[("Reviewer", BidType::Review), ("Linter", BidType::Claim)]);
    assert!(step(&c, &Input::Bids, ctx(1, &b), &p).is_none(), "waits for every agent");
    let b = bids(&[("Reviewer", BidType::Review), ("Linter", BidType::Claim), ("Coder", BidType::Exclusive)]);
    let t = apply(&c, &Input::Bids, ctx(1, &b), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingReview);
    assert!(matches!(&t.effects[..], [Effect::Grant(GrantOrder { claim_type: ClaimType::Review, seq: 1, .. })]));
    let c = t.claim;
    let t = apply(&c, &Input::Output(Box::new(out("Reviewer", StructuralType::Review, "{}", &c))), at(2), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingParallel);
    let c = t.claim;
    // An output from an agent not granted in this phase is ignored.
    assert!(step(&c, &Input::Output(Box::new(out("Coder", StructuralType::Standard, "x", &c))), at(3), &p).is_none());
    let t = apply(&c, &Input::Output(Box::new(out("Linter", StructuralType::Standard, "ok", &c))), at(3), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingExclusive);
    assert_eq!(t.claim.granted_exclusive_agent, Some(agent("Coder")));
    let c = t.claim;
    let o = Input::Output(Box::new(out("Coder", StructuralType::Standard, "abc", &c)));
    let t = apply(&c, &o, at(4), &p);
    assert_eq!(t.claim.status, ClaimStatus::Complete);
    // Redelivery is a no-op.
    assert!(step(&t.claim, &o, at(5), &p).is_none());
}

#[test]
fn exclusive_winner_is_smallest_name_and_no_bids_is_dormant() {
    let p = policy(&["B", "A"]);
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let t = apply(&c, &Input::Bids, ctx(1, &bids(&[("A", BidType::Exclusive), ("B", BidType::Exclusive)])), &p);
    assert_eq!(t.claim.granted_exclusive_agent, Some(agent("A")));
    let t = apply(&c, &Input::Bids, ctx(1, &bids(&[("A", BidType::Ignore), ("B", BidType::Ignore)])), &p);
    assert_eq!(t.claim.status, ClaimStatus::Dormant);
}

#[test]
fn bid_timeout_counts_missing_as_ignore() {
    let p = policy(&["A", "Silent"]);
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let b = bids(&[("A", BidType::Exclusive)]);
    assert!(step(&c, &Input::Tick, ctx(50, &b), &p).is_none());
    let t = apply(&c, &Input::Tick, ctx(100, &b), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingExclusive);
    assert_eq!(t.claim.missing_bids, vec![agent("Silent")]);
    assert!(t.effects.contains(&Effect::BidsMissing { agents: vec![agent("Silent")] }));
}

#[test]
fn rejection_creates_rework_then_hits_the_limit() {
    let p = policy(&["Coder", "Reviewer"]);
    let mut art = Artifact::new_root(artifact_id(), StructuralType::Standard, "Code", "v1", "Coder", 0);
    let b = bids(&[("Coder", BidType::Ignore), ("Reviewer", BidType::Review)]);
    for version in 1..=3u32 {
        art.version = version;
        let c = new_claim(claim_id(), &art, &p, 0);
        let c = apply(&c, &Input::Bids, ctx(1, &b), &p).claim;
        let review = out("Reviewer", StructuralType::Review, r#"{"fix":"tests"}"#, &c);
        let t = apply(&c, &Input::Output(Box::new(review.clone())), at(2), &p);
        assert_eq!(t.claim.status, ClaimStatus::Terminated);
        if version <= 2 {
            let Some(Effect::CreateClaim { claim, grants, .. }) = t.effects.first() else { panic!("{:?}", t.effects) };
            assert_eq!(claim.status, ClaimStatus::PendingAssignment);
            assert_eq!(claim.assigned_agent, Some(agent("Coder")));
            assert_eq!(claim.additional_context_ids, vec![review.id]);
            assert!(matches!(&grants[..], [GrantOrder { claim_type: ClaimType::Rework, .. }]));
            assert_eq!(claim.id, ClaimId::derived(&c.id, "rework"));
        } else {
            assert!(
                matches!(&t.effects[..], [Effect::Fail { failure_type, .. }] if *failure_type == FailureType::MaxIterationsExceeded)
            );
        }
    }
}

#[test]
fn rejecting_the_goal_fails_clearly() {
    let p = policy(&["Reviewer"]);
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let c = apply(&c, &Input::Bids, ctx(1, &bids(&[("Reviewer", BidType::Review)])), &p).claim;
    let t = apply(&c, &Input::Output(Box::new(out("Reviewer", StructuralType::Review, "no", &c))), at(2), &p);
    assert!(
        matches!(&t.effects[..], [Effect::Fail { failure_type, .. }] if *failure_type == FailureType::GoalRejected)
    );
}

#[test]
fn question_blocks_and_answer_resumes_the_same_agent() {
    let p = policy(&["Coder"]);
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let c = apply(&c, &Input::Bids, ctx(1, &bids(&[("Coder", BidType::Exclusive)])), &p).claim;
    let q = out("Coder", StructuralType::Question, "Which DB?", &c);
    let t = apply(&c, &Input::Output(Box::new(q.clone())), at(10), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingAnswer);
    assert_eq!(t.claim.question_id, Some(q.id));
    assert_eq!(t.claim.next_deadline_ms(), Some(5_010));
    let c = t.claim;
    let answer = artifact_id();
    let t = apply(&c, &Input::Answer { question: q.id, answer }, at(20), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingExclusive);
    assert!(t.effects.contains(&Effect::Grant(GrantOrder {
        agent: agent("Coder"),
        claim_type: ClaimType::Resume,
        seq: 2,
        via_worker: false,
        approval: None
    })));
    assert_eq!(t.claim.answered_questions[0].answer, answer);
    assert!(step(&t.claim, &Input::Answer { question: q.id, answer }, at(21), &p).is_none());
}

#[test]
fn questions_are_addressed_reminded_and_escalated_over_simulated_time() {
    let mut p = policy(&["Coder"]);
    p.agents.get_mut(&agent("Coder")).unwrap().question_timeout_ms = None;
    p.routing = crate::routing::Routing {
        questions_to: BTreeMap::from([(agent("Coder"), vec!["alice".to_owned()])]),
        groups: BTreeMap::from([("leads".to_owned(), vec!["erin".to_owned()])]),
        remind_every_ms: Some(3_600_000),
        escalate_after_ms: Some(4 * 3_600_000),
        escalate_to: vec!["group:leads".to_owned()],
        reviewers: Vec::new(),
    };
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let c = apply(&c, &Input::Bids, ctx(0, &bids(&[("Coder", BidType::Exclusive)])), &p).claim;
    // The agent's default addressees, unless the question names its own.
    let named = out("Coder", StructuralType::Question, r#"{"question": "?", "to": ["bob"]}"#, &c);
    assert_eq!(
        apply(&c, &Input::Output(Box::new(named.clone())), at(0), &p).claim.open_questions[&named.id].to,
        ["bob"]
    );
    let q = out("Coder", StructuralType::Question, "?", &c);
    let mut c = apply(&c, &Input::Output(Box::new(q.clone())), at(0), &p).claim;
    assert_eq!(c.open_questions[&q.id].to, ["alice"]);
    assert!(!c.open_questions[&q.id].may_answer("erin", &[]));
    assert_eq!(c.next_deadline_ms(), Some(3_600_000));
    let mut reminders = 0;
    let mut now = 0;
    // Eight simulated hours, tick by due time: four reminders, one escalation at 4 h.
    while let Some(due) = c.next_deadline_ms().filter(|d| *d <= 8 * 3_600_000) {
        now = due;
        let t = apply(&c, &Input::Tick, at(now), &p);
        for e in &t.effects {
            match e {
                Effect::QuestionReminded { reminder, .. } => {
                    reminders += 1;
                    assert_eq!(*reminder, reminders);
                }
                Effect::QuestionEscalated { added, .. } => {
                    assert_eq!(now, 4 * 3_600_000);
                    assert_eq!(added, &["group:leads"]);
                }
                other => panic!("unexpected effect {other:?}"),
            }
        }
        c = t.claim;
    }
    assert_eq!((reminders, now), (8, 8 * 3_600_000));
    let open = &c.open_questions[&q.id];
    assert_eq!((open.to.as_slice(), open.escalated), (&["alice".to_owned(), "group:leads".to_owned()][..], true));
    assert!(open.may_answer("erin", &[]), "the escalation's group members may answer");
    assert_eq!(c.status, ClaimStatus::PendingAnswer, "reminders never end the claim");
}

#[test]
fn question_timeout_fail_and_continue() {
    let mut p = policy(&["Coder"]);
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let c = apply(&c, &Input::Bids, ctx(0, &bids(&[("Coder", BidType::Exclusive)])), &p).claim;
    let q = out("Coder", StructuralType::Question, "?", &c);
    let c = apply(&c, &Input::Output(Box::new(q.clone())), at(0), &p).claim;
    assert!(step(&c, &Input::Tick, at(4_999), &p).is_none());
    let t = apply(&c, &Input::Tick, at(5_000), &p);
    assert_eq!(t.claim.status, ClaimStatus::Terminated);
    assert!(
        t.effects
            .iter()
            .any(|e| matches!(e, Effect::Fail { failure_type, .. } if *failure_type == FailureType::QuestionTimeout))
    );
    assert!(t.effects.contains(&Effect::QuestionClosed { question: q.id }));

    p.on_question_timeout = OnQuestionTimeout::Continue;
    let t = apply(&c, &Input::Tick, at(5_000), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingAnswer);
    assert_eq!(t.effects, vec![Effect::AutoAnswer { question: q.id, use_default: false }]);
    assert!(step(&t.claim, &Input::Tick, at(9_000), &p).is_none(), "auto-answers once");
}

#[test]
fn execution_timeout_and_failure_terminate() {
    let p = policy(&["Coder"]);
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let c = apply(&c, &Input::Bids, ctx(0, &bids(&[("Coder", BidType::Exclusive)])), &p).claim;
    assert!(step(&c, &Input::Tick, at(1_000), &p).is_none(), "the cub reports its own timeout first");
    let t = apply(&c, &Input::Tick, at(1_000 + EXECUTION_GRACE_MS), &p);
    assert_eq!(t.claim.status, ClaimStatus::Terminated);
    assert_eq!(t.claim.outcome_artifact, Some(ArtifactId::derived(&c.id, "failure")));
    let f = out("Coder", StructuralType::Failure, "{}", &c);
    let t = apply(&c, &Input::Output(Box::new(f.clone())), at(5), &p);
    assert_eq!(t.claim.status, ClaimStatus::Terminated);
    assert_eq!(t.claim.outcome_artifact, Some(f.id));
    let term = out("Coder", StructuralType::Terminal, "done", &c);
    assert_eq!(apply(&c, &Input::Output(Box::new(term)), at(5), &p).claim.status, ClaimStatus::Complete);
}

#[test]
fn worker_grants_start_their_clock_at_launch() {
    let mut p = policy(&["Builder"]);
    p.agents.get_mut(&agent("Builder")).unwrap().via_worker = true;
    let c = new_claim(claim_id(), &goal(), &p, 0);
    let c = apply(&c, &Input::Bids, ctx(0, &bids(&[("Builder", BidType::Exclusive)])), &p).claim;
    assert_eq!(c.next_deadline_ms(), None);
    let b = agent("Builder");
    let c = apply(&c, &Input::WorkerLaunched { agent: b.clone(), seq: 1 }, at(50), &p).claim;
    assert_eq!(c.next_deadline_ms(), Some(1_050 + EXECUTION_GRACE_MS));
    assert!(step(&c, &Input::WorkerExited { agent: b.clone(), seq: 1, success: true }, at(60), &p).is_none());
    let t = apply(&c, &Input::WorkerExited { agent: b, seq: 1, success: false }, at(60), &p);
    assert!(
        t.effects
            .iter()
            .any(|e| matches!(e, Effect::Fail { failure_type, .. } if *failure_type == FailureType::WorkerFailure))
    );
}

fn arb_input() -> impl Strategy<Value = (u8, u8, u8, i64)> {
    (0u8..6, 0u8..3, 0u8..6, 0i64..20_000)
}

proptest! {
    #[test]
    fn random_sequences_keep_the_invariants(inputs in proptest::collection::vec(arb_input(), 0..40)) {
        let names = ["A", "B", "C"];
        let p = policy(&names);
        let mut c = new_claim(claim_id(), &goal(), &p, 0);
        let mut questions = Vec::new();
        for (kind, who, what, now) in inputs {
            let who_name = names[who as usize];
            let was_final = c.status.is_final();
            let before = c.clone();
            let b = bids(&[("A", BidType::Review), ("B", BidType::Claim), ("C", BidType::Exclusive)]);
            let st = [StructuralType::Standard, StructuralType::Review, StructuralType::Question,
                      StructuralType::Failure, StructuralType::Terminal, StructuralType::Answer][what as usize];
            let art = out(who_name, st, if what % 2 == 0 { "{}" } else { "no" }, &c);
            if st == StructuralType::Question { questions.push(art.id); }
            let input = match kind {
                0 => Input::Bids,
                1 => Input::Tick,
                2 | 3 => Input::Output(Box::new(art)),
                4 => Input::Answer { question: questions.last().copied().unwrap_or(art.id), answer: artifact_id() },
                _ => Input::WorkerExited { agent: agent(who_name), seq: c.grant_seq, success: what % 2 == 0 },
            };
            if let Some(t) = step(&c, &input, ctx(now, &b), &p) {
                prop_assert!(!was_final, "a final claim changed");
                prop_assert_eq!(t.claim.revision, before.revision + 1);
                prop_assert!(t.claim.grant_seq >= before.grant_seq);
                let mut sorted = t.claim.granted_review_agents.clone();
                sorted.sort();
                prop_assert_eq!(&sorted, &t.claim.granted_review_agents);
                prop_assert_eq!(t.claim.status == ClaimStatus::PendingAnswer, !t.claim.open_questions.is_empty());
                c = t.claim;
            }
        }
    }
}

/// A policy where `gated` needs approval for its exclusive claims, waiting 1 s.
fn gated_policy(gated: &str, on_timeout: OnApprovalTimeout) -> Policy {
    let mut p = policy(&[gated]);
    p.agents.get_mut(&agent(gated)).unwrap().approval = Some(crate::policy::ApprovalPolicy {
        timeout_ms: Some(1_000),
        on_timeout,
        claim_types: vec![ClaimType::Exclusive],
    });
    p
}

/// A gated agent's winning bid opens an approval instead of a grant.
fn asked_approval(p: &Policy) -> (Claim, ArtifactId) {
    let g = goal();
    let c = new_claim(claim_id(), &g, p, 0);
    let t = apply(&c, &Input::Bids, ctx(1, &bids(&[("Deployer", BidType::Exclusive)])), p);
    assert_eq!(t.claim.status, ClaimStatus::PendingAnswer);
    assert_eq!(t.claim.resume_status, Some(ClaimStatus::PendingExclusive));
    assert!(t.claim.grants.is_empty(), "nothing is granted before the approval");
    let question = approval_question_id(&c.id, 1);
    assert_eq!(
        t.effects,
        vec![Effect::ApprovalAsked(ApprovalOrder {
            question,
            agent: agent("Deployer"),
            claim_type: ClaimType::Exclusive
        })]
    );
    assert_eq!(t.claim.next_deadline_ms(), Some(1_001));
    (t.claim, question)
}

#[test]
fn an_approved_claim_is_granted_once_and_names_its_approval() {
    let p = gated_policy("Deployer", OnApprovalTimeout::Reject);
    let (c, question) = asked_approval(&p);
    // An ordinary answer path does not decide an approval.
    assert!(step(&c, &Input::Answer { question, answer: artifact_id() }, at(2), &p).is_none());
    let approved = Input::Approval { question, verdict: Verdict::Approved { by: "ann".into() } };
    let t = apply(&c, &approved, at(3), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingExclusive);
    assert!(t.claim.open_questions.is_empty());
    assert!(t.effects.contains(&Effect::Grant(GrantOrder {
        agent: agent("Deployer"),
        claim_type: ClaimType::Exclusive,
        seq: 2,
        via_worker: false,
        approval: Some(question),
    })));
    assert!(step(&t.claim, &approved, at(4), &p).is_none(), "a second decision changes nothing");
}

#[test]
fn a_rejected_claim_ends_with_a_failure_naming_who_and_why() {
    let p = gated_policy("Deployer", OnApprovalTimeout::Reject);
    let (c, question) = asked_approval(&p);
    let rejected =
        Input::Approval { question, verdict: Verdict::Rejected { by: "bob".into(), reason: "not on Friday".into() } };
    let t = apply(&c, &rejected, at(3), &p);
    assert_eq!(t.claim.status, ClaimStatus::Terminated);
    assert!(!t.effects.iter().any(|e| matches!(e, Effect::Grant(_))));
    let Some(Effect::Fail { failure_type: FailureType::ApprovalRejected, reason, .. }) = t.effects.last() else {
        panic!("{:?}", t.effects)
    };
    assert!(reason.contains("bob") && reason.contains("not on Friday"), "{reason}");
}

#[test]
fn a_timed_out_approval_follows_on_timeout() {
    let p = gated_policy("Deployer", OnApprovalTimeout::Reject);
    let (c, question) = asked_approval(&p);
    assert!(step(&c, &Input::Tick, at(1_000), &p).is_none(), "not due yet");
    let t = apply(&c, &Input::Tick, at(1_001), &p);
    assert_eq!(t.claim.status, ClaimStatus::Terminated);
    assert!(t.effects.contains(&Effect::ApprovalTimedOut { question, on_timeout: OnApprovalTimeout::Reject }));
    assert!(t.effects.iter().any(|e| matches!(e, Effect::Fail { failure_type: FailureType::ApprovalTimedOut, .. })));

    let p = gated_policy("Deployer", OnApprovalTimeout::Approve);
    let (c, question) = asked_approval(&p);
    let t = apply(&c, &Input::Tick, at(1_001), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingExclusive);
    assert!(t.effects.iter().any(|e| matches!(e, Effect::Grant(g) if g.approval == Some(question))));
}

#[test]
fn an_approval_that_does_not_bind_the_target_grants_nothing() {
    let p = gated_policy("Deployer", OnApprovalTimeout::Reject);
    let (c, question) = asked_approval(&p);
    let t = apply(&c, &Input::Approval { question, verdict: Verdict::Mismatch { why: "hash".into() } }, at(3), &p);
    assert_eq!(t.claim.status, ClaimStatus::Terminated);
    assert!(t.effects.iter().any(|e| matches!(e, Effect::Fail { failure_type: FailureType::ApprovalMismatch, .. })));
}

fn reviewed_policy(names: &[&str]) -> Policy {
    let mut p = policy(names);
    p.routing.reviewers = vec![crate::routing::HumanReviewers {
        artifact_types: vec!["Draft".into()],
        reviewers: vec!["alice".into(), "group:legal".into()],
    }];
    p.routing.groups = BTreeMap::from([("legal".into(), vec!["carol".into()])]);
    p
}

fn human(decision: crate::review::ReviewDecision, comments: Option<&str>) -> crate::review::HumanReview {
    crate::review::HumanReview {
        by: "alice".into(),
        decision,
        comments: comments.map(Into::into),
        answer: artifact_id(),
    }
}

#[test]
fn a_human_reviewer_alone_makes_a_review_phase_and_requesting_changes_reworks() {
    use crate::review::{ReviewDecision, review_artifact_id, review_question_id};
    let p = reviewed_policy(&["Writer", "Publisher"]);
    let mut draft = Artifact::new_root(artifact_id(), StructuralType::Standard, "Draft", "v1", "Writer", 0);
    let c = new_claim(claim_id(), &draft, &p, 0);
    assert_eq!(c.human_reviewers, vec!["alice".to_owned(), "group:legal".to_owned()]);
    let b = bids(&[("Writer", BidType::Ignore), ("Publisher", BidType::Exclusive)]);
    let t = apply(&c, &Input::Bids, ctx(1, &b), &p);
    let question = review_question_id(&c.id);
    assert_eq!(t.claim.status, ClaimStatus::PendingAnswer, "waits for the person");
    assert_eq!(t.claim.resume_status, Some(ClaimStatus::PendingReview));
    assert_eq!(t.effects, vec![Effect::ReviewAsked { question }]);
    let open = &t.claim.open_questions[&question];
    assert!(open.review && open.deadline_ms.is_none());
    assert_eq!(open.people, vec!["alice".to_owned(), "carol".to_owned()]);
    let asked = t.claim;
    // Only the review input decides it: an ordinary answer does nothing.
    assert!(step(&asked, &Input::Answer { question, answer: artifact_id() }, at(2), &p).is_none());
    let changes = human(ReviewDecision::Changes, Some("cite the clause"));
    let t = apply(&asked, &Input::HumanReview { question, review: changes.clone() }, at(3), &p);
    let review = review_artifact_id(&question);
    assert_eq!(t.claim.status, ClaimStatus::Terminated);
    assert!(t.claim.open_questions.is_empty());
    let [
        Effect::QuestionClosed { .. },
        Effect::HumanReviewed { artifact_id, review: r, .. },
        Effect::CreateClaim { claim, .. },
    ] = &t.effects[..]
    else {
        panic!("{:?}", t.effects)
    };
    assert_eq!((*artifact_id, r), (review, &changes));
    assert_eq!(claim.assigned_agent, Some(agent("Writer")));
    assert_eq!(claim.additional_context_ids, vec![review], "the rework is given the person's review");
    assert!(claim.human_reviewers.is_empty(), "a rework is not reviewed; its output is");
    assert!(step(&t.claim, &Input::HumanReview { question, review: changes }, at(4), &p).is_none(), "once");
    // The reworked draft is reviewed again; approving it moves on to the next phase.
    draft.version = 2;
    let c = apply(&new_claim(claim_id(), &draft, &p, 5), &Input::Bids, ctx(5, &b), &p).claim;
    let question = review_question_id(&c.id);
    let t = apply(&c, &Input::HumanReview { question, review: human(ReviewDecision::Approve, None) }, at(6), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingExclusive);
    assert!(t.claim.rejections.is_empty());
    assert!(
        matches!(&t.effects[..], [Effect::QuestionClosed { .. }, Effect::HumanReviewed { .. }, Effect::Grant(g)] if g.agent == agent("Publisher"))
    );
}

#[test]
fn a_human_review_waits_for_the_reviewing_agents_and_max_iterations_apply() {
    use crate::review::{ReviewDecision, review_question_id};
    let p = reviewed_policy(&["Writer", "Checker"]);
    let mut draft = Artifact::new_root(artifact_id(), StructuralType::Standard, "Draft", "v3", "Writer", 0);
    draft.version = 3;
    let b = bids(&[("Writer", BidType::Ignore), ("Checker", BidType::Review)]);
    let c = apply(&new_claim(claim_id(), &draft, &p, 0), &Input::Bids, ctx(1, &b), &p).claim;
    let question = review_question_id(&c.id);
    let t = apply(&c, &Input::HumanReview { question, review: human(ReviewDecision::Changes, Some("no")) }, at(2), &p);
    assert_eq!(t.claim.status, ClaimStatus::PendingReview, "the agent's review is still due");
    let t =
        apply(&t.claim, &Input::Output(Box::new(out("Checker", StructuralType::Review, "{}", &t.claim))), at(3), &p);
    assert_eq!(t.claim.status, ClaimStatus::Terminated);
    assert!(
        t.effects.iter().any(|e| matches!(e, Effect::Fail { failure_type: FailureType::MaxIterationsExceeded, .. })),
        "{:?}",
        t.effects
    );
    // Artifacts of other types are not reviewed by people.
    let code = Artifact::new_root(artifact_id(), StructuralType::Standard, "Code", "x", "Writer", 0);
    let c = new_claim(claim_id(), &code, &p, 0);
    assert!(c.human_reviewers.is_empty());
    let t = apply(&c, &Input::Bids, ctx(1, &bids(&[("Writer", BidType::Ignore), ("Checker", BidType::Ignore)])), &p);
    assert_eq!(t.claim.status, ClaimStatus::Dormant);
}
