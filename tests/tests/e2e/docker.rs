//! `runtime: docker` end to end: the engine workflow in containers, read-only and read-write
//! workspace mounts, controller workers as ephemeral containers, a cub cut off the network
//! mid-claim, the orchestrator container killed and started again, `sett cancel` stopping the
//! container a tool runs in, `OTEL_*` passed into the containers (traces reach a collector on the
//! host; the tool gets its `TRACEPARENT`). These tests need a Docker
//! engine and the images of `cargo xtask images` (CI builds them first); without them they fail
//! and say so. Redis is a container of the locally built `sett-redis:dev` image, started with
//! testcontainers-modules, with its port published on the host: the test reaches it on loopback, the instance's containers through the
//! Docker host gateway (the loopback URL rewritten by the runtime).

use std::time::Duration;

use sett_core::event::EventKind;
use sett_core::{ArtifactId, ClaimStatus, StructuralType};
use sett_docker::{Component, DockerRuntime};
use sett_e2e::otlp::{receiver, spans};
use sett_e2e::{Env, summary, text};
use testcontainers_modules::redis::{REDIS_PORT, Redis};
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt, runners::AsyncRunner};

const MINUTE: Duration = Duration::from_secs(60);

/// An [`Env`] whose instance runs in Docker, against a Redis the containers can reach.
struct DockerEnv {
    env: Env,
    rt: DockerRuntime,
    // Dropped after `env` (whose drop runs `sett down`, which needs Redis).
    _redis: RedisContainer,
}

/// A `sett-redis:dev` container started with testcontainers (the locally built image: a tag
/// present locally is never pulled), removed on drop.
struct RedisContainer {
    _node: ContainerAsync<Redis>,
    url: String,
}

impl RedisContainer {
    async fn start() -> Self {
        let (name, tag) = sett_docker::REDIS_IMAGE.split_once(':').expect("image:tag");
        let node = Redis::default()
            .with_name(name)
            .with_tag(tag)
            .with_label("sett.test", "redis")
            .start()
            .await
            .unwrap_or_else(|e| panic!("cannot start a {} container: {e}", sett_docker::REDIS_IMAGE));
        let port = node.get_host_port_ipv4(REDIS_PORT).await.expect("published Redis port");
        Self { _node: node, url: format!("redis://127.0.0.1:{port}") }
    }
}

impl std::ops::Deref for DockerEnv {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

impl std::ops::DerefMut for DockerEnv {
    fn deref_mut(&mut self) -> &mut Env {
        &mut self.env
    }
}

/// Turns `env` (its sett.yml committed with `runtime: local` or none) into a docker instance.
async fn dockerize(mut env: Env) -> DockerEnv {
    let rt = match DockerRuntime::connect(env.name.as_str()).await {
        Ok(rt) => rt,
        Err(e) => panic!("the docker runtime tests need a Docker engine (and the images of `cargo xtask images`): {e}"),
    };
    if let Err(e) = rt.require_image(sett_docker::DEFAULT_IMAGE).await {
        panic!("the docker runtime tests need the runtime image: {e}");
    }
    if let Err(e) = rt.require_image(sett_docker::REDIS_IMAGE).await {
        panic!("the docker runtime tests need the Redis image: {e}");
    }
    let redis = RedisContainer::start().await;
    env.redis_url = redis.url.clone();
    env.redis = sett_testkit::redis_at(&env.redis_url).await;
    env.store = env.redis.instance(&env.name);
    use_docker_runtime(&env);
    DockerEnv { env, rt, _redis: redis }
}

/// Sets `runtime: docker` in the workspace's sett.yml (committed with `runtime: local` or none)
/// and, when the tests run as root, gives the workspace to the containers' user.
fn use_docker_runtime(env: &Env) {
    let yml_path = env.path().join("sett.yml");
    let yml = std::fs::read_to_string(&yml_path).expect("sett.yml");
    let yml = if yml.contains("runtime: local") {
        yml.replace("runtime: local", "runtime: docker")
    } else {
        yml.replace("version: \"1.0\"\n", "version: \"1.0\"\nruntime: docker\n")
    };
    assert!(yml.contains("runtime: docker"), "{yml}");
    std::fs::write(&yml_path, yml).expect("write sett.yml");
    git(env, &["commit", "-q", "-am", "runtime: docker"]);
    // The containers run as the workspace owner, or as uid 10001 when root owns it (tests
    // running as root): give the workspace to that user, as an operator would.
    if is_root() {
        let ok = std::process::Command::new("chown")
            .args(["-R", "10001:10001"])
            .arg(env.path())
            .status()
            .expect("chown")
            .success();
        assert!(ok, "chown the workspace");
    }
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| text(&o.stdout).trim() == "0")
}

/// Runs git in the workspace (which may belong to another user than the test).
fn git(env: &Env, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "safe.directory=*"])
        .args(args)
        .current_dir(env.path())
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

impl DockerEnv {
    async fn containers(&self) -> Vec<Component> {
        self.rt.containers(None).await.expect("list containers")
    }

    async fn container_of(&self, component: &str) -> Component {
        self.containers()
            .await
            .into_iter()
            .find(|c| c.running && c.registered_as() == component)
            .unwrap_or_else(|| panic!("no running container for {component}"))
    }

    /// After `down`: no container and no network of the instance is left.
    async fn assert_nothing_left(&self) {
        let left = self.containers().await;
        assert!(left.is_empty(), "containers left after down: {:?}", left.iter().map(|c| &c.name).collect::<Vec<_>>());
        let nets = std::process::Command::new("docker")
            .args(["network", "ls", "--format", "{{.Name}}"])
            .output()
            .expect("docker network ls");
        let network = sett_docker::network_name(self.name.as_str());
        assert!(!text(&nets.stdout).lines().any(|n| n == network), "network {network} left after down");
    }

    /// Waits until a claim granted to `agent` has started its tool (the tool touches `marker`).
    async fn wait_marker(&self, marker: &str, limit: Duration) {
        let path = self.path().join(marker);
        match sett_testkit::try_eventually(limit, &format!("{marker} appears"), async || path.exists()).await {
            Ok(()) => {}
            Err(timed_out) => panic!("{timed_out}\n{}", self.logs()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_engine_workflow_reaches_terminal() {
    let mut env = dockerize(Env::examples(false).await).await;
    env.up();
    let names: Vec<String> = env.containers().await.iter().map(|c| c.registered_as()).collect();
    for c in ["orchestrator", "cub:Writer", "cub:Reviewer", "cub:Checker", "cub:Publisher"] {
        assert!(names.iter().any(|n| n == c), "{c} runs in a container: {names:?}");
    }
    // The recorded health addresses are reachable from here.
    let status = env.ok(&["status"]);
    assert!(!status.contains("unreachable"), "{status}");
    env.forage("Plan a small web service");
    let artifacts = env.wait_terminals(1, 2 * MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.produced_by_role, "Publisher", "{:#?}", summary(&artifacts));
    // The Writer (rw) committed in the workspace.
    let commit = artifacts.iter().find(|a| a.artifact_type == "CodeCommit").expect("a CodeCommit");
    git(&env, &["cat-file", "-e", &format!("{}^{{commit}}", commit.payload.trim())]);
    env.down();
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_read_only_agents_cannot_write_and_read_write_agents_commit() {
    let yml = r#"
version: "1.0"
agents:
  Author:
    command: ["./author.sh"]
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined"]}
    workspace: {mode: rw}
    timeout: 1m
  Vandal:
    command: ["./vandal.sh"]
    bidding_strategy: {type: claim, target_types: ["CodeCommit"]}
    workspace: {mode: ro}
    timeout: 1m
"#;
    let author = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
echo hello >AUTHORED.md
git add AUTHORED.md >&2
git commit -q -m "Author: hello" >&2
jq -n --arg c "$(git rev-parse HEAD)" '{artifact_type: "CodeCommit", artifact_payload: $c, summary: "authored"}'
"#;
    let vandal = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
echo defaced >AUTHORED.md
jq -n '{structural_type: "Terminal", artifact_type: "Defaced", artifact_payload: "done"}'
"#;
    let mut env = dockerize(Env::new(yml, &[("author.sh", author), ("vandal.sh", vandal)]).await).await;
    env.up();
    env.forage("write and deface");
    let artifacts = env
        .wait_for(2 * MINUTE, "the Vandal's Failure", |a| {
            a.iter().any(|x| x.structural_type == StructuralType::Failure && x.produced_by_role == "Vandal")
        })
        .await;
    let failure = artifacts.iter().find(|x| x.structural_type == StructuralType::Failure).unwrap();
    assert_eq!(failure.artifact_type, "ToolExecutionFailure", "{:#?}", summary(&artifacts));
    assert!(
        failure.payload.contains("Read-only file system"),
        "the write failed on the read-only mount: {}",
        failure.payload
    );
    assert!(!artifacts.iter().any(|a| a.artifact_type == "Defaced"));
    let commit = artifacts.iter().find(|a| a.artifact_type == "CodeCommit").expect("the Author's CodeCommit");
    assert_eq!(commit.produced_by_role, "Author");
    assert_eq!(git(&env, &["rev-parse", "HEAD"]).trim(), commit.payload.trim());
    assert_eq!(
        std::fs::read_to_string(env.path().join("AUTHORED.md")).unwrap(),
        "hello\n",
        "the read-only agent changed nothing"
    );
    env.down();
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_controller_workers_are_containers_within_max_concurrent_and_removed() {
    let yml = r#"
version: "1.0"
agents:
  Boss:
    command: ["./work.sh"]
    bidding_strategy: exclusive
    mode: controller
    worker: {max_concurrent: 2}
    timeout: 1m
"#;
    let work = r#"#!/usr/bin/env bash
input=$(cat)
sleep 1.5
jq -n --arg g "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}'
"#;
    let mut env = dockerize(Env::new(yml, &[("work.sh", work)]).await).await;
    // Leftover worker containers: one of this instance (an orchestrator crash left it behind)
    // and one of another instance, which the cleanup must not touch.
    let other = format!("{}-other", env.name);
    let mine = leftover_worker(env.name.as_str());
    let theirs = leftover_worker(&other);
    env.up();
    let names: Vec<String> = docker_names();
    assert!(!names.contains(&mine), "the instance's exited worker is cleaned up at start");
    assert!(names.contains(&theirs), "another instance's worker is left alone");
    docker(&["rm", "-f", &theirs]);
    for i in 0..5 {
        env.forage(&format!("goal {i}"));
    }
    // Observe the worker containers while the goals are worked on (an observation, not a
    // synchronisation: the wait below is driven by the event stream).
    let observer = {
        let rt = env.rt.clone();
        tokio::spawn(async move {
            let mut peak = 0usize;
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..600 {
                let workers: Vec<Component> =
                    rt.containers(Some("worker")).await.unwrap_or_default().into_iter().filter(|c| c.running).collect();
                peak = peak.max(workers.len());
                for w in workers {
                    assert_eq!(w.agent.as_deref(), Some("Boss"));
                    assert!(w.claim.is_some(), "workers are labelled with their claim");
                    seen.insert(w.id);
                }
                if seen.len() >= 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (peak, seen.len())
        })
    };
    env.wait_terminals(5, 2 * MINUTE).await;
    let (peak, seen) = observer.await.unwrap();
    assert!(peak <= 2, "never more than max_concurrent worker containers at once (peak {peak})");
    assert!(seen >= 2, "the workers ran as containers (saw {seen})");
    let events = env.events().await;
    let launched = events.iter().filter(|e| e.kind() == EventKind::WorkerLaunched).count();
    assert_eq!(launched, 5);
    // Every worker container is removed once its work is done.
    env.eventually("every worker container is removed", async || {
        let left = env.rt.containers(Some("worker")).await.unwrap();
        if left.is_empty() { Ok(()) } else { Err(left) }
    })
    .await;
    env.down();
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_cub_cut_off_mid_claim_ends_at_the_deadline_then_works_again() {
    let yml = r#"
version: "1.0"
agents:
  Sleeper:
    command: ["./sleep.sh"]
    bidding_strategy: exclusive
    workspace: {mode: rw}
    timeout: 4s
"#;
    // The first goal waits for the test to cut the cub off; later goals finish at once.
    let sleep = r#"#!/usr/bin/env bash
input=$(cat)
goal=$(jq -r .target_artifact.payload <<<"$input")
if [ "$goal" = "first" ]; then touch started; sleep 2; fi
jq -n --arg g "$goal" '{structural_type: "Terminal", artifact_type: "Slept", artifact_payload: $g}'
"#;
    let mut env = dockerize(Env::new(yml, &[("sleep.sh", sleep)]).await).await;
    env.up();
    let cub = env.container_of("cub:Sleeper").await;
    env.forage("first");
    env.wait_marker("started", MINUTE).await;
    env.rt.disconnect(&cub.id).await.expect("disconnect");
    let ended = env
        .wait_events(MINUTE, "the claim ended", 1, |e| {
            matches!(e.kind(), EventKind::ClaimTerminated | EventKind::ClaimCompleted)
        })
        .await;
    assert_eq!(
        ended[0].kind(),
        EventKind::ClaimTerminated,
        "the cut-off cub could not report: the deadline ended the claim"
    );
    let claim = &env.claims().await[0];
    assert_eq!(claim.status, ClaimStatus::Terminated);
    env.rt.connect_network(&cub.id).await.expect("reconnect");
    env.forage("second");
    let artifacts = env
        .wait_for(2 * MINUTE, "the second goal done", |a| {
            a.iter().any(|x| x.artifact_type == "Slept" && x.payload == "second")
        })
        .await;
    assert!(artifacts.iter().any(|a| a.produced_by_role == "Sleeper"));
    env.wait_events(MINUTE, "the second claim completed", 1, |e| e.kind() == EventKind::ClaimCompleted).await;
    env.down();
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_orchestrator_killed_and_started_again_completes_in_flight_work() {
    let yml = r#"
version: "1.0"
agents:
  Boss:
    command: ["./work.sh"]
    bidding_strategy: exclusive
    mode: controller
    worker: {max_concurrent: 1}
    workspace: {mode: rw}
    timeout: 1m
"#;
    let work = r#"#!/usr/bin/env bash
input=$(cat)
touch "started-$(jq -r .target_artifact.payload <<<"$input")"
sleep 3
jq -n --arg g "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}'
"#;
    let mut env = dockerize(Env::new(yml, &[("work.sh", work)]).await).await;
    env.up();
    env.forage("a");
    env.forage("b");
    env.wait_marker("started-a", MINUTE).await;
    let orchestrator = env.container_of("orchestrator").await;
    env.rt.kill(&orchestrator.id).await.expect("kill the orchestrator container");
    // The worker of "a" runs on, in its own container.
    let workers = env.rt.containers(Some("worker")).await.unwrap();
    assert!(workers.iter().any(|w| w.running), "the in-flight worker outlives the orchestrator");
    let out = env.ok(&["up", "--timeout", "60s"]);
    assert!(out.contains("Already running and kept"), "the cubs are kept: {out}");
    let artifacts = env.wait_terminals(2, 2 * MINUTE).await;
    let done: Vec<&str> = artifacts.iter().filter(|a| a.artifact_type == "Done").map(|a| a.payload.as_str()).collect();
    assert_eq!(done.len(), 2, "{:#?}", summary(&artifacts));
    assert!(!artifacts.iter().any(|a| a.structural_type == StructuralType::Failure), "{:#?}", summary(&artifacts));
    env.down();
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_cancel_stops_the_tools_container() {
    let yml = r#"
version: "1.0"
agents:
  Boss:
    command: ["./long.sh"]
    bidding_strategy: exclusive
    mode: controller
    worker: {max_concurrent: 1}
    workspace: {mode: rw}
    timeout: 10m
"#;
    // Says it started, then would run for five minutes and write a Terminal.
    let long = r#"#!/usr/bin/env bash
cat >/dev/null
touch started
sleep 300
jq -n '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: "too late"}'
"#;
    let mut env = dockerize(Env::new(yml, &[("long.sh", long)]).await).await;
    env.up();
    let goal = env.forage("run for a long time");
    env.wait_marker("started", MINUTE).await;
    let running: Vec<Component> =
        env.rt.containers(Some("worker")).await.unwrap().into_iter().filter(|c| c.running).collect();
    assert_eq!(running.len(), 1, "the tool runs in one worker container: {running:?}");
    let worker = running[0].clone();
    let claim = env.claims().await.into_iter().find(|c| c.artifact_id == goal).expect("the goal's claim");
    assert_eq!(worker.claim.as_deref(), Some(claim.id.to_string().as_str()), "the container is the claim's");

    env.ok(&["cancel", &goal.to_string(), "--reason", "stop the container"]);
    // The container's state as Docker reports it: not running, or removed. The bound is a
    // safety net for a hung test, not a measure of promptness (steer.rs measures that).
    env.eventually(&format!("the worker container {} stops", worker.name), async || {
        let now = env.rt.containers(Some("worker")).await.unwrap();
        now.iter().find(|c| c.id == worker.id).is_none_or(|c| !c.running)
    })
    .await;
    // Docker's own view agrees: `docker ps` lists no running container of the claim.
    let ps = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=sett.claim={}", claim.id)])
        .output()
        .expect("docker ps");
    assert!(text(&ps.stdout).trim().is_empty(), "docker ps still lists it: {}", text(&ps.stdout));
    // The workflow ended as cancelled: its claim terminated, nothing of the tool acted on.
    let claim = env.claims().await.into_iter().find(|c| c.id == claim.id).unwrap();
    assert_eq!(claim.status, ClaimStatus::Terminated);
    assert!(env.store.cancellation(&goal).await.unwrap().is_some());
    assert!(!env.artifacts().await.iter().any(|a| a.artifact_type == "Done"), "the tool wrote nothing");
    let out = env.run(&["verify"]);
    assert!(out.status.success(), "sett verify: {}", text(&out.stdout));
    env.down();
    env.assert_nothing_left().await;
}

/// Creates (without starting) a worker container labelled for `instance`; returns its name.
fn leftover_worker(instance: &str) -> String {
    let name = format!("sett-{instance}-worker-leftover");
    docker(&[
        "create",
        "--name",
        &name,
        "--label",
        &format!("sett.instance={instance}"),
        "--label",
        "sett.component=worker",
        sett_docker::DEFAULT_IMAGE,
        "true",
    ]);
    name
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn docker_names() -> Vec<String> {
    docker(&["ps", "-a", "--format", "{{.Names}}"]).lines().map(str::to_owned).collect()
}

/// A workspace the containers' user cannot read: `sett up` refuses before starting anything,
/// naming the path, the uid and the fix (a container would otherwise die at start with an
/// empty log).
#[tokio::test(flavor = "multi_thread")]
async fn docker_up_refuses_a_workspace_the_container_user_cannot_read() {
    use std::os::unix::fs::PermissionsExt;
    let env = dockerize(Env::examples(false).await).await;
    let ws = env.path().to_owned();
    let before = std::fs::metadata(&ws).unwrap().permissions();
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Containers run as a user that is neither the owner nor in its group.
    let out = env.sett(&["up", "--timeout", "30s"]).env("SETT_DOCKER_USER", "4242:4242").output().unwrap();
    std::fs::set_permissions(&ws, before).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("uid 4242") && err.contains(&ws.display().to_string()), "{err}");
    assert!(err.contains("chown -R 4242:4242") && err.contains("SETT_DOCKER_USER"), "{err}");
    assert!(env.containers().await.is_empty(), "nothing was started");
}

/// A daemon that dies before writing its log (here: an image whose entry point is not Sett's,
/// so nothing ever opens the log file): `sett up` shows the container's own output and exit code.
#[tokio::test(flavor = "multi_thread")]
async fn docker_up_shows_the_container_output_when_a_daemon_dies_before_its_log() {
    let env = dockerize(
        Env::new(
            "version: \"1.0\"\nagents:\n  Scribe:\n    command: [\"./run.sh\"]\n    bidding_strategy: exclusive\n",
            &[],
        )
        .await,
    )
    .await;
    let out =
        env.sett(&["up", "--timeout", "30s"]).env("SETT_DOCKER_IMAGE", sett_docker::REDIS_IMAGE).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("exited during startup (exit code 1) before writing its log"), "{err}");
    // redis-server's own complaint about its argument, as `docker logs` shows it.
    assert!(err.contains("Fatal error, can't open config file") && err.contains("sett-orchestrator"), "{err}");
    // Nothing half-started is left behind: no container, no network.
    env.assert_nothing_left().await;
}

/// Removes on drop, whatever the test did, the instance's containers and network and the
/// workspace's own `sett-redis` container with its volume (a passing test has `sett down` and
/// `sett destroy` remove them first).
struct WorkspaceRedisGuard {
    instance: String,
    name: String,
}

impl Drop for WorkspaceRedisGuard {
    fn drop(&mut self) {
        let run = |args: &[&str]| std::process::Command::new("docker").args(args).output();
        if let Ok(out) = run(&["ps", "-aq", "--filter", &format!("label=sett.instance={}", self.instance)]) {
            for id in text(&out.stdout).split_whitespace() {
                let _ = run(&["rm", "-f", id]);
            }
        }
        let _ = run(&["network", "rm", &sett_docker::network_name(&self.instance)]);
        let _ = std::process::Command::new("docker").args(["rm", "-f", &self.name]).output();
        let _ =
            std::process::Command::new("docker").args(["volume", "rm", "-f", &format!("{}-data", self.name)]).output();
    }
}

/// `sett` with no Redis URL configured (neither flag nor SETT_REDIS_URL): the workspace's own.
fn bare(env: &Env, args: &[&str]) -> std::process::Output {
    env.sett(args).env_remove("SETT_REDIS_URL").output().expect("run sett")
}

fn bare_ok(env: &Env, args: &[&str]) -> String {
    let out = bare(env, args);
    assert!(
        out.status.success(),
        "sett {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        env.logs()
    );
    text(&out.stdout)
}

/// Points `env`'s own connection at the workspace's Redis, at the URL `sett up` recorded (its
/// published port changes each time the container starts).
async fn connect_recorded(env: &mut Env) {
    let url = std::fs::read_to_string(env.path().join(".sett/redis/url")).expect(".sett/redis/url");
    env.redis_url = url.trim().to_owned();
    env.redis = sett_testkit::redis_at(&env.redis_url).await;
    env.store = env.redis.instance(&env.name);
}

/// `runtime: docker` without a Redis URL: `sett up` starts the workspace's `sett-redis`
/// container (named volume, AOF, port published on loopback, on the instance network), the
/// workflow runs against it, `down` stops it with the data kept, the next `up` reuses it and
/// its data, and `destroy` removes it with its volume (as its dry run says).
#[tokio::test(flavor = "multi_thread")]
async fn docker_up_without_a_redis_url_runs_the_workspaces_own_redis_container() {
    use sett_docker::{RedisState, WorkspaceRedis};
    let script = r#"#!/usr/bin/env bash
input=$(cat)
jq -n --arg g "$(jq -r .target_artifact.payload <<<"$input")" '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $g}'
"#;
    let mut env = Env::new(
        "version: \"1.0\"\nagents:\n  Scribe:\n    command: [\"./run.sh\"]\n    bidding_strategy: exclusive\n",
        &[("run.sh", script)],
    )
    .await;
    let rt = match DockerRuntime::connect(env.name.as_str()).await {
        Ok(rt) => rt,
        Err(e) => panic!("the docker runtime tests need a Docker engine (and the images of `cargo xtask images`): {e}"),
    };
    for image in [sett_docker::DEFAULT_IMAGE, sett_docker::REDIS_IMAGE] {
        if let Err(e) = rt.require_image(image).await {
            panic!("the docker runtime tests need the images: {e}");
        }
    }
    use_docker_runtime(&env);
    let workspace = env.path().canonicalize().unwrap();
    let name = sett_docker::redis_container_name(&workspace);
    let _guard = WorkspaceRedisGuard { instance: env.name.to_string(), name: name.clone() };
    let redis = WorkspaceRedis::connect(&name).await.unwrap();
    assert_eq!(redis.state().await.unwrap(), RedisState::Missing);

    let out = bare_ok(&env, &["up", "--timeout", "60s"]);
    assert!(out.contains(&name), "up names the workspace's Redis container: {out}");
    let RedisState::Running(Some(port)) = redis.state().await.unwrap() else {
        panic!("{name} runs with a published port")
    };
    connect_recorded(&mut env).await;
    assert_eq!(env.redis_url, format!("redis://127.0.0.1:{port}"));
    let inspect = docker(&["inspect", &name]);
    assert!(
        inspect.contains("\"sett.component\": \"redis\"") && inspect.contains("\"HostIp\": \"127.0.0.1\""),
        "{inspect}"
    );
    assert!(inspect.contains(&format!("{name}-data")) && inspect.contains("--appendonly"), "{inspect}");
    assert!(
        inspect.contains(&format!("\"{}\"", sett_docker::network_name(env.name.as_str()))),
        "attached to the instance network: {inspect}"
    );
    let id = bare_ok(&env, &["forage", "--goal", "first goal", "-q"]);
    let artifacts = env.wait_terminals(1, 2 * MINUTE).await;
    assert!(
        artifacts.iter().any(|a| a.artifact_type == "Done" && a.payload == "first goal"),
        "{:#?}",
        summary(&artifacts)
    );
    assert!(bare_ok(&env, &["status"]).contains("Claims:"), "status finds the recorded Redis");

    bare_ok(&env, &["down", "--grace", "5s"]);
    assert_eq!(redis.state().await.unwrap(), RedisState::Stopped, "down stops the workspace's Redis");
    assert!(rt.containers(None).await.unwrap().is_empty(), "the instance's containers are gone");

    // The next up starts the same container again, with the data of the first run.
    let before = docker(&["inspect", "--format", "{{.Id}}", &name]);
    bare_ok(&env, &["up", "--timeout", "60s"]);
    assert_eq!(docker(&["inspect", "--format", "{{.Id}}", &name]), before, "the container is reused");
    connect_recorded(&mut env).await;
    let artifact = env.store.get_artifact(&ArtifactId::parse(id.trim()).unwrap()).await.unwrap();
    assert!(artifact.is_some(), "the first run's goal is still there");
    bare_ok(&env, &["forage", "--goal", "second goal", "-q"]);
    let artifacts = env.wait_terminals(2, 2 * MINUTE).await;
    assert!(
        artifacts.iter().any(|a| a.payload == "first goal") && artifacts.iter().any(|a| a.payload == "second goal")
    );
    bare_ok(&env, &["down", "--grace", "5s"]);

    let dry = bare_ok(&env, &["destroy", "--dry-run"]);
    assert!(dry.contains(&format!("The workspace's Redis: container {name} and volume {name}-data")), "{dry}");
    assert!(redis.volume_exists().await.unwrap(), "a dry run removes nothing");
    let out = bare(&env, &["destroy", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("Removed the workspace's Redis (container {name}")),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("\"removes_redis\""), "the audit record says so: {}", text(&out.stderr));
    assert_eq!(redis.state().await.unwrap(), RedisState::Missing, "destroy removes the container");
    assert!(!redis.volume_exists().await.unwrap(), "and its volume");
    assert!(!env.path().join(".sett/redis/url").exists(), "and forgets it");
}

/// Reports, as its Terminal's payload, the trace context and the collector it was given.
const TRACED: &str = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
jq -n --arg tp "${TRACEPARENT:-}" --arg ep "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" \
  '{structural_type: "Terminal", artifact_type: "Traced", artifact_payload: ({traceparent: $tp, endpoint: $ep} | tojson)}'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn docker_containers_get_the_otel_variables_and_the_tool_its_traceparent() {
    // A collector on the host, where the containers reach it (the Docker host's gateway).
    let spans_file = tempfile::NamedTempFile::new().unwrap();
    let (_receiver, port) = receiver(spans_file.path(), "0.0.0.0");
    let yml = r#"
version: "1.0"
agents:
  Tracer:
    command: ["./traced.sh"]
    bidding_strategy: exclusive
    environment: ["OTEL_EXPORTER_OTLP_ENDPOINT"]
    timeout: 1m
"#;
    let mut env = dockerize(Env::new(yml, &[("traced.sh", TRACED)]).await).await;
    env.env_vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://127.0.0.1:{port}")));
    env.up();
    let goal = env.forage("trace a run in a container");
    let artifacts = env.wait_terminals(1, 2 * MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    let got: serde_json::Value = serde_json::from_str(&terminal.payload).unwrap();
    // The loopback endpoint was rewritten for the containers; the tool joined the goal's trace.
    assert_eq!(got["endpoint"], format!("http://host.docker.internal:{port}").as_str(), "{got}");
    let trace = sett_core::trace::workflow_trace(&goal).to_string();
    let tp = got["traceparent"].as_str().unwrap();
    let parts: Vec<&str> = tp.split('-').collect();
    assert!(matches!(parts[..], ["00", t, _, "01"] if t == trace), "{tp} is not in trace {trace}");
    // Stopping flushes every container's exporter: the orchestrator's workflow span and the
    // cub's tool_run span (the one the tool's TRACEPARENT names) reached the collector.
    env.down();
    env.assert_nothing_left().await;
    let spans = spans(spans_file.path());
    let find = |name: &str, service: &str| {
        spans
            .iter()
            .find(|s| s.name == name && s.service == service && s.trace_id == trace)
            .unwrap_or_else(|| panic!("no {name} span from {service} in trace {trace}: {spans:#?}"))
    };
    let workflow = find("workflow", "sett-orchestrator");
    assert_eq!(workflow.attr("sett.goal_id"), goal.to_string());
    let run = find("tool_run", "sett-cub");
    assert_eq!(run.span_id, parts[2], "{run:#?}");
    assert_eq!(run.attr("sett.agent"), "Tracer");
}
