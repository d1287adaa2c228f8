//! Routing of questions end to end: a question addressed to people and a group (an agent's
//! `questions_to`, `humans.groups`) is refused to anyone else by `sett answer`, which names who
//! may answer; `sett questions --mine` shows each person what is theirs; the addressees are
//! bound into the ledger (`sett verify` catches an edited list); a reminder and an escalation
//! reach a real webhook receiver, and the escalated person may then answer.

use std::time::Duration;

use sett_core::StructuralType;
use sett_core::event::{EventData, EventKind};
use sett_e2e::receiver::Receiver;
use sett_e2e::{Env, asker_script, text};

use crate::ledger::verify;

const MINUTE: Duration = Duration::from_secs(60);

fn yml(humans: &str, notifications: &str) -> String {
    format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s}}
humans:
  groups: {{legal: [carol]}}
{humans}
agents:
  Asker:
    command: ["./asker.sh"]
    bidding_strategy: exclusive
    questions_to: [alice, "group:legal"]
{notifications}"#
    )
}

/// `sett questions [extra] -o json` as `who`.
fn questions_as(env: &Env, who: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["questions", "-o", "json"];
    args.extend_from_slice(extra);
    let out = env.sett(&args).env("SETT_OPERATOR", who).output().unwrap();
    assert!(out.status.success(), "sett questions as {who}: {}", text(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_addressee_answers_and_mine_shows_each_their_own() {
    let mut env = Env::new(&yml("", ""), &[("asker.sh", &asker_script("Which port?"))]).await;
    env.up();
    env.forage("Build a service");
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let qid = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["to"], serde_json::json!(["alice", "group:legal"]));

    assert!(questions_as(&env, "bob", &["--mine"]).is_empty(), "nothing is addressed to bob");
    let all = questions_as(&env, "bob", &[]);
    assert_eq!((all.len(), &all[0]["may_answer"]), (1, &serde_json::json!(false)));
    assert_eq!(questions_as(&env, "alice", &["--mine"]).len(), 1);
    assert_eq!(questions_as(&env, "carol", &["--mine"]).len(), 1, "carol is in group legal");

    // bob is refused, told who may answer, and nothing is written.
    let out = env.sett(&["answer", &qid, "8080"]).env("SETT_OPERATOR", "bob").output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("addressed to alice, group:legal; bob is not one of them"), "{err}");
    assert!(err.contains("sett questions --mine"), "{err}");
    assert!(env.artifacts_of(StructuralType::Answer).await.is_empty(), "a refused answer writes nothing");

    // The addressees are part of the claim the ledger binds: editing them is a break.
    let claim = listed[0]["claim_id"].as_str().unwrap().to_owned();
    let key = format!("sett:{{{}}}:claim:{claim}", env.name);
    let original = env.redis_cli(&["HGET", &key, "open_questions"]).trim_end_matches('\n').to_owned();
    assert!(original.contains("group:legal"), "{original}");
    env.redis_cli(&["HSET", &key, "open_questions", &original.replace("\"alice\"", "\"bob\"")]);
    let (code, report) = verify(&env, &[]);
    assert_eq!(code, 1, "an edited addressee list is a break: {report:#}");
    env.redis_cli(&["HSET", &key, "open_questions", &original]);
    assert_eq!(verify(&env, &[]).0, 0);

    // carol answers through her group; the agent resumes with it.
    env.sett(&["answer", &qid, "8080"]).env("SETT_OPERATOR", "carol").output().unwrap();
    let artifacts = env.wait_terminals(1, MINUTE).await;
    let answer = artifacts.iter().find(|a| a.structural_type == StructuralType::Answer).expect("an answer");
    assert_eq!(answer.answered_by.as_deref(), Some("carol"));
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.payload, "8080");
    assert_eq!(verify(&env, &[]).0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reminder_and_an_escalation_reach_the_webhook_and_the_escalated_may_answer() {
    let mut hook = Receiver::start().await;
    let notifications = format!(
        "notifications:\n  webhooks:\n    - url: {}\n      events: [question_reminder, question_escalated]\n",
        hook.url("/sett")
    );
    // Short durations stand in for hours; nothing below waits on them, it waits for the events.
    let humans = "  remind_every: 1s\n  escalate_after: 2s\n  escalate_to: [dave]\n";
    let mut env = Env::new(&yml(humans, &notifications), &[("asker.sh", &asker_script("Which port?"))]).await;
    env.up();
    env.forage("Build a service");

    let mut others = Vec::new();
    let reminder = hook.next_event("question_reminder", MINUTE, &mut others).await.json();
    assert_eq!(reminder["reminder"], 1, "{reminder:#}");
    assert_eq!(reminder["question"]["to"], serde_json::json!(["alice", "group:legal"]));
    assert_eq!(reminder["question"]["text"], "Which port?");
    let escalated = hook.next_event("question_escalated", MINUTE, &mut others).await.json();
    assert_eq!(escalated["added"], serde_json::json!(["dave"]), "{escalated:#}");
    assert_eq!(escalated["question"]["to"], serde_json::json!(["alice", "dave", "group:legal"]));
    let qid = escalated["question"]["id"].as_str().unwrap().to_owned();

    // Both are in the ledger, so a restart loses neither.
    let kinds: Vec<EventKind> = env.events().await.iter().map(|e| e.kind()).collect();
    assert!(kinds.contains(&EventKind::QuestionReminded) && kinds.contains(&EventKind::QuestionEscalated));
    assert!(env.events_of(EventKind::QuestionEscalated).await.iter().any(|e| matches!(
        &e.data,
        EventData::QuestionEscalated(x) if x.question_id.to_string() == qid && x.added == ["dave"]
    )));

    assert_eq!(questions_as(&env, "dave", &["--mine"]).len(), 1, "escalation made it dave's");
    env.sett(&["answer", &qid, "9090"]).env("SETT_OPERATOR", "dave").output().unwrap();
    let artifacts = env.wait_terminals(1, MINUTE).await;
    assert_eq!(artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap().payload, "9090");
    assert_eq!(verify(&env, &[]).0, 0);
}
