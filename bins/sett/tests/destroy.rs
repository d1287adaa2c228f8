//! `sett destroy` end to end: the real binary against a real Redis. One test per example of the
//! seed's M4.3 UX (the confirmation typed through a pseudo-terminal), plus the safety properties:
//! no TTY without --force, dry run, backup + restore, neighbours and global keys untouched,
//! concurrent and interrupted destroys.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession as Session;
use expectrl::{Eof, Expect};
use sett_core::InstanceName;
use sett_store::{Dump, InstanceRecord, InstanceStatus, LockHolder, LockPurpose, Redis, Store, now_ms};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

fn sett() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sett"));
    c.args(["--redis-url", &sett_testkit::redis_url()])
        .env("SETT_OPERATOR", "test-operator")
        .env("NO_COLOR", "1")
        .env_remove("SETT_INSTANCE");
    c
}

/// Runs `sett` with stdin closed (no terminal).
fn run(args: &[&str]) -> Output {
    sett().args(args).stdin(Stdio::null()).output().expect("run sett")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-u", &sett_testkit::redis_url()])
        .args(args)
        .output()
        .expect("redis-cli (package redis-tools)");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes keys of every family an instance owns (see sett_store::keys): 3 artifacts, 2 claims
/// with bids, 2 threads, the event stream with a consumer group, indexes, questions,
/// executions, components, worker queues; and a registry entry.
async fn populate(redis: &Redis, name: &InstanceName) {
    let p = format!("sett:{{{name}}}:");
    for i in 0..3 {
        redis_cli(&[
            "HSET",
            &format!("{p}artifact:0190c2b4-7d3e-7a1b-9c2d-00000000000{i}"),
            "type",
            "Code",
            "payload",
            &format!("payload {i}"),
        ]);
    }
    for i in 0..2 {
        let c = format!("{p}claim:0190c2b4-7d3e-7a1b-9c2d-10000000000{i}");
        redis_cli(&["HSET", &c, "status", "pending_review"]);
        redis_cli(&["HSET", &format!("{c}:bids"), "Reviewer", "review"]);
        redis_cli(&["ZADD", &format!("{p}thread:0190c2b4-7d3e-7a1b-9c2d-20000000000{i}"), "1", "a"]);
    }
    redis_cli(&["XADD", &format!("{p}events"), "*", "kind", "artifact_created"]);
    redis_cli(&["XGROUP", "CREATE", &format!("{p}events"), "orchestrator", "0"]);
    redis_cli(&["ZADD", &format!("{p}index:artifacts"), "1", "x"]);
    redis_cli(&["ZADD", &format!("{p}index:deadlines"), "1", "x"]);
    redis_cli(&["HSET", &format!("{p}index:claim_by_artifact"), "a", "c"]);
    redis_cli(&["ZADD", &format!("{p}questions:open"), "1", "q"]);
    redis_cli(&["HSET", &format!("{p}questions:answers"), "q", "{}"]);
    redis_cli(&["HSET", &format!("{p}executions"), "c:1", "{}"]);
    redis_cli(&["HSET", &format!("{p}components"), "orchestrator", "{}"]);
    redis_cli(&["RPUSH", &format!("{p}workers:Coder:queue"), "g1"]);
    redis_cli(&["SADD", &format!("{p}workers:Coder:set"), "m1", "m2"]);
    let rec = InstanceRecord {
        run_id: "r1".into(),
        workspace: "/tmp/ws".into(),
        runtime: sett_core::config::RuntimeKind::Local.into(),
        redis: "redis://127.0.0.1".into(),
        created_at: now_ms(),
        started_at: None,
        stopped_at: Some(now_ms()),
        status: InstanceStatus::Stopped,
    };
    redis.put_instance_record(name, &rec).await.unwrap();
}

/// Keys of the instance in the populated data set: 3 artifacts, 2 claims, 2 bids, 2 threads,
/// and 10 other ("metadata") keys.
const POPULATED_KEYS: usize = 19;

fn keys_of(name: &InstanceName) -> Vec<String> {
    let out = redis_cli(&["--scan", "--pattern", &format!("sett:{{{name}}}:*")]);
    let mut v: Vec<String> = out.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
    v.sort();
    v
}

async fn export(store: &Store) -> Vec<Dump> {
    let mut v = Vec::new();
    store
        .export(|d| {
            v.push(d);
            Ok::<_, sett_store::StoreError>(())
        })
        .await
        .unwrap();
    v
}

fn spawn_pty(args: &[&str]) -> Session {
    let mut cmd = sett();
    cmd.args(args);
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s
}

/// Reads the pty to the end and returns (all remaining output, exit code).
fn finish(mut s: Session) -> (String, i32) {
    let rest = s.expect(Eof).expect("eof");
    // With the Eof needle the output is the match itself.
    let mut bytes = rest.before().to_vec();
    for m in rest.matches() {
        bytes.extend_from_slice(m);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let code = match s.get_process().wait().expect("wait") {
        WaitStatus::Exited(_, c) => c,
        other => panic!("sett did not exit normally: {other:?}"),
    };
    (text, code)
}

#[test]
fn typed_name_confirms_and_deletes_everything() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    assert_eq!(keys_of(&name).len(), POPULATED_KEYS);

    let mut s = spawn_pty(&["destroy", "--name", name.as_str()]);
    let before = s.expect("Type the instance name to confirm:").expect("prompt");
    let warning = String::from_utf8_lossy(before.before()).into_owned();
    assert!(
        warning.contains(&format!("WARNING: This will permanently delete ALL data for instance '{name}'")),
        "{warning}"
    );
    assert!(warning.contains("This includes:"), "{warning}");
    assert!(warning.contains("  - All artifacts and claims (3 artifacts, 2 claims)"), "{warning}");
    assert!(warning.contains("  - All thread history (2 threads)"), "{warning}");
    assert!(warning.contains("  - All metadata (12 keys and the registry entry)"), "{warning}");
    s.send_line(name.as_str()).unwrap();
    let (out, code) = finish(s);
    assert_eq!(code, 0, "{out}");
    for line in [
        format!("Destroying instance '{name}'..."),
        "✓ Removed 3 artifacts".to_owned(),
        "✓ Removed 2 claims".to_owned(),
        "✓ Removed 2 threads".to_owned(),
        "✓ Removed metadata (".to_owned(),
        format!("Instance '{name}' destroyed successfully"),
    ] {
        assert!(out.contains(&line), "missing {line:?} in {out}");
    }
    assert!(keys_of(&name).is_empty());
    assert!(rt.block_on(redis.instance_record(&name)).unwrap().is_none(), "registry entry removed");
    // The audit record was written, with operator and host.
    let audits = rt.block_on(redis.audit_records()).unwrap();
    let rec = audits.iter().map(|(_, r)| r).find(|r| r["instance"] == name.as_str()).expect("audit record");
    assert_eq!(rec["operator"], "test-operator");
    assert!(rec["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(rec["ts"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(rec["counts"]["artifact"], 3);
    assert_eq!(rec["backup"], serde_json::Value::Null);
}

#[test]
fn wrong_name_deletes_nothing() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    let before = keys_of(&name);

    let mut s = spawn_pty(&["destroy", "--name", name.as_str()]);
    s.expect("Type the instance name to confirm:").expect("prompt");
    s.send_line("not-the-name").unwrap();
    let (out, code) = finish(s);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing was deleted"), "{out}");
    assert!(!out.contains("destroyed successfully"), "{out}");
    assert_eq!(keys_of(&name), before);
    assert!(rt.block_on(redis.instance_record(&name)).unwrap().is_some());
    // The lock taken for the prompt was released.
    assert!(rt.block_on(redis.instance(&name).lock_holder()).unwrap().is_none());
}

#[test]
fn force_skips_the_prompt() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    // Through a terminal: no prompt, only the seed's one line.
    let s = spawn_pty(&["destroy", "--name", name.as_str(), "--force"]);
    let (out, code) = finish(s);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("Type the instance name"), "{out}");
    assert!(out.contains(&format!("Instance '{name}' destroyed successfully")), "{out}");
    assert!(keys_of(&name).is_empty());

    // And from a script (no terminal): stdout is exactly the seed's line.
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    let o = run(&["destroy", "--name", name.as_str(), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("Instance '{name}' destroyed successfully\n"));
    assert!(keys_of(&name).is_empty());
}

#[test]
fn refuses_while_running() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    let store = redis.instance(&name);
    let holder = LockHolder {
        run_id: "run-1".into(),
        host: "somewhere".into(),
        pid: 1,
        started_at: now_ms(),
        purpose: LockPurpose::Run,
    };
    rt.block_on(store.acquire_lock(&holder, 60_000)).unwrap().unwrap();
    let before = keys_of(&name);
    let expected = format!(
        "Error: Cannot destroy instance '{name}' - instance is still running\nRun 'sett down --name {name}' first\n"
    );
    for extra in [&[][..], &["--force"][..], &["--dry-run"][..]] {
        let mut args = vec!["destroy", "--name", name.as_str()];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        assert_eq!(stderr(&o), expected, "{extra:?}");
        assert_eq!(stdout(&o), "", "{extra:?}");
    }
    // Through a terminal too: refused before any prompt.
    let s = spawn_pty(&["destroy", "--name", name.as_str()]);
    let (out, code) = finish(s);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("Error: Cannot destroy instance '{name}' - instance is still running")), "{out}");
    assert!(!out.contains("Type the instance name"), "{out}");
    assert_eq!(keys_of(&name), before);
    assert_eq!(rt.block_on(store.lock_holder()).unwrap().unwrap().run_id, "run-1");
}

#[test]
fn unknown_instance_is_not_found() {
    let name = sett_testkit::instance_name();
    let o = run(&["destroy", "--name", name.as_str(), "--force"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with(&format!("Error: Instance '{name}' not found\n")), "{}", stderr(&o));
    let s = spawn_pty(&["destroy", "--name", name.as_str()]);
    let (out, code) = finish(s);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("Error: Instance '{name}' not found")), "{out}");
    // No lock was left behind by the attempt.
    assert!(keys_of(&name).is_empty());
}

#[test]
fn without_a_terminal_and_without_force_it_refuses_instead_of_hanging() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    let before = keys_of(&name);
    // stdin is /dev/null: a prompt would read EOF or hang; destroy must refuse at once.
    let o = run(&["destroy", "--name", name.as_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains(&format!("refusing to destroy instance '{name}' without confirmation: stdin is not a terminal")),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(keys_of(&name), before);
}

#[test]
fn dry_run_counts_and_deletes_nothing() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    let before = keys_of(&name);
    let o = run(&["destroy", "--name", name.as_str(), "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("  - All artifacts and claims (3 artifacts, 2 claims)"), "{out}");
    assert!(out.contains("Dry run: nothing was deleted."), "{out}");
    assert_eq!(keys_of(&name), before);
    let o = run(&["destroy", "--name", name.as_str(), "--dry-run", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["plan"]["counts"]["artifact"], 3);
    assert_eq!(v["plan"]["counts"]["bids"], 2);
    assert_eq!(v["plan"]["registered"], true);
    assert_eq!(keys_of(&name), before);
}

#[test]
fn backup_restores_the_instance_exactly() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    let store = redis.instance(&name);
    let original = rt.block_on(export(&store));
    assert_eq!(original.len(), POPULATED_KEYS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.jsonl");
    let o = run(&["destroy", "--name", name.as_str(), "--force", "--backup", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(keys_of(&name).is_empty());
    // The audit record names the backup file. With --force nothing is counted beforehand: the
    // intent record comes first without counts, then the completion record with the counts the
    // one pass took while deleting.
    let audits = rt.block_on(redis.audit_records()).unwrap();
    let recs: Vec<&sett_store::AuditEntry> =
        audits.iter().map(|(_, r)| r).filter(|r| r["instance"] == name.as_str()).collect();
    assert_eq!(recs.len(), 2, "{recs:?}");
    let (intent, done) = (recs[0], recs[1]);
    assert_eq!(intent["backup"], file.display().to_string());
    assert_eq!(intent["phase"], "intent");
    assert_eq!(intent["counts"], serde_json::Value::Null);
    assert_eq!(done["phase"], "complete");
    assert_eq!(done["run_id"], intent["run_id"]);
    assert_eq!(done["backup"], intent["backup"]);
    assert_eq!(done["counts"]["artifact"], 3);
    assert_eq!(done["total_keys"], POPULATED_KEYS);
    assert_eq!(done["registry_entry_removed"], true);
    assert!(audits.iter().any(|(id, _)| done["intent_id"] == id.as_str()), "completion names its intent");

    // Every line is one Dump (the `sett export` format); restoring them all gives the
    // instance back exactly.
    let text = std::fs::read_to_string(&file).unwrap();
    let dumps: Vec<Dump> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dumps.len(), POPULATED_KEYS);
    for d in &dumps {
        rt.block_on(store.restore(d)).unwrap();
    }
    assert_eq!(rt.block_on(export(&store)), original);
}

#[test]
fn neighbours_and_global_keys_are_untouched() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    // Names sharing a prefix with the target, or of which the target is a prefix.
    let neighbours: Vec<InstanceName> = [
        format!("{name}-1"),
        format!("{name}b"),
        format!("{name}-b"),
        name.as_str()[..name.as_str().len() - 1].to_owned(),
    ]
    .iter()
    .map(|n| InstanceName::parse(n).unwrap())
    .collect();
    rt.block_on(populate(&redis, &name));
    for n in &neighbours {
        rt.block_on(populate(&redis, n));
    }
    redis_cli(&["SET", "sett:instance_counter", "41"]);
    let snapshot = |rt: &tokio::runtime::Runtime| {
        let mut m = BTreeMap::new();
        for n in &neighbours {
            m.insert(n.clone(), rt.block_on(export(&redis.instance(n))));
        }
        m
    };
    let neighbours_before = snapshot(&rt);
    let records_before: BTreeMap<_, _> =
        neighbours.iter().map(|n| (n.clone(), rt.block_on(redis.instance_record(n)).unwrap())).collect();
    let audit_before = rt.block_on(redis.audit_records()).unwrap();

    let o = run(&["destroy", "--name", name.as_str(), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));

    assert!(keys_of(&name).is_empty());
    assert_eq!(snapshot(&rt), neighbours_before);
    for (n, rec) in records_before {
        assert_eq!(rt.block_on(redis.instance_record(&n)).unwrap(), rec);
        assert!(rec.is_some());
    }
    assert_eq!(redis_cli(&["GET", "sett:instance_counter"]), "41");
    let audit_after = rt.block_on(redis.audit_records()).unwrap();
    // Append-only: every earlier record is still there, in order.
    assert_eq!(&audit_after[..audit_before.len()], &audit_before[..]);
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}

#[test]
fn a_live_destroy_lock_blocks_a_second_destroy_and_a_dead_one_is_taken_over() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    let store = redis.instance(&name);
    // A destroy in progress in a live process (this test) on this host.
    let live = LockHolder {
        run_id: "destroy-live".into(),
        host: this_host(),
        pid: std::process::id(),
        started_at: now_ms(),
        purpose: LockPurpose::Destroy,
    };
    rt.block_on(store.acquire_lock(&live, 60_000)).unwrap().unwrap();
    let before = keys_of(&name);
    let o = run(&["destroy", "--name", name.as_str(), "--force"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(&format!(
            "Error: Another destroy of instance '{name}' is in progress (pid {}",
            std::process::id()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(keys_of(&name), before);
    assert!(rt.block_on(store.release_lock("destroy-live")).unwrap());

    // An interrupted destroy: its process is gone, its lock is left (TTL not lapsed yet).
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let dead = LockHolder { run_id: "destroy-dead".into(), pid: dead_pid, ..live };
    rt.block_on(store.acquire_lock(&dead, 60_000)).unwrap().unwrap();
    let o = run(&["destroy", "--name", name.as_str(), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("taking over its lock"), "{}", stderr(&o));
    assert!(keys_of(&name).is_empty(), "{:?}", keys_of(&name));
    assert!(rt.block_on(redis.instance_record(&name)).unwrap().is_none());
}

#[test]
fn an_interrupted_destroy_can_be_run_again() {
    // Simulate a destroy that died after deleting part of the keys but before removing the
    // registry entry: running it again finishes the job.
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    for k in keys_of(&name).iter().take(7) {
        redis_cli(&["UNLINK", k]);
    }
    let o = run(&["destroy", "--name", name.as_str(), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(keys_of(&name).is_empty());
    assert!(rt.block_on(redis.instance_record(&name)).unwrap().is_none());
    // Only the registry entry left: still found, and cleaned up.
    rt.block_on(populate(&redis, &name));
    for k in keys_of(&name) {
        redis_cli(&["UNLINK", &k]);
    }
    let o = run(&["destroy", "--name", name.as_str(), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(rt.block_on(redis.instance_record(&name)).unwrap().is_none());
    // Now it is gone for good.
    let o = run(&["destroy", "--name", name.as_str(), "--force"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn destroy_needs_an_explicit_name() {
    let o = run(&["destroy", "--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--name"), "{}", stderr(&o));
}

/// Runs every `$ ` command of docs/backup-recovery.md in order, on a populated instance: the
/// documentation shows only commands that work. `sett destroy` without --force/--dry-run gets
/// its confirmation typed through a pseudo-terminal.
#[test]
fn backup_recovery_doc_commands_work() {
    let rt = rt();
    let redis = rt.block_on(sett_testkit::redis());
    let name = sett_testkit::instance_name();
    rt.block_on(populate(&redis, &name));
    let store = redis.instance(&name);
    let original = rt.block_on(export(&store));
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/backup-recovery.md")).unwrap();
    let commands: Vec<String> =
        doc.lines().filter_map(|l| l.strip_prefix("$ ")).map(|c| c.replace("myproject", name.as_str())).collect();
    assert!(commands.len() >= 8, "{commands:?}");
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_sett")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut saw_audit_log = false;
    for c in &commands {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", c])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("SETT_REDIS_URL", sett_testkit::redis_url())
            .env("SETT_OPERATOR", "doc-operator")
            .env("NO_COLOR", "1")
            .env_remove("SETT_INSTANCE");
        let interactive = c.starts_with("sett destroy") && !c.contains("--force") && !c.contains("--dry-run");
        if interactive {
            let mut s = Session::spawn(cmd).expect("pty");
            s.set_expect_timeout(Some(Duration::from_secs(30)));
            s.expect("Type the instance name to confirm:").unwrap_or_else(|e| panic!("{c}: {e}"));
            s.send_line(name.as_str()).unwrap();
            let (out, code) = finish(s);
            assert_eq!(code, 0, "{c}: {out}");
            assert!(out.contains("destroyed successfully"), "{c}: {out}");
            saw_audit_log |= out.contains("\"operator\":\"doc-operator\"");
        } else {
            let o = cmd.stdin(Stdio::null()).output().unwrap();
            assert!(o.status.success(), "{c}: {}{}", stdout(&o), stderr(&o));
            saw_audit_log |= stderr(&o).contains("\"operator\":\"doc-operator\"");
        }
    }
    assert!(saw_audit_log, "the audit record is logged as JSON");
    // The last command destroyed the instance after the import had brought it back.
    assert!(keys_of(&name).is_empty());
    let backup = std::fs::read_to_string(dir.path().join(format!("{name}-final.jsonl"))).unwrap();
    let dumps: Vec<Dump> = backup.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dumps, original, "import restored the instance exactly");
    // Leave the shared test server as it was.
    redis_cli(&["CONFIG", "SET", "appendonly", "no"]);
    redis_cli(&["CONFIG", "SET", "save", ""]);
}
