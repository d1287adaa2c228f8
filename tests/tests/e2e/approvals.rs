//! Approval gates end to end (`agents.<name>.approval`): the gated agent's tool writes a marker
//! file when it runs; the file does not exist until a person approves (no grant event exists
//! either), then does; a rejection ends the claim with a Failure naming the approver and the
//! reason and the tool never runs; a timed-out approval follows `on_timeout`; `sett verify`
//! accepts the gated grants and reports a break when an approval record's bound hash is edited.

use std::time::Duration;

use sett_core::event::{EventData, EventKind};
use sett_core::{ClaimStatus, StructuralType};
use sett_e2e::{Env, text};

const MINUTE: Duration = Duration::from_secs(60);

/// Writes `deployed.marker` (its stdin) when it runs: the proof that the tool started.
pub(crate) const DEPLOYER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
printf '%s' "$input" > deployed.marker
jq -n '{structural_type: "Terminal", artifact_type: "Deployed", artifact_payload: "deployed"}'
"#;

fn gated_yml(approval: &str) -> String {
    format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s}}
agents:
  Deployer:
    command: ["./deploy.sh"]
    bidding_strategy: exclusive
    approval: {approval}
"#
    )
}

pub(crate) async fn gated_env(approval: &str) -> Env {
    Env::new(&gated_yml(approval), &[("deploy.sh", DEPLOYER)]).await
}

/// Waits for the approval to be listed by `sett questions`; returns its listing.
pub(crate) fn wait_for_approval(env: &Env) -> serde_json::Value {
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    listed.as_array().and_then(|a| a.first()).cloned().expect("an open approval")
}

pub(crate) fn marker_exists(env: &Env) -> bool {
    env.path().join("deployed.marker").exists()
}

fn verify(env: &Env) -> (i32, serde_json::Value) {
    let out = env.run(&["verify", "-o", "json"]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}\n{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_runs_before_the_approval_and_the_grant_binds_the_hash_shown() {
    let mut env = gated_env("{timeout: 1h}").await;
    env.up();
    let goal = env.forage("Deploy v2 to production");
    let approval = wait_for_approval(&env);
    assert_eq!(approval["kind"], "approval", "{approval:#}");
    assert_eq!(approval["agent"], "Deployer");
    let shown = &approval["approval"];
    assert_eq!(shown["claim_type"], "exclusive");
    assert_eq!(shown["target"]["id"], goal.to_string());
    assert_eq!(shown["target"]["type"], "GoalDefined");
    assert!(shown["payload_excerpt"].as_str().unwrap().contains("Deploy v2"), "{shown:#}");
    let target_hash = shown["target"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(target_hash.len(), 64, "{shown:#}");
    // The table shows the same.
    let table = env.ok(&["questions"]);
    assert!(table.contains("APPROVAL") && table.contains(&target_hash), "{table}");

    // Held back: no grant, the tool has not run, the claim waits.
    assert!(!marker_exists(&env), "the tool ran before the approval");
    assert!(env.events_of(EventKind::ClaimGranted).await.is_empty());
    let claim = env.claims().await.into_iter().find(|c| c.artifact_id == goal).unwrap();
    assert_eq!(claim.status, ClaimStatus::PendingAnswer);

    // `sett approve` on a plain id: the decision is recorded with its reason.
    let qid = approval["id"].as_str().unwrap().to_owned();
    let out =
        env.ok(&["approve", approval["short_id"].as_str().unwrap(), "--reason", "change window open", "-o", "json"]);
    let decided: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["approval_id"], qid.as_str());
    env.wait_terminals(1, MINUTE).await;
    assert!(marker_exists(&env), "the approved tool ran");

    // The ledger: one grant, naming the approval; the answer binds the target's hash.
    let grants = env.events_of(EventKind::ClaimGranted).await;
    assert_eq!(grants.len(), 1);
    let EventData::ClaimGranted(g) = &grants[0].data else { unreachable!() };
    assert_eq!(g.approval.map(|q| q.to_string()), Some(qid.clone()));
    let answered = env.events_of(EventKind::QuestionAnswered).await;
    let EventData::QuestionAnswered(a) = &answered[0].data else { unreachable!() };
    assert_eq!(a.target_hash.as_deref(), Some(target_hash.as_str()));
    assert_eq!(a.answered_by, "test-operator");
    // A second decision is refused, saying who decided.
    let again = env.run(&["reject", &qid, "--reason", "too late"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already answered by test-operator"), "{}", text(&again.stderr));
    env.down();

    let (code, v) = verify(&env);
    assert_eq!(code, 0, "{v:#}");
    // Tampering: the approval record's bound hash edited in Redis.
    let key = format!("sett:{{{}}}:questions:answers", env.name);
    let record = env.redis_cli(&["HGET", &key, &qid]);
    let edited = record.trim().replace(&target_hash, &"0".repeat(64));
    assert_ne!(edited, record.trim());
    env.redis_cli(&["HSET", &key, &qid, &edited]);
    let (code, v) = verify(&env);
    assert_eq!(code, 1, "{v:#}");
    assert!(v["breach"]["record"].as_str().unwrap().contains(&qid), "{v:#}");
    assert!(v["breach"]["problem"].as_str().unwrap().contains("target_hash"), "{v:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_ends_the_claim_naming_who_and_why_and_the_tool_never_runs() {
    let mut env = gated_env("{}").await;
    env.up();
    let goal = env.forage("Drop the production database");
    let approval = wait_for_approval(&env);
    let qid = approval["id"].as_str().unwrap().to_owned();
    // A rejection must say why; nothing is written without a reason.
    let bare = env.run(&["reject", &qid, "--reason", " "]);
    assert_eq!(bare.status.code(), Some(2), "{}", text(&bare.stderr));
    assert!(text(&bare.stderr).contains("--reason"), "{}", text(&bare.stderr));
    // `sett answer` with the approval's form works too.
    env.ok(&["answer", &qid, "--json", r#"{"decision": "reject", "reason": "not on a Friday"}"#]);
    let artifacts = env
        .wait_for(MINUTE, "an ApprovalRejected failure", |a| a.iter().any(|x| x.artifact_type == "ApprovalRejected"))
        .await;
    let failure = artifacts.iter().find(|a| a.artifact_type == "ApprovalRejected").unwrap();
    assert_eq!(failure.structural_type, StructuralType::Failure);
    let summary = failure.summary.as_deref().unwrap_or_default();
    assert!(summary.contains("test-operator") && summary.contains("not on a Friday"), "{summary}");
    let claim = env.claims().await.into_iter().find(|c| c.artifact_id == goal).unwrap();
    assert_eq!(claim.status, ClaimStatus::Terminated);
    assert!(env.events_of(EventKind::ClaimGranted).await.is_empty(), "nothing was granted");
    assert!(!marker_exists(&env), "the rejected tool never ran");
    env.down();
    assert_eq!(verify(&env).0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_approval_follows_on_timeout() {
    // Default: reject.
    let mut env = gated_env("{timeout: 2s}").await;
    env.up();
    env.forage("Nobody is around");
    let artifacts = env
        .wait_for(MINUTE, "an ApprovalTimedOut failure", |a| a.iter().any(|x| x.artifact_type == "ApprovalTimedOut"))
        .await;
    assert!(artifacts.iter().any(|a| a.structural_type == StructuralType::Failure));
    let timed_out = env.events_of(EventKind::QuestionTimedOut).await;
    assert!(matches!(&timed_out[0].data, EventData::QuestionTimedOut(t) if t.policy.as_str() == "reject"));
    assert!(!marker_exists(&env));
    env.down();

    // on_timeout: approve grants it.
    let mut env = gated_env("{timeout: 2s, on_timeout: approve}").await;
    env.up();
    env.forage("Ship it unless someone objects");
    env.wait_terminals(1, MINUTE).await;
    assert!(marker_exists(&env));
    let grants = env.events_of(EventKind::ClaimGranted).await;
    assert!(matches!(&grants[0].data, EventData::ClaimGranted(g) if g.approval.is_some()));
    env.down();
    assert_eq!(verify(&env).0, 0, "a grant approved on timeout verifies");
}
