//! Questions: an agent's Question suspends its claim until an answer resumes the agent, or
//! until the question's deadline applies `on_question_timeout`.

use sett_core::config::OnQuestionTimeout;
use sett_core::event::{EventData, EventKind};
use sett_core::{Artifact, BidType, ClaimId, ClaimStatus, ClaimType, StructuralType};

use crate::harness::{Cub, Harness, team};

fn asker_yml(orchestrator: &str) -> String {
    team(&format!("bid_timeout: 1h, {orchestrator}"), &[("Asker", "")])
}

/// A goal granted to the Asker, who asks `question`: the claim, the asker and the Question.
async fn asked(h: &Harness, question: &str) -> (ClaimId, Cub, Artifact) {
    let asker = h.cub("Asker");
    let goal = h.forage("needs a human").await;
    let claim = asker.bid_on(&goal, BidType::Exclusive).await;
    let grant = asker.granted(&claim, 1).await;
    let q = asker.ask(&grant, question).await;
    (claim, asker, q)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_resumes_the_agent_that_asked() {
    let h = Harness::start(&asker_yml("question_timeout: 1h")).await;
    let (claim, asker, q) = asked(&h, "Which database?").await;
    let asked = h.question_asked(&claim).await;
    assert_eq!((asked.question_id, asked.agent.as_str()), (q.id, "Asker"));
    assert!(asked.deadline_ms.is_some_and(|d| d > q.created_at_ms), "{asked:?}");
    assert_eq!(h.claim(&claim).await.status, ClaimStatus::PendingAnswer);
    assert!(h.store.is_question_open(&q.id).await.unwrap());

    let answer = h.answer(&q.id, "Postgres", "ada").await;
    let resume = asker.granted(&claim, 2).await;
    assert_eq!((resume.claim_type, resume.seq), (ClaimType::Resume, 2));
    assert!(!h.store.is_question_open(&q.id).await.unwrap());
    let c = h.claim(&claim).await;
    assert!(c.answered_questions.iter().any(|a| a.question == q.id && a.answer == answer.id), "{c:?}");
    let done = asker.complete(&resume, StructuralType::Terminal, "Done", "Postgres").await;
    let ended = h.ended(&claim).await;
    assert_eq!((ended.status, ended.outcome_artifact), (ClaimStatus::Complete, Some(done.id)));
    assert!(h.events_of(EventKind::QuestionTimedOut).await.is_empty());
    h.stop().await.expect("a clean stop");
}

/// Moved from the end-to-end suite (`an_unanswered_question_fails_the_claim_with_question_timeout`).
#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_question_fails_its_claim_at_the_deadline_under_fail() {
    let h = Harness::start(&asker_yml("question_timeout: 1s, on_question_timeout: fail")).await;
    let (claim, _asker, q) = asked(&h, "Anyone there?").await;
    let asked = h.question_asked(&claim).await;
    let failure = h.outcome(&claim).await;
    assert_eq!((failure.structural_type, failure.artifact_type.as_str()), (StructuralType::Failure, "QuestionTimeout"));
    assert_eq!(h.claim(&claim).await.status, ClaimStatus::Terminated);
    let timed_out = h.event("question_timed_out", |e| e.kind() == EventKind::QuestionTimedOut).await;
    let EventData::QuestionTimedOut(t) = &timed_out.data else { unreachable!("matched") };
    assert_eq!(t.question_id, q.id);
    assert!(t.policy == OnQuestionTimeout::Fail, "{t:?}");
    // By the ledger's clock: the timeout came at the question's deadline, not before.
    let deadline = asked.deadline_ms.expect("a deadline");
    assert!(timed_out.ts_ms >= deadline, "timed out {} ms before its deadline", deadline - timed_out.ts_ms);
    assert!(!h.store.is_question_open(&q.id).await.unwrap());
    h.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_question_is_answered_by_the_orchestrator_under_continue() {
    let h = Harness::start(&asker_yml("question_timeout: 1s, on_question_timeout: continue")).await;
    let (claim, asker, q) = asked(&h, "Proceed?").await;
    let resume = asker.granted(&claim, 2).await;
    assert_eq!(resume.claim_type, ClaimType::Resume);
    let answered = h.event("question_answered", |e| e.kind() == EventKind::QuestionAnswered).await;
    let EventData::QuestionAnswered(a) = &answered.data else { unreachable!("matched") };
    assert_eq!((a.question_id, a.timed_out, a.answered_by.as_str()), (q.id, true, "orchestrator"));
    let timed_out = h.event("question_timed_out", |e| e.kind() == EventKind::QuestionTimedOut).await;
    assert!(matches!(&timed_out.data, EventData::QuestionTimedOut(t) if t.policy == OnQuestionTimeout::Continue));
    let auto = h.store.get_artifact(&a.answer_id).await.unwrap().expect("the automatic answer");
    assert!(auto.timed_out && auto.source_artifacts == [q.id], "{auto:?}");
    asker.complete(&resume, StructuralType::Terminal, "Done", "went ahead").await;
    assert_eq!(h.ended(&claim).await.status, ClaimStatus::Complete);
    h.stop().await.expect("a clean stop");
}
