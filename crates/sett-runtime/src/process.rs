//! Detached daemon processes: started in their own process group with stdout and stderr appended
//! to a log file, checked by pid, stopped with SIGTERM and, after a grace period, SIGKILL.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A daemon to start.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Set on top of the inherited environment.
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// stdout and stderr are appended here.
    pub log_file: PathBuf,
}

/// Starts `spec` detached (its own process group, so a Ctrl-C in the operator's terminal does
/// not reach it) and returns its pid.
pub fn spawn_daemon(spec: &DaemonSpec) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    if let Some(dir) = spec.log_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = OpenOptions::new().create(true).append(true).open(&spec.log_file)?;
    let child = Command::new(&spec.program)
        .args(&spec.args)
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {}: {e}", spec.program.display())))?;
    let pid = child.id();
    // Reap it in the background so it never lingers as a zombie while we run.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(pid)
}

/// True when a process with `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return nix::sys::signal::kill(Pid::from_raw(pid as i32), None).is_ok();
    };
    // The state follows the parenthesised command name, which may itself contain ") ".
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

/// Waits until `pid` is gone, up to `limit`. Returns true when it is gone.
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    !is_alive(pid)
}

/// Sends SIGTERM to `pid`'s process group (the daemon and any tool it runs), waits up to `grace`
/// for the daemon to exit, then sends SIGKILL. Returns true when it stopped within the grace
/// period.
pub fn terminate(pid: u32, grace: Duration) -> bool {
    if !is_alive(pid) {
        return true;
    }
    let group = Pid::from_raw(pid as i32);
    if killpg(group, Signal::SIGTERM).is_err() {
        let _ = nix::sys::signal::kill(group, Signal::SIGTERM);
    }
    if wait_gone(pid, grace) {
        return true;
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = nix::sys::signal::kill(group, Signal::SIGKILL);
    wait_gone(pid, Duration::from_secs(5));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until the daemon's log shows it has set up its signal handling.
    fn wait_for_line(log: &std::path::Path, line: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(log).unwrap_or_default().contains(line) {
            assert!(Instant::now() < until, "the daemon never wrote {line:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn daemons_start_log_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs").join("d.log");
        let spec = DaemonSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "trap 'echo bye; exit 0' TERM; echo started; while :; do sleep 0.05; done".into()],
            env: BTreeMap::new(),
            cwd: dir.path().to_owned(),
            log_file: log.clone(),
        };
        let pid = spawn_daemon(&spec).unwrap();
        assert!(is_alive(pid));
        wait_for_line(&log, "started");
        assert!(terminate(pid, Duration::from_secs(5)), "a daemon that handles SIGTERM stops within the grace period");
        assert!(!is_alive(pid));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("started"), "{text}");
    }

    #[test]
    fn a_daemon_ignoring_sigterm_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DaemonSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "trap '' TERM; echo started; while :; do sleep 0.05; done".into()],
            env: BTreeMap::new(),
            cwd: dir.path().to_owned(),
            log_file: dir.path().join("d.log"),
        };
        let pid = spawn_daemon(&spec).unwrap();
        wait_for_line(&dir.path().join("d.log"), "started");
        assert!(!terminate(pid, Duration::from_millis(300)));
        assert!(!is_alive(pid));
    }
}
