//! A Redis on the same host reached by its Unix socket (`redis+unix://`): the demo pipeline, the
//! ledger check and the maintenance commands over it, and the docker runtime, whose containers
//! cannot reach a host socket, refusing it with the fix.

use std::time::Duration;

use sett_core::StructuralType;
use sett_e2e::{Env, summary};
use sett_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_runs_over_a_unix_socket_and_its_ledger_verifies() {
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join("redis.sock");
    let socket_arg = socket.display().to_string();
    let server =
        RedisServer::start(&root.path().join("redis"), &["--unixsocket", &socket_arg, "--unixsocketperm", "700"]);
    let url = format!("redis+unix://{socket_arg}");
    let mut env = Env::examples_with_redis_url(&url, true).await;
    env.up();
    let goal = env.forage("Build a to-do service");
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let qid = listed[0]["id"].as_str().expect("a question").to_owned();
    env.ok(&["answer", &qid, "Use port 8080"]);
    let artifacts = env.wait_terminals(1, Duration::from_secs(120)).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.produced_by_role, "Publisher", "{:#?}", summary(&artifacts));
    assert!(env.claims().await.iter().any(|c| c.artifact_id == goal));

    // Every daemon is on the socket: the TCP port saw none of them.
    let clients = server.cli(&["CLIENT", "LIST"]);
    let tcp_clients: Vec<&str> = clients.lines().filter(|l| l.contains("laddr=127.0.0.1:")).collect();
    assert!(tcp_clients.len() <= 1, "only this check's redis-cli may use TCP:\n{clients}");
    assert!(clients.lines().filter(|l| l.contains("laddr=/") || l.contains(&socket_arg)).count() >= 5, "{clients}");

    assert!(env.ok(&["status"]).contains("running"));
    let verified = env.ok(&["verify"]);
    assert!(verified.contains("is intact"), "{verified}");
    env.down();
    env.ok(&["destroy", "--force"]);
    assert!(env.store.count_instance_keys().await.unwrap().is_empty(), "destroy left keys behind");
    env.redis.quit().await;

    // The docker runtime's containers cannot reach the host's socket: refused before anything
    // starts, with the fix.
    let yml = sett_e2e::DRAFTING_YML.replace("version: \"1.0\"\n", "version: \"1.0\"\nruntime: docker\n");
    assert!(yml.contains("runtime: docker"), "{yml}");
    let docker = Env::with_redis_url(&url, &yml, &[]).await;
    let out = docker.run(&["up", "--timeout", "10s"]);
    let err = sett_e2e::text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Unix socket") && err.contains("--redis-url") && err.contains("runtime: local"), "{err}");
    docker.redis.quit().await;
}
