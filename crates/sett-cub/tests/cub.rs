//! The cub against a real Redis: the orchestrator is simulated by writing claims and their
//! `claim_created` / `claim_granted` events directly, shaped exactly as the orchestrator writes
//! them; the cub runtime runs in-process; tools and bid scripts are bash scripts in a tempdir.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sett_core::claim::AnsweredQuestion;
use sett_core::event::{ClaimCreated, EventData, EventKind};
use sett_core::machine::new_claim;
use sett_core::tool::ToolInput;
use sett_core::{AgentName, Artifact, ArtifactId, BidType, ClaimStatus, ClaimType, StructuralType};
use sett_cub::{ExecutionOutcome, execute_announced_grant, execute_grant};
use sett_store::{GroupStart, new_artifact_id, new_claim_id, now_ms};
use support::*;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn static_bids_with_target_types_and_the_self_output_guard() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agents(
        "  Reviewer:\n    command: [x]\n    bidding_strategy: review\n\
         \x20 Coder:\n    command: [x]\n    bidding_strategy: {type: exclusive, target_types: [\"Goal*\"]}\n\
         \x20 Tester:\n    command: [x]\n    bidding_strategy: claim\n\
         \x20 Looper:\n    command: [x]\n    bidding_strategy: claim\n    bid_on_own_output: true\n",
    );
    let goal = new_goal(&store, "build it").await;
    let code = artifact(&store, StructuralType::Standard, "CodeCommit", "abc", "Tester", &[&goal]).await;
    let loop_out = artifact(&store, StructuralType::Standard, "Notes", "n", "Looper", &[]).await;
    let (c_goal, c_code, c_loop) =
        (create_claim(&store, &goal).await, create_claim(&store, &code).await, create_claim(&store, &loop_out).await);

    let cubs = start_all(&store, &cfg, dir.path());
    let expect = [
        (&c_goal, "Reviewer", BidType::Review),
        (&c_goal, "Coder", BidType::Exclusive),
        (&c_goal, "Tester", BidType::Claim),
        (&c_goal, "Looper", BidType::Claim),
        (&c_code, "Reviewer", BidType::Review),
        (&c_code, "Coder", BidType::Ignore),
        // Its own output: claim becomes ignore...
        (&c_code, "Tester", BidType::Ignore),
        (&c_code, "Looper", BidType::Claim),
        (&c_loop, "Tester", BidType::Claim),
        // ...unless bid_on_own_output is set.
        (&c_loop, "Looper", BidType::Claim),
    ];
    for (claim, agent, bid) in expect {
        assert_eq!(wait_for_bid(&store, claim, agent).await, bid, "{agent} on {}", claim.id);
    }
    // The claim_created event delivered again: no second bid.
    let again = EventData::ClaimCreated(ClaimCreated::new(&c_goal));
    store.append_event(&again, now_ms()).await.unwrap();
    for c in cubs {
        c.stop().await;
    }
    for c in [&c_goal, &c_code, &c_loop] {
        assert_eq!(events_of(&store, EventKind::BidSubmitted, c).await.len(), 4, "one bid per agent on {}", c.id);
        assert_eq!(store.bids(&c.id).await.unwrap().len(), 4);
    }
    // The cubs deregistered on their clean shutdown.
    assert!(store.components().await.unwrap().is_empty());
}

#[tokio::test]
async fn bid_scripts_decide_and_fall_back_to_the_static_strategy() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let smart = script(
        dir.path(),
        "smart.sh",
        r#"echo "deciding" >&2
t=$(jq -r .type); [ -n "$SETT_CLAIM_ID" ] || exit 9
if [ "$t" = "GoalDefined" ]; then echo exclusive; else echo review; fi"#,
    );
    let broken = script(dir.path(), "broken.sh", "echo oops >&2; exit 3");
    let chatty = script(dir.path(), "chatty.sh", "echo maybe");
    let cfg = agents(&format!(
        "  Smart:\n    command: [x]\n    bid_script: [\"{smart}\"]\n\
         \x20 Broken:\n    command: [x]\n    bid_script: [\"{broken}\"]\n    bidding_strategy: review\n\
         \x20 Chatty:\n    command: [x]\n    bid_script: [\"{chatty}\"]\n"
    ));
    let goal = new_goal(&store, "g").await;
    let other = artifact(&store, StructuralType::Standard, "Doc", "d", "user", &[]).await;
    let own = artifact(&store, StructuralType::Standard, "GoalDefined", "g2", "Smart", &[]).await;
    let (c_goal, c_other, c_own) =
        (create_claim(&store, &goal).await, create_claim(&store, &other).await, create_claim(&store, &own).await);

    let cubs = start_all(&store, &cfg, dir.path());
    assert_eq!(wait_for_bid(&store, &c_goal, "Smart").await, BidType::Exclusive);
    assert_eq!(wait_for_bid(&store, &c_other, "Smart").await, BidType::Review);
    // The script says exclusive, but the artifact is Smart's own output.
    assert_eq!(wait_for_bid(&store, &c_own, "Smart").await, BidType::Ignore);
    // A failing script falls back to the static strategy, or to ignore without one.
    assert_eq!(wait_for_bid(&store, &c_goal, "Broken").await, BidType::Review);
    assert_eq!(wait_for_bid(&store, &c_goal, "Chatty").await, BidType::Ignore);
    for c in cubs {
        c.stop().await;
    }
}

#[tokio::test]
async fn a_grant_runs_once_across_redelivery_and_restarts() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "tool.sh", OK_TOOL);
    let cfg = agents(&format!("  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n"));
    let coder = &cfg[&name("Coder")];
    let goal = new_goal(&store, "g").await;
    let claim = exclusive_grant(&store, &goal, "Coder", false).await;
    regrant_event(&store, &claim, "Coder").await;

    // A cub received every event and crashed before acknowledging any of them.
    let mut crashed = store.group_consumer("cub:Coder", "Coder", GroupStart::Beginning).await.unwrap();
    crashed.ensure_group().await.unwrap();
    let received = crashed.read(1000, Duration::from_millis(10)).await.unwrap();
    assert!(received.iter().any(|e| e.kind() == EventKind::ClaimGranted));

    // The restarted cub re-reads them from its pending list and runs the tool once.
    let cub = start(&store, settings(coder, dir.path()), Duration::from_secs(5));
    let out = wait_for_output(&store, &claim).await;
    assert_eq!(out.id, ArtifactId::derived(&claim.id, "output:1"));
    assert_eq!(
        (out.structural_type, out.artifact_type.as_str(), out.payload.as_str()),
        (StructuralType::Standard, "Code", "done")
    );
    assert_eq!(out.summary.as_deref(), Some("did it"));
    assert_eq!(out.produced_by_role, "Coder");
    assert_eq!(out.claim_id, Some(claim.id));
    assert_eq!(out.source_artifacts, vec![goal.id]);
    assert_eq!((out.logical_id, out.version), (out.id, 1));
    cub.stop().await;
    // Everything handled was acknowledged.
    crashed.reread_pending();
    assert!(crashed.read_pending(1000).await.unwrap().is_empty());

    // The grant is delivered once more to a restarted cub; a second claim proves it is working.
    regrant_event(&store, &claim, "Coder").await;
    let other = new_goal(&store, "g2").await;
    let other_claim = exclusive_grant(&store, &other, "Coder", false).await;
    let cub = start(&store, settings(coder, dir.path()), Duration::from_secs(5));
    wait_for_output(&store, &other_claim).await;
    cub.stop().await;
    assert_eq!(lines(&dir.path().join("runs")), 2, "one run per grant");
    assert_eq!(events_of(&store, EventKind::ArtifactCreated, &claim).await.len(), 1);
    // Executing the same grant directly is refused as well.
    let again =
        execute_grant(&store, &settings(coder, dir.path()), claim.id, 1, CancellationToken::new()).await.unwrap();
    assert!(matches!(again, ExecutionOutcome::Skipped { .. }), "{again:?}");
    crashed.quit().await;
}

#[tokio::test]
async fn an_announced_grant_runs_on_its_claims_artifact_whatever_the_event_named() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(
        dir.path(),
        "tool.sh",
        r#"cat > "$(dirname "$0")/stdin-$$.json"; echo '{"artifact_type":"Code","artifact_payload":"done"}'"#,
    );
    let cfg = agents(&format!("  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n"));
    let s = settings(&cfg[&name("Coder")], dir.path());
    let targets_read = |dir: &Path| -> Vec<ArtifactId> {
        let mut ids = Vec::new();
        for f in std::fs::read_dir(dir).unwrap().flatten() {
            if f.file_name().to_string_lossy().starts_with("stdin-") {
                let input: ToolInput = serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap();
                ids.push(input.target_artifact.id);
                std::fs::remove_file(f.path()).unwrap();
            }
        }
        ids
    };
    // The event's artifact, read with the claim, is the target.
    let goal = new_goal(&store, "g").await;
    let claim = exclusive_grant(&store, &goal, "Coder", false).await;
    let outcome =
        execute_announced_grant(&store, &s, claim.id, 1, goal.id, CancellationToken::new(), CancellationToken::new())
            .await
            .unwrap();
    assert!(matches!(outcome, ExecutionOutcome::Produced { .. }), "{outcome:?}");
    assert_eq!(targets_read(dir.path()), vec![goal.id]);
    // An event naming another artifact (which exists) or none that exists changes nothing: the
    // claim's own artifact is read instead.
    for named in [new_goal(&store, "other").await.id, new_artifact_id()] {
        let goal = new_goal(&store, "g").await;
        let claim = exclusive_grant(&store, &goal, "Coder", false).await;
        let outcome =
            execute_announced_grant(&store, &s, claim.id, 1, named, CancellationToken::new(), CancellationToken::new())
                .await
                .unwrap();
        assert!(matches!(outcome, ExecutionOutcome::Produced { .. }), "{outcome:?}");
        assert_eq!(targets_read(dir.path()), vec![goal.id]);
        assert_eq!(wait_for_output(&store, &claim).await.source_artifacts, vec![goal.id]);
    }
}

#[tokio::test]
async fn the_tool_receives_the_exact_stdin_contract_and_a_filtered_environment() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(
        dir.path(),
        "tool.sh",
        r#"d=$(dirname "$0"); cat > "$d/stdin.json"; env > "$d/env.txt"; pwd > "$d/pwd.txt"
echo '{"artifact_type":"Code","artifact_payload":{"files":2}}'"#,
    );
    let cfg = agents(&format!(
        "  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n    environment: [\"MODE=fast\"]\n"
    ));
    let coder = &cfg[&name("Coder")];
    let goal = new_goal(&store, "g").await;
    let design = artifact(&store, StructuralType::Standard, "Design", "d1", "Designer", &[&goal]).await;
    let mut design2 =
        Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Design", "d2", "Designer", now_ms());
    design2.logical_id = design.logical_id;
    design2.version = 2;
    design2.source_artifacts = vec![design.id];
    store_artifact(&store, &design2).await;
    let failure = artifact(&store, StructuralType::Failure, "ToolExecutionFailure", "{}", "Tester", &[&goal]).await;
    let target = artifact(&store, StructuralType::Standard, "CodeCommit", "c", "Builder", &[&design, &failure]).await;
    let review = artifact(&store, StructuralType::Review, "Review", r#"{"fix":"x"}"#, "Reviewer", &[&target]).await;
    let question = artifact(&store, StructuralType::Question, "Question", "which?", "Coder", &[&target]).await;
    let mut answer =
        Artifact::new_root(new_artifact_id(), StructuralType::Answer, "Answer", "that one", "human:op", now_ms());
    answer.source_artifacts = vec![question.id];
    store_artifact(&store, &answer).await;
    let other_q = artifact(&store, StructuralType::Question, "Question", "mine", "Tester", &[&target]).await;

    let mut claim = create_claim(&store, &target).await;
    claim.additional_context_ids = vec![review.id];
    claim.answered_questions = vec![
        AnsweredQuestion { agent: name("Tester"), question: other_q.id, answer: answer.id },
        AnsweredQuestion { agent: name("Coder"), question: question.id, answer: answer.id },
    ];
    let claim = grant(&store, &claim, ClaimStatus::PendingExclusive, "Coder", ClaimType::Resume, false).await;
    let mut s = settings(coder, dir.path());
    s.redis_url = Some("redis://:secret@localhost:1".into());
    let cub = start(&store, s, Duration::from_secs(5));
    let out = wait_for_output(&store, &claim).await;
    cub.stop().await;
    assert_eq!(out.payload, r#"{"files":2}"#);
    // A resume outside a rework starts a new thread.
    assert_eq!((out.logical_id, out.version), (out.id, 1));

    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("stdin.json")).unwrap()).unwrap();
    let keys: Vec<&str> = raw.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    let input: ToolInput = serde_json::from_value(raw).unwrap();
    let expected = ToolInput {
        claim_id: claim.id,
        claim_type: ClaimType::Resume,
        target_artifact: target.clone(),
        // The goal and the design's latest version, oldest first; the Failure is left out.
        context_chain: oldest_first(vec![goal.clone(), design2.clone()]),
        additional_context: vec![review.clone()],
        answers: vec![sett_core::tool::QuestionAnswer::new(question.clone(), answer.clone())],
    };
    assert_eq!(input, expected);

    let env: BTreeMap<String, String> = std::fs::read_to_string(dir.path().join("env.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    assert_eq!(env.get("SETT_CLAIM_ID"), Some(&claim.id.to_string()));
    assert_eq!(env.get("SETT_CLAIM_TYPE").map(String::as_str), Some("resume"));
    assert_eq!(env.get("SETT_AGENT").map(String::as_str), Some("Coder"));
    assert_eq!(env.get("SETT_INSTANCE").map(String::as_str), Some(store.instance().as_str()));
    assert_eq!(env.get("MODE").map(String::as_str), Some("fast"));
    assert!(!env.contains_key("SETT_REDIS_URL"), "no Redis credentials without expose_redis");
    assert!(!env.contains_key("SETT_TEST_REDIS_URL") && !env.contains_key("CARGO"), "host variables are filtered");
    let pwd = std::fs::read_to_string(dir.path().join("pwd.txt")).unwrap();
    assert_eq!(Path::new(pwd.trim()).canonicalize().unwrap(), dir.path().canonicalize().unwrap());
}

#[tokio::test]
async fn failing_tools_yield_tool_execution_failures_and_timeouts_kill_the_group() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(
        dir.path(),
        "tool.sh",
        r#"d=$(dirname "$0")
case "$(jq -r .target_artifact.payload)" in
  exit) echo "half an answer"; echo "it broke" >&2; exit 3 ;;
  garbage) echo "this is not json" ;;
  slow) sleep 1000 & echo $! > "$d/bg.pid"; echo "started" >&2; sleep 1000 ;;
esac"#,
    );
    let cfg =
        agents(&format!("  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n    timeout: 2s\n"));
    let coder = &cfg[&name("Coder")];
    let mut claims = Vec::new();
    for payload in ["exit", "garbage", "slow"] {
        let goal = new_goal(&store, payload).await;
        claims.push((exclusive_grant(&store, &goal, "Coder", false).await, goal));
    }
    let cub = start(&store, settings(coder, dir.path()), Duration::from_secs(5));

    let (c, goal) = &claims[0];
    let f = wait_for_output(&store, c).await;
    assert_eq!(
        (f.claim_id, &f.source_artifacts, f.id),
        (Some(c.id), &vec![goal.id], ArtifactId::derived(&c.id, "output:1"))
    );
    let p = failure_payload(&f);
    assert_eq!(p["exit_code"], 3);
    assert!(p["reason"].as_str().unwrap().contains("status 3"), "{p}");
    assert_eq!(p["stdout_tail"], "half an answer\n");
    assert_eq!(p["stderr_tail"], "it broke\n");

    let (c, _) = &claims[1];
    let f = wait_for_output(&store, c).await;
    let p = failure_payload(&f);
    assert_eq!(f.claim_id, Some(c.id));
    assert_eq!(p["exit_code"], 0);
    assert!(p["reason"].as_str().unwrap().contains("not one JSON object"), "{p}");

    let (c, _) = &claims[2];
    let f = wait_for_output(&store, c).await;
    let p = failure_payload(&f);
    assert_eq!(f.claim_id, Some(c.id));
    assert!(p["reason"].as_str().unwrap().contains("timeout"), "{p}");
    assert!(p["exit_code"].is_null());
    assert_eq!(p["stderr_tail"], "started\n");
    let bg: u32 = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap().trim().parse().unwrap();
    // SIGKILL was sent to the whole group before the Failure was written; give the kernel a
    // moment to deliver it.
    let what = format!("the background sleep {bg} dies with the timed-out tool");
    sett_testkit::eventually(WAIT, &what, async || !alive(bg)).await;
    cub.stop().await;
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn code_commits_must_name_an_existing_commit() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let ws: PathBuf = dir.path().join("repo");
    std::fs::create_dir(&ws).unwrap();
    git(&ws, &["init", "-q"]);
    git(&ws, &["commit", "-q", "--allow-empty", "-m", "first"]);
    let head = git(&ws, &["rev-parse", "HEAD"]);
    let tool = script(
        dir.path(),
        "tool.sh",
        r#"if [ "$(jq -r .target_artifact.payload)" = "real" ]; then h=$(git rev-parse HEAD); else h=0123456789abcdef0123456789abcdef01234567; fi
jq -n --arg h "$h" '{artifact_type:"CodeCommit", artifact_payload:$h}'"#,
    );
    let cfg = agents(&format!("  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n"));
    let s = settings(&cfg[&name("Coder")], &ws);
    let real = new_goal(&store, "real").await;
    let fake = new_goal(&store, "fake").await;
    let c_real = exclusive_grant(&store, &real, "Coder", false).await;
    let c_fake = exclusive_grant(&store, &fake, "Coder", false).await;

    let outcome = execute_grant(&store, &s, c_real.id, 1, CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.exit_code(), 0, "{outcome:?}");
    let out = store.get_artifact(&ArtifactId::derived(&c_real.id, "output:1")).await.unwrap().unwrap();
    assert_eq!(
        (out.structural_type, out.artifact_type.as_str(), out.payload.as_str()),
        (StructuralType::Standard, "CodeCommit", head.as_str())
    );

    let outcome = execute_grant(&store, &s, c_fake.id, 1, CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.exit_code(), 1, "{outcome:?}");
    let f = store.get_artifact(&ArtifactId::derived(&c_fake.id, "output:1")).await.unwrap().unwrap();
    let p = failure_payload(&f);
    assert!(p["reason"].as_str().unwrap().contains("does not exist"), "{p}");
}

#[tokio::test]
async fn rework_output_is_the_next_version_of_the_thread() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "tool.sh", OK_TOOL);
    let cfg = agents(&format!("  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n"));
    let goal = new_goal(&store, "g").await;
    let v1 = artifact(&store, StructuralType::Standard, "Code", "v1", "Coder", &[&goal]).await;
    let review = artifact(&store, StructuralType::Review, "Review", r#"{"fix":"it"}"#, "Reviewer", &[&v1]).await;
    let mut rework = new_claim(new_claim_id(), &v1, &policy(), now_ms());
    rework.status = ClaimStatus::PendingAssignment;
    rework.assigned_agent = Some(name("Coder"));
    rework.additional_context_ids = vec![review.id];
    let event = EventData::ClaimCreated(ClaimCreated { rework_of: Some(new_claim_id()), ..ClaimCreated::new(&rework) });
    store.write_claim(&rework, None, false, &[], &[event], now_ms()).await.unwrap();
    let rework = grant(&store, &rework, ClaimStatus::PendingAssignment, "Coder", ClaimType::Rework, false).await;

    let cub = start(&store, settings(&cfg[&name("Coder")], dir.path()), Duration::from_secs(5));
    let out = wait_for_output(&store, &rework).await;
    cub.stop().await;
    assert_eq!((out.logical_id, out.version), (v1.logical_id, 2));
    assert_eq!(out.source_artifacts, vec![v1.id]);
    assert_eq!(store.latest_in_thread(&v1.logical_id).await.unwrap().unwrap().id, out.id);
    // The cub did not bid on the rework claim (it is not waiting for bids).
    assert!(events_of(&store, EventKind::BidSubmitted, &rework).await.is_empty());
}

#[tokio::test]
async fn the_context_chain_from_the_store_is_deterministic() {
    let store = sett_testkit::store().await;
    let goal = new_goal(&store, "g").await;
    let a = artifact(&store, StructuralType::Standard, "A", "a", "X", &[&goal]).await;
    let b = artifact(&store, StructuralType::Standard, "B", "b", "Y", &[&goal]).await;
    let mut tied = Artifact::new_root(new_artifact_id(), StructuralType::Review, "Review", "{}", "Z", a.created_at_ms);
    tied.source_artifacts = vec![goal.id];
    store_artifact(&store, &tied).await;
    let target = artifact(&store, StructuralType::Standard, "C", "c", "W", &[&b, &tied, &a]).await;
    let chain = sett_cub::context_chain(&store, &target).await.unwrap();
    assert_eq!(chain, oldest_first(vec![goal.clone(), a.clone(), b.clone(), tied.clone()]));
    for _ in 0..3 {
        assert_eq!(sett_cub::context_chain(&store, &target).await.unwrap(), chain);
    }
}

#[tokio::test]
async fn controller_grants_run_only_in_worker_mode_with_the_worker_command() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon_tool =
        script(dir.path(), "daemon.sh", r#"echo daemon >> "$(dirname "$0")/runs"; echo '{"artifact_type":"X"}'"#);
    let worker_tool = script(
        dir.path(),
        "worker.sh",
        r#"echo worker >> "$(dirname "$0")/runs"; echo '{"artifact_type":"Clarify","artifact_payload":"Which DB?","structural_type":"Question"}'"#,
    );
    let cfg = agents(&format!(
        "  Builder:\n    command: [\"{daemon_tool}\"]\n    bidding_strategy: exclusive\n    mode: controller\n    worker: {{max_concurrent: 2, command: [\"{worker_tool}\"]}}\n"
    ));
    let builder = &cfg[&name("Builder")];
    let goal = new_goal(&store, "g").await;
    let claim = create_claim(&store, &goal).await;
    // Controllers bid like everyone else.
    let cub = start(&store, settings(builder, dir.path()), Duration::from_secs(5));
    assert_eq!(wait_for_bid(&store, &claim, "Builder").await, BidType::Exclusive);
    let claim = grant(&store, &claim, ClaimStatus::PendingExclusive, "Builder", ClaimType::Exclusive, true).await;
    // A later claim shows the daemon went past the worker grant without running it.
    let next = new_goal(&store, "g2").await;
    let next_claim = create_claim(&store, &next).await;
    wait_for_bid(&store, &next_claim, "Builder").await;
    cub.stop().await;
    assert_eq!(lines(&dir.path().join("runs")), 0);

    let mut worker = settings(builder, dir.path());
    worker.worker_mode = true;
    let outcome = execute_grant(&store, &worker, claim.id, 1, CancellationToken::new()).await.unwrap();
    let id = ArtifactId::derived(&claim.id, "output:1");
    assert_eq!(outcome, ExecutionOutcome::Produced { artifact_id: id, structural_type: StructuralType::Question });
    assert_eq!(outcome.exit_code(), 0);
    let q = store.get_artifact(&id).await.unwrap().unwrap();
    assert_eq!((q.artifact_type.as_str(), q.payload.as_str(), q.claim_id), ("Clarify", "Which DB?", Some(claim.id)));
    assert_eq!(q.source_artifacts, vec![goal.id]);
    assert_eq!(std::fs::read_to_string(dir.path().join("runs")).unwrap(), "worker\n");
    // A stale seq, or the same grant again, is not executed.
    let stale = execute_grant(&store, &worker, claim.id, 7, CancellationToken::new()).await.unwrap();
    assert!(matches!(stale, ExecutionOutcome::Skipped { .. }) && stale.exit_code() == 0);
    let again = execute_grant(&store, &worker, claim.id, 1, CancellationToken::new()).await.unwrap();
    assert!(matches!(again, ExecutionOutcome::Skipped { .. }));
}

#[tokio::test]
async fn shutdown_waits_for_the_grace_period_then_kills_and_reports() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(
        dir.path(),
        "tool.sh",
        r#"d=$(dirname "$0"); case "$(jq -r .target_artifact.payload)" in
  quick) touch "$d/quick.started"; sleep 1; echo '{"artifact_type":"Quick"}' ;;
  *) echo $$ > "$d/stuck.pid"; sleep 1000 ;;
esac"#,
    );
    let cfg = agents(&format!("  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n"));
    let quick = new_goal(&store, "quick").await;
    let stuck = new_goal(&store, "stuck").await;
    let c_quick = create_claim(&store, &quick).await;
    let c_stuck = create_claim(&store, &stuck).await;
    let cub = start(&store, settings(&cfg[&name("Coder")], dir.path()), Duration::from_secs(2));
    let registered = wait_for_bid(&store, &c_stuck, "Coder").await;
    assert_eq!(registered, BidType::Exclusive);
    let components = store.components().await.unwrap();
    let record = &components["cub:Coder"];
    assert_eq!(record.agent.as_ref().map(AgentName::as_str), Some("Coder"));
    assert_eq!(record.pid, Some(std::process::id()));
    assert!(record.heartbeat_ms.unwrap() >= record.started_at_ms.unwrap());

    let c_stuck = grant(&store, &c_stuck, ClaimStatus::PendingExclusive, "Coder", ClaimType::Exclusive, false).await;
    let c_quick = grant(&store, &c_quick, ClaimStatus::PendingExclusive, "Coder", ClaimType::Exclusive, false).await;
    // Shut down while both tools run (their start is visible only in the files they write).
    sett_testkit::eventually(WAIT, "both tools started", async || {
        dir.path().join("stuck.pid").exists() && dir.path().join("quick.started").exists()
    })
    .await;
    cub.stop().await;
    // The grace period was granted: the quick tool (1 s) finished within it and its output was
    // written; the stuck one was killed and reported.
    let q = store.get_artifact(&ArtifactId::derived(&c_quick.id, "output:1")).await.unwrap().unwrap();
    assert_eq!(q.artifact_type, "Quick");
    let f = store.get_artifact(&ArtifactId::derived(&c_stuck.id, "output:1")).await.unwrap().unwrap();
    assert!(failure_payload(&f)["reason"].as_str().unwrap().contains("shut down"));
    let pid: u32 = std::fs::read_to_string(dir.path().join("stuck.pid")).unwrap().trim().parse().unwrap();
    assert!(!alive(pid));
    assert!(store.components().await.unwrap().is_empty());
}

/// A cub told to stop while its Redis is gone stops: its presence, its closing writes and its
/// heartbeat do not wait for a Redis that may never come back.
#[tokio::test]
async fn a_cub_stops_while_redis_is_gone() {
    let data = tempfile::tempdir().unwrap();
    let mut server = sett_testkit::RedisServer::start(data.path(), &[]);
    let store = sett_testkit::redis_at(&server.url()).await.instance(&sett_testkit::instance_name());
    let dir = tempfile::tempdir().unwrap();
    let cfg = agents("  Coder:\n    command: [\"true\"]\n    bidding_strategy: exclusive\n");
    let cub = start(&store, settings(&cfg[&name("Coder")], dir.path()), Duration::from_secs(2));
    // Running, with its presence subscribed (its component record offers the standing bid).
    sett_testkit::eventually(WAIT, "the cub's component record", async || {
        store.components().await.ok().and_then(|c| c.get("cub:Coder").and_then(|r| r.standing_bid.clone()))
    })
    .await;
    server.stop();
    // The clients know it is gone (this read waits out the command timeout).
    assert!(store.artifact_count().await.is_err());
    cub.stop().await;
}

/// With an orchestrator that records standing bids (design.md §5), a cub offers its agent's in
/// its component record and leaves new artifacts to the orchestrator; a claim created without
/// its bid (the orchestrator had not seen the offer yet) still gets one; a stopping cub
/// withdraws the offer. A bid script's agent offers none and bids on new artifacts itself.
#[tokio::test]
async fn a_cub_offers_a_standing_bid_and_bids_only_where_it_was_not_recorded() {
    use sett_core::record::{ComponentRecord, ORCHESTRATOR_COMPONENT, cub_component};

    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let bid = script(dir.path(), "bid.sh", "echo review");
    let cfg = agents(&format!(
        "  Coder:\n    command: [x]\n    bidding_strategy: exclusive\n  Scripted:\n    command: [x]\n    bid_script: [\"{bid}\"]\n"
    ));
    let orchestrator =
        ComponentRecord { records_standing_bids: true, heartbeat_ms: Some(now_ms()), ..Default::default() };
    store.put_component(ORCHESTRATOR_COMPONENT, &orchestrator).await.unwrap();
    let cubs = start_all(&store, &cfg, dir.path());
    // A new artifact whose claim the test never creates: only a cub that bids on new artifacts
    // itself bids on it.
    let unclaimed = new_goal(&store, "left to the orchestrator").await;
    let unclaimed_claim =
        new_claim(sett_core::machine::initial_claim_id(&unclaimed.id), &unclaimed, &policy(), now_ms());
    // A claim created waiting for bids, without Coder's: Coder bids on its `claim_created`.
    let goal = new_goal(&store, "created without the standing bid").await;
    let claim = create_claim(&store, &goal).await;
    assert_eq!(wait_for_bid(&store, &claim, "Coder").await, BidType::Exclusive);
    assert_eq!(wait_for_bid(&store, &unclaimed_claim, "Scripted").await, BidType::Review);
    let coder = AgentName::parse("Coder").unwrap();
    let records = store.components().await.unwrap();
    assert_eq!(records[&cub_component(&coder)].standing_bid, cfg[&coder].standing_bid_terms());
    let scripted = AgentName::parse("Scripted").unwrap();
    assert_eq!(records[&cub_component(&scripted)].standing_bid, None, "a bid script's agent offers nothing");
    // The offer stands on the cub's presence, which only a running cub keeps.
    assert!(store.is_present(&coder).await.unwrap());
    assert!(!store.is_present(&scripted).await.unwrap());
    // Stopping waits for every bid task: what was not bid by now never is.
    for c in cubs {
        c.stop().await;
    }
    let bids = store.bids(&unclaimed_claim.id).await.unwrap();
    assert_eq!(
        bids.keys().map(AgentName::as_str).collect::<Vec<_>>(),
        ["Scripted"],
        "Coder left it to the orchestrator"
    );
    assert_eq!(store.components().await.unwrap().keys().collect::<Vec<_>>(), [ORCHESTRATOR_COMPONENT]);
    assert!(!store.is_present(&coder).await.unwrap(), "a stopped cub withdrew its presence");
}

/// With an orchestrator that records standing bids and rings bells, a cub waits on its bell
/// (sett-store presence.rs) instead of reading every event as it comes, and still does all its
/// work: a rung grant runs (taken from its ring, its event acknowledged as the same grant), a claim created waiting for bids without its standing bid (rung to
/// every cub) gets its bid, and a grant event nobody rang for (written as an older orchestrator
/// would, by a plain append) runs too, read by the bell's fallback.
#[tokio::test]
async fn a_cub_waiting_on_its_bell_misses_nothing() {
    use sett_core::record::{ComponentRecord, ORCHESTRATOR_COMPONENT};

    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "tool.sh", OK_TOOL);
    let cfg = agents(&format!("  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n"));
    let orchestrator = ComponentRecord {
        records_standing_bids: true,
        rings_bells: true,
        heartbeat_ms: Some(now_ms()),
        ..Default::default()
    };
    store.put_component(ORCHESTRATOR_COMPONENT, &orchestrator).await.unwrap();
    let cub = start(&store, settings(&cfg[&name("Coder")], dir.path()), Duration::from_secs(5));
    sett_testkit::eventually(WAIT, "the cub's standing bid", async || {
        store.components().await.ok().and_then(|c| c.get("cub:Coder").and_then(|r| r.standing_bid.clone()))
    })
    .await;

    // Rung: the grant's write publishes on the cub's presence channel.
    let goal = new_goal(&store, "rung").await;
    let claim = exclusive_grant(&store, &goal, "Coder", false).await;
    wait_for_output(&store, &claim).await;
    // Rung to every cub: a claim waiting for bids that lists no standing bid of Coder's.
    let waiting = new_goal(&store, "waiting").await;
    let waiting_claim = create_claim(&store, &waiting).await;
    assert_eq!(wait_for_bid(&store, &waiting_claim, "Coder").await, BidType::Exclusive);
    // Not rung: the grant event appended alone, as a writer without bells would.
    let quiet = new_goal(&store, "not rung").await;
    let created = create_claim(&store, &quiet).await;
    let mut granted = created.clone();
    granted.status = ClaimStatus::PendingExclusive;
    granted.revision += 1;
    granted.grant_seq = 1;
    granted.grants.insert(
        name("Coder"),
        sett_core::claim::Grant {
            claim_type: ClaimType::Exclusive,
            seq: 1,
            granted_at_ms: now_ms(),
            deadline_ms: Some(now_ms() + 600_000),
            via_worker: false,
        },
    );
    // The record as granted, with an event that names no grant (so nothing is rung), then the
    // grant's event on its own.
    let written = store.write_claim(&granted, Some(created.revision), false, &[], &[], now_ms()).await.unwrap();
    assert_eq!(written, sett_store::WriteOutcome::Written);
    regrant_event(&store, &granted, "Coder").await;
    wait_for_output(&store, &granted).await;
    cub.stop().await;
    assert_eq!(lines(&dir.path().join("runs")), 2, "one run per grant");
    // The rung grant was taken from its ring, and its event, read after, acknowledged as the
    // same grant: nothing is left pending.
    let mut group = store.group_consumer("cub:Coder", "Coder", GroupStart::Beginning).await.unwrap();
    assert_eq!(group.read_pending(1000).await.unwrap(), Vec::new());
    group.quit().await;
}
