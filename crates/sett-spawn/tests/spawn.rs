//! `sett_spawn::spawn` against real programs: pipes, exit codes, the environment, the `PATH`
//! search, the working directory, the signal state a program starts with, its process group,
//! start-up failures, and many children in flight at once.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use sett_spawn::{Child, Launch};
use sett_testkit::wait::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn path_env() -> BTreeMap<String, String> {
    env(&[("PATH", "/usr/bin:/bin")])
}

async fn start(program: &str, args: &[&str], env: &BTreeMap<String, String>, cwd: &Path) -> std::io::Result<Child> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let launch = Launch { program: Path::new(program), args: &args, env, cwd };
    Ok(sett_spawn::spawn(launch).await?.expect("clone3 is available on the test machine"))
}

/// Writes `stdin`, closes it, and returns (stdout, stderr, exit code).
async fn run(child: &mut Child, stdin: &[u8]) -> (String, String, Option<i32>) {
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let (mut out, mut err) = (String::new(), String::new());
    let (mut o, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (r1, r2) = tokio::join!(o.read_to_string(&mut out), e.read_to_string(&mut err));
    r1.unwrap();
    r2.unwrap();
    (out, err, child.wait().await.unwrap())
}

#[tokio::test]
async fn pipes_and_the_exit_code_reach_the_caller() {
    let cwd = std::env::temp_dir();
    let mut child =
        start("sh", &["-c", "read x; echo \"got $x\"; echo oops >&2; exit 3"], &path_env(), &cwd).await.unwrap();
    let (out, err, code) = run(&mut child, b"hello\n").await;
    assert_eq!((out.as_str(), err.as_str(), code), ("got hello\n", "oops\n", Some(3)));
    // Reaped once; asking again gives the same answer.
    assert_eq!(child.wait().await.unwrap(), Some(3));
}

#[tokio::test]
async fn the_environment_is_exactly_the_given_one_and_bare_names_follow_its_path() {
    let cwd = std::env::temp_dir();
    let given = env(&[("PATH", "/nonexistent:/usr/bin:/bin"), ("ONLY", "this one")]);
    let mut child = start("env", &[], &given, &cwd).await.unwrap();
    let (out, _, code) = run(&mut child, b"").await;
    assert_eq!(code, Some(0));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["ONLY=this one", "PATH=/nonexistent:/usr/bin:/bin"]);

    // No PATH at all: execvp's default search path.
    let mut child = start("sh", &["-c", "exit 0"], &BTreeMap::new(), &cwd).await.unwrap();
    assert_eq!(run(&mut child, b"").await.2, Some(0));

    let missing = start("no-such-program-anywhere", &[], &path_env(), &cwd).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
}

#[tokio::test]
async fn the_working_directory_is_entered_and_a_missing_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start("pwd", &[], &path_env(), dir.path()).await.unwrap();
    let (out, _, _) = run(&mut child, b"").await;
    assert_eq!(Path::new(out.trim()).canonicalize().unwrap(), dir.path().canonicalize().unwrap());

    let gone = dir.path().join("gone");
    let e = start("pwd", &[], &path_env(), &gone).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("working directory"), "{e}");
}

#[tokio::test]
async fn start_up_failures_are_reported_with_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let e = start(script.to_str().unwrap(), &[], &path_env(), dir.path()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    let e = start("/no/such/program", &[], &path_env(), dir.path()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let e = start("sh", &["-c", "bad\0arg"], &path_env(), dir.path()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

/// Field `n` (1-based) of /proc/<pid>/stat, after the parenthesised command name.
fn stat_field(stat: &str, n: usize) -> String {
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(n - 3).unwrap().to_owned()
}

#[tokio::test]
async fn a_program_leads_its_own_group_with_default_signals_and_none_blocked() {
    // This test process ignores SIGPIPE (the Rust runtime does); this thread also blocks SIGUSR1.
    // SAFETY: a local signal set, then pthread_sigmask(3) for the calling thread only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()), 0);
    }
    let cwd = std::env::temp_dir();
    let mut child = start("cat", &["/proc/self/status", "/proc/self/stat"], &path_env(), &cwd).await.unwrap();
    let pid = child.id();
    let (out, _, code) = run(&mut child, b"").await;
    assert_eq!(code, Some(0));
    let field = |name: &str| {
        out.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_else(|| panic!("{name} in {out}"))
    };
    // Ignored signals are inherited, as from any exec, except SIGPIPE: back to its default.
    let ignored = |status: &str| {
        let hex = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).unwrap().trim().to_owned();
        u64::from_str_radix(&hex, 16).unwrap()
    };
    let ours = ignored(&std::fs::read_to_string("/proc/self/status").unwrap());
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_ne!(ours & sigpipe, 0, "the test process ignores SIGPIPE, as every Rust program does");
    assert_eq!(ignored(&out), ours & !sigpipe, "the program ignores what its parent ignores, but SIGPIPE");
    assert_eq!(field("SigBlk:"), "0000000000000000", "no signal blocked");
    let stat = out.lines().last().unwrap();
    assert_eq!(stat_field(stat, 1 + 4), pid.to_string(), "the process group is the program's own");
}

/// `Some` while the process runs: `None` once it is gone or a zombie.
fn running(pid: &str) -> Option<()> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    (stat_field(&stat, 3) != "Z").then_some(())
}

#[tokio::test]
async fn killing_the_group_ends_what_the_program_started() {
    let cwd = std::env::temp_dir();
    let mut child = start("sh", &["-c", "sleep 300 & echo $!; wait"], &path_env(), &cwd).await.unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        let mut byte = [0u8; 1];
        assert_eq!(out.read(&mut byte).await.unwrap(), 1);
        line.push(byte[0]);
    }
    let sleeper = String::from_utf8(line).unwrap().trim().to_owned();
    assert!(running(&sleeper).is_some());
    child.kill_group().unwrap();
    assert_eq!(child.wait().await.unwrap(), None, "ended by a signal");
    eventually(Duration::from_secs(10), "the group's background sleep to end", async || {
        running(&sleeper).is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_dropped_child_is_killed_and_reaped() {
    let cwd = std::env::temp_dir();
    let child = start("sleep", &["300"], &path_env(), &cwd).await.unwrap();
    let pid = child.id().to_string();
    assert!(running(&pid).is_some());
    drop(child);
    // Gone from /proc entirely: killed, then reaped (a zombie would keep its entry).
    eventually(Duration::from_secs(10), "the dropped program to be killed and reaped", async || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn many_programs_in_flight_at_once_each_get_their_own_arguments_and_pipes() {
    let cwd = std::env::temp_dir();
    let env = path_env();
    let runs = (0..200).map(|i| {
        let (cwd, env) = (cwd.clone(), env.clone());
        async move {
            let marker = format!("run {i} {}", "x".repeat(i * 7));
            let mut child = start("sh", &["-c", "cat; echo \"$0\"", &marker], &env, &cwd).await.unwrap();
            let stdin = format!("input {i}\n");
            let (out, _, code) = run(&mut child, stdin.as_bytes()).await;
            assert_eq!(code, Some(0));
            assert_eq!(out, format!("{stdin}{marker}\n"));
        }
    });
    let tasks: Vec<_> = runs.map(tokio::spawn).collect();
    for t in tasks {
        t.await.unwrap();
    }
}
