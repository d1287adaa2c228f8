//! Budgets end to end (`budgets:` in sett.yml): a workflow whose agents report a cost step by
//! step reaches its budget mid-workflow; nothing more of it is granted (the run that reached it
//! was the only one running, so the overrun is none, as documented), a `kind: budget` question
//! asks, status and the metrics show it; "continue" with a raised budget resumes it, the raised
//! budget is reached again and "stop" ends the workflow. Every decision is a `budget_decided`
//! event `sett verify` checks, and an edited decision record is caught.

use std::process::Command;
use std::time::Duration;

use sett_core::StructuralType;
use sett_core::event::{EventData, EventKind};
use sett_e2e::{Env, http_get, text};

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

fn redis_cli(env: &Env, args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(["-u", &env.redis_url]).args(args).output().expect("redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

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
    let cancelled = env.wait_events(LIMIT, "the cancellation", 1, |e| e.kind() == EventKind::WorkflowCancelled).await;
    let EventData::WorkflowCancelled(c) = &cancelled[0].data else { unreachable!() };
    assert_eq!((c.goal_id, c.operator.as_str()), (goal, "test-operator"));
    assert_eq!(
        decisions(&env).await,
        [
            ("exhausted".to_owned(), "budget".to_owned()),
            ("raised".to_owned(), "test-operator".to_owned()),
            ("exhausted".to_owned(), "budget".to_owned()),
            ("stopped".to_owned(), "test-operator".to_owned()),
        ]
    );
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
    let record = redis_cli(&env, &["HGET", &key, &raised.action_id]);
    assert!(record.contains("0.45 USD"), "{record}");
    redis_cli(&env, &["HSET", &key, &raised.action_id, &record.trim().replace("0.45 USD", "45 USD")]);
    let out = env.run(&["verify", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["breach"]["record"].as_str().unwrap().contains("budget_decided action"), "{v:#}");
    assert!(v["breach"]["problem"].as_str().unwrap().contains("reason changed"), "{v:#}");
    redis_cli(&env, &["HSET", &key, &raised.action_id, record.trim()]);
    assert!(env.run(&["verify"]).status.success());
    env.down();
}
