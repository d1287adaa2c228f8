//! Redis security end to end: the least-privilege ACL users of docs/security.md run a real
//! workflow (orchestrator, cubs, a controller's workers and the operator CLI each with its own
//! user), a cub's user is refused everything outside its instance, no password appears in any
//! log, CLI output, registry record or command line, tools see no Redis credentials unless
//! `expose_redis: true`, and the components work over TLS (`rediss://`) with a private CA.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sett_core::StructuralType;
use sett_e2e::{Env, text};
use sett_testkit::RedisServer;

const ADMIN_PASS: &str = "admin-Secr3t-adm1n";
const ORCH_PASS: &str = "orch-Secr3t-0rch";
const CUB_PASS: &str = "cub-Secr3t-cubcub";
const OP_PASS: &str = "op-Secr3t-0per8";

/// Connection-level commands every user needs (AUTH, HELLO, PING, SELECT, CLIENT SETNAME…),
/// without the administrative ones (CLIENT KILL/LIST/PAUSE…).
const CONNECTION: &str = "-@all +@connection -@admin -@dangerous";
/// Exactly the data commands sett-store issues, scripts included.
const DATA: &str = "+get +set +del +exists +pexpire +pttl +type +hget +hgetall +hmget +hkeys +hset +hdel +hsetnx +hexists \
     +hlen +llen +lpop +lpos +info +zadd +zrange +zrangebyscore +zrem +zcard +xadd +xgroup|create +xreadgroup +xread +xack +xrange +xrevrange \
     +xlen +xinfo|groups +lrange +rpush +smembers +sadd +srem +evalsha +eval +script|load";

/// The `ACL SETUSER` arguments of docs/security.md for instance `i`: (user, password, rules).
fn acl_users(i: &str) -> Vec<(String, &'static str, String)> {
    vec![
        (
            format!("sett-{i}-orchestrator"),
            ORCH_PASS,
            format!(
                "resetkeys ~sett:{{{i}}}:* ~sett:instances resetchannels &sett:{{{i}}}:* {CONNECTION} {DATA} +pubsub|shardnumsub +spublish"
            ),
        ),
        (
            format!("sett-{i}-cub"),
            CUB_PASS,
            format!(
                "resetkeys ~sett:{{{i}}}:* resetchannels &sett:{{{i}}}:* {CONNECTION} {DATA} +ssubscribe +sunsubscribe"
            ),
        ),
        (
            "sett-operator".to_owned(),
            OP_PASS,
            format!(
                "resetkeys ~sett:* resetchannels &sett:* {CONNECTION} {DATA} +spublish +scan +sscan +unlink +incr +cluster|countkeysinslot +cluster|getkeysinslot"
            ),
        ),
    ]
}

fn cli(port: u16, user: &str, pass: &str, args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--user", user, "--pass", pass, "--no-auth-warning"])
        .args(args)
        .output()
        .expect("redis-cli")
}

fn admin(port: u16, args: &[&str]) -> String {
    let out = cli(port, "default", ADMIN_PASS, args);
    text(&out.stdout)
}

fn create_users(port: u16, instance: &str) {
    for (user, pass, rules) in acl_users(instance) {
        let mut args = vec!["ACL", "SETUSER", user.as_str(), "reset", "on"];
        let pw = format!(">{pass}");
        args.push(&pw);
        args.extend(rules.split_whitespace());
        let out = admin(port, &args);
        assert_eq!(out.trim(), "OK", "ACL SETUSER {user}: {out}");
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { files(&p, out) } else { out.push(p) }
        }
    }
}

const TEAM: &str = r#"
version: "1.0"
orchestrator: {bid_timeout: 10s}
agents:
  Reviewer:
    command: ["./review.sh"]
    bidding_strategy: review
  Writer:
    command: ["./write.sh"]
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined"]}
  Exposed:
    command: ["./exposed.sh"]
    bidding_strategy: {type: exclusive, target_types: ["Draft"]}
    expose_redis: true
    mode: controller
"#;

/// Saves its environment, then hands a Draft on.
const WRITE: &str = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
env > env-writer.txt
jq -n '{artifact_type: "Draft", artifact_payload: "draft"}'
"#;

/// Runs in a controller worker with `expose_redis: true`: saves its environment and ends.
const EXPOSED: &str = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
env > env-exposed.txt
jq -n '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: "done"}'
"#;

const REVIEW: &str =
    "#!/usr/bin/env bash\ncat >/dev/null\necho '{\"artifact_type\": \"Review\", \"artifact_payload\": {}}'\n";

/// docs/security.md shows exactly the users this file tests (for an instance named `prod`).
#[test]
fn the_documented_acl_users_are_the_tested_ones() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/security.md")).unwrap();
    for (user, _, rules) in acl_users("prod") {
        let line = format!("ACL SETUSER {user} reset on >{} {rules}", placeholder(&user));
        assert!(doc.contains(&line), "docs/security.md lacks:\n{line}");
    }
}

/// The password placeholder the documentation shows for `user`.
fn placeholder(user: &str) -> &'static str {
    if user.ends_with("-orchestrator") {
        "ORCHESTRATOR_SECRET"
    } else if user.ends_with("-cub") {
        "CUB_SECRET"
    } else {
        "OPERATOR_SECRET"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_users_run_a_workflow_isolated_and_no_password_leaks() {
    let data = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(data.path(), &["--requirepass", ADMIN_PASS]);
    let port = redis.port;
    let admin_url = format!("redis://:{ADMIN_PASS}@127.0.0.1:{port}");
    let env =
        Env::with_redis_url(&admin_url, TEAM, &[("review.sh", REVIEW), ("write.sh", WRITE), ("exposed.sh", EXPOSED)])
            .await;
    let i = env.name.to_string();
    create_users(port, &i);
    let url = |user: &str, pass: &str| format!("redis://{user}:{pass}@127.0.0.1:{port}");
    let op_url = url("sett-operator", OP_PASS);
    let orch_url = url(&format!("sett-{i}-orchestrator"), ORCH_PASS);
    let cub_url = url(&format!("sett-{i}-cub"), CUB_PASS);
    let sett = |args: &[&str]| -> Output {
        env.sett(args)
            .env("SETT_REDIS_URL", &op_url)
            .env("SETT_ORCHESTRATOR_REDIS_URL", &orch_url)
            .env("SETT_CUB_REDIS_URL", &cub_url)
            .output()
            .expect("run sett")
    };
    let mut outputs = Vec::new();
    let mut ok = |args: &[&str]| {
        let out = sett(args);
        assert!(
            out.status.success(),
            "sett {args:?}: {}\n{}\nACL LOG:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            admin(port, &["ACL", "LOG"]),
            env.logs()
        );
        outputs.push(format!("{}{}", text(&out.stdout), text(&out.stderr)));
    };
    ok(&["up", "--timeout", "60s"]);
    ok(&["forage", "--goal", "secure goal", "--watch", "--timeout", "60s"]);
    let arts = env.wait_terminals(1, Duration::from_secs(60)).await;
    assert!(arts.iter().any(|a| a.structural_type == StructuralType::Terminal));
    for args in [
        &["status"][..],
        &["list"],
        &["list", "-o", "json"],
        &["hoard", "-o", "json"],
        &["claims"],
        &["export"],
        &["watch", "--since", "1h", "--exit-on-completion", "--timeout", "10s"],
    ] {
        ok(args);
    }

    // Each component connected as its own user, and nothing was refused during the workflow.
    let clients = admin(port, &["CLIENT", "LIST"]);
    for user in [format!("sett-{i}-orchestrator"), format!("sett-{i}-cub")] {
        assert!(clients.contains(&format!("user={user} ")), "no connection as {user}:\n{clients}");
    }
    let denied = admin(port, &["ACL", "LOG"]);
    assert!(denied.trim().is_empty(), "the workflow needed more than its users allow:\n{denied}");

    // The cub's user cannot touch another instance, the global keys or the server.
    let cub_user = format!("sett-{i}-cub");
    let other = "sett:{someone-else}:artifact:x";
    admin(port, &["SET", other, "theirs"]);
    for args in [
        &["GET", other][..],
        &["SET", other, "mine"],
        &["DEL", other],
        &["HGETALL", "sett:instances"],
        &["XADD", "sett:audit", "*", "forged", "1"],
        &["EVAL", "return redis.call('set', KEYS[1], 'mine')", "1", other],
        &["EVAL", "return redis.call('get', 'sett:{someone-else}:artifact:x')", "0"],
        &["KEYS", "*"],
        &["FLUSHALL"],
        &["CONFIG", "GET", "requirepass"],
        &["ACL", "LIST"],
        &["CLIENT", "LIST"],
        &["SCRIPT", "FLUSH"],
    ] {
        let out = cli(port, &cub_user, CUB_PASS, args);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            ["NOPERM", "No permissions", "can't access", "can't run"].iter().any(|m| said.contains(m)),
            "the cub user ran {args:?}: {said}"
        );
    }
    assert_eq!(admin(port, &["GET", other]).trim(), "theirs");
    // Its own instance it can read.
    let own = cli(port, &cub_user, CUB_PASS, &["XLEN", &format!("sett:{{{i}}}:events")]);
    assert!(text(&own.stdout).trim().parse::<u64>().unwrap_or(0) > 0, "{}", text(&own.stderr));

    // Tools: no Redis URL or password unless expose_redis, and then only the cub's.
    let writer_env = std::fs::read_to_string(env.path().join("env-writer.txt")).unwrap();
    assert!(!writer_env.contains("REDIS"), "{writer_env}");
    let exposed_env = std::fs::read_to_string(env.path().join("env-exposed.txt")).unwrap();
    assert!(exposed_env.contains(&format!("SETT_REDIS_URL={cub_url}")), "{exposed_env}");
    for pass in [ADMIN_PASS, ORCH_PASS, OP_PASS] {
        assert!(!writer_env.contains(pass) && !exposed_env.contains(pass));
    }

    // No password on the command line of any Sett process (ps shows those to every local user).
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let sett_lines: Vec<String> = text(&ps.stdout)
        .lines()
        .filter(|l| l.contains("sett") && !l.contains("redis-server"))
        .map(str::to_owned)
        .collect();
    assert!(sett_lines.iter().any(|l| l.contains("sett-orchestrator")), "{sett_lines:?}");
    for pass in [ADMIN_PASS, ORCH_PASS, CUB_PASS, OP_PASS] {
        assert!(!sett_lines.iter().any(|l| l.contains(pass)), "a password is on a command line: {sett_lines:?}");
    }

    let dump = admin(port, &["HGETALL", "sett:instances"]);
    ok(&["down", "--grace", "5s"]);
    // The operator's user may also destroy (SCAN + UNLINK, the audit record).
    ok(&["destroy", "--force"]);
    assert_eq!(admin(port, &["EXISTS", &format!("sett:{{{i}}}:events")]).trim(), "0");
    assert!(admin(port, &["XLEN", "sett:audit"]).trim() != "0");

    // No password in any log file, CLI output, or stored record.
    let mut paths = Vec::new();
    files(&env.path().join(".sett"), &mut paths);
    assert!(!paths.is_empty());
    let mut scanned = 0;
    for p in &paths {
        let body = String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        scanned += body.len();
        for pass in [ADMIN_PASS, ORCH_PASS, CUB_PASS, OP_PASS] {
            assert!(!body.contains(pass), "{} contains a password", p.display());
        }
    }
    for out in outputs.iter().chain([&dump]) {
        for pass in [ADMIN_PASS, ORCH_PASS, CUB_PASS, OP_PASS] {
            assert!(!out.contains(pass), "output contains a password: {out}");
        }
    }
    assert!(dump.contains("sett-operator:***@"), "the registry keeps the redacted URL: {dump}");
    assert!(scanned > 10_000, "the logs were written ({scanned} bytes)");
    drop(env);
    drop(redis);
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Sett Test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn components_work_over_tls_with_a_private_ca() {
    let data = tempfile::tempdir().unwrap();
    make_certs(data.path());
    let tls_port = sett_testkit::free_port();
    let d = data.path().display().to_string();
    let redis = RedisServer::start(
        data.path(),
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &format!("{d}/server.pem"),
            "--tls-key-file",
            &format!("{d}/server.key"),
            "--tls-ca-cert-file",
            &format!("{d}/ca.pem"),
            "--tls-auth-clients",
            "no",
        ],
    );
    assert!(sett_testkit::wait_for_port(tls_port, Duration::from_secs(10)), "redis-server has no TLS support");
    // The harness reads over the plain port; every Sett process uses rediss:// only.
    let env =
        Env::with_redis_url(&redis.url(), TEAM, &[("review.sh", REVIEW), ("write.sh", WRITE), ("exposed.sh", EXPOSED)])
            .await;
    let tls_url = format!("rediss://127.0.0.1:{tls_port}");
    let ca = format!("{d}/ca.pem");
    let sett = |args: &[&str], ca: Option<&str>| -> Output {
        let mut c = env.sett(args);
        c.env("SETT_REDIS_URL", &tls_url);
        match ca {
            Some(ca) => c.env("SSL_CERT_FILE", ca),
            None => c.env_remove("SSL_CERT_FILE"),
        };
        c.output().expect("run sett")
    };
    // Without the CA the server is not trusted, and the error says it is about TLS.
    let refused = sett(&["status"], None);
    assert!(!refused.status.success());
    let why = text(&refused.stderr).to_lowercase();
    assert!(why.contains("cert") || why.contains("tls") || why.contains("ssl"), "{why}");

    let up = sett(&["up", "--timeout", "60s"], Some(&ca));
    assert!(up.status.success(), "{}\n{}\n{}", text(&up.stdout), text(&up.stderr), env.logs());
    let f = sett(&["forage", "--goal", "over tls", "--watch", "--timeout", "60s"], Some(&ca));
    assert!(f.status.success(), "{}\n{}", text(&f.stderr), env.logs());
    env.wait_terminals(1, Duration::from_secs(30)).await;
    // Every component connection arrived on the TLS port.
    let clients = Command::new("redis-cli").args(["-p", &redis.port.to_string(), "CLIENT", "LIST"]).output().unwrap();
    let clients = text(&clients.stdout);
    let on_tls = clients.lines().filter(|l| l.contains(&format!("laddr=127.0.0.1:{tls_port}"))).count();
    assert!(on_tls >= 4, "expected the orchestrator's and 3 cubs' connections on the TLS port:\n{clients}");
    let down = sett(&["down", "--grace", "5s"], Some(&ca));
    assert!(down.status.success(), "{}", text(&down.stderr));
    drop(env);
}
