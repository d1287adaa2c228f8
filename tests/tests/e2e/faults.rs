//! Fault injection against real processes: Redis (AOF on) killed and restarted mid-workload,
//! the orchestrator and cubs killed with SIGKILL at random moments and restarted with `sett up`,
//! hung, flooding, fork-bombing and escaping tools, and logs written to a full disk. After every
//! scenario each goal has exactly one outcome (one Terminal, or Failures that say why), no claim
//! is left open, artifact ids are unique, and components that were not killed kept running.
//! Figures are printed (`FAULTS ...` lines) and recorded in docs/reliability.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sett_core::{Artifact, ArtifactId, StructuralType};
use sett_e2e::{Env, summary, text};
use sett_store::new_artifact_id;
use sett_testkit::RedisServer;

/// Reviews approve; the finisher ends the workflow with a Terminal naming its goal.
const REVIEW: &str = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
jq -n '{artifact_type: "Review", artifact_payload: {}}'
"#;

const FINISH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
sleep 0.$((RANDOM % 3))
jq -n --arg g "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}'
"#;

const TEAM: &str = r#"
version: "1.0"
orchestrator: {bid_timeout: 10s}
agents:
  Reviewer:
    command: ["./review.sh"]
    bidding_strategy: review
    timeout: 8s
  Finisher:
    command: ["./finish.sh"]
    bidding_strategy: exclusive
    timeout: 8s
  Boss:
    command: ["./finish.sh"]
    bidding_strategy: {type: exclusive, target_types: ["Delegated"]}
    mode: controller
    worker: {max_concurrent: 2}
    timeout: 8s
"#;

/// Writes `n` goals (half for the Finisher cub, half for the Boss's workers); returns their ids.
async fn goals(env: &Env, round: usize, n: usize) -> Vec<ArtifactId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let kind = if i % 2 == 0 { "GoalDefined" } else { "Delegated" };
        let a = Artifact::new_root(
            new_artifact_id(),
            StructuralType::Standard,
            kind,
            format!("r{round} g{i}"),
            "user",
            sett_store::now_ms(),
        );
        env.store.create_artifact(&a).await.expect("create goal");
        ids.push(a.id);
    }
    ids
}

/// What happened to each goal.
#[derive(Debug, Default)]
struct Outcomes {
    completed: usize,
    failed: usize,
    /// Failure artifact types and how often each occurred.
    failure_types: BTreeMap<String, usize>,
}

/// Waits until every goal has an outcome (a Terminal, or a Failure), then checks the invariants:
/// one Terminal at most per goal and never a Terminal and a Failure together, every Failure says
/// why, artifact ids are unique, every claim is final.
async fn settle(env: &Env, goals: &[ArtifactId], limit: Duration) -> Outcomes {
    let wanted: BTreeSet<ArtifactId> = goals.iter().copied().collect();
    let goal_of = |a: &Artifact| a.source_artifacts.iter().find(|s| wanted.contains(s)).copied();
    env.wait_for(limit, &format!("an outcome for each of {} goals", goals.len()), |arts| {
        let done: BTreeSet<ArtifactId> = arts
            .iter()
            .filter(|a| matches!(a.structural_type, StructuralType::Terminal | StructuralType::Failure))
            .filter_map(goal_of)
            .collect();
        done.len() == wanted.len()
    })
    .await;
    // Give late duplicates (the thing we look for) a moment to appear, then read everything.
    let all = env.artifacts().await;
    let ids: BTreeSet<ArtifactId> = all.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), all.len(), "duplicate artifact ids");
    let mut per_goal: BTreeMap<ArtifactId, (usize, usize)> = BTreeMap::new();
    let mut failure_types: BTreeMap<String, usize> = BTreeMap::new();
    for a in &all {
        let Some(g) = goal_of(a) else { continue };
        let e = per_goal.entry(g).or_default();
        match a.structural_type {
            StructuralType::Terminal => e.0 += 1,
            StructuralType::Failure => {
                e.1 += 1;
                *failure_types.entry(a.artifact_type.clone()).or_default() += 1;
                let p: serde_json::Value = serde_json::from_str(&a.payload).unwrap_or(serde_json::Value::Null);
                let reason = p.get("reason").and_then(|r| r.as_str()).unwrap_or(&a.payload);
                assert!(!reason.trim().is_empty(), "a Failure without a reason: {a:?}");
            }
            _ => {}
        }
    }
    let mut out = Outcomes { failure_types, ..Outcomes::default() };
    for g in goals {
        let (t, f) = per_goal.get(g).copied().unwrap_or_default();
        assert!(t <= 1, "goal {g}: {t} Terminals\n{:#?}", summary(&all));
        assert!(!(t == 1 && f > 0), "goal {g}: a Terminal and {f} Failure(s)\n{:#?}", summary(&all));
        if t == 1 {
            out.completed += 1;
        } else {
            assert!(f > 0, "goal {g}: no outcome");
            out.failed += 1;
        }
    }
    // No claim stays open once every workflow has its outcome (deadlines end the rest).
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let open: Vec<String> = env
            .claims()
            .await
            .into_iter()
            .filter(|c| !c.status.is_final())
            .map(|c| format!("{} {}", c.id, c.status))
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "claims left open: {open:?}\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    out
}

fn sigkill(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(sett_runtime::wait_gone(pid, Duration::from_secs(5)), "pid {pid} survived SIGKILL");
}

/// Waits until a restarted Redis has loaded its AOF (it accepts connections before, answering
/// `LOADING` to every command), so the test's own reads do not fail.
fn wait_loaded(port: u16) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output();
        if out.is_ok_and(|o| text(&o.stdout).trim() == "PONG") {
            return;
        }
        assert!(Instant::now() < until, "redis on port {port} did not finish loading");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A pseudo-random number below `max`, different per call and per run.
fn rand_below(max: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64) % max
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_and_restarted_mid_workload_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(data.path(), &["--appendonly", "yes", "--appendfsync", "always"]);
    // Agent timeouts well above the outages: an output delayed past its grant's deadline by an
    // outage can still race the deadline's Failure (docs/security.md, finding 17). The bid
    // deadline too: the five outages and the clients' reconnections can add up to more than 10 s
    // around one claim, and a bid that could not reach Redis before its deadline counts as
    // `ignore` (the claim then ends without an outcome, which this test would wait for in vain).
    let team = TEAM.replace("timeout: 8s", "timeout: 30s").replace("bid_timeout: 10s", "bid_timeout: 60s");
    assert!(team.contains("bid_timeout: 60s"), "the team's bid timeout is the one replaced");
    let mut env = Env::with_redis_url(&redis.url(), &team, &[("review.sh", REVIEW), ("finish.sh", FINISH)]).await;
    env.up();
    let components = ["orchestrator", "cub:Reviewer", "cub:Finisher", "cub:Boss"];
    let mut pids = Vec::new();
    for c in components {
        pids.push(env.pid_of(c).await.expect("component runs"));
    }
    const ROUNDS: usize = 5;
    const GOALS: usize = 10;
    let mut all = Vec::new();
    for round in 0..ROUNDS {
        all.extend(goals(&env, round, GOALS).await);
        tokio::time::sleep(Duration::from_millis(rand_below(800))).await;
        redis.stop();
        // Outages from 0.2 s to 3 s: shorter than the lock TTL, longer than a command timeout's
        // first attempt.
        tokio::time::sleep(Duration::from_millis(200 + rand_below(2800))).await;
        redis.restart();
        wait_loaded(redis.port);
    }
    let out = settle(&env, &all, Duration::from_secs(150)).await;
    // Nobody was restarted: the components reconnected by themselves.
    for (c, pid) in components.iter().zip(&pids) {
        assert!(sett_runtime::is_alive(*pid), "{c} died during the outages\n{}", env.logs());
        assert_eq!(env.pid_of(c).await, Some(*pid), "{c} was replaced");
    }
    figure(&format!(
        "FAULTS redis-restart: rounds={ROUNDS} goals={} completed={} failed={} lost=0 duplicated=0",
        all.len(),
        out.completed,
        out.failed
    ));
    assert_eq!(out.completed + out.failed, all.len());
    // An outage shorter than the agents' timeouts must not fail anything.
    if out.failed > 0 {
        let failures = env.artifacts_of(StructuralType::Failure).await;
        let mut lines = Vec::new();
        for f in &failures {
            let claim = f.claim_id.map(|c| c.to_string()).unwrap_or_default();
            for entry in std::fs::read_dir(env.log_dir()).unwrap().flatten() {
                let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
                lines.extend(body.lines().filter(|l| !claim.is_empty() && l.contains(&claim)).map(str::to_owned));
            }
        }
        panic!(
            "{} failure(s): {:#?}\n{}",
            out.failed,
            failures.iter().map(|f| &f.payload).collect::<Vec<_>>(),
            lines.join("\n")
        );
    }
    env.down();
    // Redis killed mid-append (AOF fsync always): every script is atomic in the AOF too, so the
    // reloaded chain is intact.
    assert_ledger_verifies(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn orchestrator_and_cubs_killed_at_random_moments_then_up_again() {
    let mut env = Env::new(TEAM, &[("review.sh", REVIEW), ("finish.sh", FINISH)]).await;
    env.up();
    const ROUNDS: usize = 8;
    const GOALS: usize = 8;
    let components = ["orchestrator", "cub:Reviewer", "cub:Finisher", "cub:Boss"];
    let mut all = Vec::new();
    let mut killed: BTreeMap<&str, usize> = BTreeMap::new();
    for round in 0..ROUNDS {
        all.extend(goals(&env, round, GOALS).await);
        tokio::time::sleep(Duration::from_millis(rand_below(600))).await;
        // One or two random components at once.
        let first = rand_below(components.len() as u64) as usize;
        let mut victims = vec![components[first]];
        if rand_below(2) == 0 {
            victims.push(components[(first + 1 + rand_below(3) as usize) % components.len()]);
        }
        for v in victims {
            if let Some(pid) = env.pid_of(v).await {
                sigkill(pid);
                *killed.entry(v).or_default() += 1;
            }
        }
        env.up();
    }
    let out = settle(&env, &all, Duration::from_secs(180)).await;
    figure(&format!(
        "FAULTS component-kill: rounds={ROUNDS} kills={killed:?} goals={} completed={} failed={} {:?} lost=0 duplicated=0",
        all.len(),
        out.completed,
        out.failed,
        out.failure_types
    ));
    // A goal may fail only because a cub or worker was killed mid-run (its grant's deadline ends
    // the claim and the Failure says so); killing the orchestrator alone fails nothing.
    for t in out.failure_types.keys() {
        assert!(
            t == "ExecutionTimeout" || t == "WorkerFailure",
            "unexpected failure type {t}: {:?}",
            out.failure_types
        );
    }
    assert!(out.completed >= all.len() / 4, "completed {} of {}", out.completed, all.len());
    env.down();
    // Writers killed with SIGKILL mid-append never leave a chain that verify rejects: each
    // append is one atomic script.
    assert_ledger_verifies(&env);
}

/// `sett verify` of the env's instance exits 0.
fn assert_ledger_verifies(env: &Env) {
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "verify: {}\n{}", text(&out.stdout), text(&out.stderr));
}

/// Adversarial tools, selected by the goal text. Each writes its pid group marker first.
const ADVERSARY: &str = r#"#!/usr/bin/env bash
input=$(cat)
goal=$(jq -r .target_artifact.payload <<<"$input")
marker="sett-adversary-$SETT_INSTANCE"
case "$goal" in
  hang)
    # Ignores SIGTERM and SIGINT; only the group SIGKILL ends it (and its child).
    trap '' TERM INT
    bash -c "exec -a $marker-hang-child sleep 1000" &
    touch hang.started
    while :; do sleep 1; done ;;
  flood)
    # Endless output on both streams: capped at 10 MiB each, ended by the timeout.
    touch flood.started
    yes "flood flood flood flood flood flood flood" &
    exec yes "err err err err err" >&2 ;;
  forkbomb)
    # A bounded fork bomb: 6 generations of doubling processes (126), all sleeping.
    touch forkbomb.started
    bomb() { if [ "$1" -gt 0 ]; then bomb $(($1 - 1)) & bomb $(($1 - 1)) & fi; exec -a "$marker-bomb" sleep 1000; }
    bomb 6 ;;
  *)
    jq -n --arg g "$goal" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}' ;;
esac
"#;

/// Prints one `FAULTS ...` line of figures (kept by `--no-capture` runs for docs/reliability.md).
#[allow(clippy::print_stdout)]
fn figure(line: &str) {
    println!("{line}");
}

/// Processes whose command line carries `marker`.
fn survivors(marker: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep").args(["-af", marker]).output().expect("pgrep");
    text(&out.stdout).lines().filter(|l| !l.contains("pgrep")).map(str::to_owned).collect()
}

/// Peak resident memory of a process in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_flooding_and_forking_tools_are_bounded_and_killed_with_their_group() {
    let yml = r#"
version: "1.0"
agents:
  Adversary:
    command: ["./adversary.sh"]
    bidding_strategy: exclusive
    timeout: 3s
"#;
    let mut env = Env::new(yml, &[("adversary.sh", ADVERSARY)]).await;
    env.up();
    let cub = env.pid_of("cub:Adversary").await.expect("cub runs");
    let marker = format!("sett-adversary-{}", env.name);
    let mut figures = Vec::new();
    for goal in ["hang", "flood", "forkbomb"] {
        let started = Instant::now();
        let id = env.forage(goal);
        let arts = env
            .wait_for(Duration::from_secs(60), &format!("the {goal} tool's Failure"), |a| {
                a.iter().any(|x| x.structural_type == StructuralType::Failure && x.source_artifacts.contains(&id))
            })
            .await;
        let took = started.elapsed();
        let f = arts.iter().find(|x| x.structural_type == StructuralType::Failure).unwrap();
        assert_eq!(f.artifact_type, "ToolExecutionFailure", "{goal}: {}", f.payload);
        let p: serde_json::Value = serde_json::from_str(&f.payload).unwrap();
        let reason = p["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("timed out") || reason.contains("timeout"), "{goal}: reason {reason:?}");
        // The tails stay small whatever the tool printed.
        assert!(f.payload.len() < 64 * 1024, "{goal}: failure payload of {} bytes", f.payload.len());
        assert!(env.path().join(format!("{goal}.started")).exists(), "{goal} never ran");
        // Ended by the timeout (the reason above), not by the tool; how long it took is a figure.
        // Nothing the tool started outlives its grant.
        let until = Instant::now() + Duration::from_secs(5);
        let mut left = survivors(&marker);
        while !left.is_empty() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = survivors(&marker);
        }
        assert!(left.is_empty(), "{goal}: processes survived the grant: {left:?}");
        figures.push(format!("{goal}={}ms", took.as_millis()));
    }
    // The cub survived all three and still works; its memory stayed bounded by the caps.
    assert!(sett_runtime::is_alive(cub));
    let rss = peak_rss_kib(cub);
    assert!(rss < 512 * 1024, "the cub's peak RSS is {rss} KiB");
    env.forage("fine");
    env.wait_terminals(1, Duration::from_secs(30)).await;
    figure(&format!("FAULTS adversarial-tools: {} cub_peak_rss_kib={rss} survivors=0", figures.join(" ")));
    env.down();
}

/// Every component log is `/dev/full` (each write fails with ENOSPC, as on a full disk):
/// the daemons keep working and workflows complete.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_for_logs_stops_no_workflow() {
    let mut env = Env::new(TEAM, &[("review.sh", REVIEW), ("finish.sh", FINISH)]).await;
    let dir = env.path().join(".sett").join("logs").join(env.name.as_str());
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["orchestrator", "Reviewer", "Finisher", "Boss", "Boss-workers"] {
        std::os::unix::fs::symlink("/dev/full", dir.join(format!("{f}.log"))).unwrap();
    }
    env.up();
    let ids = goals(&env, 0, 10).await;
    let out = settle(&env, &ids, Duration::from_secs(90)).await;
    assert_eq!(out.completed, ids.len(), "{out:?}");
    for c in ["orchestrator", "cub:Reviewer", "cub:Finisher", "cub:Boss"] {
        let pid = env.pid_of(c).await.expect("registered");
        assert!(sett_runtime::is_alive(pid), "{c} died writing to a full disk");
    }
    figure(&format!("FAULTS full-disk-logs: goals={} completed={} lost=0", ids.len(), out.completed));
    env.down();
}
