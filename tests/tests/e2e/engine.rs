//! The workflow engine end to end: init → up → forage → Terminal, the demo team's review,
//! rework, phases and worker under the real binaries, tool failures. The engine's paths on
//! their own (bid deadline, rework limit, controller queue, outbox, sweep, deadlines) are
//! tested in process: crates/sett-orchestrator/tests/engine.

use std::time::Duration;

use sett_core::event::EventKind;
use sett_core::{ClaimStatus, StructuralType};
use sett_e2e::{Env, summary, text};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn init_up_forage_reaches_terminal_and_the_trail_is_complete() {
    let mut env = Env::new("placeholder: true\n", &[]).await;
    env.ok(&["init", "--force"]);
    assert!(env.path().join("agents/scribe/run.sh").exists());
    env.up();
    let out = env.ok(&["forage", "--goal", "Write down our first goal", "--watch", "--timeout", "60s"]);
    assert!(!out.is_empty());
    let artifacts = env.wait_terminals(1, MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.produced_by_role, "Scribe");
    // The tool's commit is real.
    let log = std::process::Command::new("git").args(["log", "--format=%H"]).current_dir(env.path()).output().unwrap();
    assert!(text(&log.stdout).contains(terminal.payload.trim()), "{}", terminal.payload);

    // hoard shows both artifacts; the trail has every step in order.
    let hoard: serde_json::Value = serde_json::from_str(&env.ok(&["hoard", "-o", "json"])).unwrap();
    assert_eq!(hoard.as_array().map(Vec::len), Some(2), "{hoard}");
    let trail = env.ok(&["watch", "--since", "1h", "--exit-on-completion", "-o", "jsonl", "--timeout", "10s"]);
    let lines: Vec<serde_json::Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<String> = lines.iter().map(|l| l["kind"].as_str().unwrap_or("").to_owned()).collect();
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap_or_else(|| panic!("{k} missing from {kinds:?}"));
    assert!(pos("artifact_created") < pos("claim_created"));
    assert!(pos("claim_created") < pos("claim_granted"));
    assert!(pos("claim_granted") < pos("claim_completed"));
    // The Scribe's bid comes before the grant: its cub's own `bid_submitted` (made from the
    // artifact's event, so possibly before the claim is created), or the standing bid its live
    // cub offers, listed by `claim_created` (design.md §5).
    let standing = &lines[pos("claim_created")]["data"]["standing_bids"]["Scribe"];
    if standing.is_null() {
        assert!(pos("artifact_created") < pos("bid_submitted"));
        assert!(pos("bid_submitted") < pos("claim_granted"));
    } else {
        assert_eq!(standing, "exclusive", "{trail}");
    }
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn rejection_rework_approval_parallel_exclusive_terminal() {
    let mut env = Env::examples(false).await;
    env.up();
    let out = env.run(&["forage", "--goal", "Build a to-do service", "--watch", "--timeout", "90s"]);
    assert!(out.status.success(), "{}\n{}\n{}", text(&out.stdout), text(&out.stderr), env.logs());
    let artifacts = env.wait_terminals(1, MINUTE).await;
    let commits: Vec<_> = artifacts.iter().filter(|a| a.artifact_type == "CodeCommit").collect();
    assert_eq!(commits.len(), 2, "{:#?}", summary(&artifacts));
    assert_eq!(commits[0].logical_id, commits[1].logical_id, "the rework is a new version of the same thread");
    assert_eq!((commits[0].version, commits[1].version), (1, 2));
    let reviews: Vec<_> = artifacts.iter().filter(|a| a.structural_type == StructuralType::Review).collect();
    assert_eq!(reviews.len(), 2);
    assert!(!reviews[0].is_approval() && reviews[1].is_approval());
    assert!(artifacts.iter().any(|a| a.artifact_type == "CheckReport"), "the parallel phase ran");
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.produced_by_role, "Publisher");
    assert_eq!(terminal.source_artifacts, vec![commits[1].id]);

    // The rework claim went straight to the Writer with the rejecting review as context, and
    // the review reached the tool (it quotes the feedback in PLAN.md).
    let claims = env.claims().await;
    let rework = claims.iter().find(|c| c.rework_of.is_some()).expect("a rework claim");
    assert_eq!(rework.assigned_agent.as_ref().map(|a| a.as_str()), Some("Writer"));
    assert_eq!(rework.additional_context_ids, vec![reviews[0].id]);
    assert_eq!(rework.status, ClaimStatus::Complete);
    let plan = std::fs::read_to_string(env.path().join("PLAN.md")).unwrap();
    assert!(plan.contains("add a usage section"), "{plan}");
    let rejected = claims.iter().find(|c| c.artifact_id == commits[0].id).unwrap();
    assert_eq!(rejected.status, ClaimStatus::Terminated);
    assert!(rejected.termination_reason.as_deref().unwrap_or("").contains("rework"), "{rejected:?}");
    // The approved commit went through review → parallel → exclusive, the last one in a worker.
    let approved = claims.iter().find(|c| c.artifact_id == commits[1].id).unwrap();
    assert_eq!(approved.status, ClaimStatus::Complete);
    assert_eq!(approved.granted_review_agents.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["Reviewer"]);
    assert_eq!(approved.granted_parallel_agents.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["Checker"]);
    assert_eq!(approved.granted_exclusive_agent.as_ref().map(|a| a.as_str()), Some("Publisher"));
    assert_eq!(env.events_of(EventKind::WorkerLaunched).await.len(), 1);
    env.down();
    // The worker process is gone after down.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("execute-claim.*--instance {}", env.name)])
        .output()
        .unwrap();
    assert!(text(&ps.stdout).trim().is_empty(), "workers left after down: {}", text(&ps.stdout));
}

const FLAKY: &str = r#"#!/usr/bin/env bash
goal=$(jq -r .target_artifact.payload)
case "$goal" in
  exit) echo "something broke" >&2; exit 3 ;;
  json) echo "this is not json" ;;
  slow) sleep 30 ;;
esac
"#;

#[tokio::test(flavor = "multi_thread")]
async fn failing_tools_become_failure_artifacts_and_terminate_their_claims() {
    let yml = r#"
version: "1.0"
agents:
  Flaky:
    command: ["./flaky.sh"]
    bidding_strategy: exclusive
    timeout: 2s
"#;
    let mut env = Env::new(yml, &[("flaky.sh", FLAKY)]).await;
    env.up();
    for goal in ["exit", "json", "slow"] {
        let out = env.run(&["forage", "--goal", goal, "--watch", "--timeout", "30s"]);
        assert_eq!(out.status.code(), Some(1), "{goal}: {}\n{}", text(&out.stdout), text(&out.stderr));
    }
    let failures = env.artifacts_of(StructuralType::Failure).await;
    assert_eq!(failures.len(), 3, "{:#?}", summary(&failures));
    for f in &failures {
        assert_eq!(f.artifact_type, "ToolExecutionFailure");
        assert!(f.claim_id.is_some());
        let payload: serde_json::Value = serde_json::from_str(&f.payload).unwrap();
        for key in ["reason", "exit_code", "stdout_tail", "stderr_tail"] {
            assert!(payload.get(key).is_some(), "{key} missing from {payload}");
        }
    }
    assert!(failures.iter().any(|f| f.payload.contains("something broke")), "stderr tail is kept");
    for c in env.claims().await {
        assert_eq!(c.status, ClaimStatus::Terminated, "{c:?}");
    }
    env.down();
}
