//! Running an agent's program (a tool or a bid script): its own process group, a filtered
//! environment, stdin written then closed, stdout and stderr drained concurrently under a byte
//! cap, a timeout and an external kill signal that both end the whole group. Started by
//! `sett_spawn` where the kernel allows clone3, else by the standard library's `posix_spawn`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop, ProcessGroup};
use sett_core::config::{AgentConfig, EnvEntry};
use sett_core::metrics::PROGRAM_STARTS;
use sett_core::{ClaimId, ClaimType, InstanceName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The stdout and stderr cap of a tool run (design.md §5).
pub const OUTPUT_CAP: usize = 10 * 1024 * 1024;

/// After the program's group is gone, how long its pipes may stay open (held by a process that
/// left the group) before reading stops.
const DRAIN_BOUND: Duration = Duration::from_secs(2);

/// Host variables every program gets when the host has them.
const BASE_HOST_VARS: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR"];

/// Who a program runs for: the identity put in its `SETT_*` variables.
#[derive(Debug, Clone)]
pub struct EnvIdentity<'a> {
    pub instance: &'a InstanceName,
    pub agent: &'a AgentConfig,
    pub workspace: &'a Path,
    pub claim: Option<(&'a ClaimId, Option<ClaimType>)>,
    /// Passed as `SETT_REDIS_URL` only when the agent has `expose_redis: true`.
    pub redis_url: Option<&'a str>,
}

/// The filtered environment of an agent's program: nothing from the host except `PATH`, `HOME`,
/// `LANG`, `TMPDIR` and the agent's own `environment:` entries, plus the `SETT_*` identity. Redis
/// credentials are withheld unless the agent is configured with `expose_redis: true`.
/// `host` looks a variable up in the host environment (injected so tests control it).
pub fn tool_environment(id: &EnvIdentity<'_>, host: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in BASE_HOST_VARS {
        if let Some(v) = host(name) {
            env.insert((*name).to_owned(), v);
        }
    }
    for entry in &id.agent.environment {
        match entry {
            EnvEntry::FromHost(name) => {
                if let Some(v) = host(name) {
                    env.insert(name.clone(), v);
                }
            }
            EnvEntry::Set(name, value) => {
                env.insert(name.clone(), value.clone());
            }
        }
    }
    // Identity last, so an `environment:` entry cannot impersonate another agent or claim.
    for name in ["SETT_INSTANCE", "SETT_AGENT", "SETT_CLAIM_ID", "SETT_CLAIM_TYPE", "SETT_WORKSPACE", "SETT_REDIS_URL"]
    {
        env.remove(name);
    }
    env.insert("SETT_INSTANCE".into(), id.instance.to_string());
    env.insert("SETT_AGENT".into(), id.agent.name.to_string());
    env.insert("SETT_WORKSPACE".into(), id.workspace.display().to_string());
    if let Some((claim, claim_type)) = id.claim {
        env.insert("SETT_CLAIM_ID".into(), claim.to_string());
        if let Some(t) = claim_type {
            env.insert("SETT_CLAIM_TYPE".into(), t.to_string());
        }
    }
    if let (true, Some(url)) = (id.agent.expose_redis, id.redis_url) {
        env.insert("SETT_REDIS_URL".into(), url.to_owned());
    }
    env
}

/// A relative program path with a directory part (`./agents/run.sh`) is relative to the
/// workspace, whatever the daemon's own working directory is; a bare name is looked up in PATH.
pub(crate) fn resolve_program(program: &str, workspace: &Path) -> PathBuf {
    let p = Path::new(program);
    if p.is_relative() && p.components().count() > 1 { workspace.join(p) } else { p.to_owned() }
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: BTreeMap<String, String>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    pub cap: usize,
    pub spawner: Spawner,
}

/// How a program is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spawner {
    /// With `sett_spawn` where the kernel allows it (the event loop is never suspended), else
    /// with the standard library's `posix_spawn`.
    Auto,
    /// With the standard library's `posix_spawn`: what a cub gets where clone3 is refused;
    /// tests ask for it to cover that path.
    #[cfg(test)]
    PosixSpawn,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The program exited; `None` when a signal ended it.
    Exited(Option<i32>),
    /// The timeout passed; the group was killed.
    TimedOut,
    /// The kill token fired (shutdown after the grace period); the group was killed.
    Killed,
    /// The stop token fired (the workflow was cancelled): the group got SIGTERM, and SIGKILL
    /// after [`STOP_GRACE`] if it was still there.
    Stopped,
    /// The program could not be started.
    SpawnFailed(String),
}

/// One captured stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct Captured {
    pub data: Vec<u8>,
    /// Bytes the program wrote in total (more than `data.len()` when truncated).
    pub total: u64,
}

impl Captured {
    pub(crate) fn truncated(&self) -> bool {
        self.total > self.data.len() as u64
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The last `max` bytes (at a character boundary), for failure reports.
    pub(crate) fn tail(&self, max: usize) -> String {
        tail(&self.data, max)
    }
}

/// "status 3" or "a signal", for messages.
pub(crate) fn describe_exit(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("status {c}"),
        None => "a signal (killed)".to_owned(),
    }
}

pub(crate) fn tail(data: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&data[data.len().saturating_sub(max)..]).into_owned();
    // The byte cut may split a character; a lossy decode turns it into U+FFFD, which is fine
    // for a report, but keep the result within `max` bytes.
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

#[derive(Debug)]
pub(crate) struct RunResult {
    pub ended: Ended,
    pub stdout: Captured,
    pub stderr: Captured,
    pub elapsed: Duration,
}

/// A started program, whichever way it was started.
enum Started {
    /// By `sett_spawn` (clone3, the event loop never suspended).
    Cloned(sett_spawn::Child),
    /// By the standard library's `posix_spawn` (where clone3 is refused, or asked for).
    Spawned(Box<dyn ChildWrapper>),
}

type Pipes = (
    Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>,
    Option<Box<dyn AsyncRead + Send + Unpin>>,
    Option<Box<dyn AsyncRead + Send + Unpin>>,
);

impl Started {
    async fn start(spec: &RunSpec<'_>, program: &str) -> std::io::Result<Started> {
        let resolved = resolve_program(program, spec.cwd);
        if spec.spawner == Spawner::Auto {
            let launch =
                sett_spawn::Launch { program: &resolved, args: &spec.argv[1..], env: &spec.env, cwd: spec.cwd };
            if let Some(child) = sett_spawn::spawn(launch).await? {
                metrics::counter!(PROGRAM_STARTS, "method" => "clone3").increment(1);
                return Ok(Started::Cloned(child));
            }
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::info!(
                    "clone3 is refused here (a seccomp profile, as Docker's default, or a kernel before 5.5): \
                     programs start through posix_spawn, which suspends the event loop while each one execs"
                );
            });
        }
        let mut cmd = tokio::process::Command::new(resolved);
        cmd.args(&spec.argv[1..])
            .current_dir(spec.cwd)
            .env_clear()
            .envs(&spec.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut wrap = CommandWrap::from(cmd);
        wrap.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
        let child = wrap.spawn()?;
        metrics::counter!(PROGRAM_STARTS, "method" => "posix_spawn").increment(1);
        Ok(Started::Spawned(child))
    }

    fn pipes(&mut self) -> Pipes {
        match self {
            Started::Cloned(c) => (
                c.stdin.take().map(|p| Box::new(p) as _),
                c.stdout.take().map(|p| Box::new(p) as _),
                c.stderr.take().map(|p| Box::new(p) as _),
            ),
            Started::Spawned(c) => (
                c.stdin().take().map(|p| Box::new(p) as _),
                c.stdout().take().map(|p| Box::new(p) as _),
                c.stderr().take().map(|p| Box::new(p) as _),
            ),
        }
    }

    /// The program's pid, which is its process group's id.
    fn id(&self) -> Option<u32> {
        match self {
            Started::Cloned(c) => Some(c.id()),
            Started::Spawned(c) => c.id(),
        }
    }

    /// Its exit code once reaped, `None` when a signal ended it. Cancel-safe; may be called
    /// again after it was dropped.
    async fn wait(&mut self) -> std::io::Result<Option<i32>> {
        match self {
            Started::Cloned(c) => c.wait().await,
            Started::Spawned(c) => Ok(c.wait().await?.code()),
        }
    }

    /// SIGKILL to the whole process group.
    fn kill_group(&mut self) {
        let _ = match self {
            Started::Cloned(c) => c.kill_group(),
            Started::Spawned(c) => c.start_kill(),
        };
    }
}

/// Kills the process group if the run is abandoned (its task dropped) before the program was
/// reaped. `KillOnDrop` alone would only kill the group leader.
struct GroupGuard {
    child: Started,
    reaped: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.reaped {
            self.child.kill_group();
        }
    }
}

async fn read_capped(mut from: impl AsyncRead + Unpin, cap: usize, into: Arc<Mutex<Captured>>) {
    // Not zeroed (128 KiB a run for two streams): `read_buf` only fills the spare capacity.
    let mut chunk = Vec::with_capacity(64 * 1024);
    loop {
        chunk.clear();
        match from.read_buf(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Keep draining past the cap so the program never blocks on a full pipe.
                let mut c = into.lock().unwrap_or_else(|e| e.into_inner());
                let room = cap.saturating_sub(c.data.len());
                c.data.extend_from_slice(&chunk[..n.min(room)]);
                c.total += n as u64;
            }
        }
    }
}

fn take(buf: &Arc<Mutex<Captured>>) -> Captured {
    std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()))
}

/// How long a stopped program (its workflow was cancelled) has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Runs `spec` to completion, timeout or kill. Never returns before the program is reaped.
pub(crate) async fn run(spec: RunSpec<'_>, kill: &CancellationToken) -> RunResult {
    run_stoppable(spec, kill, &CancellationToken::new()).await
}

/// [`run`], also ended by `stop`: SIGTERM to the program's process group, then SIGKILL after
/// [`STOP_GRACE`] (a tool may clean up, but not linger).
pub(crate) async fn run_stoppable(spec: RunSpec<'_>, kill: &CancellationToken, stop: &CancellationToken) -> RunResult {
    let started = Instant::now();
    let Some(program) = spec.argv.first() else {
        return RunResult {
            ended: Ended::SpawnFailed("the command is empty".into()),
            stdout: Captured::default(),
            stderr: Captured::default(),
            elapsed: started.elapsed(),
        };
    };
    let child = match Started::start(&spec, program).await {
        Ok(c) => c,
        Err(e) => {
            return RunResult {
                ended: Ended::SpawnFailed(format!("cannot start {program:?} in {}: {e}", spec.cwd.display())),
                stdout: Captured::default(),
                stderr: Captured::default(),
                elapsed: started.elapsed(),
            };
        }
    };
    let mut guard = GroupGuard { child, reaped: false };
    let (stdin, stdout, stderr) = guard.child.pipes();
    let out_buf = Arc::new(Mutex::new(Captured::default()));
    let err_buf = Arc::new(Mutex::new(Captured::default()));
    let cap = spec.cap;
    let mut readers = tokio::task::JoinSet::new();
    if let Some(s) = stdout {
        readers.spawn(read_capped(s, cap, out_buf.clone()));
    }
    if let Some(s) = stderr {
        readers.spawn(read_capped(s, cap, err_buf.clone()));
    }
    let input = spec.stdin;
    // A program that never reads its stdin must not block us: write in the background and
    // ignore a broken pipe.
    let writer = tokio::spawn(async move {
        if let Some(mut s) = stdin {
            let _ = s.write_all(&input).await;
            let _ = s.shutdown().await;
        }
    });

    // Cancel-safe: `Child::wait` may be called again after it was dropped (the guard still owns
    // the child and kills its group when the sleep or the token wins).
    let waited = tokio::select! {
        status = guard.child.wait() => Some(status),
        () = tokio::time::sleep(spec.timeout) => None,
        () = kill.cancelled() => None,
        () = stop.cancelled() => None,
    };
    let stopped = waited.is_none() && stop.is_cancelled() && !kill.is_cancelled();
    let waited = if stopped {
        // The whole group: the tool's children too (the leader's pid is the group id).
        if let Some(pid) = guard.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        // Cancel-safe: `Child::wait` may be called again (see above).
        match tokio::time::timeout(STOP_GRACE, guard.child.wait()).await {
            Ok(status) => {
                let _ = status;
                None
            }
            Err(_) => {
                tracing::warn!(grace = ?STOP_GRACE, "the stopped program outlived its grace period; killing its process group");
                None
            }
        }
    } else {
        waited
    };
    let ended = match waited {
        Some(Ok(code)) => {
            // The run is over, so nothing it started may outlive it (a background `sleep &`
            // included). Done right after the leader is reaped: the group id stays reserved
            // while any member lives, and the window in which it could be reused is tiny.
            guard.child.kill_group();
            Ended::Exited(code)
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "waiting for the program failed; killing its process group");
            guard.child.kill_group();
            let _ = guard.child.wait().await;
            Ended::Exited(None)
        }
        None => {
            let timed_out = !kill.is_cancelled() && !stopped;
            // SIGKILL to the group: whatever is left of it (after a stop, the members that
            // ignored SIGTERM, and children of a leader that already exited).
            guard.child.kill_group();
            let _ = guard.child.wait().await;
            if stopped {
                Ended::Stopped
            } else if timed_out {
                Ended::TimedOut
            } else {
                Ended::Killed
            }
        }
    };
    guard.reaped = true;
    writer.abort();

    // The pipes close when every process holding them is gone. The group is dead by now, but a
    // process that left it (setsid) may still hold them: stop reading after a bound and keep
    // what arrived.
    let drained = tokio::time::timeout(DRAIN_BOUND, async { while readers.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "the program's output pipes stayed open after its process group ended; keeping the output read so far"
        );
        readers.abort_all();
    }
    RunResult { ended, stdout: take(&out_buf), stderr: take(&err_buf), elapsed: started.elapsed() }
}

#[cfg(test)]
mod tests {
    use sett_core::config::SettConfig;

    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["bash".into(), "-c".into(), script.into()]
    }

    /// Both ways of starting a program: what a cub uses here, and what it falls back to where
    /// clone3 is refused (a container's seccomp profile).
    const SPAWNERS: [Spawner; 2] = [Spawner::Auto, Spawner::PosixSpawn];

    fn spec<'a>(
        argv: &'a [String],
        cwd: &'a Path,
        stdin: Vec<u8>,
        timeout: Duration,
        cap: usize,
        spawner: Spawner,
    ) -> RunSpec<'a> {
        let env = BTreeMap::from([("PATH".to_owned(), std::env::var("PATH").unwrap_or_default())]);
        RunSpec { argv, cwd, env, stdin, timeout, cap, spawner }
    }

    #[tokio::test]
    async fn output_is_capped_but_drained_and_unread_stdin_never_blocks() {
        let cwd = std::env::temp_dir();
        let argv = sh("head -c 300000 /dev/zero; head -c 5000 /dev/zero >&2");
        for spawner in SPAWNERS {
            // 4 MiB of stdin the program never reads: the writer must not block the run.
            let input = vec![b'x'; 4 << 20];
            let r =
                run(spec(&argv, &cwd, input, Duration::from_secs(20), 1000, spawner), &CancellationToken::new()).await;
            assert_eq!(r.ended, Ended::Exited(Some(0)), "{spawner:?}");
            assert_eq!((r.stdout.data.len(), r.stdout.total), (1000, 300_000), "{spawner:?}");
            assert!(r.stdout.truncated());
            assert_eq!((r.stderr.data.len(), r.stderr.total), (1000, 5000), "{spawner:?}");
        }
    }

    #[tokio::test]
    async fn stdin_arrives_whole_and_the_exit_code_and_signals_are_reported() {
        let cwd = std::env::temp_dir();
        for spawner in SPAWNERS {
            let argv = sh("wc -c; echo to-stderr >&2; exit 7");
            let r = run(
                spec(&argv, &cwd, vec![b'y'; 300_000], Duration::from_secs(20), 1000, spawner),
                &CancellationToken::new(),
            )
            .await;
            assert_eq!(r.ended, Ended::Exited(Some(7)), "{spawner:?}");
            assert_eq!(r.stdout.text().trim(), "300000", "{spawner:?}");
            assert_eq!(r.stderr.text(), "to-stderr\n", "{spawner:?}");

            let argv = sh("kill -9 $$");
            let r =
                run(spec(&argv, &cwd, Vec::new(), Duration::from_secs(20), 1000, spawner), &CancellationToken::new())
                    .await;
            assert_eq!(r.ended, Ended::Exited(None), "{spawner:?}: ended by a signal");
        }
    }

    #[tokio::test]
    async fn a_timeout_and_a_stop_end_the_run() {
        let cwd = std::env::temp_dir();
        for spawner in SPAWNERS {
            let argv = sh("sleep 300 & wait");
            let r = run(
                spec(&argv, &cwd, Vec::new(), Duration::from_millis(300), 1000, spawner),
                &CancellationToken::new(),
            )
            .await;
            assert_eq!(r.ended, Ended::TimedOut, "{spawner:?}");

            let stop = CancellationToken::new();
            let stopper = stop.clone();
            let stopping = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                stopper.cancel();
            });
            let argv = sh("sleep 300 & wait");
            let r = run_stoppable(
                spec(&argv, &cwd, Vec::new(), Duration::from_secs(60), 1000, spawner),
                &CancellationToken::new(),
                &stop,
            )
            .await;
            stopping.await.unwrap();
            assert_eq!(r.ended, Ended::Stopped, "{spawner:?}");
        }
    }

    #[tokio::test]
    async fn the_kill_token_and_spawn_errors_end_a_run() {
        let cwd = std::env::temp_dir();
        let argv = sh("echo before; sleep 100");
        for spawner in SPAWNERS {
            let kill = CancellationToken::new();
            let killer = kill.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                killer.cancel();
            });
            let r = run(spec(&argv, &cwd, Vec::new(), Duration::from_secs(60), 1000, spawner), &kill).await;
            assert_eq!(r.ended, Ended::Killed, "{spawner:?}");
            assert_eq!(r.stdout.text(), "before\n", "{spawner:?}");
            assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);

            let argv = vec!["/does/not/exist".to_owned()];
            let r = run(spec(&argv, &cwd, Vec::new(), Duration::from_secs(1), 10, spawner), &CancellationToken::new())
                .await;
            let Ended::SpawnFailed(e) = &r.ended else { panic!("{spawner:?}: {:?}", r.ended) };
            assert!(e.contains("/does/not/exist") && e.contains("No such file or directory"), "{spawner:?}: {e}");
            let argv = vec!["true".to_owned()];
            let gone = cwd.join("sett-no-such-directory");
            let r = run(spec(&argv, &gone, Vec::new(), Duration::from_secs(1), 10, spawner), &CancellationToken::new())
                .await;
            assert!(matches!(r.ended, Ended::SpawnFailed(_)), "{spawner:?}: {:?}", r.ended);
            let r =
                run(spec(&[], &cwd, Vec::new(), Duration::from_secs(1), 10, spawner), &CancellationToken::new()).await;
            assert!(matches!(r.ended, Ended::SpawnFailed(_)), "{spawner:?}: {:?}", r.ended);
        }
    }

    #[test]
    fn the_environment_is_filtered_and_the_identity_cannot_be_overridden() {
        let yaml = "version: \"1.0\"\nagents:\n  Coder:\n    command: [x]\n    bidding_strategy: claim\n    environment: [\"API_KEY\", \"MODE=fast\", \"SETT_AGENT=Admin\"]\n";
        let agent = SettConfig::parse("t.yml", yaml).unwrap().agents.into_values().next().unwrap();
        let mut exposed = agent.clone();
        exposed.expose_redis = true;
        let instance = InstanceName::parse("demo").unwrap();
        let claim = sett_store::new_claim_id();
        let host = |name: &str| match name {
            "PATH" => Some("/bin".to_owned()),
            "API_KEY" => Some("k".to_owned()),
            "SECRET" => Some("s".to_owned()),
            _ => None,
        };
        let ws = Path::new("/ws");
        let id = |agent| EnvIdentity {
            instance: &instance,
            agent,
            workspace: ws,
            claim: Some((&claim, Some(ClaimType::Rework))),
            redis_url: Some("redis://:pw@h"),
        };
        let env = tool_environment(&id(&agent), host);
        let expected = BTreeMap::from(
            [
                ("PATH", "/bin"),
                ("API_KEY", "k"),
                ("MODE", "fast"),
                ("SETT_AGENT", "Coder"),
                ("SETT_INSTANCE", "demo"),
                ("SETT_WORKSPACE", "/ws"),
                ("SETT_CLAIM_ID", &claim.to_string()),
                ("SETT_CLAIM_TYPE", "rework"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(env, expected);
        let env = tool_environment(&id(&exposed), host);
        assert_eq!(env.get("SETT_REDIS_URL").map(String::as_str), Some("redis://:pw@h"));
    }

    #[test]
    fn tails_respect_char_boundaries() {
        assert_eq!(tail(b"hello", 3), "llo");
        assert_eq!(tail(b"hi", 10), "hi");
        let s = "aé".repeat(10);
        let t = tail(s.as_bytes(), 5);
        assert!(t.len() <= 5, "{t:?}");
    }

    #[test]
    fn programs_with_a_directory_resolve_against_the_workspace() {
        let ws = Path::new("/ws");
        assert_eq!(resolve_program("./agents/run.sh", ws), PathBuf::from("/ws/./agents/run.sh"));
        assert_eq!(resolve_program("agents/run.sh", ws), PathBuf::from("/ws/agents/run.sh"));
        assert_eq!(resolve_program("bash", ws), PathBuf::from("bash"));
        assert_eq!(resolve_program("/bin/sh", ws), PathBuf::from("/bin/sh"));
    }
}
