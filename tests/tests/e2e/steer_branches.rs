//! Operators re-running work, end to end: `sett retry` gives a failed step a new attempt (both
//! attempts stay visible in `sett hoard` and `sett watch`; the ledger verifies and an edited
//! operator is caught), and `sett fork` starts a branch from an earlier artifact; a branch still
//! running after the original completed is what `sett cancel` acts on.

use std::time::Duration;

use sett_core::event::{EventData, EventKind};
use sett_core::{ClaimStatus, StructuralType};
use sett_e2e::{DRAFT_FINISHER, DRAFT_WRITER, DRAFTING_YML, Env, text};

const LIMIT: Duration = Duration::from_secs(30);

/// A tool that fails its first run (it leaves a marker behind) and succeeds every later one.
const FAILS_ONCE: &str = r#"#!/usr/bin/env bash
cat > /dev/null
if [ ! -e "$MARKER" ]; then
  touch "$MARKER"
  echo "the first run fails" >&2
  exit 3
fi
echo '{"structural_type": "Terminal", "artifact_type": "Done", "artifact_payload": "second time lucky"}'
"#;

fn verify_ok(env: &Env) {
    let out = env.run(&["verify", "-o", "json"]);
    assert!(out.status.success(), "sett verify failed: {}\n{}", text(&out.stdout), text(&out.stderr));
}

/// `sett verify` fails, naming `record` and `problem`.
fn verify_breach(env: &Env, record: &str, problem: &str) {
    let out = env.run(&["verify", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["breach"]["record"].as_str().unwrap().contains(record), "{v:#}");
    assert!(v["breach"]["problem"].as_str().unwrap().contains(problem), "{v:#}");
}

/// Edits the operator of action `action_id` in Redis: `sett verify` catches it; put back, it
/// passes again.
fn tampered_operator_is_caught(env: &Env, action_id: &str, kind: &str) {
    let key = format!("sett:{{{}}}:actions", env.name);
    let record = env.redis_cli(&["HGET", &key, action_id]);
    env.redis_cli(&["HSET", &key, action_id, &record.trim().replace("test-operator", "mallory")]);
    verify_breach(env, &format!("{kind} action"), "operator changed");
    env.redis_cli(&["HSET", &key, action_id, record.trim()]);
    verify_ok(env);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_gives_a_failed_step_a_new_attempt_and_keeps_the_first() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("ran-once");
    let yml = format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s}}
agents:
  Flaky:
    command: ["./flaky.sh"]
    bidding_strategy: exclusive
    environment: ["MARKER={}"]
"#,
        marker.display()
    );
    let mut env = Env::new(&yml, &[("flaky.sh", FAILS_ONCE)]).await;
    env.up();
    let goal = env.forage("Do the flaky thing");
    let failed = env
        .wait_for(LIMIT, "the first attempt's Failure", |a| {
            a.iter().any(|a| a.structural_type == StructuralType::Failure)
        })
        .await
        .into_iter()
        .find(|a| a.structural_type == StructuralType::Failure)
        .unwrap();
    assert_eq!(failed.artifact_type, "ToolExecutionFailure");
    let first = failed.claim_id.unwrap();
    env.eventually("the failed claim ended", async || {
        env.store.get_claim(&first).await.unwrap().is_some_and(|c| c.status == ClaimStatus::Terminated)
    })
    .await;

    let short = goal.to_string()[..13].to_owned();
    let out = env.ok(&["retry", &short, "--reason", "flaky network", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["goal_id"], goal.to_string().as_str(), "{doc}");
    assert_eq!(doc["failed_claim"], first.to_string().as_str(), "{doc}");
    assert_eq!(doc["failure"], failed.id.to_string().as_str(), "{doc}");
    assert_eq!(doc["artifact_id"], goal.to_string().as_str(), "{doc}");
    assert_eq!((doc["operator"].as_str(), doc["reason"].as_str()), (Some("test-operator"), Some("flaky network")));

    // The new attempt runs on the same artifact and reaches the Terminal.
    let all = env.wait_terminals(1, LIMIT).await;
    let terminal = all.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.payload, "second time lucky");
    let second = terminal.claim_id.unwrap();
    assert_eq!(doc["claim_id"], second.to_string().as_str(), "{doc}");
    let claims = env.claims().await;
    let on_goal: Vec<_> = claims.iter().filter(|c| c.artifact_id == goal).collect();
    assert_eq!(on_goal.len(), 2, "both attempts: {claims:#?}");
    let retry_claim = on_goal.iter().find(|c| c.id == second).unwrap();
    assert!(retry_claim.additional_context_ids.contains(&failed.id), "linked to the Failure: {retry_claim:#?}");
    assert_eq!(env.store.get_claim(&first).await.unwrap().unwrap().status, ClaimStatus::Terminated);

    // The event names the operator and reason, the failed claim and its Failure.
    let retried = env.events_of(EventKind::WorkflowRetried).await;
    assert_eq!(retried.len(), 1);
    let EventData::WorkflowRetried(r) = &retried[0].data else { unreachable!() };
    assert_eq!((r.failed_claim, r.claim_id, r.failure, r.goal_id), (first, second, Some(failed.id), goal));
    assert_eq!((r.operator.as_str(), r.reason.as_deref()), ("test-operator", Some("flaky network")));

    // Both attempts are visible: hoard lists the Failure and the Terminal, watch the retry
    // between them and the workflow's outcome is the Terminal.
    let hoard = env.ok(&["hoard", "-o", "json"]);
    assert!(hoard.contains(&failed.id.to_string()) && hoard.contains(&terminal.id.to_string()), "{hoard}");
    let trail = env.run(&["watch", "--since", "1h", "--exit-on-completion", "--timeout", "10s"]);
    assert!(trail.status.success(), "{}", text(&trail.stderr));
    let lines = text(&trail.stdout);
    let at = |needle: &str| lines.find(needle).unwrap_or_else(|| panic!("no {needle:?} in {lines}"));
    assert!(
        at("ToolExecutionFailure") < at("workflow_retried") && at("workflow_retried") < at("(Terminal)"),
        "{lines}"
    );
    assert!(lines.contains("by test-operator: flaky network"), "{lines}");
    assert!(text(&trail.stderr).contains("Workflow complete"), "{}", text(&trail.stderr));

    // A workflow that has not failed is not retried.
    let again = env.run(&["retry", &goal.to_string()]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("has not failed: it has completed"), "{}", text(&again.stderr));

    verify_ok(&env);
    tampered_operator_is_caught(&env, &r.action_id, "workflow_retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn fork_from_a_first_draft_runs_a_branch_to_its_own_terminal_and_keeps_the_original() {
    let mut env = Env::new(DRAFTING_YML, &[("writer.sh", DRAFT_WRITER), ("finisher.sh", DRAFT_FINISHER)]).await;
    env.up();
    env.forage("the plan");
    let first = env.wait_terminals(1, LIMIT).await;
    let original = first.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap().clone();
    assert_eq!(original.payload, "final: draft of the plan");
    let draft = first.iter().find(|a| a.artifact_type == "Draft").unwrap().clone();

    let short = draft.id.to_string()[..13].to_owned();
    let out = env.ok(&["fork", &short, "--payload", "a better draft", "--reason", "try it shorter", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["forked_from"], draft.id.to_string().as_str(), "{doc}");
    assert_eq!((doc["version"].as_u64(), doc["operator"].as_str()), (Some(2), Some("test-operator")), "{doc}");
    let fork_id = sett_core::ArtifactId::parse(doc["artifact_id"].as_str().unwrap()).unwrap();

    // The branch runs to its own Terminal on the new version.
    let all = env
        .wait_for(LIMIT, "the branch's Terminal", |a| {
            a.iter().filter(|a| a.structural_type == StructuralType::Terminal).count() == 2
        })
        .await;
    let branch_end =
        all.iter().find(|a| a.structural_type == StructuralType::Terminal && a.id != original.id).unwrap().clone();
    assert_eq!(branch_end.payload, "final: a better draft");
    assert_eq!(branch_end.source_artifacts, vec![fork_id], "the branch's Terminal follows from the fork");
    let forked = env.store.get_artifact(&fork_id).await.unwrap().unwrap();
    assert_eq!(forked.forked_from, Some(draft.id), "provenance names what it was forked from");
    assert_eq!((forked.logical_id, forked.version), (draft.logical_id, 2));
    assert_eq!(forked.produced_by_role, "human:test-operator");
    assert_eq!(forked.source_artifacts, draft.source_artifacts);
    // The original branch is untouched.
    assert_eq!(env.store.get_artifact(&original.id).await.unwrap().unwrap(), original);
    let forks = env.events_of(EventKind::ArtifactForked).await;
    assert_eq!(forks.len(), 1);
    let EventData::ArtifactForked(f) = &forks[0].data else { unreachable!() };
    assert_eq!((f.artifact_id, f.forked_from, f.claim_id), (fork_id, draft.id, None));
    assert_eq!((f.operator.as_str(), f.reason.as_deref()), ("test-operator", Some("try it shorter")));

    // watch shows the fork and ends with the branch; hoard shows where the branch came from.
    let trail = env.run(&["watch", "--since", "1h", "--exit-on-completion", "--timeout", "10s"]);
    assert!(trail.status.success(), "{}", text(&trail.stderr));
    assert!(text(&trail.stdout).contains("artifact_forked"), "{}", text(&trail.stdout));
    let hoard = env.ok(&["hoard"]);
    assert!(hoard.contains(&format!("forked from {}", sett_core::text::short(&draft.id.to_string()))), "{hoard}");

    verify_ok(&env);
    tampered_operator_is_caught(&env, &f.action_id, "artifact_forked");
}

#[tokio::test(flavor = "multi_thread")]
async fn fork_a_question_with_a_different_answer_resumes_the_agent_on_the_branch() {
    let asker = sett_e2e::asker_script("Which port?");
    let mut env = Env::new(
        "version: \"1.0\"\norchestrator: {bid_timeout: 10s}\nagents:\n  Asker:\n    command: [\"./asker.sh\"]\n    bidding_strategy: exclusive\n",
        &[("asker.sh", &asker)],
    )
    .await;
    env.up();
    env.forage("A service");
    let asked = env.wait_events(LIMIT, "question_asked", 1, |e| e.kind() == EventKind::QuestionAsked).await;
    let question = asked[0].data.question_id().unwrap();
    env.ok(&["answer", &question.to_string(), "8080"]);
    let first = env.wait_terminals(1, LIMIT).await;
    let original = first.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap().clone();
    assert_eq!(original.payload, "8080");

    let out = env.ok(&["fork", &question.to_string(), "--answer", "9090", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let branch_claim = sett_core::ClaimId::parse(doc["claim_id"].as_str().expect("a branch claim")).unwrap();
    let all = env
        .wait_for(LIMIT, "the branch's Terminal", |a| {
            a.iter().filter(|a| a.structural_type == StructuralType::Terminal).count() == 2
        })
        .await;
    let branch_end = all.iter().find(|a| a.structural_type == StructuralType::Terminal && a.id != original.id).unwrap();
    assert_eq!(branch_end.payload, "9090", "the agent resumed on the branch with the different answer");
    assert_eq!(branch_end.claim_id, Some(branch_claim));
    env.eventually("the branch claim completed", async || {
        env.store.get_claim(&branch_claim).await.unwrap().is_some_and(|c| c.status == ClaimStatus::Complete)
    })
    .await;
    let claim = env.store.get_claim(&branch_claim).await.unwrap().unwrap();
    assert_eq!(env.store.get_artifact(&original.id).await.unwrap().unwrap(), original, "the original stays");
    let answer = env.store.get_artifact(&claim.answered_questions[0].answer).await.unwrap().unwrap();
    assert_eq!((answer.payload.as_str(), answer.forked_from), ("9090", Some(question)));
    verify_ok(&env);
}

/// [`DRAFT_FINISHER`], except that it runs for five minutes on a draft that says "slow" (after
/// touching `$MARK_FILE`).
const SLOW_FINISHER: &str = r#"#!/usr/bin/env bash
input=$(cat)
if jq -e '.target_artifact.payload | test("slow")' <<<"$input" > /dev/null; then
  touch "$MARK_FILE"
  sleep 300
fi
jq '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: ("final: " + .target_artifact.payload)}' <<<"$input"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn cancel_acts_on_a_branch_still_running_after_the_original_completed() {
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("slow-started");
    let yml = DRAFTING_YML.replace(
        "    command: [\"./finisher.sh\"]\n",
        &format!("    command: [\"./finisher.sh\"]\n    environment: [\"MARK_FILE={}\"]\n", mark.display()),
    );
    let mut env = Env::new(&yml, &[("writer.sh", DRAFT_WRITER), ("finisher.sh", SLOW_FINISHER)]).await;
    env.up();
    let goal = env.forage("the plan");
    let first = env.wait_terminals(1, LIMIT).await;
    let original = first.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap().clone();
    let draft = first.iter().find(|a| a.artifact_type == "Draft").unwrap().clone();
    let out = env.ok(&["fork", &draft.id.to_string(), "--payload", "a slow draft", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fork_id = sett_core::ArtifactId::parse(doc["artifact_id"].as_str().unwrap()).unwrap();
    env.eventually("the branch's finisher started", async || mark.exists()).await;

    // The original has its Terminal, but the branch runs: cancel acts on it.
    let out = env.ok(&["cancel", &goal.to_string(), "--reason", "enough", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["goal_id"], goal.to_string().as_str(), "{doc}");
    let ended: Vec<String> = doc["claims"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    let claims = env.claims().await;
    let branch_claim = claims.iter().find(|c| c.artifact_id == fork_id).expect("the branch's claim");
    assert_eq!(ended, vec![branch_claim.id.to_string()], "only the branch's open claim ends");
    env.eventually("the branch claim terminated", async || {
        env.store.get_claim(&branch_claim.id).await.unwrap().is_some_and(|c| c.status == ClaimStatus::Terminated)
    })
    .await;
    assert_eq!(env.store.get_artifact(&original.id).await.unwrap().unwrap(), original, "the original stays");
    // Every part of the workflow has ended now: watch exits at once, with the cancellation (a
    // cancelled workflow is not a success), not its timeout.
    let trail = env.run(&["watch", "--since", "1h", "--exit-on-completion", "--timeout", "10s"]);
    assert!(!trail.status.success(), "{}", text(&trail.stderr));
    assert!(text(&trail.stderr).contains("was cancelled by test-operator: enough"), "{}", text(&trail.stderr));
    assert!(text(&trail.stdout).contains("workflow_cancelled"), "{}", text(&trail.stdout));
    verify_ok(&env);
    env.down();
}
