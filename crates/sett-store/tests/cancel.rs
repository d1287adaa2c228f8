//! The cancellation's atomic write against a real Redis: a claim that moved on is refused
//! (read again), an output that ended the workflow wins over the cancellation, a second
//! cancellation is refused with the first's record, and a fenced artifact never gets a claim.

use sett_core::machine::new_claim;
use sett_core::{Artifact, ArtifactId, Claim, ClaimStatus, StructuralType};
use sett_store::{CancelOutcome, CancelRecord, Fenced, Store, WorkflowCancel, WriteOutcome, new_artifact_id, now_ms};

/// A goal with its claim written, and the cancellation of it as the caller builds it.
async fn goal_with_claim(store: &Store) -> (Artifact, Claim, WorkflowCancel) {
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "x", "user", now_ms());
    store.create_artifact(&goal).await.unwrap();
    let claim = new_claim(sett_core::machine::initial_claim_id(&goal.id), &goal, &sett_testkit::policy(), now_ms());
    assert_eq!(store.write_claim(&claim, None, true, &[], &[], now_ms()).await.unwrap(), WriteOutcome::Written);
    let mut ended = claim.clone();
    ended.status = ClaimStatus::Terminated;
    ended.revision += 1;
    ended.termination_reason = Some("cancelled by ann".into());
    let cancel = WorkflowCancel {
        goal: goal.id,
        record: CancelRecord { operator: "ann".into(), reason: Some("why".into()), at_ms: now_ms() },
        claims: vec![(ended, claim.revision)],
        members: vec![goal.id.to_string(), claim.id.to_string()],
        questions: vec![],
        outputs: vec![ArtifactId::grant_output(&claim.id, 1)],
    };
    (goal, claim, cancel)
}

#[tokio::test]
async fn a_claim_that_moved_on_is_refused_and_nothing_is_written() {
    let store = sett_testkit::store().await;
    let (goal, claim, mut cancel) = goal_with_claim(&store).await;
    cancel.claims[0].1 = claim.revision + 5;
    assert_eq!(store.cancel_workflow(&cancel).await.unwrap(), CancelOutcome::Stale);
    assert_eq!(store.cancellation(&goal.id).await.unwrap(), None);
    assert_eq!(store.fenced(&goal.id.to_string()).await.unwrap(), None);
    assert_eq!(store.get_claim(&claim.id).await.unwrap().unwrap().status, claim.status);
}

#[tokio::test]
async fn an_output_that_ended_the_workflow_wins_over_the_cancellation() {
    let store = sett_testkit::store().await;
    let (goal, claim, cancel) = goal_with_claim(&store).await;
    let done = Artifact::of_claim(cancel.outputs[0], &claim, StructuralType::Terminal, "Done", "ok", "A", now_ms());
    store.create_artifact(&done).await.unwrap();
    assert_eq!(
        store.cancel_workflow(&cancel).await.unwrap(),
        CancelOutcome::Ended { artifact: done.id, structural_type: "Terminal".into() }
    );
    assert_eq!(store.cancellation(&goal.id).await.unwrap(), None);
}

#[tokio::test]
async fn a_cancellation_fences_the_workflow_and_a_second_one_is_refused() {
    let store = sett_testkit::store().await;
    let (goal, claim, cancel) = goal_with_claim(&store).await;
    assert!(matches!(store.cancel_workflow(&cancel).await.unwrap(), CancelOutcome::Cancelled { .. }));
    let stored = store.get_claim(&claim.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.revision), (ClaimStatus::Terminated, claim.revision + 1));
    assert_eq!(store.fenced(&goal.id.to_string()).await.unwrap(), Some(Fenced::Member(goal.id)));
    assert_eq!(store.fenced(&cancel.outputs[0].to_string()).await.unwrap(), Some(Fenced::Expected(goal.id)));

    let mut again = cancel.clone();
    again.record.operator = "bob".into();
    assert_eq!(store.cancel_workflow(&again).await.unwrap(), CancelOutcome::AlreadyCancelled(cancel.record.clone()));

    // The late output: recorded once, and no claim is ever created for it.
    let late = Artifact::of_claim(cancel.outputs[0], &claim, StructuralType::Standard, "Draft", "x", "A", now_ms());
    store.create_artifact(&late).await.unwrap();
    assert!(store.record_late_output(&late.id, Some(claim.id), &goal.id, now_ms()).await.unwrap());
    assert!(!store.record_late_output(&late.id, Some(claim.id), &goal.id, now_ms()).await.unwrap());
    assert_eq!(store.fenced(&late.id.to_string()).await.unwrap(), Some(Fenced::Late(goal.id)));
    let its_claim = new_claim(sett_core::machine::initial_claim_id(&late.id), &late, &sett_testkit::policy(), now_ms());
    assert!(matches!(
        store.write_claim(&its_claim, None, true, &[], &[], now_ms()).await.unwrap(),
        WriteOutcome::Cancelled(f) if f == format!("late:{}", goal.id)
    ));
    assert_eq!(store.get_claim(&its_claim.id).await.unwrap(), None);
}

#[tokio::test]
async fn an_answer_to_a_question_of_a_cancelled_workflow_is_refused_atomically() {
    let store = sett_testkit::store().await;
    let (_goal, claim, mut cancel) = goal_with_claim(&store).await;
    let question = Artifact::of_claim(cancel.outputs[0], &claim, StructuralType::Question, "Ask", "?", "A", now_ms());
    store.create_artifact(&question).await.unwrap();
    cancel.members.push(question.id.to_string());
    cancel.questions.push(question.id);
    assert!(matches!(store.cancel_workflow(&cancel).await.unwrap(), CancelOutcome::Cancelled { .. }));
    let answer = Artifact::answer(new_artifact_id(), &question, "8080", "human:bob", "bob", now_ms());
    let record = sett_store::AnswerRecord::by_operator(answer.id, "bob", now_ms());
    assert!(matches!(
        store.create_answer(&answer, &question.id, &record).await.unwrap(),
        sett_store::CreateOutcome::Cancelled(f) if f.starts_with("member:")
    ));
    assert_eq!(store.get_artifact(&answer.id).await.unwrap(), None);
    assert_eq!(store.answer_record(&question.id).await.unwrap(), None);
}
