//! The workflow engine end to end: init → up → forage → Terminal, review and rework, phases,
//! missing bids, tool failures, controller workers, a cub killed mid-run.

use std::time::Duration;

use sett_core::config::SettConfig;
use sett_core::event::{EventData, EventKind};
use sett_core::machine::{Effect, Input, StepContext, initial_claim_id, new_claim, step};
use sett_core::{AgentName, Artifact, BidType, ClaimStatus, StructuralType};
use sett_e2e::{Env, summary, text};
use sett_store::{GroupStart, WorkerOffer, WorkerRecord, WriteOutcome, new_artifact_id, now_ms, worker_grant_key};

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
    let kinds: Vec<String> = trail
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap_or_else(|| panic!("{k} missing from {kinds:?}"));
    assert!(pos("artifact_created") < pos("claim_created"));
    // A cub bids from the artifact's event, so its bid may be recorded before the claim is
    // created (early bids); both come before the grant.
    assert!(pos("artifact_created") < pos("bid_submitted"));
    assert!(pos("claim_created") < pos("claim_granted"));
    assert!(pos("bid_submitted") < pos("claim_granted"));
    assert!(pos("claim_granted") < pos("claim_completed"));
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
}

const ALWAYS_REJECT: &str = r#"#!/usr/bin/env bash
cat >/dev/null
jq -n '{artifact_type: "Review", artifact_payload: {issue: "never good enough"}}'
"#;

const COMMITTER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
echo "$(jq -r .claim_type <<<"$input") $(date +%s%N)" >>work.log
git add work.log >&2
git -c user.name=t -c user.email=t@t commit -q -m work >&2
jq -n --arg c "$(git rev-parse HEAD)" '{artifact_type: "CodeCommit", artifact_payload: $c}'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_review_iteration_limit_yields_max_iterations_exceeded() {
    let yml = r#"
version: "1.0"
orchestrator: {max_review_iterations: 1, bid_timeout: 10s}
agents:
  Coder:
    command: ["./coder.sh"]
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined"]}
    workspace: {mode: rw}
  Critic:
    command: ["./critic.sh"]
    bidding_strategy: {type: review, target_types: ["CodeCommit"]}
"#;
    let mut env = Env::new(yml, &[("coder.sh", COMMITTER), ("critic.sh", ALWAYS_REJECT)]).await;
    env.up();
    let out = env.run(&["forage", "--goal", "Impossible", "--watch", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "a workflow ending in a Failure exits 1: {}", text(&out.stdout));
    let artifacts = env
        .wait_for(MINUTE, "a MaxIterationsExceeded failure", |a| {
            a.iter().any(|x| x.artifact_type == "MaxIterationsExceeded")
        })
        .await;
    let commits = artifacts.iter().filter(|a| a.artifact_type == "CodeCommit").count();
    assert_eq!(commits, 2, "one original and one rework: {:#?}", summary(&artifacts));
    let failure = artifacts.iter().find(|a| a.artifact_type == "MaxIterationsExceeded").unwrap();
    assert_eq!(failure.structural_type, StructuralType::Failure);
    assert!(failure.payload.contains("max_review_iterations is 1"), "{}", failure.payload);
    env.down();
}

const SCRIBE: &str = r#"#!/usr/bin/env bash
input=$(cat)
jq -n --arg g "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_cub_that_never_bids_delays_the_claim_only_until_bid_timeout() {
    let yml = r#"
version: "1.0"
orchestrator: {bid_timeout: 2s}
agents:
  Scribe:
    command: ["./scribe.sh"]
    bidding_strategy: exclusive
  Silent:
    command: ["./scribe.sh"]
    bidding_strategy: review
"#;
    let mut env = Env::new(yml, &[("scribe.sh", SCRIBE)]).await;
    env.up();
    let silent = env.pid_of("cub:Silent").await.expect("the Silent cub runs");
    sett_runtime::terminate(silent, Duration::from_secs(2));
    env.forage("Proceed without Silent");
    env.wait_terminals(1, MINUTE).await;
    let missing = env.events_of(EventKind::BidsMissing).await;
    assert_eq!(missing.len(), 1);
    // The ledger's own clock, not the test's: the missing bid was declared only once the claim's
    // 2 s bidding window had passed.
    let created = env.events_of(EventKind::ClaimCreated).await;
    let waited = missing[0].ts_ms - created[0].ts_ms;
    assert!(waited >= 2_000, "bids were declared missing {waited} ms after the claim was created");
    let EventData::BidsMissing(missing) = &missing[0].data else { panic!("{:?}", missing[0]) };
    assert_eq!(missing.agents.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["Silent"]);
    let claim = &env.claims().await[0];
    assert_eq!(claim.missing_bids.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["Silent"]);
    let log = std::fs::read_to_string(env.path().join(".sett/logs").join(env.name.as_str()).join("orchestrator.log"))
        .unwrap();
    assert!(log.lines().any(|l| l.contains("did not bid") && l.contains("Silent")), "the missing bid is logged");
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

/// A controller with a pool of two workers running `work.sh`.
const POOL_TEAM: &str = r#"
version: "1.0"
agents:
  Boss:
    command: ["./work.sh"]
    bidding_strategy: exclusive
    mode: controller
    worker: {max_concurrent: 2}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn controller_workers_respect_max_concurrent_and_fifo() {
    // Each worker holds its output until the test lets go (once two run at once), so the pool
    // is seen full however slowly the goals arrive; it gives up waiting after 60 s.
    let work = r#"#!/usr/bin/env bash
input=$(cat)
for _ in $(seq 600); do [ -e go ] && break; sleep 0.1; done
jq -n --arg g "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}'
"#;
    let mut env = Env::new(POOL_TEAM, &[("work.sh", work)]).await;
    env.up();
    let goals: Vec<_> = (0..6).map(|i| env.forage(&format!("goal {i}"))).collect();
    env.wait_events(MINUTE, "two workers running", 2, |e| e.kind() == EventKind::WorkerLaunched).await;
    std::fs::write(env.path().join("go"), "").unwrap();
    env.wait_terminals(6, MINUTE).await;
    let events = env.events().await;
    let mut running = 0i32;
    let mut peak = 0;
    let mut launch_order = Vec::new();
    for e in &events {
        match e.kind() {
            EventKind::WorkerLaunched => {
                running += 1;
                peak = peak.max(running);
                launch_order.push(e.data.claim_id().unwrap());
            }
            EventKind::WorkerExited => running -= 1,
            _ => {}
        }
    }
    assert!(peak <= 2, "never more than max_concurrent workers at once (peak {peak})");
    assert_eq!(peak, 2, "the pool is used");
    assert_eq!(launch_order.len(), 6);
    // FIFO: workers start in the order the grants were made.
    let grant_order: Vec<_> =
        events.iter().filter(|e| e.kind() == EventKind::ClaimGranted).map(|e| e.data.claim_id().unwrap()).collect();
    assert_eq!(launch_order, grant_order);
    assert_eq!(goals.len(), 6);
    env.down();
    // Workers are gone after down.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("execute-claim.*--instance {}", env.name)])
        .output()
        .unwrap();
    assert!(text(&ps.stdout).trim().is_empty());
}

/// A Redis connection that drops after the orchestrator's offer of a grant to a worker pool ran
/// but before its reply arrived: the client sends the offer again, which finds the slot taken.
/// The slot is the orchestrator's own, so it launches the worker; before, it took the slot for
/// someone else's and the claim waited forever (a worker grant has no deadline before launch).
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_slot_taken_by_an_offer_whose_reply_was_lost_still_launches() {
    let mut env = Env::new(POOL_TEAM, &[("work.sh", SCRIBE)]).await;
    env.up();
    let run_id = env.store.lock_holder().await.unwrap().expect("the orchestrator holds the lock").run_id;
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "lost reply", "user", now_ms());
    // The first run of the offer, whose reply never arrived: the grant (the claim's first) holds
    // a slot recorded under the orchestrator's run.
    let claim = initial_claim_id(&goal.id);
    let boss = AgentName::parse("Boss").unwrap();
    let record = WorkerRecord { run_id, pid: None, container: None, launched_at_ms: now_ms() };
    let offer = env.store.offer_worker(&boss, 2, &worker_grant_key(&claim, 1), &record).await.unwrap();
    assert_eq!(offer, WorkerOffer::Launch);
    env.store.create_artifact(&goal).await.unwrap();
    let seen = env.wait_terminals(1, MINUTE).await;
    let done = seen.iter().find(|a| a.structural_type == StructuralType::Terminal).expect("a Terminal");
    assert_eq!(done.claim_id, Some(claim));
    assert_eq!(env.events_of(EventKind::WorkerLaunched).await.len(), 1, "one worker, launched once");
    env.down();
}

/// A transition the orchestrator wrote without seeing the reply (the connection dropped after
/// the script ran, and the client's re-sent copy lost the compare-and-set): its outbox entry,
/// here a worker launch, is in Redis but nobody carries it out, since the engine saw a failure
/// and the retried input finds nothing left to do. The deadline loop's sweep of the outbox
/// launches it; before, the claim waited forever.
#[tokio::test(flavor = "multi_thread")]
async fn an_outbox_entry_whose_write_reply_was_lost_is_still_carried_out() {
    let mut env = Env::new(POOL_TEAM, &[("work.sh", SCRIBE)]).await;
    env.up();
    let policy = SettConfig::parse("sett.yml", POOL_TEAM).unwrap().policy();
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "lost reply", "user", now_ms());
    // The write the orchestrator made for the goal: its claim, granted to Boss's worker pool at
    // once, with the launch in the outbox.
    let boss = AgentName::parse("Boss").unwrap();
    let claim = new_claim(initial_claim_id(&goal.id), &goal, &policy, now_ms());
    let bids = [(boss, BidType::Exclusive)].into();
    let t = step(&claim, &Input::Bids, StepContext { bids: &bids, now_ms: now_ms() }, &policy).expect("granted");
    let launch: Vec<Effect> = t.effects.into_iter().filter(|e| matches!(e, Effect::Grant(g) if g.via_worker)).collect();
    assert_eq!(launch.len(), 1, "one worker launch to carry out");
    let written = env.store.write_claim_with_outbox(&t.claim, None, true, &[], &[], Some(&launch), now_ms()).await;
    assert_eq!(written.unwrap(), WriteOutcome::Written);
    env.store.create_artifact(&goal).await.unwrap();
    let seen = env.wait_terminals(1, MINUTE).await;
    let done = seen.iter().find(|a| a.structural_type == StructuralType::Terminal).expect("a Terminal");
    assert_eq!(done.claim_id, Some(claim.id));
    env.down();
}

/// An artifact whose `artifact_created` event the orchestrator's consumer group never delivers
/// (the group already stands past it, as after a restart that reloaded the group's bookkeeping
/// without it) is still claimed: the deadline loop's sweep finds it without a claim. Before the
/// sweep the goal waited forever.
#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_whose_event_the_orchestrator_never_received_is_still_claimed() {
    let yml = r#"
version: "1.0"
agents:
  Scribe:
    command: ["./scribe.sh"]
    bidding_strategy: exclusive
"#;
    let mut env = Env::new(yml, &[("scribe.sh", SCRIBE)]).await;
    // Written a minute ago (older than the sweep's margin), before anything runs.
    let goal =
        Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Goal", "missed", "user", now_ms() - 60_000);
    env.store.create_artifact(&goal).await.unwrap();
    // The orchestrator's group starts after the goal's event; the cub's group still sees it.
    let group = env.store.group_consumer("orchestrator", "orchestrator", GroupStart::End).await.unwrap();
    group.ensure_group().await.unwrap();
    group.quit().await;
    env.up();
    let seen = env.wait_terminals(1, MINUTE).await;
    let done = seen.iter().find(|a| a.structural_type == StructuralType::Terminal).expect("a Terminal");
    assert_eq!(done.source_artifacts, vec![goal.id]);
    assert_eq!(done.claim_id, Some(initial_claim_id(&goal.id)));
    assert!(env.logs_all().contains("its event was missed"), "the sweep says what it did\n{}", env.logs());
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cub_killed_mid_run_ends_its_claim_at_the_deadline() {
    let yml = r#"
version: "1.0"
agents:
  Sleeper:
    command: ["./sleep.sh"]
    bidding_strategy: exclusive
    timeout: 3s
"#;
    let sleep = "#!/usr/bin/env bash\ncat >/dev/null\ntouch started\nexec sleep 30\n";
    let mut env = Env::new(yml, &[("sleep.sh", sleep)]).await;
    env.up();
    let cub = env.pid_of("cub:Sleeper").await.unwrap();
    env.forage("sleep");
    let marker = env.path().join("started");
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(std::time::Instant::now() < until, "the tool never started\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nix_kill(cub);
    let artifacts = env
        .wait_for(Duration::from_secs(20), "an ExecutionTimeout failure", |a| {
            a.iter().any(|x| x.artifact_type == "ExecutionTimeout")
        })
        .await;
    assert_eq!(artifacts.iter().filter(|a| a.structural_type == StructuralType::Failure).count(), 1);
    let claim = &env.claims().await[0];
    assert_eq!(claim.status, ClaimStatus::Terminated);
}

fn nix_kill(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
}
