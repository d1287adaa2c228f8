//! The tamper-evident ledger end to end: a real workflow (a question, a rework, a Terminal),
//! exported once, imported into a fresh instance per case, tampered with redis-cli the way an
//! attacker with write access would, then `sett verify` must exit 1 naming the right record
//! (and exit 0 on the untouched copy). The same on an export file edited with sed.

use std::process::Command;
use std::time::Duration;

use sett_core::StructuralType;
use sett_core::ledger;
use sett_e2e::{Env, text};

const MINUTE: Duration = Duration::from_secs(60);

/// `sett verify -o json` of instance `name` (or of `--file`): (exit code, report).
pub(crate) fn verify(env: &Env, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["verify", "-o", "json"];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("verify {extra:?} printed no JSON ({e}): {}\n{}", text(&out.stdout), text(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), v)
}

fn assert_broken(env: &Env, extra: &[&str], record: &str, problem: &str) {
    let (code, v) = verify(env, extra);
    assert_eq!(code, 1, "{extra:?}: expected a break, got {v:#}");
    let b = &v["breach"];
    assert!(b["record"].as_str().unwrap_or("").contains(record), "{extra:?}: wrong record, expected {record}: {v:#}");
    assert!(
        b["problem"].as_str().unwrap_or("").contains(problem),
        "{extra:?}: wrong problem, expected {problem}: {v:#}"
    );
}

/// A fresh instance holding a copy of the workflow; returns its name.
fn fresh_copy(env: &Env, export: &std::path::Path) -> String {
    let name = sett_testkit::instance_name().to_string();
    env.ok(&["import", "-n", &name, export.to_str().unwrap()]);
    name
}

/// The stream entry ids of instance `name`, oldest first.
async fn event_ids(env: &Env, name: &str) -> Vec<String> {
    let store = env.redis.instance(&sett_core::InstanceName::parse(name).unwrap());
    store.raw_events_after(None, 100_000).await.unwrap().into_iter().map(|(id, _)| id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tampering_is_caught_and_the_untouched_workflow_verifies() {
    let mut env = Env::examples(true).await;
    env.up();
    env.forage("Build a to-do service");
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let q: serde_json::Value = serde_json::from_str(&out).unwrap();
    let qid = q[0]["id"].as_str().expect("a question").to_owned();
    env.ok(&["answer", &qid, "Use port 8080"]);
    let artifacts = env.wait_terminals(1, MINUTE).await;
    env.down();
    let of = |t: StructuralType| artifacts.iter().filter(move |a| a.structural_type == t).collect::<Vec<_>>();
    assert!(artifacts.iter().any(|a| a.version == 2), "the workflow has a rework");
    let answer = of(StructuralType::Answer)[0].clone();
    let terminal = of(StructuralType::Terminal)[0].clone();
    let commit = artifacts.iter().find(|a| a.artifact_type == "CodeCommit").unwrap().clone();
    let review = of(StructuralType::Review)[0].clone();

    // Untouched: exit 0 with the head printed (and it is the stored head).
    let (code, v) = verify(&env, &[]);
    assert_eq!(code, 0, "{v:#}");
    let head = v["head"].as_str().unwrap().to_owned();
    // Anchors: `sett down` recorded that head in sett:audit, and `sett status` shows it.
    let anchors: Vec<_> = env
        .redis
        .audit_records()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r["event"] == "ledger_anchor" && r["instance"] == env.name.as_str())
        .collect();
    assert_eq!(anchors.last().map(|(_, r)| r["head"].clone()), Some(serde_json::json!(head)), "{anchors:?}");
    assert_eq!(anchors.last().unwrap().1["reason"], "down");
    let status: serde_json::Value = serde_json::from_slice(&env.run(&["status", "-o", "json"]).stdout).unwrap();
    assert_eq!(status["ledger_head"], head.as_str(), "{status:#}");
    assert_eq!(Some(head.clone()), env.store.ledger_head().await.unwrap().map(|h| h.to_string()));
    assert!(v["report"]["artifacts"].as_u64().unwrap() >= 8, "{v:#}");
    assert!(v["report"]["claims"].as_u64().unwrap() >= 3, "{v:#}");
    let human = env.ok(&["verify"]);
    assert!(human.contains("is intact") && human.contains(&head), "{human}");
    assert_eq!(env.ok(&["verify", "-q"]).trim(), head);
    assert_eq!(verify(&env, &["--head", &head]).0, 0);

    let export = env.path().join("base.jsonl");
    let out = env.run(&["export", "--file", export.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains(&format!("Ledger head: {head}")), "{}", text(&out.stderr));
    assert_eq!(verify(&env, &["--file", export.to_str().unwrap()]).0, 0, "the export verifies offline");
    let key = |name: &str, rest: &str| format!("sett:{{{name}}}:{rest}");

    // A payload byte changed.
    let n = fresh_copy(&env, &export);
    assert_eq!(verify(&env, &["-n", &n]).0, 0, "an imported copy verifies");
    env.redis_cli(&["HSET", &key(&n, &format!("artifact:{}", commit.id)), "payload", &format!("{}x", commit.payload)]);
    assert_broken(&env, &["-n", &n], &format!("artifact {}", commit.id), "payload changed");

    // An artifact deleted.
    let n = fresh_copy(&env, &export);
    env.redis_cli(&["DEL", &key(&n, &format!("artifact:{}", review.id))]);
    assert_broken(&env, &["-n", &n], &format!("artifact {}", review.id), "missing");

    // A source list edited.
    let n = fresh_copy(&env, &export);
    let forged = serde_json::json!([review.id]).to_string();
    env.redis_cli(&["HSET", &key(&n, &format!("artifact:{}", terminal.id)), "source_artifacts", &forged]);
    assert_broken(&env, &["-n", &n], &format!("artifact {}", terminal.id), "source_artifacts changed");

    // An answer's answered_by changed: on the artifact, and in the answer record.
    let n = fresh_copy(&env, &export);
    env.redis_cli(&["HSET", &key(&n, &format!("artifact:{}", answer.id)), "answered_by", "mallory"]);
    assert_broken(&env, &["-n", &n], &format!("artifact {}", answer.id), "answered_by changed");
    let n = fresh_copy(&env, &export);
    let record = env.redis_cli(&["HGET", &key(&n, "questions:answers"), &qid]).replace("test-operator", "mallory");
    env.redis_cli(&["HSET", &key(&n, "questions:answers"), &qid, record.trim()]);
    assert_broken(&env, &["-n", &n], &format!("answer to question {qid}"), "answered_by changed");

    // An event deleted (XDEL): the next one names the missing seq.
    let n = fresh_copy(&env, &export);
    let ids = event_ids(&env, &n).await;
    assert!(ids.len() > 12, "{ids:?}");
    env.redis_cli(&["XDEL", &key(&n, "events"), &ids[5]]);
    assert_broken(&env, &["-n", &n], &format!("event {} (seq 7)", ids[6]), "seq 6 is missing");
    // The newest event deleted: the head record tells.
    let n = fresh_copy(&env, &export);
    env.redis_cli(&["XDEL", &key(&n, "events"), ids.last().unwrap()]);
    assert_broken(&env, &["-n", &n], "event stream end", "newest event(s) were removed");

    // An event inserted.
    let n = fresh_copy(&env, &export);
    let inserted =
        env.redis_cli(&["XADD", &key(&n, "events"), "*", "kind", "artifact_created", "ts", "1", "data", "{}"]);
    assert_broken(&env, &["-n", &n], &format!("event {}", inserted.trim()), "not chained");

    // The stream truncated (XTRIM).
    let n = fresh_copy(&env, &export);
    env.redis_cli(&["XTRIM", &key(&n, "events"), "MAXLEN", "10"]);
    assert_broken(&env, &["-n", &n], "event", "truncated");

    // The whole chain recomputed by an attacker (a bid's agent rewritten, every later link and
    // the head recomputed): invisible without a recorded head, caught with --head.
    let n = fresh_copy(&env, &export);
    rewrite_chain(&env, &n).await;
    assert_eq!(verify(&env, &["-n", &n]).0, 0, "a full rewrite is self-consistent");
    assert_broken(&env, &["-n", &n, "--head", &head], "event", "head mismatch");

    // The same on an export file edited with sed.
    let sed = |expr: &str| {
        let path = env.path().join(format!("edited-{}.jsonl", sett_testkit::instance_name()));
        std::fs::copy(&export, &path).unwrap();
        let ok = Command::new("sed").args(["-i", expr]).arg(&path).status().unwrap().success();
        assert!(ok);
        assert_ne!(std::fs::read(&path).unwrap(), std::fs::read(&export).unwrap(), "sed {expr} changed nothing");
        path
    };
    let f = sed(&format!("s/\"payload\":\"{}\"/\"payload\":\"{}x\"/", commit.payload.trim(), commit.payload.trim()));
    assert_broken(&env, &["--file", f.to_str().unwrap()], &format!("artifact {}", commit.id), "payload changed");
    let f = sed("s/\"answered_by\":\"test-operator\"/\"answered_by\":\"mallory\"/");
    assert_broken(&env, &["--file", f.to_str().unwrap()], &format!("artifact {}", answer.id), "answered_by changed");
    // A bid rewritten: a cub's own (`bid_submitted`), or a standing one listed by its claim's
    // `claim_created` (its agent).
    let f = sed(concat!(
        "s/\\\\\"bid\\\\\":\\\\\"exclusive\\\\\"/\\\\\"bid\\\\\":\\\\\"review\\\\\"/;",
        "s/\\\\\"standing_bids\\\\\":{\\\\\"/\\\\\"standing_bids\\\\\":{\\\\\"Mallory/"
    ));
    assert_broken(&env, &["--file", f.to_str().unwrap()], "event", "content changed");
    let f = sed(&format!("s/\"seq\":\"{}\"/\"seq\":\"99999\"/", 3));
    assert_broken(&env, &["--file", f.to_str().unwrap()], "event", "seq");
}

/// What an attacker with full write access does to hide an edit: rewrites an event, then
/// recomputes every later link and the head with the documented encoding.
async fn rewrite_chain(env: &Env, name: &str) {
    let store = env.redis.instance(&sett_core::InstanceName::parse(name).unwrap());
    let entries = store.raw_events_after(None, 100_000).await.unwrap();
    let events = format!("sett:{{{name}}}:events");
    env.redis_cli(&["DEL", &events]);
    let mut prev = ledger::GENESIS.to_owned();
    let mut forged = false;
    for (id, mut f) in entries {
        // A bid: a cub's own, or a standing one listed by its claim's creation.
        if !forged && f["kind"] == "bid_submitted" {
            f.insert("data".into(), f["data"].replace("\"agent\":\"", "\"agent\":\"Mallory"));
            forged = true;
        } else if !forged && f["kind"] == "claim_created" && f["data"].contains("\"standing_bids\":{\"") {
            f.insert("data".into(), f["data"].replace("\"standing_bids\":{\"", "\"standing_bids\":{\"Mallory"));
            forged = true;
        }
        let seq: u64 = f["seq"].parse().unwrap();
        let digest = ledger::event_digest(&f["kind"], &f["ts"], &f["data"], f.get("claim").map(String::as_str));
        let hash = ledger::chain_link(&prev, &digest, seq).unwrap();
        f.insert("prev".into(), prev.clone());
        f.insert("hash".into(), hash.clone());
        let mut args = vec!["XADD".to_owned(), events.clone(), id];
        for (k, v) in f {
            args.push(k);
            args.push(v);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        env.redis_cli(&refs);
        prev = hash;
    }
    assert!(forged);
    env.redis_cli(&["HSET", &format!("sett:{{{name}}}:ledger"), "hash", &prev]);
}

/// `ledger.anchor_every` makes the orchestrator record the head in `sett:audit` by itself; the
/// anchored head is one `sett verify --head` accepts.
#[tokio::test(flavor = "multi_thread")]
async fn the_orchestrator_anchors_the_head_periodically() {
    let mut env = Env::examples(false).await;
    let yml = env.path().join("sett.yml");
    let mut text_yml = std::fs::read_to_string(&yml).unwrap();
    text_yml.push_str("\nledger:\n  anchor_every: 1s\n");
    std::fs::write(&yml, text_yml).unwrap();
    env.up();
    env.forage("Build a to-do service");
    env.wait_terminals(1, MINUTE).await;
    // Follow sett:audit with blocking reads until a periodic anchor of this instance arrives.
    let instance = env.name.to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = "0-0".to_owned();
    let anchored = loop {
        assert!(std::time::Instant::now() < deadline, "no periodic anchor within 30 s\n{}", env.logs());
        let out = env.redis_cli(&["XREAD", "BLOCK", "2000", "COUNT", "100", "STREAMS", "sett:audit", &last]);
        let mut found = None;
        for line in out.lines() {
            if line.split_once('-').is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok()) {
                last = line.to_owned();
            } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && v["event"] == "ledger_anchor"
                && v["reason"] == "periodic"
                && v["instance"] == instance.as_str()
            {
                found = v["head"].as_str().map(str::to_owned);
            }
        }
        if let Some(h) = found {
            break h;
        }
    };
    env.down();
    let head: ledger::Head = anchored.parse().expect("the anchor holds a head");
    assert!(head.seq > 0);
    let (code, v) = verify(&env, &["--head", &anchored]);
    assert_eq!(code, 0, "the anchored head is in the chain: {v:#}");
}
