//! A ledger that went back is reported by every running component (issue 32), and nothing is
//! reported when nothing was lost. The loss is made deterministic: Redis (no persistence of its
//! own) is saved once, more work is done, then Redis is SIGKILLed and restarted on that older
//! RDB — what a restore of an old backup, or a failover to a replica that had not synced, does.
//! Within 10 s: an ERROR line with both heads in the orchestrator's and each cub's log,
//! `sett_ledger_regressions_total` on `/metrics`, a `REGRESSED` line in `sett status` (exit 1),
//! a `ledger_regressed` webhook at a real receiver, and the console's banner; `sett ledger ack`
//! clears the status. The witness file outside Redis (periodic anchors every second, each also a
//! `ledger_anchor` webhook) makes the loss provable: `sett verify --witness` exits 1 naming the
//! events lost. A normal restart, a destroy and re-creation under the same name, and an import
//! raise nothing, and the witness file still verifies after each.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use sett_core::StructuralType;
use sett_e2e::receiver::Receiver;
use sett_e2e::{Env, KillOnDrop, text};
use sett_testkit::{RedisServer, poll_until};

const LIMIT: Duration = Duration::from_secs(60);

const FINISH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
jq -n --arg g "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}'
"#;

const REVIEW: &str = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
jq -n '{artifact_type: "Review", artifact_payload: {}}'
"#;

fn team(webhook: &str, witness_hook: &str) -> String {
    format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s}}
ledger: {{anchor_every: 1s}}
agents:
  Finisher:
    command: ["./finish.sh"]
    bidding_strategy: exclusive
    timeout: 20s
  Reviewer:
    command: ["./review.sh"]
    bidding_strategy: review
    timeout: 20s
notifications:
  webhooks:
    - name: ops
      url: {webhook}
    - name: witness
      url: {witness_hook}
      events: [ledger_anchor]
"#
    )
}

/// The workspace's witness file (the default `ledger.witness_file`).
fn witness_file(env: &Env) -> std::path::PathBuf {
    env.path().join(".sett").join("ledger").join("witness.jsonl")
}

/// The highest seq the witness file holds for the instance.
fn highest_witnessed(env: &Env) -> u64 {
    std::fs::read_to_string(witness_file(env))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["instance"] == env.name.as_str())
        .filter_map(|v| v["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

/// `sett verify --witness -o json`: its exit code and document.
fn verify_witness(env: &Env) -> (Option<i32>, serde_json::Value) {
    let out = env.run(&["verify", "--witness", "-o", "json"]);
    let doc = serde_json::from_str(&text(&out.stdout))
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), doc)
}

const CONSOLE_TOKEN: &str = "regression-test-token";

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {CONSOLE_TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw
}

/// The log of `component` (`orchestrator` or `cub:<agent>`, whose file is `<agent>.log`).
fn log_of(env: &Env, component: &str) -> String {
    let file = component.strip_prefix("cub:").unwrap_or(component);
    std::fs::read_to_string(env.log_dir().join(format!("{file}.log"))).unwrap_or_default()
}

/// Prints one line of figures (kept by `--no-capture` runs for docs/reliability.md).
#[allow(clippy::print_stdout)]
fn figure(line: &str) {
    println!("{line}");
}

/// The ERROR line of a regression in `log`, if any.
fn regression_line(log: &str) -> Option<String> {
    log.lines().find(|l| l.contains("LEDGER REGRESSION") && l.contains(r#""level":50"#)).map(str::to_owned)
}

/// `sett console` on a free port; returns it and its address (`127.0.0.1:<port>`).
fn start_console(env: &Env) -> (KillOnDrop, String) {
    let (console, base) = env.console(CONSOLE_TOKEN);
    (console, base.trim_start_matches("http://").to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restarted_on_an_older_copy_is_reported_by_every_component() {
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(data.path(), &[]);
    let mut hook = Receiver::start().await;
    let yml = team(&hook.url("/sett"), &hook.url("/witness"));
    let mut env = Env::with_redis_url(&redis.url(), &yml, &[("finish.sh", FINISH), ("review.sh", REVIEW)]).await;
    env.up();
    let (_console, console) = start_console(&env);
    env.forage("first goal");
    env.wait_for(LIMIT, "the first goal done", |a| a.iter().any(|x| x.structural_type == StructuralType::Terminal))
        .await;
    assert_eq!(redis.cli(&["SAVE"]).trim(), "OK");
    let older = data.path().join("older.rdb");
    std::fs::copy(data.path().join("dump.rdb"), &older).unwrap();
    for g in ["second goal", "third goal"] {
        env.forage(g);
    }
    env.wait_for(LIMIT, "three goals done", |a| {
        a.iter().filter(|x| x.structural_type == StructuralType::Terminal).count() == 3
    })
    .await;
    let lost_head = env.store.ledger_head().await.unwrap().unwrap();
    // Every component has looked at the ledger since (what it has not seen it cannot miss).
    let components = ["orchestrator", "cub:Finisher", "cub:Reviewer"];
    let mut addrs = Vec::new();
    for c in components {
        addrs.push(env.addr_of(c).await.expect("component address"));
    }
    addrs.push(console.clone());
    for (addr, c) in addrs.iter().zip(components.iter().chain(&["console"])) {
        assert!(poll_until(LIMIT, || saw(addr, c, lost_head.seq)), "{c} never saw head {lost_head}");
    }
    // The witness file outside Redis holds the head too (anchored every second).
    assert!(
        poll_until(LIMIT, || highest_witnessed(&env) >= lost_head.seq),
        "head {lost_head} never witnessed in {}",
        witness_file(&env).display()
    );
    let (code, doc) = verify_witness(&env);
    assert_eq!(code, Some(0), "the witnesses agree with the chain before the loss: {doc}");

    redis.stop();
    std::fs::copy(&older, data.path().join("dump.rdb")).unwrap();
    redis.restart();
    let restarted = Instant::now();

    // Each report, and when it came.
    let counted = |addr: &str, component: &str| {
        http_get(addr, "/metrics").lines().any(|l| {
            l.starts_with(&format!(r#"sett_ledger_regressions_total{{component="{component}""#)) && l.ends_with(" 1")
        })
    };
    let mut seen_at: Vec<(String, Duration)> = Vec::new();
    let mut status_out = String::new();
    let orchestrator_addr = env.addr_of("orchestrator").await.expect("orchestrator address");
    // How soon each report came is a figure (printed below), not an assertion.
    let reported = poll_until(LIMIT, || {
        for c in components {
            if !seen_at.iter().any(|(n, _)| n == c) && regression_line(&log_of(&env, c)).is_some() {
                seen_at.push((c.to_owned(), restarted.elapsed()));
            }
        }
        if !seen_at.iter().any(|(n, _)| n == "metric") && counted(&orchestrator_addr, "orchestrator") {
            seen_at.push(("metric".into(), restarted.elapsed()));
        }
        if !seen_at.iter().any(|(n, _)| n == "console") && counted(&console, "console") {
            seen_at.push(("console".into(), restarted.elapsed()));
        }
        if !seen_at.iter().any(|(n, _)| n == "status") {
            let out = env.run(&["status"]);
            status_out = text(&out.stdout);
            if out.status.code() == Some(1) && status_out.contains("REGRESSED") {
                seen_at.push(("status".into(), restarted.elapsed()));
            }
        }
        seen_at.len() == components.len() + 3
    });
    assert!(reported, "not every component reported within {LIMIT:?}: {seen_at:?}\n{status_out}\n{}", env.logs());
    let mut others = Vec::new();
    let left = LIMIT.saturating_sub(restarted.elapsed()).max(Duration::from_millis(1));
    let r = hook.next_event("ledger_regressed", left, &mut others).await;
    seen_at.push(("webhook".into(), restarted.elapsed()));
    // Each anchor was also sent to the webhook that asked for `ledger_anchor` (and only to it):
    // a witness line the receiver can keep.
    let anchor = match others.iter().find(|o| o.header("x-sett-event") == Some("ledger_anchor")) {
        Some(a) => a.clone(),
        None => hook.next_event("ledger_anchor", LIMIT, &mut Vec::new()).await,
    };
    assert_eq!(anchor.path, "/witness", "ledger_anchor is opt-in: only the webhook naming it gets it");
    let line: sett_core::witness::WitnessRecord =
        serde_json::from_str(anchor.json()["ledger"]["witness_line"].as_str().unwrap()).unwrap();
    assert_eq!(line.instance, env.name.as_str());
    assert!(others.iter().all(|o| o.path != "/sett" || o.header("x-sett-event") != Some("ledger_anchor")));

    // The loss is provable: every witnessed head must be in the chain, and the newest are not.
    let witnessed = highest_witnessed(&env);
    let (code, doc) = verify_witness(&env);
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["breach"]["record"], "witnessed head", "{doc}");
    let problem = doc["breach"]["problem"].as_str().unwrap();
    let chain_end = doc["head"].as_str().unwrap().split(':').next().unwrap().parse::<u64>().unwrap();
    assert!(
        problem.contains(&format!("events {}..{witnessed}", chain_end + 1)) && problem.contains("lost"),
        "the lost range is named: {problem}"
    );
    figure(&format!("WITNESS sett verify --witness after the loss: {problem}"));
    figure(&format!("REGRESSION reported after Redis restarted on an older copy: {seen_at:?}"));

    // One record per lost head, whoever noticed: the highest head seen (at least the one the
    // test read before the loss) and the one found.
    let recorded = env.store.regressions().await.unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let g = &recorded[0];
    let seen_seq: u64 = g.seen.split(':').next().unwrap().parse().unwrap();
    assert!(seen_seq >= lost_head.seq, "{g:?} vs {lost_head}");
    let found = g.found.clone().expect("a head was found");
    // The ERROR line names both heads and the events lost.
    let line = regression_line(&log_of(&env, "orchestrator")).unwrap();
    assert!(line.contains(&format!("from {} to {found}", g.seen)), "{line}");
    assert!(line.contains(&format!(r#""lost_at_least":{}"#, g.lost_at_least)), "{line}");
    let doc = r.json();
    assert_eq!(doc["event"], "ledger_regressed");
    assert_eq!(doc["instance"], env.name.as_str());
    assert_eq!(doc["ledger"]["seen"], g.seen.as_str());
    assert_eq!(doc["ledger"]["found"], found.as_str());
    assert!(doc["ledger"]["lost_at_least"].as_u64().unwrap() > 0, "{doc}");
    assert!(status_out.contains(&format!("went back from {} to {found}", g.seen)), "{status_out}");

    // The console's instances page shows it until acknowledged.
    let page = http_get(&console, "/");
    assert!(page.contains("ledger-regressed") && page.contains(&g.seen), "{page}");

    // Acknowledged: `sett status` is healthy again.
    let ack = env.ok(&["ledger", "ack", "-o", "json"]);
    let ack: serde_json::Value = serde_json::from_str(&ack).unwrap();
    assert_eq!(ack["acknowledged"].as_array().unwrap().len(), 1, "{ack}");
    let out = env.run(&["status"]);
    assert!(out.status.success() && !text(&out.stdout).contains("REGRESSED"), "{}", text(&out.stdout));
    // Acknowledged, the witness file checks from the accepted head on (its older lines stay).
    let (code, doc) = verify_witness(&env);
    assert_eq!(code, Some(0), "{doc}");
    assert!(doc["report"]["witnessed"]["replaced"].as_u64().unwrap() > 0, "{doc}");
    env.down();
}

/// `component`'s `sett_ledger_seen_seq` (on the `/metrics` of `addr`) reached `seq`: its watch
/// looked at the ledger after whatever the test did last.
fn saw(addr: &str, component: &str, seq: u64) -> bool {
    http_get(addr, "/metrics").lines().any(|l| {
        l.starts_with(&format!(r#"sett_ledger_seen_seq{{component="{component}""#))
            && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v >= seq as f64)
    })
}

async fn assert_nothing_reported(env: &Env, what: &str) {
    let head = env.store.ledger_head().await.unwrap().unwrap();
    let addr = env.addr_of("orchestrator").await.expect("orchestrator address");
    assert!(
        poll_until(LIMIT, || saw(&addr, "orchestrator", head.seq)),
        "{what}: the orchestrator never checked the head"
    );
    assert!(!env.logs_all().contains("LEDGER REGRESSION"), "{what}: a false alarm\n{}", env.logs());
    assert!(env.store.regressions().await.unwrap().is_empty(), "{what}: a regression was recorded");
    let out = env.run(&["status"]);
    assert!(!text(&out.stdout).contains("REGRESSED"), "{what}: {}", text(&out.stdout));
    let (code, doc) = verify_witness(env);
    assert_eq!(code, Some(0), "{what}: the witness file disagrees with the chain: {doc}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_a_re_creation_and_an_import_raise_no_regression() {
    let hook = Receiver::start().await;
    let yml = team(&hook.url("/sett"), &hook.url("/witness"));
    let mut env = Env::new(&yml, &[("finish.sh", FINISH), ("review.sh", REVIEW)]).await;
    let done = |n: usize| {
        move |a: &[sett_core::Artifact]| a.iter().filter(|x| x.structural_type == StructuralType::Terminal).count() == n
    };
    env.up();
    env.forage("one");
    env.wait_for(LIMIT, "one goal done", done(1)).await;
    let export = env.path().join("export.jsonl");
    env.ok(&["export", "--file", export.to_str().unwrap()]);

    // A normal restart.
    env.down();
    env.up();
    env.forage("two");
    env.wait_for(LIMIT, "two goals done", done(2)).await;
    assert_nothing_reported(&env, "restart").await;

    // Destroyed and created again under the same name: a new, shorter ledger.
    env.down();
    env.ok(&["destroy", "--force"]);
    env.up();
    assert_nothing_reported(&env, "re-creation").await;

    // The export (one goal: an older head than the one seen) imported in its place.
    env.down();
    env.ok(&["destroy", "--force"]);
    env.ok(&["import", export.to_str().unwrap()]);
    env.up();
    env.forage("three");
    env.wait_for(LIMIT, "the imported goal and a new one done", done(2)).await;
    assert_nothing_reported(&env, "import").await;
    env.down();
}

/// `ledger.on_regression: pause`: the orchestrator that notices the loss pauses the instance
/// (recorded as a pause by `sett:ledger-watch`, with both heads in the reason); a goal foraged
/// afterwards gets its claim and bids but no grant until an operator runs `sett resume`; then it
/// completes, and the ledger (pause and resume included) verifies.
#[tokio::test(flavor = "multi_thread")]
async fn with_on_regression_pause_nothing_is_granted_after_a_loss_until_an_operator_resumes() {
    use sett_core::event::{EventData, EventKind};
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(data.path(), &[]);
    let hook = Receiver::start().await;
    let yml = team(&hook.url("/sett"), &hook.url("/witness"))
        .replace("ledger: {anchor_every: 1s}", "ledger: {anchor_every: 1s, on_regression: pause}");
    let mut env = Env::with_redis_url(&redis.url(), &yml, &[("finish.sh", FINISH), ("review.sh", REVIEW)]).await;
    env.up();
    let terminals = |n: usize| {
        move |a: &[sett_core::Artifact]| a.iter().filter(|x| x.structural_type == StructuralType::Terminal).count() == n
    };
    env.forage("first goal");
    env.wait_for(LIMIT, "the first goal done", terminals(1)).await;
    assert_eq!(redis.cli(&["SAVE"]).trim(), "OK");
    let older = data.path().join("older.rdb");
    std::fs::copy(data.path().join("dump.rdb"), &older).unwrap();
    env.forage("second goal");
    env.wait_for(LIMIT, "two goals done", terminals(2)).await;
    let lost_head = env.store.ledger_head().await.unwrap().unwrap();
    let orchestrator = env.addr_of("orchestrator").await.expect("orchestrator address");
    assert!(poll_until(LIMIT, || saw(&orchestrator, "orchestrator", lost_head.seq)), "never saw {lost_head}");

    redis.stop();
    std::fs::copy(&older, data.path().join("dump.rdb")).unwrap();
    redis.restart();

    // The orchestrator pauses the instance, naming the loss.
    let mut status = serde_json::Value::Null;
    let paused = poll_until(LIMIT, || {
        status = serde_json::from_slice(&env.run(&["status", "-o", "json"]).stdout).unwrap_or_default();
        status["pauses"].as_array().is_some_and(|p| !p.is_empty())
    });
    assert!(paused, "the instance was not paused after the loss: {status:#}\n{}", env.logs());
    let pause = &status["pauses"][0];
    assert_eq!(pause["operator"], "sett:ledger-watch", "{status:#}");
    assert!(pause["goal_id"].is_null(), "the whole instance is paused: {status:#}");
    let reason = pause["reason"].as_str().unwrap();
    assert!(reason.contains("the ledger went back from") && reason.contains("sett resume"), "{reason}");

    // A goal foraged now is bid on and held, not granted.
    let third = env.forage("third goal");
    let held = format!("sett:{{{}}}:held", env.name);
    let mut claim = None;
    let deadline = Instant::now() + LIMIT;
    while claim.is_none() {
        assert!(Instant::now() < deadline, "the third goal's claim was never held\n{}", env.logs());
        if let Some(c) = env.claims().await.into_iter().find(|c| c.artifact_id == third)
            && !env.store.bids(&c.id).await.unwrap().is_empty()
            && !redis.cli(&["ZSCORE", &held, &c.id.to_string()]).trim().is_empty()
        {
            claim = Some(c.id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claim = claim.unwrap();
    let granted_third = |events: &[sett_core::event::Event]| {
        events.iter().position(|e| e.kind() == EventKind::ClaimGranted && e.data.claim_id() == Some(claim))
    };
    assert_eq!(granted_third(&env.events().await), None, "granted while paused");

    env.ok(&["resume", "--reason", "looked at the loss"]);
    env.wait_for(LIMIT, "the third goal done after resume", |a| {
        a.iter().any(|x| x.structural_type == StructuralType::Terminal && x.payload.contains("third goal"))
    })
    .await;
    // The grant came after the resume in the ledger's own order.
    let events = env.events().await;
    let resumed = events.iter().position(|e| matches!(e.data, EventData::Resumed(_))).expect("a resumed event");
    let granted = granted_third(&events).expect("the third goal's claim granted");
    assert!(granted > resumed, "granted at {granted}, resumed at {resumed}");
    let out = env.run(&["verify"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    env.down();
}
