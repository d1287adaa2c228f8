//! The Python agent SDK (sdk/python) under the real binaries: the Python demo team
//! (examples/agents-python) asks a question, resumes with the answer, goes through a review with
//! rework, bids with a bid script and finishes; a Python agent that raises ends its claim with
//! an `AgentError` Failure carrying the exception; an output's usage is recorded; a
//! structured question (options) resumes the agent with the chosen value.

use std::time::Duration;

use sett_core::event::{EventData, EventKind};
use sett_core::{BidType, ClaimStatus, StructuralType};
use sett_e2e::{Env, summary};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn python_agents_ask_resume_rework_and_finish() {
    let mut env = Env::python_examples(true).await;
    env.up();
    let goal = env.forage("Build a to-do service");

    // The Writer asks (a Question from sett.question()); the operator answers.
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let q = &listed.as_array().expect("a list")[0];
    assert_eq!(q["agent"], "Writer");
    assert_eq!(q["text"], "Which storage should the service use?");
    env.ok(&["answer", q["id"].as_str().unwrap(), "Use SQLite"]);

    let artifacts = env.wait_terminals(1, 2 * MINUTE).await;
    let question = artifacts.iter().find(|a| a.structural_type == StructuralType::Question).unwrap();
    assert_eq!((question.artifact_type.as_str(), question.produced_by_role.as_str()), ("Clarification", "Writer"));

    // Resumed with the answer, the Writer committed a plan using it; the Reviewer rejected v1
    // with JSON feedback (sett.request_changes) and approved the rework (sett.approve).
    let commits: Vec<_> = artifacts.iter().filter(|a| a.artifact_type == "CodeCommit").collect();
    assert_eq!(commits.len(), 2, "{:#?}", summary(&artifacts));
    assert_eq!(commits[0].logical_id, commits[1].logical_id, "the rework is a new version of the same thread");
    assert_eq!((commits[0].version, commits[1].version), (1, 2));
    assert_eq!(commits[0].source_artifacts, vec![goal]);
    let reviews: Vec<_> = artifacts.iter().filter(|a| a.structural_type == StructuralType::Review).collect();
    assert_eq!(reviews.len(), 2, "{:#?}", summary(&artifacts));
    assert_eq!(reviews[0].payload, r#"{"issue":"add a usage section"}"#);
    assert_eq!(reviews[0].summary.as_deref(), Some("needs a usage section"));
    assert!(!reviews[0].is_approval() && reviews[1].is_approval());
    let plan = std::fs::read_to_string(env.path().join("PLAN.md")).unwrap();
    assert!(plan.contains("Storage: Use SQLite"), "the resumed Writer used the answer:\n{plan}");
    assert!(plan.contains("reviewer asked: add a usage section"), "the rework got the feedback:\n{plan}");

    // The Checker's Python bid script bid `claim` on both commits, so the parallel phase ran.
    let check = artifacts.iter().find(|a| a.artifact_type == "CheckReport").expect("a CheckReport");
    assert!(check.payload.contains(&commits[1].payload) && check.payload.contains("PLAN.md"), "{}", check.payload);
    let checker_bids: Vec<BidType> = env
        .events_of(EventKind::BidSubmitted)
        .await
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::BidSubmitted(b) if b.agent.as_str() == "Checker" => Some(b.bid),
            _ => None,
        })
        .collect();
    assert!(checker_bids.contains(&BidType::Claim), "{checker_bids:?}");
    assert!(checker_bids.contains(&BidType::Ignore), "the goal is not a commit: {checker_bids:?}");

    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!((terminal.artifact_type.as_str(), terminal.produced_by_role.as_str()), ("Published", "Publisher"));
    assert_eq!(terminal.payload, commits[1].payload);
    assert_eq!(terminal.summary.as_deref(), Some(format!("published {}", &commits[1].payload[..8]).as_str()));

    let grants: Vec<(String, String)> = env
        .events_of(EventKind::ClaimGranted)
        .await
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::ClaimGranted(g) if g.agent.as_str() == "Writer" => {
                Some((g.agent.to_string(), g.claim_type.to_string()))
            }
            _ => None,
        })
        .collect();
    let writer_grants: Vec<&str> = grants.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(writer_grants, ["exclusive", "resume", "rework"]);
    env.ok(&["verify"]);
    env.down();
}

/// Ends the workflow with a Terminal reporting usage, unless the goal says "crash": then the
/// handler raises, deep in a helper.
const CRASHER: &str = r#"#!/usr/bin/env python3
import sett_agent as sett

def parse_port(text):
    return int(text)

def handle(task):
    if task.target.payload == "crash":
        print("about to parse")
        return sett.artifact("Port", parse_port("eighty"))
    return sett.terminal("Done", task.target.payload, summary="done").with_usage(
        model="test-model", input_tokens=120, output_tokens=30, cost="0.0015"
    )

sett.run(handle)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_python_agent_that_raises_ends_its_claim_with_the_exception() {
    let yml = r#"
version: "1.0"
orchestrator: {bid_timeout: 10s}
agents:
  Crasher:
    command: ["./crasher.py"]
    bidding_strategy: exclusive
    environment: ["PYTHONPATH"]
"#;
    let mut env = Env::new(yml, &[("crasher.py", CRASHER)]).await;
    env.use_python_sdk();
    env.up();
    let crash = env.forage("crash");
    let fine = env.forage("fine");
    let artifacts = env
        .wait_for(MINUTE, "a Failure and a Terminal", |a| {
            a.iter().any(|x| x.structural_type == StructuralType::Failure)
                && a.iter().any(|x| x.structural_type == StructuralType::Terminal)
        })
        .await;

    let failure = artifacts.iter().find(|a| a.structural_type == StructuralType::Failure).unwrap();
    assert_eq!(failure.artifact_type, "AgentError", "{:#?}", summary(&artifacts));
    assert_eq!(failure.produced_by_role, "Crasher");
    assert_eq!(
        failure.summary.as_deref(),
        Some("the agent raised ValueError: invalid literal for int() with base 10: 'eighty'")
    );
    let payload: serde_json::Value = serde_json::from_str(&failure.payload).unwrap();
    assert_eq!(payload["details"]["error_type"], "ValueError");
    let trace = payload["details"]["traceback"].as_str().unwrap();
    assert!(trace.contains("in parse_port") && trace.contains("return int(text)"), "{trace}");
    // The orchestrator ends both claims after the artifacts exist: wait for that.
    env.wait_events(MINUTE, "a claim completed and a claim terminated", 2, |e| {
        matches!(e.kind(), EventKind::ClaimCompleted | EventKind::ClaimTerminated)
    })
    .await;
    let claims = env.claims().await;
    let crashed = claims.iter().find(|c| c.artifact_id == crash).unwrap();
    assert_eq!(crashed.status, ClaimStatus::Terminated);
    assert!(crashed.termination_reason.as_deref().unwrap_or("").contains("AgentError"), "{crashed:?}");
    // The handler's print reached the cub's log (stderr), not the output.
    let logs = env.logs_all();
    assert!(logs.contains("about to parse"), "{}", env.logs());

    // An output's usage is recorded with its artifact, exactly.
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    let usage = terminal.usage.as_ref().expect("the Terminal's usage is recorded");
    assert_eq!(
        (usage.model.as_deref(), usage.input_tokens, usage.output_tokens),
        (Some("test-model"), Some(120), Some(30))
    );
    let cost = usage.cost.as_ref().unwrap();
    assert_eq!((cost.amount.to_string().as_str(), cost.currency.as_str()), ("0.0015", "USD"));
    assert_eq!(terminal.payload, "fine");
    assert_eq!(terminal.source_artifacts, vec![fine]);
    assert_eq!(claims.iter().find(|c| c.artifact_id == fine).unwrap().status, ClaimStatus::Complete);
    let hoard = env.ok(&["hoard", "-o", "json"]);
    assert!(hoard.contains("AgentError"), "{hoard}");
    env.down();
}

/// Asks for one of three storages (a structured question), then ends the workflow with the
/// answer's value and text.
const CHOOSER: &str = r#"#!/usr/bin/env python3
import json
import sett_agent as sett

def handle(task):
    answer = task.latest_answer
    if answer is None:
        return sett.question(
            "Which storage?", options=["SQLite", "Postgres", "Redis"], default="SQLite", artifact_type="StorageChoice"
        )
    return sett.terminal("Chosen", json.dumps({"value": answer.value, "text": answer.text}))

sett.run(handle)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_python_agent_asks_a_structured_question_and_resumes_with_its_value() {
    let yml = r#"
version: "1.0"
orchestrator: {bid_timeout: 10s}
agents:
  Chooser:
    command: ["./chooser.py"]
    bidding_strategy: exclusive
    environment: ["PYTHONPATH"]
"#;
    let mut env = Env::new(yml, &[("chooser.py", CHOOSER)]).await;
    env.use_python_sdk();
    env.up();
    env.forage("Pick a storage");
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let q = &listed.as_array().expect("a list")[0];
    let question = env.artifacts_of(StructuralType::Question).await.remove(0);
    assert_eq!(question.artifact_type, "StorageChoice");
    // Stored in the spec's canonical form (`multiple` spelled out).
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&question.payload).unwrap(),
        serde_json::json!({"question": "Which storage?", "options": ["SQLite", "Postgres", "Redis"], "multiple": false, "default": "SQLite"})
    );
    // The operator picks the second option by its number.
    env.ok(&["answer", q["id"].as_str().unwrap(), "2"]);
    let artifacts = env.wait_terminals(1, MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    let got: serde_json::Value = serde_json::from_str(&terminal.payload).unwrap();
    assert_eq!(got["value"], "Postgres", "{got}");
    env.down();
}
