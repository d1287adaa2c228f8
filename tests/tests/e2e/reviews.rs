//! Human reviewers end to end (`humans.reviewers`): a Draft's review phase waits for a person;
//! only the reviewers (a person, or a member of a `sett.yml` group) may decide; "request
//! changes" with a comment drives exactly one rework (the reworking agent is given the comment),
//! the reworked Draft is reviewed again and approving it moves on to the next phase; each
//! decision is a Review artifact produced by `human:<name>`; `sett verify` accepts the run and
//! reports a break when a human review is edited in Redis.

use std::time::Duration;

use sett_core::event::{EventData, EventKind};
use sett_core::{ClaimType, StructuralType};
use sett_e2e::{Env, text};

use crate::ledger::verify;

const MINUTE: Duration = Duration::from_secs(60);

/// A Writer that drafts, a Publisher that publishes a Draft, and `reviewers` for Drafts.
pub(crate) fn reviewed_yml(reviewers: &str) -> String {
    format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s, max_review_iterations: 3}}
humans:
  groups: {{legal: [carol]}}
  reviewers:
    - artifact_types: [Draft]
      reviewers: {reviewers}
agents:
  Writer:
    command: ["./writer.sh"]
    bidding_strategy: {{type: exclusive, target_types: ["GoalDefined"]}}
  Publisher:
    command: ["./publisher.sh"]
    bidding_strategy: {{type: exclusive, target_types: ["Draft"]}}
"#
    )
}

/// Writes a Draft; on a rework, keeps what it was given (`rework.stdin`) and writes version 2.
pub(crate) const WRITER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
if [ "$(jq -r .claim_type <<<"$input")" = rework ]; then
  printf '%s' "$input" > rework.stdin
  jq -n '{artifact_type: "Draft", artifact_payload: "draft v2, clause 4 cited"}'
else
  jq -n '{artifact_type: "Draft", artifact_payload: "draft v1"}'
fi
"#;

pub(crate) const PUBLISHER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
jq -n '{structural_type: "Terminal", artifact_type: "Published", artifact_payload: "published"}'
"#;

/// Waits for an open question; returns the first listed.
pub(crate) fn wait_for_review(env: &Env) -> serde_json::Value {
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    listed.as_array().and_then(|a| a.first()).cloned().expect("an open review")
}

/// `sett answer <args>` as `who`.
fn answer_as(env: &Env, who: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["answer"];
    all.extend_from_slice(args);
    env.sett(&all).env("SETT_OPERATOR", who).output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn requesting_changes_drives_one_rework_and_approving_moves_on() {
    let yml = reviewed_yml(r#"[alice, "group:legal"]"#);
    let mut env = Env::new(&yml, &[("writer.sh", WRITER), ("publisher.sh", PUBLISHER)]).await;
    env.up();
    env.forage("Draft the supplier contract");

    let first = wait_for_review(&env);
    assert_eq!(first["kind"], "review", "{first:#}");
    assert_eq!(first["to"], serde_json::json!(["alice", "group:legal"]));
    assert_eq!(first["review"]["target"]["type"], "Draft");
    assert_eq!(first["review"]["target"]["hash"].as_str().unwrap().len(), 64, "{first:#}");
    let qid = first["id"].as_str().unwrap().to_owned();
    assert!(env.ok(&["questions"]).contains("REVIEW"), "the table says what it is");
    let mine: serde_json::Value = serde_json::from_slice(
        &env.sett(&["questions", "--mine", "-o", "json"]).env("SETT_OPERATOR", "alice").output().unwrap().stdout,
    )
    .unwrap();
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "addressed to alice: {mine:#}");
    // The Publisher has not run: the review phase comes first and waits.
    assert!(env.artifacts_of(StructuralType::Terminal).await.is_empty());

    // bob is no reviewer; a request for changes without a comment is refused; nothing written.
    let out = answer_as(&env, "bob", &[&qid, "approve"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("bob is not one of them"), "{}", text(&out.stderr));
    let out = answer_as(&env, "alice", &[&qid, "changes"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("comments"), "{}", text(&out.stderr));
    assert!(env.artifacts_of(StructuralType::Answer).await.is_empty());

    let out = answer_as(&env, "alice", &[&qid, "changes", "--comment", "cite clause 4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The rework's Draft is reviewed again; carol (group legal) approves it with the form.
    let second = wait_for_review(&env);
    let second_id = second["id"].as_str().unwrap().to_owned();
    assert_ne!(second_id, qid);
    assert_eq!(second["review"]["target"]["type"], "Draft");
    let given = std::fs::read_to_string(env.path().join("rework.stdin")).expect("the Writer reworked");
    assert!(given.contains("cite clause 4") && given.contains("human:alice"), "{given}");
    let out = answer_as(&env, "carol", &[&second_id, "--json", r#"{"decision": "approve"}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let artifacts = env.wait_terminals(1, MINUTE).await;
    assert!(artifacts.iter().any(|a| a.structural_type == StructuralType::Terminal && a.payload == "published"));
    let claims = env.claims().await;
    assert_eq!(claims.iter().filter(|c| c.rework_of.is_some()).count(), 1, "exactly one rework");
    let reworks = env
        .events_of(EventKind::ClaimGranted)
        .await
        .into_iter()
        .filter(|e| matches!(&e.data, EventData::ClaimGranted(g) if g.claim_type == ClaimType::Rework))
        .count();
    assert_eq!(reworks, 1);
    let mut reviews = env.artifacts_of(StructuralType::Review).await;
    reviews.sort_by_key(|r| r.created_at_ms);
    let by: Vec<(&str, bool)> = reviews.iter().map(|r| (r.produced_by_role.as_str(), r.is_approval())).collect();
    assert_eq!(by, vec![("human:alice", false), ("human:carol", true)]);
    assert!(reviews[0].payload.contains("cite clause 4"));
    let drafts: Vec<u32> = env
        .artifacts()
        .await
        .iter()
        .filter(|a| a.artifact_type == "Draft")
        .map(|a| a.version)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(drafts, vec![1, 2]);
    env.down();

    // The ledger binds each human review: who decided and what.
    assert_eq!(verify(&env, &[]).0, 0);
    let key = format!("sett:{{{}}}:artifact:{}", env.name, reviews[0].id);
    env.redis_cli(&["HSET", &key, "produced_by_role", "human:mallory"]);
    let (code, report) = verify(&env, &[]);
    assert_eq!(code, 1, "an edited reviewer is a break: {report:#}");
    env.redis_cli(&["HSET", &key, "produced_by_role", "human:alice"]);
    env.redis_cli(&["HSET", &key, "payload", "{}"]);
    assert_eq!(verify(&env, &[]).0, 1, "a request for changes edited into an approval is a break");
    env.redis_cli(&["HSET", &key, "payload", &reviews[0].payload]);
    assert_eq!(verify(&env, &[]).0, 0);
}
