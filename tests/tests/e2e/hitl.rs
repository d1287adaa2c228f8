//! Human in the loop end to end: an agent asks, the operator answers with `sett answer`, the same
//! agent resumes with the answer; concurrent answers; `questions --wait`; a timeout with
//! `continue` reaching the tool; questions across an orchestrator crash; twenty questions at
//! once. The engine's question paths on their own (`fail`, `continue`) are tested in process:
//! crates/sett-orchestrator/tests/engine/questions.rs.

use std::process::Stdio;
use std::time::Duration;

use sett_core::config::OnQuestionTimeout;
use sett_core::event::{EventData, EventKind};
use sett_core::{ClaimStatus, StructuralType};
use sett_e2e::{Env, summary, text};
use sett_store::new_artifact_id;

const MINUTE: Duration = Duration::from_secs(60);

/// Asks which port to use until it has an answer, then ends the workflow with the answer as the
/// payload. Saves every stdin it gets to `stdin-<claim_type>.json`.
const ASKER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
printf '%s' "$input" >"stdin-$(jq -r .claim_type <<<"$input")-${SETT_AGENT:-agent}.json"
if [ "$(jq '.answers | length' <<<"$input")" = "0" ]; then
  jq -n '{structural_type: "Question", artifact_type: "Clarification", artifact_payload: "Which port should the service listen on?"}'
else
  jq -n --arg a "$(jq -r '.answers[-1].answer.payload' <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $a}'
fi
"#;

fn asker_yml(extra_orchestrator: &str) -> String {
    format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s{extra_orchestrator}}}
agents:
  Asker:
    command: ["./asker.sh"]
    bidding_strategy: exclusive
"#
    )
}

fn questions_json(env: &Env) -> Vec<serde_json::Value> {
    let out = env.ok(&["questions", "-o", "json"]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_list_answer_resume_terminal() {
    let mut env = Env::new(&asker_yml(""), &[("asker.sh", ASKER)]).await;
    env.up();
    let goal = env.forage("Build a service");
    let out = env.ok(&["questions", "--wait", "--timeout", "30s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let q = &listed.as_array().expect("a list")[0];
    assert_eq!(q["agent"], "Asker");
    assert_eq!(q["text"], "Which port should the service listen on?");
    let qid = q["id"].as_str().unwrap().to_owned();
    let claim = env.claims().await.into_iter().find(|c| c.artifact_id == goal).unwrap();
    assert_eq!(claim.status, ClaimStatus::PendingAnswer);
    assert_eq!(claim.question_id.map(|q| q.to_string()), Some(qid.clone()));

    // Answer by short id, as an operator would.
    let short = q["short_id"].as_str().unwrap().to_owned();
    env.ok(&["answer", &short, "8080"]);
    let artifacts = env.wait_terminals(1, MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.payload, "8080", "the resumed agent used the answer");
    let answer = artifacts.iter().find(|a| a.structural_type == StructuralType::Answer).unwrap();
    assert_eq!(answer.source_artifacts.iter().map(ToString::to_string).collect::<Vec<_>>(), vec![qid.clone()]);
    assert_eq!(answer.answered_by.as_deref(), Some("test-operator"));
    assert_eq!(answer.produced_by_role, "human:test-operator");
    // The same agent was granted again with claim_type resume and the pair in `answers`.
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path().join("stdin-resume-Asker.json")).unwrap()).unwrap();
    assert_eq!(resumed["answers"][0]["question"]["id"], qid.as_str());
    assert_eq!(resumed["answers"][0]["answer"]["payload"], "8080");
    let grants = env.events_of(EventKind::ClaimGranted).await;
    assert_eq!(
        grants
            .iter()
            .map(|g| match &g.data {
                EventData::ClaimGranted(g) => (g.agent.to_string(), g.claim_type.to_string()),
                other => panic!("not a grant: {other:?}"),
            })
            .collect::<Vec<_>>(),
        vec![("Asker".to_owned(), "exclusive".to_owned()), ("Asker".to_owned(), "resume".to_owned())]
    );
    assert_eq!(env.events_of(EventKind::QuestionAsked).await.len(), 1);
    assert_eq!(env.events_of(EventKind::QuestionAnswered).await.len(), 1);
    assert!(questions_json(&env).is_empty(), "no open question is left");
    // watch shows the question and the answer.
    let trail = env.ok(&["watch", "--since", "1h", "--exit-on-completion", "--timeout", "10s"]);
    assert!(trail.contains("question_asked") && trail.contains("question_answered"), "{trail}");
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_answers_one_wins_the_other_says_who_answered() {
    let mut env = Env::new(&asker_yml(""), &[("asker.sh", ASKER)]).await;
    env.up();
    env.forage("Race");
    let out = env.ok(&["questions", "--wait", "--timeout", "30s", "-o", "json"]);
    let qid = serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["id"].as_str().unwrap().to_owned();
    let a = env.sett(&["answer", &qid, "first"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let b = env.sett(&["answer", &qid, "second"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "a: {} {}\nb: {} {}", text(&a.stdout), text(&a.stderr), text(&b.stdout), text(&b.stderr));
    let loser = if a.status.success() { &b } else { &a };
    let err = text(&loser.stderr);
    assert!(err.contains("already answered") && err.contains("test-operator"), "{err}");
    let artifacts = env.wait_terminals(1, MINUTE).await;
    assert_eq!(artifacts.iter().filter(|a| a.structural_type == StructuralType::Answer).count(), 1);
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn questions_wait_returns_promptly_once_a_question_is_asked() {
    // A Redis of its own, so "a client is blocked in XREAD" can only be this waiter.
    let data = tempfile::tempdir().unwrap();
    let server = sett_testkit::RedisServer::start(data.path(), &[]);
    let mut env = Env::with_redis_url(&server.url(), &asker_yml(""), &[("asker.sh", ASKER)]).await;
    env.up();
    let waiter =
        env.sett(&["questions", "--wait", "--timeout", "60s", "-o", "json"]).stdout(Stdio::piped()).spawn().unwrap();
    // The waiter blocks first (its own startup is not what is measured): Redis says when.
    env.eventually("`sett questions --wait` blocks in XREAD", async || someone_blocks_in_xread(&env.redis_url).await)
        .await;
    env.forage("Wake me");
    // Woken by the question, not by its 60 s timeout (which exits 2 and lists nothing); how soon
    // it wakes is measured by `cargo xtask bench`, not here.
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // With no question open, --timeout ends the wait with exit code 2.
    env.ok(&["answer", listed[0]["id"].as_str().unwrap(), "9090"]);
    env.wait_terminals(1, MINUTE).await;
    let out = env.run(&["questions", "--wait", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_continue_a_timed_out_question_resumes_the_agent() {
    let mut env =
        Env::new(&asker_yml(", question_timeout: 2s, on_question_timeout: continue"), &[("asker.sh", ASKER)]).await;
    env.up();
    env.forage("Nobody answers, carry on");
    env.wait_terminals(1, MINUTE).await;
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path().join("stdin-resume-Asker.json")).unwrap()).unwrap();
    assert_eq!(resumed["answers"][0]["answer"]["timed_out"], true, "{resumed}");
    let timed_out = env.events_of(EventKind::QuestionTimedOut).await;
    assert!(matches!(&timed_out[0].data, EventData::QuestionTimedOut(t) if t.policy == OnQuestionTimeout::Continue));
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn open_questions_and_their_deadlines_survive_an_orchestrator_crash() {
    // Question 1 is answered while the orchestrator is down; question 2's deadline passes while
    // it is down. Both take effect after `sett up`.
    let yml = r#"
version: "1.0"
orchestrator: {bid_timeout: 10s, question_timeout: 1h}
agents:
  Asker:
    command: ["./asker.sh"]
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined"]}
  Hasty:
    command: ["./asker.sh"]
    bidding_strategy: {type: exclusive, target_types: ["Urgent"]}
    question_timeout: 3s
"#;
    let mut env = Env::new(yml, &[("asker.sh", ASKER)]).await;
    env.up();
    env.forage("Answer me later");
    let out = env.ok(&["questions", "--wait", "--timeout", "30s", "-o", "json"]);
    let qid = serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["id"].as_str().unwrap().to_owned();
    // An "Urgent" root artifact for Hasty, written directly (forage only writes goals).
    let urgent = sett_core::Artifact::new_root(
        new_artifact_id(),
        StructuralType::Standard,
        "Urgent",
        "now!",
        "user",
        sett_store::now_ms(),
    );
    env.store.create_artifact(&urgent).await.unwrap();
    env.wait_for(MINUTE, "Hasty's question", |a| {
        a.iter().filter(|x| x.structural_type == StructuralType::Question).count() == 2
    })
    .await;
    // Wait for the orchestrator to register Hasty's question, then crash it.
    env.wait_events(MINUTE, "two question_asked events", 2, |e| e.kind() == EventKind::QuestionAsked).await;
    let orchestrator = env.pid_of("orchestrator").await.unwrap();
    let _ = std::process::Command::new("kill").args(["-9", &orchestrator.to_string()]).status();
    assert!(sett_runtime::wait_gone(orchestrator, Duration::from_secs(5)));
    env.ok(&["answer", &qid, "4040"]);
    tokio::time::sleep(Duration::from_secs(4)).await; // let Hasty's 3 s deadline pass while down
    env.up();
    let artifacts = env
        .wait_for(MINUTE, "the answered claim's Terminal and Hasty's QuestionTimeout", |a| {
            a.iter().any(|x| x.structural_type == StructuralType::Terminal)
                && a.iter().any(|x| x.artifact_type == "QuestionTimeout")
        })
        .await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.payload, "4040", "{:#?}", summary(&artifacts));
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_agents_ask_at_once_and_all_resume() {
    let mut yml = String::from("version: \"1.0\"\norchestrator: {bid_timeout: 20s}\nagents:\n");
    for i in 0..20 {
        yml.push_str(&format!(
            "  Agent{i:02}:\n    command: [\"./ask.sh\"]\n    bidding_strategy: {{type: claim, target_types: [\"GoalDefined\"]}}\n"
        ));
    }
    let ask = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
if [ "$(jq '.answers | length' <<<"$input")" = "0" ]; then
  jq -n --arg a "$SETT_AGENT" '{structural_type: "Question", artifact_payload: ("question from " + $a), artifact_type: "Clarification"}'
else
  jq -n --arg p "$(jq -r '.answers[-1].answer.payload' <<<"$input")" '{artifact_type: "Result", artifact_payload: $p}'
fi
"#;
    let mut env = Env::new(&yml, &[("ask.sh", ask)]).await;
    env.up();
    let goal = env.forage("Everyone asks");
    env.wait_events(MINUTE, "20 question_asked events", 20, |e| e.kind() == EventKind::QuestionAsked).await;
    let open = questions_json(&env);
    assert_eq!(open.len(), 20);
    let claim = env.claims().await.into_iter().find(|c| c.artifact_id == goal).unwrap();
    assert_eq!(claim.status, ClaimStatus::PendingAnswer);
    // Answer in reverse order of asking.
    for q in open.iter().rev() {
        let agent = q["agent"].as_str().unwrap();
        env.ok(&["answer", q["id"].as_str().unwrap(), &format!("answer for {agent}")]);
    }
    let artifacts =
        env.wait_for(MINUTE, "20 results", |a| a.iter().filter(|x| x.artifact_type == "Result").count() == 20).await;
    for r in artifacts.iter().filter(|a| a.artifact_type == "Result") {
        assert_eq!(r.payload, format!("answer for {}", r.produced_by_role), "each agent got its own answer");
    }
    env.wait_events(MINUTE, "the goal's claim to complete", 1, |e| {
        e.kind() == EventKind::ClaimCompleted && e.data.artifact_id() == Some(goal)
    })
    .await;
    env.down();
}

/// Whether a client of the Redis at `url` is blocked in XREAD (`sett questions --wait`; the
/// daemons block in XREADGROUP instead).
async fn someone_blocks_in_xread(url: &str) -> bool {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-u", url, "CLIENT", "LIST"])
        .output()
        .await
        .expect("redis-cli (package redis-tools)");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.contains("cmd=xread ") && l.contains("flags=b"))
}
