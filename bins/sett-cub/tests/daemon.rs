//! The `sett-cub` binary against a real Redis: configuration errors, the daemon (JSON logs only
//! on stdout, registration, readiness, bidding, a grant, clean SIGTERM) and worker mode's exit
//! codes.

#[path = "../../../crates/sett-cub/tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sett_core::{ArtifactId, BidType, ClaimStatus, ClaimType, StructuralType};
use sett_store::Store;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_sett-cub");

fn write_config(dir: &Path, agents_yaml: &str) -> std::path::PathBuf {
    let path = dir.join("sett.yml");
    std::fs::write(&path, format!("version: \"1.0\"\nagents:\n{agents_yaml}")).unwrap();
    path
}

fn cub(store: &Store, config: &Path, agent: &str) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SETT_INSTANCE", store.instance().as_str())
        .env("SETT_AGENT", agent)
        .env("SETT_REDIS_URL", sett_testkit::redis_url())
        .env("SETT_CONFIG", config)
        .stdin(Stdio::null());
    c
}

/// `GET path` on `addr`; the HTTP status.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < limit, "sett-cub did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A bunyan line's message (`[SPAN - EVENT] text`).
fn msg(line: &serde_json::Value) -> &str {
    line["msg"].as_str().unwrap_or("")
}

#[test]
fn configuration_errors_exit_1_with_a_message_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "  Coder:\n    command: [x]\n    bidding_strategy: claim\n");
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("SETT_AGENT", "Nobody")], "not defined"),
        (&[("SETT_INSTANCE", "Bad Name!")], "--instance"),
        (&[("SETT_CONFIG", "/does/not/exist.yml")], "cannot read the configuration"),
    ];
    for (env, expected) in cases {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("SETT_INSTANCE", "i")
            .env("SETT_AGENT", "Coder")
            .env("SETT_CONFIG", &config)
            .env("SETT_REDIS_URL", "redis://:hunter2@127.0.0.1:1");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{env:?}: {}", String::from_utf8_lossy(&out.stdout));
        assert!(!stderr.contains("hunter2"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_registers_bids_executes_and_stops_cleanly() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "tool.sh", OK_TOOL);
    let config =
        write_config(dir.path(), &format!("  Coder:\n    command: [\"{tool}\"]\n    bidding_strategy: exclusive\n"));
    let stdout_path = dir.path().join("stdout.log");
    let mut child = cub(&store, &config, "Coder")
        .env("SETT_LOG", "info")
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let goal = new_goal(&store, "g").await;
    let claim = create_claim(&store, &goal).await;
    assert_eq!(wait_for_bid(&store, &claim, "Coder").await, BidType::Exclusive);
    let claim = grant(&store, &claim, ClaimStatus::PendingExclusive, "Coder", ClaimType::Exclusive, false).await;
    let out = wait_for_output(&store, &claim).await;
    assert_eq!(out.id, ArtifactId::derived(&claim.id, "output:1"));
    assert_eq!(out.structural_type, StructuralType::Standard);

    let components = store.components().await.unwrap();
    let record = &components["cub:Coder"];
    assert_eq!(record.pid, Some(child.id()));
    let addr = record.addr.clone().unwrap();
    assert_eq!(http_status(&addr, "/readyz"), Some(200));
    assert_eq!(http_status(&addr, "/healthz"), Some(200));
    assert_eq!(http_status(&addr, "/metrics"), Some(200));

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(store.components().await.unwrap().is_empty(), "deregistered on SIGTERM");

    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let logs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(!logs.is_empty());
    let claim_id = claim.id.to_string();
    let bid_line = logs
        .iter()
        .find(|l| msg(l).ends_with("] bid submitted"))
        .unwrap_or_else(|| panic!("a bid log line in:\n{stdout}"));
    assert_eq!(bid_line["instance"], store.instance().as_str());
    assert_eq!(bid_line["agent"], "Coder");
    assert_eq!(bid_line["claim_id"], claim_id.as_str());
    assert!(logs.iter().any(|l| msg(l).ends_with("] tool output written") && l["claim_id"] == claim_id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_mode_executes_one_grant_and_reports_through_its_exit_code() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let tool = script(
        dir.path(),
        "tool.sh",
        r#"if [ "$(jq -r .target_artifact.payload)" = "fail" ]; then exit 4; fi
echo '{"artifact_type":"Built","artifact_payload":"ok"}'"#,
    );
    let config = write_config(
        dir.path(),
        &format!(
            "  Builder:\n    command: [x]\n    bidding_strategy: exclusive\n    mode: controller\n    worker: {{command: [\"{tool}\"]}}\n"
        ),
    );
    let mut claims = Vec::new();
    for payload in ["ok", "fail"] {
        let goal = new_goal(&store, payload).await;
        claims.push(exclusive_grant(&store, &goal, "Builder", true).await);
    }
    let run = |claim: &sett_core::Claim| {
        let out = cub(&store, &config, "Builder")
            .args(["--execute-claim", &claim.id.to_string(), "--seq", "1"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        }
        out.status.code()
    };
    assert_eq!(run(&claims[0]), Some(0));
    let a = store.get_artifact(&ArtifactId::derived(&claims[0].id, "output:1")).await.unwrap().unwrap();
    assert_eq!((a.artifact_type.as_str(), a.payload.as_str()), ("Built", "ok"));
    // The same grant again: not executed (the process holding it reports the outcome), and not
    // an error of this worker.
    assert_eq!(run(&claims[0]), Some(0));
    let output = ArtifactId::derived(&claims[0].id, "output:1");
    assert_eq!(store.get_artifact(&output).await.unwrap().unwrap().payload, "ok", "nothing was rewritten");
    assert_eq!(run(&claims[1]), Some(1));
    let f = store.get_artifact(&ArtifactId::derived(&claims[1].id, "output:1")).await.unwrap().unwrap();
    assert_eq!(failure_payload(&f)["exit_code"], 4);
    // Workers do not register as components.
    assert!(store.components().await.unwrap().is_empty());
}
