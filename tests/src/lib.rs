//! End-to-end test support: a temporary git workspace with a `sett.yml` and agent scripts, the
//! real `sett` binaries run against the real test Redis, and typed access to the blackboard for
//! assertions. Each test uses its own random instance name and stops its daemons on drop.

pub mod otlp;
pub mod receiver;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sett_core::event::{Event, EventKind};
use sett_core::{Artifact, ArtifactId, Claim, InstanceName, StructuralType};
use sett_store::{Redis, Store};
use sett_testkit::Probe;

/// How long [`Env::eventually`] waits: the daemons of a test converge in seconds; a minute
/// leaves room for a loaded CI machine.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Where the built binaries are: `$SETT_BIN_DIR`, else the target directory of this test.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SETT_BIN_DIR") {
        return d.into();
    }
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    assert!(
        dir.join("sett").exists() && dir.join("sett-cub").exists() && dir.join("sett-orchestrator").exists(),
        "the sett binaries are not built in {}: run `cargo build --bins` first (cargo xtask ci does)",
        dir.display()
    );
    dir
}

/// A temporary workspace (a git repository) holding one instance's configuration.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub name: InstanceName,
    pub redis_url: String,
    pub redis: Redis,
    pub store: Store,
    /// Extra environment of every `sett` command (and so of the daemons `sett up` starts).
    pub env_vars: Vec<(String, String)>,
    up: bool,
}

impl Env {
    /// A git repository with `sett_yml` and the given executable scripts (path → text).
    pub async fn new(sett_yml: &str, scripts: &[(&str, &str)]) -> Self {
        Self::with_redis_url(&sett_testkit::redis_url(), sett_yml, scripts).await
    }

    /// Like [`Env::new`], against the Redis at `redis_url` (e.g. a `RedisServer` the test
    /// stops and restarts).
    pub async fn with_redis_url(redis_url: &str, sett_yml: &str, scripts: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .status()
                .expect("git")
                .success();
            assert!(ok, "git {args:?}");
        };
        run(&["init", "-q", "-b", "main"]);
        run(&["config", "user.name", "Sett Test"]);
        run(&["config", "user.email", "test@sett.invalid"]);
        std::fs::write(dir.path().join("sett.yml"), sett_yml).expect("write sett.yml");
        std::fs::write(dir.path().join(".gitignore"), ".sett/\n").expect("write .gitignore");
        for (path, text) in scripts {
            write_script(&dir.path().join(path), text);
        }
        run(&["add", "."]);
        run(&["commit", "-q", "-m", "test workspace"]);
        let redis_url = redis_url.to_owned();
        let redis = sett_testkit::redis_at(&redis_url).await;
        let name = sett_testkit::instance_name();
        let store = redis.instance(&name);
        Self { dir, name, redis_url, redis, store, env_vars: Vec::new(), up: false }
    }

    /// A workspace with the demo team of `examples/`, with `ASK_QUESTION` set as given.
    pub async fn examples(ask_question: bool) -> Self {
        Self::examples_with_redis_url(&sett_testkit::redis_url(), ask_question).await
    }

    /// Like [`Env::examples`], against the Redis at `redis_url`.
    pub async fn examples_with_redis_url(redis_url: &str, ask_question: bool) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").join("examples");
        let mut yml = std::fs::read_to_string(root.join("sett.yml")).expect("examples/sett.yml");
        if !ask_question {
            yml = yml.replace("ASK_QUESTION=yes", "ASK_QUESTION=no");
        }
        let mut scripts = Vec::new();
        for agent in ["writer", "reviewer", "checker", "publisher"] {
            let text = std::fs::read_to_string(root.join("agents").join(agent).join("run.sh")).expect("example agent");
            scripts.push((format!("agents/{agent}/run.sh"), text));
        }
        let refs: Vec<(&str, &str)> = scripts.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        Self::with_redis_url(redis_url, &yml, &refs).await
    }

    /// A workspace with the Python demo team (`examples/sett-python.yml`, the agents of
    /// `examples/agents-python`), with `ASK_QUESTION` set as given; the daemons, and so the
    /// agents, import the SDK from this repository's `sdk/python/src`.
    pub async fn python_examples(ask_question: bool) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").join("examples");
        let mut yml = std::fs::read_to_string(root.join("sett-python.yml")).expect("examples/sett-python.yml");
        if !ask_question {
            yml = yml.replace("ASK_QUESTION=yes", "ASK_QUESTION=no");
        }
        let mut scripts = Vec::new();
        for (agent, file) in [
            ("writer", "agent.py"),
            ("reviewer", "agent.py"),
            ("checker", "agent.py"),
            ("checker", "bid.py"),
            ("publisher", "agent.py"),
        ] {
            let text = std::fs::read_to_string(root.join("agents-python").join(agent).join(file))
                .expect("example Python agent");
            scripts.push((format!("agents/{agent}/{file}"), text));
        }
        let refs: Vec<(&str, &str)> = scripts.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let mut env = Self::new(&yml, &refs).await;
        env.use_python_sdk();
        env
    }

    /// Lets the daemons' agents import the Python SDK from this repository (`sdk/python/src`),
    /// for a `sett.yml` whose agents pass `PYTHONPATH` on (`environment: ["PYTHONPATH"]`).
    pub fn use_python_sdk(&mut self) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").join("sdk/python/src");
        self.env_vars.push(("PYTHONPATH".into(), src.display().to_string()));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `sett` command for this instance (`--name`, `--redis-url` and the operator are set).
    pub fn sett(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin_dir().join("sett"));
        c.args(args)
            .env("SETT_INSTANCE", self.name.as_str())
            .env("SETT_REDIS_URL", &self.redis_url)
            .env("SETT_OPERATOR", "test-operator")
            .env("SETT_BIN_DIR", bin_dir())
            .env_remove("NO_COLOR")
            .current_dir(self.path())
            .stdin(Stdio::null());
        c.envs(self.env_vars.iter().map(|(k, v)| (k, v)));
        c
    }

    /// `sett console` on a free port, with `token` as its bearer token; returns it and its base
    /// URL (`http://127.0.0.1:<port>`).
    pub fn console(&self, token: &str) -> (KillOnDrop, String) {
        let mut child = self
            .sett(&["console", "--addr", "127.0.0.1:0"])
            .env("SETT_CONSOLE_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sett console");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
            .expect("the console prints its URL");
        let base = line.trim().split("/?token=").next().unwrap().to_owned();
        (KillOnDrop(child), base)
    }

    /// Runs `sett args`, returning its output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.sett(args).output().expect("run sett")
    }

    /// Runs `sett args` and fails the test (with its output) unless it exits 0. Returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "sett {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.logs()
        );
        text(&out.stdout)
    }

    /// Runs `redis-cli` against this workspace's Redis (to read or tamper with a record the
    /// typed API has no call for), failing the test unless it exits 0. Returns stdout.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-u", &self.redis_url])
            .args(args)
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        assert!(out.status.success(), "redis-cli {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    pub fn up(&mut self) {
        self.ok(&["up", "--timeout", "60s"]);
        self.up = true;
    }

    pub fn down(&mut self) {
        self.ok(&["down", "--grace", "5s"]);
        self.up = false;
    }

    /// Writes a goal and returns its artifact id.
    pub fn forage(&self, goal: &str) -> ArtifactId {
        let id = self.ok(&["forage", "--goal", goal, "-q"]);
        ArtifactId::parse(id.trim()).unwrap_or_else(|e| panic!("forage printed {id:?}: {e}"))
    }

    /// The directory of the instance's log files (`.sett/logs/<instance>`).
    pub fn log_dir(&self) -> PathBuf {
        self.path().join(".sett").join("logs").join(self.name.as_str())
    }

    /// The `/healthz` address a running component (`orchestrator` or `cub:<agent>`) registered.
    pub async fn addr_of(&self, component: &str) -> Option<String> {
        let components = self.store.components().await.ok()?;
        components.get(component)?.addr.clone()
    }

    pub fn logs(&self) -> String {
        let dir = self.path().join(".sett").join("logs").join(self.name.as_str());
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let body = std::fs::read_to_string(e.path()).unwrap_or_default();
                let lines: Vec<&str> = body.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                out.push_str(&format!("--- {} (last 40 lines)\n{tail}\n", e.path().display()));
            }
        }
        out
    }

    /// Every line of every log file of the instance (for counting messages).
    pub fn logs_all(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.log_dir()) {
            for e in entries.flatten() {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    /// The pid of a running component (`orchestrator` or `cub:<agent>`).
    pub async fn pid_of(&self, component: &str) -> Option<u32> {
        let components = self.store.components().await.ok()?;
        components.get(component)?.pid
    }

    /// Every event of the instance, oldest first.
    pub async fn events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.events_after(after.as_deref(), 1000).await.expect("events");
            if page.is_empty() {
                return out;
            }
            after = page.last().map(|e| e.id.clone());
            out.extend(page);
        }
    }

    pub async fn events_of(&self, kind: EventKind) -> Vec<Event> {
        self.events().await.into_iter().filter(|e| e.kind() == kind).collect()
    }

    /// Every artifact, oldest first.
    pub async fn artifacts(&self) -> Vec<Artifact> {
        let n = self.store.artifact_count().await.expect("count") as i64;
        let ids = self.store.artifact_ids(0, n.max(1)).await.expect("ids");
        let mut out = Vec::new();
        for id in ids {
            out.push(self.store.get_artifact(&id).await.expect("get").expect("exists"));
        }
        out
    }

    pub async fn artifacts_of(&self, t: StructuralType) -> Vec<Artifact> {
        self.artifacts().await.into_iter().filter(|a| a.structural_type == t).collect()
    }

    pub async fn claims(&self) -> Vec<Claim> {
        self.store.all_claims().await.expect("claims")
    }

    /// Waits (driven by the event stream, bounded by `limit`) until `done` holds for the
    /// instance's artifacts, which it gathers incrementally from `artifact_created` events.
    pub async fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[Artifact]) -> bool) -> Vec<Artifact> {
        let reader = self.store.event_reader().await.expect("reader");
        let mut last = "0".to_owned();
        let mut artifacts = Vec::new();
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let evs = reader.read_after(&last, 1000, left.min(Duration::from_millis(500))).await.expect("read events");
            if let Some(e) = evs.last() {
                last = e.id.clone();
            }
            for e in evs.iter().filter(|e| e.kind() == EventKind::ArtifactCreated) {
                let id = e.data.artifact_id().expect("artifact id");
                artifacts.push(self.store.get_artifact(&id).await.expect("get").expect("exists"));
            }
            if done(&artifacts) {
                reader.quit().await;
                return artifacts;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let open = self.open_claims_report().await;
                panic!(
                    "timed out after {limit:?} waiting for {what}; artifacts: {:#?}\n{open}\n{}",
                    summary(&artifacts),
                    self.logs()
                );
            }
        }
    }

    /// Where the workflows stopped, for a timeout's failure message: every claim that is not
    /// final, with its events and log lines; every root artifact that has no claim at all, with
    /// its events and log lines (an event the orchestrator never handled); the final claims by
    /// status; and the warnings and errors of every log.
    pub async fn open_claims_report(&self) -> String {
        let claims = self.store.all_claims().await.unwrap_or_default();
        let events = self.store.events_after(None, 100_000).await.unwrap_or_default();
        let logs = self.logs_all();
        let trail = |out: &mut String, matches: &dyn Fn(&Event) -> bool, id: &str| {
            for e in events.iter().filter(|e| matches(e)) {
                out.push_str(&format!("  event {} {:?} {}\n", e.id, e.kind(), e.data.to_json()));
            }
            for line in logs.lines().filter(|l| l.contains(id)) {
                out.push_str(&format!("  log {line}\n"));
            }
        };
        let open: Vec<&Claim> = claims.iter().filter(|c| !c.status.is_final()).collect();
        let mut out = format!("{} open claim(s)\n", open.len());
        for c in open {
            out.push_str(&format!("claim {c:?}\n"));
            let matches = |e: &Event| e.data.claim_id() == Some(c.id) || e.data.artifact_id() == Some(c.artifact_id);
            trail(&mut out, &matches, &c.id.to_string());
        }
        let claimed: std::collections::BTreeSet<ArtifactId> = claims.iter().map(|c| c.artifact_id).collect();
        let roots: Vec<ArtifactId> = events
            .iter()
            .filter(|e| e.kind() == EventKind::ArtifactCreated && e.data.claim_id().is_none())
            .filter_map(|e| e.data.artifact_id())
            .filter(|a| !claimed.contains(a))
            .collect();
        out.push_str(&format!("{} root artifact(s) without a claim\n", roots.len()));
        for a in roots {
            out.push_str(&format!("artifact {a}\n"));
            trail(&mut out, &|e: &Event| e.data.artifact_id() == Some(a), &a.to_string());
        }
        let mut by_status: std::collections::BTreeMap<String, usize> = Default::default();
        for c in claims.iter().filter(|c| c.status.is_final()) {
            *by_status.entry(c.status.to_string()).or_default() += 1;
        }
        out.push_str(&format!("final claims by status: {by_status:?}\n"));
        for group in self.store.event_group_summaries().await.unwrap_or_default() {
            out.push_str(&format!("{group}\n"));
        }
        let noisy: Vec<&str> =
            logs.lines().filter(|l| l.contains("\"level\":40") || l.contains("\"level\":50")).collect();
        out.push_str(&format!("{} warning and error log line(s), the last 60:\n", noisy.len()));
        for line in &noisy[noisy.len().saturating_sub(60)..] {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }

    /// Waits (driven by the event stream) until `n` events satisfy `pred`; returns them.
    pub async fn wait_events(
        &self,
        limit: Duration,
        what: &str,
        n: usize,
        pred: impl Fn(&Event) -> bool,
    ) -> Vec<Event> {
        let reader = self.store.event_reader().await.expect("reader");
        let mut seen = Vec::new();
        let mut last = "0".to_owned();
        let until = Instant::now() + limit;
        while seen.len() < n {
            let left = until.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {limit:?} waiting for {what} ({} of {n})\n{}",
                seen.len(),
                self.logs()
            );
            let evs = reader.read_after(&last, 1000, left.min(Duration::from_secs(1))).await.expect("read events");
            if let Some(e) = evs.last() {
                last = e.id.clone();
            }
            seen.extend(evs.into_iter().filter(|e| pred(e)));
        }
        reader.quit().await;
        seen
    }

    /// Probes until `probe` holds (`true`, `Some`, `Ok`; see [`sett_testkit::eventually`]),
    /// bounded by [`WAIT_LIMIT`]; on timeout fails naming `what`, the last probe's observation
    /// and the daemons' logs.
    pub async fn eventually<P: Probe>(&self, what: &str, probe: impl AsyncFnMut() -> P) -> P::Ready {
        match sett_testkit::try_eventually(WAIT_LIMIT, what, probe).await {
            Ok(ready) => ready,
            Err(timed_out) => panic!("{timed_out}\n{}", self.logs()),
        }
    }

    /// Waits until `n` Terminal artifacts exist.
    pub async fn wait_terminals(&self, n: usize, limit: Duration) -> Vec<Artifact> {
        self.wait_for(limit, &format!("{n} Terminal artifact(s)"), |a| {
            a.iter().filter(|x| x.structural_type == StructuralType::Terminal).count() >= n
        })
        .await
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.up {
            let _ = self.sett(&["down", "--grace", "2s"]).output();
        }
    }
}

/// One line per artifact, for failure messages.
pub fn summary(artifacts: &[Artifact]) -> Vec<String> {
    artifacts
        .iter()
        .map(|a| {
            format!(
                "{} v{} {} {} by {} claim={:?}: {}",
                a.id.short(),
                a.version,
                a.structural_type,
                a.artifact_type,
                a.produced_by_role,
                a.claim_id.map(|c| c.short()),
                a.payload.chars().take(120).collect::<String>()
            )
        })
        .collect()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A `sett.yml` (bid timeout 10 s) whose agents are `name => (script, bidding_strategy)`: each
/// runs `./<script>` from the workspace. A macro, so teams stay `&'static str` constants.
#[macro_export]
macro_rules! team_yml {
    ($($name:literal => ($script:literal, $strategy:literal)),+ $(,)?) => {
        concat!(
            "\nversion: \"1.0\"\norchestrator: {bid_timeout: 10s}\nagents:\n",
            $("  ", $name, ":\n    command: [\"./", $script, "\"]\n    bidding_strategy: ", $strategy, "\n"),+
        )
    };
}

/// A team that drafts and finishes: `Writer` drafts the goal (a `Draft`), `Finisher` ends the
/// workflow on a draft with a Terminal saying which draft it finished (run it with
/// [`DRAFT_WRITER`] as `writer.sh` and [`DRAFT_FINISHER`] as `finisher.sh`). Forking the draft
/// gives a branch with its own Terminal.
pub const DRAFTING_YML: &str = drafting_yml!("Writer" => "writer.sh");

/// [`DRAFTING_YML`] with another agent (running `./<script>`) taking the goals.
#[macro_export]
macro_rules! drafting_yml {
    ($first:literal => $script:literal) => {
        $crate::team_yml!(
            $first => ($script, "{type: exclusive, target_types: [\"GoalDefined\"]}"),
            "Finisher" => ("finisher.sh", "{type: exclusive, target_types: [\"Draft\"]}"),
        )
    };
}

/// The tool of [`DRAFTING_YML`]'s `Writer`: "draft of <goal>".
pub const DRAFT_WRITER: &str = r#"#!/usr/bin/env bash
jq '{artifact_type: "Draft", artifact_payload: ("draft of " + .target_artifact.payload)}'
"#;

/// The tool of [`DRAFTING_YML`]'s `Finisher`: a Terminal "final: <draft>".
pub const DRAFT_FINISHER: &str = r#"#!/usr/bin/env bash
jq '{structural_type: "Terminal", artifact_type: "Done", artifact_payload: ("final: " + .target_artifact.payload)}'
"#;

/// A team of one agent, `Asker`, that takes every goal (run it with [`asker_script`] as `asker.sh`).
pub const ASKER_YML: &str = team_yml!("Asker" => ("asker.sh", "exclusive"));

/// The tool of an agent that asks `question` once, then ends the workflow with a Terminal `Done`
/// whose payload is the answer. The question reaches jq as an argument, so any text works.
pub fn asker_script(question: &str) -> String {
    let quoted = question.replace('\'', r"'\''");
    format!(
        r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
if [ "$(jq '.answers | length' <<<"$input")" = "0" ]; then
  jq -n --arg q '{quoted}' '{{structural_type: "Question", artifact_type: "Clarification", artifact_payload: $q}}'
else
  jq -n --arg a "$(jq -r '.answers[-1].answer.payload' <<<"$input")" '{{structural_type: "Terminal", artifact_type: "Done", artifact_payload: $a}}'
fi
"#
    )
}

/// The tool of an agent that asks a structured question once (`payload`: a JSON object with
/// `question` and `options` or `schema`), then ends the workflow with a Terminal `Done` whose
/// payload is the answer's JSON `value` (or `no value: <answer payload>` without one). Saves the
/// stdin of its resumption to `stdin-resume.json`.
pub fn structured_asker_script(payload: &str) -> String {
    let quoted = payload.replace('\'', r"'\''");
    format!(
        r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
if [ "$(jq '.answers | length' <<<"$input")" = "0" ]; then
  jq -n --argjson q '{quoted}' '{{structural_type: "Question", artifact_type: "Choice", artifact_payload: $q}}'
else
  printf '%s' "$input" >stdin-resume.json
  jq '{{structural_type: "Terminal", artifact_type: "Done",
        artifact_payload: (if .answers[-1] | has("value") then (.answers[-1].value | tojson) else ("no value: " + .answers[-1].answer.payload) end)}}' <<<"$input"
fi
"#
    )
}

/// A child process (a `sett console`, a WebDriver) killed when the test ends, passed or not.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on a health server: the status code and the body. Bounded; the server answers
/// `/healthz` within its PING bound (1.5 s).
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let sock: SocketAddr = addr.parse().map_err(|e| format!("bad address {addr}: {e}"))?;
    let mut s =
        TcpStream::connect_timeout(&sock, Duration::from_secs(1)).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read from {addr}: {e}"))?;
    let raw = String::from_utf8(raw).map_err(|e| format!("{addr} sent non-UTF-8: {e}"))?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| format!("{addr} sent no header end: {raw:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr} sent no status line: {head:?}"))?;
    Ok((code, body.to_owned()))
}
