//! Operators steering running work, end to end: `sett cancel` during a long-running tool (its
//! process group is gone within the stop grace plus a second, nothing it could still write is
//! acted on, no claim stays open, one `workflow_cancelled` webhook, `sett verify` passes and
//! catches an edited operator), with a question open (a late answer is told who cancelled), and
//! racing the workflow's own completion (exactly one outcome).

use std::time::Duration;

use sett_core::event::{EventData, EventKind};
use sett_core::{ArtifactId, StructuralType};
use sett_e2e::receiver::Receiver;
use sett_e2e::{Env, asker_script, text};
use sett_store::{DeliveryRecord, DeliveryStatus};

const LIMIT: Duration = Duration::from_secs(30);

/// A tool that ignores SIGTERM (so only the SIGKILL after the grace ends it), starts a child
/// that would outlive it, records both pids, and would then write a Terminal after 5 minutes.
const STUBBORN: &str = r#"#!/usr/bin/env bash
trap '' TERM
sleep 300 &
child=$!
echo "$$ $child" > "$PIDS_FILE.tmp" && mv "$PIDS_FILE.tmp" "$PIDS_FILE"
wait "$child"
echo '{"structural_type": "Terminal", "artifact_type": "Done", "artifact_payload": "too late"}'
"#;

fn yml(agent: &str, command: &str, environment: &str, extra: &str) -> String {
    format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s, question_timeout: 1h}}
agents:
  {agent}:
    command: ["{command}"]
    bidding_strategy: exclusive
    timeout: 10m
    environment: [{environment}]
{extra}"#
    )
}

/// Whether `pid` still runs (a zombie waiting for its parent counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until `path` holds two pids.
async fn read_pids(path: &std::path::Path, env: &Env) -> (u32, u32) {
    env.eventually("the tool wrote its pids", async || {
        let s = std::fs::read_to_string(path).ok()?;
        let pids: Vec<u32> = s.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        if let [a, b] = pids[..] { Some((a, b)) } else { None }
    })
    .await
}

/// Waits until every webhook delivery is settled (none pending); returns them.
async fn settled_deliveries(env: &Env) -> std::collections::HashMap<String, DeliveryRecord> {
    env.eventually("every delivery is settled", async || {
        let d = env.store.notify_deliveries().await.unwrap();
        if !d.is_empty() && d.values().all(|r| r.status != DeliveryStatus::Pending) { Ok(d) } else { Err(d) }
    })
    .await
}

fn verify_ok(env: &Env) {
    let out = env.run(&["verify", "-o", "json"]);
    assert!(out.status.success(), "sett verify failed: {}\n{}", text(&out.stdout), text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_running_tool_and_its_children_ends_every_claim_and_notifies_once() {
    let mut hook = Receiver::start().await;
    let pids_dir = tempfile::tempdir().unwrap();
    let pids_file = pids_dir.path().join("pids");
    let notifications = format!(
        "notifications:\n  webhooks:\n    - name: ops\n      url: {}\n      events: [workflow_cancelled, workflow_completed, workflow_failed]\n",
        hook.url("/sett")
    );
    let yml = yml("Worker", "./stubborn.sh", &format!("\"PIDS_FILE={}\"", pids_file.display()), &notifications);
    let mut env = Env::new(&yml, &[("stubborn.sh", STUBBORN)]).await;
    env.up();
    let goal = env.forage("Run for a long time");
    let (leader, child) = read_pids(&pids_file, &env).await;
    assert!(alive(leader) && alive(child));

    // By a short id of the goal, as an operator would type it.
    let short = goal.to_string()[..13].to_owned();
    let out = env.ok(&["cancel", &short, "--reason", "wrong goal", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["goal_id"], goal.to_string().as_str());
    assert_eq!(doc["operator"], "test-operator");
    assert_eq!(doc["claims"].as_array().unwrap().len(), 1, "{doc}");

    // The tool ignores SIGTERM and would run for 5 minutes: its whole group is killed once the
    // grace has passed.
    env.eventually("the tool and its child are killed", async || !alive(leader) && !alive(child)).await;

    // Exactly one webhook, the cancellation.
    let mut others = Vec::new();
    let r = hook.next_event("workflow_cancelled", LIMIT, &mut others).await;
    assert!(others.is_empty(), "unexpected requests: {others:?}");
    let w = &r.json()["workflow"];
    assert_eq!(w["goal_id"], goal.to_string().as_str());
    assert_eq!(w["cancelled_by"], "test-operator");
    assert_eq!(w["reason"], "wrong goal");
    let d = settled_deliveries(&env).await;
    assert_eq!(d.len(), 1, "{d:?}");

    // No claim stays open; the tool's grant wrote nothing; the outcome is the cancellation.
    let claims = env.claims().await;
    assert!(claims.iter().all(|c| c.status.is_final()), "{claims:#?}");
    let claim = claims.iter().find(|c| c.artifact_id == goal).unwrap();
    assert_eq!(claim.termination_reason.as_deref(), Some("cancelled by test-operator: wrong goal"));
    assert!(!env.store.artifact_exists(&ArtifactId::grant_output(&claim.id, 1)).await.unwrap());
    let trail = env.run(&["watch", "--since", "1h", "--exit-on-completion", "--timeout", "10s"]);
    assert_eq!(trail.status.code(), Some(1), "{}", text(&trail.stderr));
    assert!(text(&trail.stdout).contains("workflow_cancelled"), "{}", text(&trail.stdout));
    assert!(text(&trail.stderr).contains("cancelled by test-operator: wrong goal"), "{}", text(&trail.stderr));
    let cancels = env.events_of(EventKind::WorkflowCancelled).await;
    assert_eq!(cancels.len(), 1);

    // Twice: a no-op that says so.
    let again = env.run(&["cancel", &goal.to_string()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("already cancelled by test-operator"), "{}", text(&again.stderr));
    assert_eq!(env.events_of(EventKind::WorkflowCancelled).await.len(), 1);

    // The ledger verifies, and an edited operator shows.
    verify_ok(&env);
    let key = format!("sett:{{{}}}:workflows:cancelled", env.name);
    let record = env.redis_cli(&["HGET", &key, &goal.to_string()]);
    let forged = record.trim().replace("test-operator", "someone-else");
    env.redis_cli(&["HSET", &key, &goal.to_string(), &forged]);
    let out = env.run(&["verify", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["breach"]["record"].as_str().unwrap().contains(&format!("cancellation of workflow {goal}")), "{v:#}");
    assert!(v["breach"]["problem"].as_str().unwrap().contains("operator changed"), "{v:#}");
    env.redis_cli(&["HSET", &key, &goal.to_string(), record.trim()]);
    verify_ok(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_closes_an_open_question_and_a_late_answer_is_told_who_cancelled() {
    let asker = asker_script("Which port?");
    let mut env = Env::new(&yml("Asker", "./asker.sh", "", ""), &[("asker.sh", &asker)]).await;
    env.up();
    let goal = env.forage("Build a service");
    let asked = env.wait_events(LIMIT, "question_asked", 1, |e| e.kind() == EventKind::QuestionAsked).await;
    let question = asked[0].data.question_id().unwrap();

    env.ok(&["cancel", &question.to_string(), "--reason", "not needed"]);
    let open = env.ok(&["questions", "-o", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&open).unwrap(), serde_json::json!([]), "{open}");
    let late = env.run(&["answer", &question.to_string(), "8080"]);
    assert_eq!(late.status.code(), Some(1));
    let err = text(&late.stderr);
    assert!(err.contains("its workflow") && err.contains("was cancelled by test-operator"), "{err}");
    assert!(err.contains("(not needed)"), "{err}");
    let claims = env.claims().await;
    assert!(claims.iter().all(|c| c.status.is_final()), "{claims:#?}");
    assert!(env.artifacts_of(StructuralType::Answer).await.is_empty());
    let cancel = env.events_of(EventKind::WorkflowCancelled).await.remove(0);
    let EventData::WorkflowCancelled(c) = cancel.data else { unreachable!() };
    assert_eq!((c.goal_id, c.questions), (goal, vec![question]));
    verify_ok(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_racing_the_workflows_completion_leaves_exactly_one_outcome() {
    // Each tool finishes about when the cancellation arrives: either may win, never both.
    let quick = "#!/usr/bin/env bash\nsleep 0.$((RANDOM % 3))\necho '{\"structural_type\": \"Terminal\", \"artifact_type\": \"Done\", \"artifact_payload\": \"ok\"}'\n";
    let mut env = Env::new(&yml("Quick", "./quick.sh", "", ""), &[("quick.sh", quick)]).await;
    env.up();
    let goals: Vec<ArtifactId> = (0..4).map(|i| env.forage(&format!("Goal {i}"))).collect();
    for (i, goal) in goals.iter().enumerate() {
        env.wait_events(LIMIT, "claim_granted", i + 1, |e| e.kind() == EventKind::ClaimGranted).await;
        let out = env.run(&["cancel", &goal.to_string()]);
        let err = text(&out.stderr);
        assert!(
            out.status.success() || err.contains("has already ended: completed"),
            "cancel of {goal}: {err}\n{}",
            env.logs()
        );
    }
    // Settle: every workflow ends one way or the other.
    let trail = env.run(&["watch", "--since", "1h", "--exit-on-completion", "--timeout", "20s", "-o", "jsonl"]);
    let events: Vec<serde_json::Value> =
        text(&trail.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for goal in &goals {
        let g = goal.to_string();
        let cancelled =
            events.iter().filter(|e| e["kind"] == "workflow_cancelled" && e["data"]["goal_id"] == g.as_str()).count();
        let claim = env.claims().await.into_iter().find(|c| c.artifact_id == *goal).unwrap();
        let terminal = ArtifactId::grant_output(&claim.id, 1);
        let completed = env.store.get_artifact(&terminal).await.unwrap().is_some()
            && env.store.fenced(&terminal.to_string()).await.unwrap().is_none();
        assert_eq!(
            cancelled + usize::from(completed),
            1,
            "goal {g}: cancelled {cancelled}, completed {completed}\n{}",
            env.logs()
        );
        assert!(claim.status.is_final(), "{claim:?}");
    }
    verify_ok(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_controller_agents_worker() {
    let pids_dir = tempfile::tempdir().unwrap();
    let pids_file = pids_dir.path().join("pids");
    let extra = "    mode: controller\n    worker: {max_concurrent: 1}\n";
    let yml = yml("Pool", "./stubborn.sh", &format!("\"PIDS_FILE={}\"", pids_file.display()), extra);
    let mut env = Env::new(&yml, &[("stubborn.sh", STUBBORN)]).await;
    env.up();
    let goal = env.forage("Run in a worker");
    let (leader, child) = read_pids(&pids_file, &env).await;
    env.ok(&["cancel", &goal.to_string()]);
    // A worker reads no event stream: it notices by polling, then gives the grace.
    env.eventually("the worker's tool and its child are killed", async || !alive(leader) && !alive(child)).await;
    let exited = env.wait_events(LIMIT, "worker_exited", 1, |e| e.kind() == EventKind::WorkerExited).await;
    assert!(matches!(&exited[0].data, EventData::WorkerExited(w) if w.success), "{exited:?}");
    let claims = env.claims().await;
    assert!(claims.iter().all(|c| c.status.is_final()), "{claims:#?}");
    assert!(env.artifacts_of(StructuralType::Failure).await.is_empty());
    verify_ok(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_written_after_the_cancellation_is_recorded_late_and_acted_on_by_nobody() {
    let mut hook = Receiver::start().await;
    let pids_dir = tempfile::tempdir().unwrap();
    let pids_file = pids_dir.path().join("pids");
    let notifications = format!(
        "notifications:\n  webhooks:\n    - name: ops\n      url: {}\n      events: [workflow_cancelled, workflow_completed]\n",
        hook.url("/sett")
    );
    let yml = yml("Worker", "./stubborn.sh", &format!("\"PIDS_FILE={}\"", pids_file.display()), &notifications);
    let mut env = Env::new(&yml, &[("stubborn.sh", STUBBORN)]).await;
    env.up();
    let goal = env.forage("Write something");
    read_pids(&pids_file, &env).await;
    env.ok(&["cancel", &goal.to_string()]);
    let claim = env.claims().await.into_iter().find(|c| c.artifact_id == goal).unwrap();

    // What a cub whose tool finished at the moment of the cancellation writes: its grant's
    // output, here a Terminal that would have ended the workflow.
    let now = sett_store::now_ms();
    let output = ArtifactId::grant_output(&claim.id, 1);
    let late = sett_core::Artifact::of_claim(output, &claim, StructuralType::Terminal, "Done", "late", "Worker", now);
    assert!(matches!(env.store.create_artifact(&late).await.unwrap(), sett_store::CreateOutcome::Created { .. }));
    let recorded = env.wait_events(LIMIT, "output_late", 1, |e| e.kind() == EventKind::OutputLate).await;
    let EventData::OutputLate(l) = &recorded[0].data else { unreachable!() };
    assert_eq!((l.artifact_id, l.claim_id, l.goal_id), (output, Some(claim.id), goal));

    // The cancellation stays the one outcome: one webhook, and `watch` reports it.
    let mut others = Vec::new();
    hook.next_event("workflow_cancelled", LIMIT, &mut others).await;
    let trail = env.run(&["watch", "--since", "1h", "--exit-on-completion", "--timeout", "10s"]);
    assert!(text(&trail.stderr).contains("cancelled by test-operator"), "{}", text(&trail.stderr));
    assert!(text(&trail.stdout).contains("arrived after goal"), "{}", text(&trail.stdout));
    let d = settled_deliveries(&env).await;
    assert_eq!(d.len(), 1, "only the cancellation is notified: {d:?}");
    assert!(others.is_empty() && hook.drain().is_empty(), "unexpected requests: {others:?}");
    assert_eq!(env.claims().await.len(), 1, "no claim for anything of a cancelled workflow");
    verify_ok(&env);
}

/// The Asker team with a question deadline short enough to fall inside a test's pause.
const ASKER_PAUSE_YML: &str = r#"
version: "1.0"
orchestrator: {bid_timeout: 10s, question_timeout: 8s, on_question_timeout: fail}
agents:
  Asker:
    command: ["./asker.sh"]
    bidding_strategy: exclusive
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_instance_grants_nothing_and_its_deadlines_stand_still_until_it_is_resumed() {
    let asker = asker_script("Which port?");
    let mut env = Env::new(ASKER_PAUSE_YML, &[("asker.sh", &asker)]).await;
    env.up();
    let first = env.forage("First service");
    let asked = env.wait_events(LIMIT, "question_asked", 1, |e| e.kind() == EventKind::QuestionAsked).await;
    let question = asked[0].data.question_id().unwrap();
    let claim1 = env.claims().await.into_iter().find(|c| c.artifact_id == first).unwrap();

    let out = env.ok(&["pause", "--reason", "incident", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((doc["scope"].as_str(), doc["operator"].as_str()), (Some("instance"), Some("test-operator")), "{doc}");
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(status["pauses"][0]["reason"], "incident", "{status}");
    assert!(status["pauses"][0]["goal_id"].is_null(), "{status}");
    let again = env.run(&["pause"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("already paused by test-operator"), "{}", text(&again.stderr));

    // The question's deadline passes during the pause: the deadline loop takes the claim out of
    // the deadline index instead of failing it.
    let deadlines = format!("sett:{{{}}}:index:deadlines", env.name);
    let question_deadline = claim1.open_questions[&question].deadline_ms.unwrap();
    env.eventually("the question's deadline passed and was set aside", async || {
        sett_store::now_ms() > question_deadline
            && env.redis_cli(&["ZSCORE", &deadlines, &claim1.id.to_string()]).trim().is_empty()
    })
    .await;

    // A goal foraged while paused gets its claim and its bid, and no grant.
    let held = format!("sett:{{{}}}:held", env.name);
    let second = env.forage("Second service");
    env.eventually("the second goal's claim is held with its bid", async || {
        let Some(c) = env.claims().await.into_iter().find(|c| c.artifact_id == second) else { return false };
        !env.store.bids(&c.id).await.unwrap().is_empty()
            && !env.redis_cli(&["ZSCORE", &held, &c.id.to_string()]).trim().is_empty()
    })
    .await;
    // An answer while paused is recorded; the resumed grant it would give waits.
    env.ok(&["answer", &question.to_string(), "8080"]);
    env.eventually("the answered claim is held", async || {
        !env.redis_cli(&["ZSCORE", &held, &claim1.id.to_string()]).trim().is_empty()
    })
    .await;
    let grants = env.events_of(EventKind::ClaimGranted).await;
    assert_eq!(grants.len(), 1, "only the grant made before the pause: {grants:?}");
    let claims = env.claims().await;
    assert!(claims.iter().all(|c| !c.status.is_final()), "{claims:#?}");
    assert!(env.events_of(EventKind::QuestionTimedOut).await.is_empty());

    let out = env.ok(&["resume", "--reason", "fixed", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["claims"].as_array().unwrap().iter().any(|c| c == &claim1.id.to_string()), "{doc}");
    assert!(doc["paused_ms"].as_i64().unwrap() > 0, "{doc}");
    let none = env.run(&["resume"]);
    assert!(none.status.success() && text(&none.stderr).contains("is not paused"), "{}", text(&none.stderr));

    // The second goal's agent asks too; answered, both workflows complete.
    let asked = env.wait_events(LIMIT, "the second question", 2, |e| e.kind() == EventKind::QuestionAsked).await;
    env.ok(&["answer", &asked[1].data.question_id().unwrap().to_string(), "9090"]);
    let all = env.wait_terminals(2, LIMIT).await;
    let mut payloads: Vec<&str> =
        all.iter().filter(|a| a.structural_type == StructuralType::Terminal).map(|t| t.payload.as_str()).collect();
    payloads.sort();
    assert_eq!(payloads, ["8080", "9090"]);
    assert!(env.events_of(EventKind::QuestionTimedOut).await.is_empty(), "a deadline fired during the pause");
    assert!(env.artifacts_of(StructuralType::Failure).await.is_empty());
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(status["pauses"], serde_json::json!([]), "{status}");
    let trail = env.run(&["watch", "--since", "1h", "--exit-on-completion", "--timeout", "10s"]);
    let trail = text(&trail.stdout);
    assert!(trail.contains("paused") && trail.contains("the instance by test-operator"), "{trail}");
    assert!(trail.contains("resumed"), "{trail}");

    // The ledger verifies, and an edited operator of the pause shows.
    verify_ok(&env);
    let paused = env.events_of(EventKind::Paused).await.remove(0);
    let EventData::Paused(p) = paused.data else { unreachable!() };
    let key = format!("sett:{{{}}}:actions", env.name);
    let record = env.redis_cli(&["HGET", &key, &p.action_id]);
    env.redis_cli(&["HSET", &key, &p.action_id, &record.trim().replace("test-operator", "mallory")]);
    let out = env.run(&["verify", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["breach"]["record"].as_str().unwrap().contains("paused action"), "{v:#}");
    assert!(v["breach"]["problem"].as_str().unwrap().contains("operator changed"), "{v:#}");
    env.redis_cli(&["HSET", &key, &p.action_id, record.trim()]);
    verify_ok(&env);
}
