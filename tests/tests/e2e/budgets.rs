//! Budgets end to end (`budgets:` in sett.yml): a workflow whose agents report a cost step by
//! step reaches its budget mid-workflow; nothing more of it is granted (the run that reached it
//! was the only one running, so the overrun is none, as documented), a `kind: budget` question
//! asks, status and the metrics show it; "continue" with a raised budget resumes it, the raised
//! budget is reached again and "stop" ends the workflow. Every decision is a `budget_decided`
//! event `sett verify` checks, and an edited decision record is caught.
//!
//! And the edges: parallel runs running when the budget is reached finish and count, and
//! nothing more is granted (the documented bound, exactly); `on_exhausted: stop` ends the
//! workflow without asking; an unanswered question times out into `on_timeout` (`stop`, or
//! `pause`, after which a `sett resume` lets the budget be reached and asked again); and the
//! orchestrator killed while the budget is reached, while its question waits and after it was
//! raised: the watch rebuilds its state from the ledger, grants nothing it should not, asks
//! nothing twice, and answering goes on where it stood.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sett_core::event::{EventData, EventKind};
use sett_core::{ArtifactId, StructuralType};
use sett_e2e::{Env, http_get, text};
use sett_ops::workflow::{Outcome, Workflow};

const LIMIT: Duration = Duration::from_secs(60);

/// Each run takes the step number from its target's payload and writes the next step, reporting
/// 100 tokens and 0.1 USD; step 9 would end the workflow.
const STEPPER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
n=$(jq -r '.target_artifact.payload')
next=$((n + 1))
if [ "$next" -ge 9 ]; then
  echo '{"structural_type":"Terminal","artifact_type":"Done","artifact_payload":"done"}'
  exit 0
fi
jq -n --arg p "$next" '{artifact_type: "Step", artifact_payload: $p,
  usage: {model: "m", input_tokens: 60, output_tokens: 40, cost: {amount: "0.1", currency: "USD"}}}'
"#;

const YML: &str = r#"
version: "1.0"
orchestrator: {bid_timeout: 10s}
agents:
  Stepper:
    command: ["./stepper.sh"]
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined", "Step"]}
    bid_on_own_output: true
budgets:
  workflow: {cost: "0.25 USD"}
  on_exhausted: ask
  ask_timeout: 1h
"#;

/// The budget decisions in the ledger, in order: (decision, operator).
async fn decisions(env: &Env) -> Vec<(String, String)> {
    env.events_of(EventKind::BudgetDecided)
        .await
        .into_iter()
        .map(|e| match e.data {
            EventData::BudgetDecided(d) => (d.decision, d.operator),
            _ => unreachable!(),
        })
        .collect()
}

/// The decisions of a budget reached, raised by the test's operator, reached again and stopped.
fn raised_then_stopped() -> Vec<(String, String)> {
    [("exhausted", "budget"), ("raised", "test-operator"), ("exhausted", "budget"), ("stopped", "test-operator")]
        .map(|(d, o)| (d.to_owned(), o.to_owned()))
        .to_vec()
}

/// The open budget question's id, once one is open.
async fn open_budget_question(env: &Env, decided: usize) -> String {
    let asked = env
        .wait_events(LIMIT, "a budget_decided exhausted", decided + 1, |e| e.kind() == EventKind::BudgetDecided)
        .await;
    let EventData::BudgetDecided(d) = &asked[decided].data else { unreachable!() };
    assert_eq!(d.decision, "exhausted", "{d:?}");
    d.question_id.to_string()
}

async fn grants(env: &Env) -> usize {
    env.events_of(EventKind::ClaimGranted).await.len()
}

fn usage_cost(env: &Env) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["usage", "-o", "json"])).unwrap();
    v["total"]["cost"]["USD"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_reached_mid_workflow_stops_grants_asks_continues_when_raised_and_stops_when_told() {
    let mut env = Env::new(YML, &[("stepper.sh", STEPPER)]).await;
    env.up();
    let goal = env.forage("0");

    // 0.1 USD a run: the third run reaches 0.25 USD. Nothing else was running, so nothing more
    // is spent: the claim on the third step exists and is never granted.
    let question = open_budget_question(&env, 0).await;
    let steps = env.artifacts_of(StructuralType::Standard).await.into_iter().filter(|a| a.artifact_type == "Step");
    assert_eq!(steps.count(), 3);
    assert_eq!(usage_cost(&env), "0.3");
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "-o", "json"])).unwrap();
    let pause = &status["pauses"][0];
    assert_eq!((pause["operator"].as_str(), pause["goal_id"].as_str()), (Some("budget"), Some(&*goal.to_string())));
    let reason = pause["reason"].as_str().unwrap();
    assert!(reason.contains("the workflow budget was reached: 0.3 USD spent of 0.25 USD"), "{reason}");
    let listed: serde_json::Value = serde_json::from_str(&env.ok(&["questions", "-o", "json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!((listed[0]["id"].as_str(), listed[0]["kind"].as_str()), (Some(&*question), Some("budget")));
    let addr = env.addr_of("orchestrator").await.expect("the orchestrator registered its address");
    let metrics = http_get(&addr, "/metrics").map(|(_, b)| b).unwrap_or_default();
    assert!(metrics.contains("sett_budgets_exhausted 1"), "{metrics}");
    assert!(metrics.contains("sett_budget_decisions_total{decision=\"exhausted\"} 1"), "{metrics}");
    assert_eq!(grants(&env).await, 3, "no grant after the budget was reached");

    // A raise that is not above what was spent is refused, naming why; nothing is written.
    let low = env.run(&["answer", &question, "--json", r#"{"decision": "continue", "cost": "0.3"}"#]);
    assert!(!low.status.success());
    assert!(text(&low.stderr).contains("raise it above the 0.3 USD already spent"), "{}", text(&low.stderr));

    // Continue with 0.45 USD: the workflow goes on, and the fifth run reaches it again.
    env.ok(&["answer", &question, "--json", r#"{"decision": "continue", "cost": "0.45"}"#]);
    let second = open_budget_question(&env, 2).await;
    assert_ne!(second, question);
    assert_eq!(usage_cost(&env), "0.5");
    assert_eq!(grants(&env).await, 5);

    // Stop: the workflow is cancelled by the person who answered.
    env.ok(&["answer", &second, "--json", r#"{"decision": "stop"}"#]);
    let c = the_cancellation(&env).await;
    assert_eq!((c.goal_id, c.operator.as_str()), (goal, "test-operator"));
    assert_eq!(decisions(&env).await, raised_then_stopped());
    assert_eq!(grants(&env).await, 5, "nothing granted after the stop");
    assert!(env.artifacts_of(StructuralType::Terminal).await.is_empty());
    let resumed = env.events_of(EventKind::Resumed).await;
    assert_eq!(resumed.len(), 1, "{resumed:?}");

    // The ledger verifies; an edited decision record shows.
    let out = env.run(&["verify", "-o", "json"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let raised = env
        .events_of(EventKind::BudgetDecided)
        .await
        .into_iter()
        .find_map(|e| match e.data {
            EventData::BudgetDecided(d) if d.decision == "raised" => Some(d),
            _ => None,
        })
        .unwrap();
    let key = format!("sett:{{{}}}:actions", env.name);
    let record = env.redis_cli(&["HGET", &key, &raised.action_id]);
    assert!(record.contains("0.45 USD"), "{record}");
    env.redis_cli(&["HSET", &key, &raised.action_id, &record.trim().replace("0.45 USD", "45 USD")]);
    let out = env.run(&["verify", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["breach"]["record"].as_str().unwrap().contains("budget_decided action"), "{v:#}");
    assert!(v["breach"]["problem"].as_str().unwrap().contains("reason changed"), "{v:#}");
    env.redis_cli(&["HSET", &key, &raised.action_id, record.trim()]);
    assert!(env.run(&["verify"]).status.success());
    env.down();
}

/// `sett verify` passes, and every budget decision's action record is the one its event names:
/// kind, the workflow, who decided, why and when.
async fn verify_with_records(env: &Env) {
    let out = env.run(&["verify", "-o", "json"]);
    assert!(out.status.success(), "sett verify failed: {}\n{}", text(&out.stdout), text(&out.stderr));
    for e in env.events_of(EventKind::BudgetDecided).await {
        let EventData::BudgetDecided(d) = &e.data else { unreachable!() };
        let record = env.store.action(&d.action_id).await.unwrap().unwrap_or_else(|| panic!("no record of {d:?}"));
        assert_eq!(
            (record.kind.as_str(), record.target.clone(), &record.operator, &record.reason, record.at_ms),
            ("budget_decided", d.goal_id.to_string(), &d.operator, &d.reason, e.ts_ms),
            "{d:?}"
        );
    }
}

/// Waits until `path` exists: a tool's marker, written by its process.
async fn wait_file(env: &Env, path: &Path) {
    env.eventually(&format!("{} exists", path.display()), async || path.exists()).await;
}

/// Waits until exactly `n` claims are held by a pause: the engine tried to grant them and the
/// store refused.
async fn wait_held(env: &Env, n: usize) {
    env.eventually(&format!("{n} claims are held"), async || {
        let held = env.store.held_claims().await.unwrap();
        if held.len() == n { Ok(()) } else { Err(held) }
    })
    .await;
}

/// Waits until the orchestrator's metrics contain `line`.
async fn wait_metric(env: &Env, line: &str) {
    env.eventually(&format!("the metrics show {line:?}"), async || {
        let addr = env.addr_of("orchestrator").await?;
        http_get(&addr, "/metrics").ok().filter(|(_, body)| body.lines().any(|l| l == line))
    })
    .await;
}

/// An instance of `yml` with the stepper, running one workflow from step 0.
async fn stepping(yml: &str) -> (Env, ArtifactId) {
    let mut env = Env::new(yml, &[("stepper.sh", STEPPER)]).await;
    env.up();
    let goal = env.forage("0");
    (env, goal)
}

/// The workflow's cancellation, once it is in the ledger.
async fn the_cancellation(env: &Env) -> sett_core::event::WorkflowCancelled {
    let cancelled = env.wait_events(LIMIT, "the cancellation", 1, |e| e.kind() == EventKind::WorkflowCancelled).await;
    let EventData::WorkflowCancelled(c) = &cancelled[0].data else { unreachable!() };
    c.clone()
}

/// The ledger as `sett watch` shows it, for failure messages.
async fn ledger_lines(env: &Env) -> String {
    let lines: Vec<String> =
        env.events().await.iter().map(|e| format!("{} {}", e.ts_ms, sett_ops::feed::event_line(e))).collect();
    lines.join("\n")
}

/// The workflow of `goal` as the ledger tells it.
async fn workflow(env: &Env, goal: ArtifactId) -> Workflow {
    let mut w = Workflow::new(goal);
    for e in env.events().await {
        w.observe(&e);
    }
    w
}

fn budget_pauses(env: &Env) -> Vec<serde_json::Value> {
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "-o", "json"])).unwrap();
    status["pauses"].as_array().cloned().unwrap_or_default()
}

fn open_questions(env: &Env) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_str(&env.ok(&["questions", "-o", "json"])).unwrap();
    listed.as_array().unwrap().iter().map(|q| q["id"].as_str().unwrap().to_owned()).collect()
}

/// Kills the orchestrator (SIGKILL: no goodbye) and starts it again with `sett up` (which waits
/// until it is ready); the cubs run on.
async fn restart_orchestrator(env: &mut Env) {
    let pid = env.pid_of("orchestrator").await.expect("the orchestrator runs");
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(sett_runtime::wait_gone(pid, LIMIT), "the orchestrator {pid} did not die");
    env.up();
}

/// Parallel workers: each takes the goal (a `claim` bid, so all run at once), marks that it
/// started, waits for its release file and reports 0.1 USD.
const PART: &str = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
touch "$GATE/started-$SETT_AGENT"
while [ ! -e "$GATE/release-$SETT_AGENT" ]; do sleep 0.02; done
jq -n --arg a "$SETT_AGENT" '{artifact_type: "Part", artifact_payload: $a,
  usage: {model: "m", input_tokens: 10, output_tokens: 5, cost: {amount: "0.1", currency: "USD"}}}'
"#;

/// Checks each Part (no usage); nobody takes a Check.
const CHECK: &str = r#"#!/usr/bin/env bash
set -euo pipefail
p=$(jq -r '.target_artifact.payload')
jq -n --arg p "$p" '{artifact_type: "Check", artifact_payload: $p}'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn runs_in_parallel_when_the_budget_is_reached_finish_and_count_and_nothing_more_is_granted() {
    let gate = tempfile::tempdir().unwrap();
    let part = |name: &str| {
        format!(
            "  {name}:\n    command: [\"./part.sh\"]\n    bidding_strategy: {{type: claim, target_types: [\"GoalDefined\"]}}\n    environment: [\"GATE={}\"]\n",
            gate.path().display()
        )
    };
    let yml = format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s}}
agents:
{}{}{}  Checker:
    command: ["./check.sh"]
    bidding_strategy: {{type: exclusive, target_types: ["Part"]}}
budgets:
  workflow: {{cost: "0.1 USD"}}
  ask_timeout: 1h
"#,
        part("Alpha"),
        part("Beta"),
        part("Gamma")
    );
    let mut env = Env::new(&yml, &[("part.sh", PART), ("check.sh", CHECK)]).await;
    env.up();
    let goal = env.forage("three parts at once");
    for agent in ["Alpha", "Beta", "Gamma"] {
        wait_file(&env, &gate.path().join(format!("started-{agent}"))).await;
    }
    assert_eq!(grants(&env).await, 3, "the three parallel grants");

    // Alpha's 0.1 USD reaches the 0.1 USD budget while Beta and Gamma are still running.
    std::fs::write(gate.path().join("release-Alpha"), "").unwrap();
    let question = open_budget_question(&env, 0).await;
    let pauses = budget_pauses(&env);
    assert_eq!(pauses.len(), 1, "{pauses:#?}");
    let reason = pauses[0]["reason"].as_str().unwrap();
    assert!(reason.contains("the workflow budget was reached: 0.1 USD spent of 0.1 USD"), "{reason}");

    // Both finish after it was reached: their outputs are kept and counted, and what they lead
    // to is bid on but held, never granted.
    std::fs::write(gate.path().join("release-Beta"), "").unwrap();
    std::fs::write(gate.path().join("release-Gamma"), "").unwrap();
    wait_held(&env, 3).await;
    let parts = env.artifacts().await.into_iter().filter(|a| a.artifact_type == "Part").count();
    assert_eq!(parts, 3);
    assert_eq!(grants(&env).await, 3, "a grant after the budget was reached:\n{}", ledger_lines(&env).await);
    // The documented bound, exactly: spent = the limit's 0.1 reached by Alpha + the two runs
    // that were running then, and not a cent more.
    assert_eq!(usage_cost(&env), "0.3");
    // Every grant of the workflow precedes the pause; the budget was asked about once.
    let events = env.events().await;
    let paused_at = events.iter().position(|e| e.kind() == EventKind::Paused).expect("the budget's pause");
    let last_grant = events.iter().rposition(|e| e.kind() == EventKind::ClaimGranted).unwrap();
    assert!(last_grant < paused_at, "a grant after the pause:\n{}", ledger_lines(&env).await);
    assert_eq!(decisions(&env).await, [("exhausted".to_owned(), "budget".to_owned())]);
    assert_eq!(open_questions(&env), std::slice::from_ref(&question));
    wait_metric(&env, "sett_budgets_exhausted 1").await;

    // Continue with 0.35 USD: the held claims are granted, the Checks (no usage) are done.
    env.ok(&["answer", &question, "--json", r#"{"decision": "continue", "cost": "0.35"}"#]);
    env.wait_for(LIMIT, "three Checks", |a| a.iter().filter(|x| x.artifact_type == "Check").count() == 3).await;
    assert_eq!(grants(&env).await, 6);
    assert!(budget_pauses(&env).is_empty());
    assert_eq!(
        decisions(&env).await,
        [("exhausted".to_owned(), "budget".to_owned()), ("raised".to_owned(), "test-operator".to_owned())]
    );
    assert_eq!(usage_cost(&env), "0.3");
    assert!(workflow(&env, goal).await.outcome().is_none());
    verify_with_records(&env).await;
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_exhausted_stop_ends_the_workflow_at_once_without_asking() {
    let (mut env, goal) = stepping(&YML.replace("on_exhausted: ask", "on_exhausted: stop")).await;
    let c = the_cancellation(&env).await;
    assert_eq!((c.goal_id, c.operator.as_str()), (goal, "budget"));
    let why = c.reason.clone().unwrap_or_default();
    assert!(
        why.contains("the workflow budget was reached: 0.3 USD spent of 0.25 USD; stopped (on_exhausted: stop)"),
        "{why}"
    );
    // The outcome is recorded: the workflow was cancelled by the budget, with that reason.
    match workflow(&env, goal).await.outcome() {
        Some(Outcome::Cancelled { operator, reason }) => {
            assert_eq!((operator.as_str(), reason.as_deref()), ("budget", Some(why.as_str())));
        }
        other => panic!("the workflow's outcome is {other:?}"),
    }
    // Nothing asked, nothing paused, nothing granted after the third run.
    assert_eq!(decisions(&env).await, [("stopped".to_owned(), "budget".to_owned())]);
    assert!(open_questions(&env).is_empty());
    assert!(env.artifacts_of(StructuralType::Question).await.is_empty());
    assert!(budget_pauses(&env).is_empty());
    assert_eq!(grants(&env).await, 3);
    assert_eq!(usage_cost(&env), "0.3");
    for c in env.claims().await {
        assert!(c.status.is_final(), "claim {} left {}", c.id, c.status);
    }
    verify_with_records(&env).await;
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_budget_question_times_out_into_stop() {
    let (mut env, goal) = stepping(&YML.replace("ask_timeout: 1h", "ask_timeout: 1s\n  on_timeout: stop")).await;
    let question = open_budget_question(&env, 0).await;
    let c = the_cancellation(&env).await;
    assert_eq!((c.goal_id, c.operator.as_str()), (goal, "orchestrator"));
    assert_eq!(c.reason.as_deref(), Some("nobody answered in time; stopped (on_timeout: stop)"));
    // The question was answered by Sett itself, marked timed out.
    let answered = env.events_of(EventKind::QuestionAnswered).await;
    let [EventData::QuestionAnswered(a)] = &answered.iter().map(|e| e.data.clone()).collect::<Vec<_>>()[..] else {
        panic!("{answered:?}")
    };
    assert_eq!((a.question_id.to_string(), a.timed_out), (question, true));
    assert_eq!(
        decisions(&env).await,
        [("exhausted".to_owned(), "budget".to_owned()), ("stopped".to_owned(), "orchestrator".to_owned())]
    );
    assert!(matches!(workflow(&env, goal).await.outcome(), Some(Outcome::Cancelled { .. })));
    assert!(open_questions(&env).is_empty());
    assert_eq!(grants(&env).await, 3);
    wait_metric(&env, "sett_budgets_exhausted 0").await;
    verify_with_records(&env).await;
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_budget_question_times_out_into_pause_and_a_resume_lets_it_be_reached_again() {
    let (mut env, goal) = stepping(&YML.replace("ask_timeout: 1h", "ask_timeout: 1s\n  on_timeout: pause")).await;
    open_budget_question(&env, 0).await;
    let left = env.wait_events(LIMIT, "left paused", 2, |e| e.kind() == EventKind::BudgetDecided).await;
    let EventData::BudgetDecided(d) = &left[1].data else { unreachable!() };
    assert_eq!((d.decision.as_str(), d.operator.as_str()), ("left_paused", "orchestrator"));
    // It stays paused for an operator; the question is closed; the step is held, not granted.
    assert_eq!(budget_pauses(&env).len(), 1);
    assert!(open_questions(&env).is_empty());
    wait_held(&env, 1).await;
    assert_eq!(grants(&env).await, 3);

    // The operator resumes it as it is: the next run with usage reaches the budget again, which
    // pauses it and asks again (a new question), and nobody answers that one either.
    env.ok(&["resume", &goal.to_string(), "--reason", "one more step"]);
    let again = open_budget_question(&env, 2).await;
    assert_ne!(again, d.question_id.to_string());
    env.wait_events(LIMIT, "left paused again", 4, |e| e.kind() == EventKind::BudgetDecided).await;
    assert_eq!(grants(&env).await, 4, "one run after the resume");
    assert_eq!(usage_cost(&env), "0.4");
    let pauses = budget_pauses(&env);
    assert_eq!(pauses.len(), 1, "{pauses:#?}");
    let reason = pauses[0]["reason"].as_str().unwrap();
    assert!(reason.contains("0.4 USD spent of 0.25 USD"), "{reason}");
    let names: Vec<String> = decisions(&env).await.into_iter().map(|(d, _)| d).collect();
    assert_eq!(names, ["exhausted", "left_paused", "exhausted", "left_paused"]);
    assert!(workflow(&env, goal).await.outcome().is_none());
    verify_with_records(&env).await;
    env.ok(&["cancel", &goal.to_string(), "--reason", "too expensive"]);
    verify_with_records(&env).await;
    env.down();
}

/// The stepper of [`STEPPER`], which first marks each run's step as started and waits while a
/// `hold-<step>` file asks it to, until `release-<step>` exists.
const GATED_STEPPER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
n=$(jq -r '.target_artifact.payload')
touch "$GATE/started-$n"
if [ -e "$GATE/hold-$n" ]; then
  while [ ! -e "$GATE/release-$n" ]; do sleep 0.02; done
fi
jq -n --arg p "$((n + 1))" '{artifact_type: "Step", artifact_payload: $p,
  usage: {model: "m", input_tokens: 60, output_tokens: 40, cost: {amount: "0.1", currency: "USD"}}}'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_budget_watch_recovers_across_orchestrator_restarts_without_granting_or_asking_twice() {
    let gate = tempfile::tempdir().unwrap();
    let yml = YML.replace(
        "bid_on_own_output: true",
        &format!("bid_on_own_output: true\n    environment: [\"GATE={}\"]", gate.path().display()),
    );
    let mut env = Env::new(&yml, &[("stepper.sh", GATED_STEPPER)]).await;
    env.up();
    for n in [2, 4] {
        std::fs::write(gate.path().join(format!("hold-{n}")), "").unwrap();
    }
    let goal = env.forage("0");

    // The third run reaches the budget while the orchestrator is down: started again, it knows
    // what was spent before it judges that output, so the next step is held, never granted.
    wait_file(&env, &gate.path().join("started-2")).await;
    let pid = env.pid_of("orchestrator").await.expect("the orchestrator runs");
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(sett_runtime::wait_gone(pid, LIMIT));
    std::fs::write(gate.path().join("release-2"), "").unwrap();
    env.wait_for(LIMIT, "step 3, written while the orchestrator is down", |a| a.iter().any(|x| x.payload == "3")).await;
    env.up();
    let question = open_budget_question(&env, 0).await;
    wait_held(&env, 1).await;
    assert_eq!(grants(&env).await, 3, "a grant after the budget was reached:\n{}", ledger_lines(&env).await);

    // Killed again while the question waits: the watch rebuilds it from the ledger, asks
    // nothing new, and the workflow stays paused.
    restart_orchestrator(&mut env).await;
    wait_metric(&env, "sett_budgets_exhausted 1").await;
    assert_eq!(open_questions(&env), std::slice::from_ref(&question));
    assert_eq!(budget_pauses(&env).len(), 1);
    wait_held(&env, 1).await;
    assert_eq!(grants(&env).await, 3);

    // Continue with 0.45 USD: it goes on. Killed again while the fourth step runs (0.4 spent, below
    // the raised budget): started again, it does not take the old budget for reached.
    env.ok(&["answer", &question, "--json", r#"{"decision": "continue", "cost": "0.45"}"#]);
    wait_file(&env, &gate.path().join("started-4")).await;
    restart_orchestrator(&mut env).await;
    wait_metric(&env, "sett_budgets_exhausted 0").await;
    std::fs::write(gate.path().join("release-4"), "").unwrap();
    let second = open_budget_question(&env, 2).await;
    assert_ne!(second, question);
    let events = env.events_of(EventKind::BudgetDecided).await;
    let EventData::BudgetDecided(d) = &events[2].data else { unreachable!() };
    let reason = d.reason.clone().unwrap_or_default();
    assert!(reason.contains("the workflow budget was reached: 0.5 USD spent of 0.45 USD"), "{reason}");
    wait_held(&env, 1).await;
    assert_eq!(grants(&env).await, 5);
    assert_eq!(usage_cost(&env), "0.5");

    // And "stop" still ends it after all that.
    env.ok(&["answer", &second, "--json", r#"{"decision": "stop"}"#]);
    the_cancellation(&env).await;
    assert_eq!(decisions(&env).await, raised_then_stopped());
    assert!(matches!(workflow(&env, goal).await.outcome(), Some(Outcome::Cancelled { .. })));
    assert_eq!(grants(&env).await, 5);
    verify_with_records(&env).await;
    env.down();
}
