//! Starting a program without suspending the caller's thread: `clone3` with a shared address
//! space but without the vfork wait, a close-on-exec status pipe that tells the caller, later and
//! asynchronously, whether the `execve` happened, and a pidfd to wait for and reap the program.
//!
//! Why: the standard library starts programs with glibc's `posix_spawn`, which clones with
//! `CLONE_VM | CLONE_VFORK`, so the calling thread is suspended until the child has exec'd. A cub
//! runs its event loop on one thread and starts a program per grant; on a busy machine that wait
//! (the child queued for a CPU, then glibc resetting all 64 signal handlers in it) was a third of
//! the loop's time (docs/benchmarks.md). Here the loop goes on as soon as the child exists.
//!
//! Where this crate cannot start programs (`clone3` refused, as Docker's default seccomp profile
//! does with `ENOSYS`, or a kernel before 5.5; or not x86-64 Linux), [`spawn`] returns `Ok(None)`
//! and the caller starts the program the standard way.
//!
//! This is the one crate of the workspace with `unsafe` code. The child shares the parent's
//! memory until its `execve`, so everything it reads is prepared before the clone and kept alive
//! until the status pipe reports, and the child runs nothing but raw system calls: no allocation,
//! no lock, no `errno` (the parent thread's thread-local, which it shares).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub use linux::Child;

/// What to start: the program (a path, or a bare name looked up in `env`'s `PATH` as `execvp`
/// does), its arguments after the program, its whole environment, and its working directory.
/// The child gets piped stdin, stdout and stderr, becomes the leader of a new process group, and
/// starts with default signal dispositions (`SIGPIPE` included) and no signal blocked.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
}

/// Starts `launch` and returns once the program has exec'd (or failed to): the wait is on the
/// status pipe, so the calling task yields while the child gets to its `execve`. `Ok(None)` when
/// this way of starting programs is not available here (see the crate's doc); the answer is
/// remembered, so the refusal costs one system call per process.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub async fn spawn(launch: Launch<'_>) -> io::Result<Option<Child>> {
    linux::spawn(launch).await
}

/// Not x86-64 Linux: always `Ok(None)`, the caller starts the program the standard way.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub async fn spawn(_launch: Launch<'_>) -> io::Result<Option<Child>> {
    Ok(None)
}

/// Never constructed off x86-64 Linux.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
#[derive(Debug)]
pub enum Child {}
