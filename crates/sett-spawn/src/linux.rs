//! x86-64 Linux: `clone3(CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND)` with a stack of the
//! child's own, the child's few system calls as inline `syscall` instructions, and the pidfd
//! behind tokio's reactor.

use std::ffi::{CString, c_char, c_int, c_long};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::unix::pipe;

use crate::Launch;

/// `CLONE_CLEAR_SIGHAND` (Linux 5.5): the child starts with every handled signal back at its
/// default, so no handler of the parent's can run in it (the `posix_spawn` child resets them one
/// by one, 64 system calls). Ignored signals stay ignored; `SIGPIPE` is reset by the child.
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// The child's stack. It runs one small function of raw system calls.
const STACK_BYTES: usize = 16 * 1024;

/// Where `PATH` is missing from the program's environment, the search path `execvp` uses.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Set when `clone3` was refused once: every later start goes the standard way at once.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// What the child does when a step fails: it writes the step and the errno to the status pipe
/// (8 bytes, native endian) and exits with 127.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Step {
    ProcessGroup = 1,
    Stdio = 2,
    WorkingDirectory = 3,
    Signals = 4,
    Exec = 5,
}

impl Step {
    fn from_u32(n: u32) -> Option<Step> {
        [Step::ProcessGroup, Step::Stdio, Step::WorkingDirectory, Step::Signals, Step::Exec]
            .into_iter()
            .find(|s| *s as u32 == n)
    }

    fn error(self, errno: i32) -> io::Error {
        let os = io::Error::from_raw_os_error(errno);
        match self {
            Step::Exec => os,
            Step::ProcessGroup => io::Error::new(os.kind(), format!("cannot make the program's process group: {os}")),
            Step::Stdio => io::Error::new(os.kind(), format!("cannot connect the program's stdin/stdout/stderr: {os}")),
            Step::WorkingDirectory => io::Error::new(os.kind(), format!("cannot enter the working directory: {os}")),
            Step::Signals => io::Error::new(os.kind(), format!("cannot reset the program's signals: {os}")),
        }
    }
}

/// Everything the child reads, as raw pointers into [`Prepared`]'s own allocations.
#[repr(C)]
struct Plan {
    /// The paths to try, in order, ending with a null pointer: the program itself when it has a
    /// `/`, else each `PATH` directory joined with it (the search `execvp` makes).
    programs: *const *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    /// The descriptors that become the child's 0, 1 and 2 (all ≥ 3, so no `dup2` overwrites
    /// another).
    stdio: [c_int; 3],
    /// The status pipe's write end (close-on-exec: the `execve` closes it).
    status: c_int,
}

/// The memory the child reads and runs on, at a fixed address (boxed) until the child has
/// exec'd or is gone.
struct Prepared {
    plan: Plan,
    _strings: Vec<CString>,
    _pointers: [Vec<*const c_char>; 3],
    stack: Box<[MaybeUninit<u128>]>,
}

// SAFETY: the raw pointers in `plan` and `_pointers` point into heap allocations this value owns
// (the `CString`s and the pointer vectors); moving the value moves none of them, and nothing in it
// is tied to a thread.
unsafe impl Send for Prepared {}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte found in provided data"))
}

fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

impl Prepared {
    fn new(launch: &Launch<'_>, stdio: [c_int; 3], status: c_int) -> io::Result<Box<Prepared>> {
        let program = launch.program.as_os_str().as_bytes();
        let candidates: Vec<CString> = if program.contains(&b'/') {
            vec![c_string(program)?]
        } else {
            let path = launch.env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
            path.split(':')
                .map(|dir| {
                    // An empty element is the working directory, as for `execvp`.
                    let mut p = dir.as_bytes().to_vec();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(program);
                    c_string(&p)
                })
                .collect::<io::Result<_>>()?
        };
        let argv: Vec<CString> = std::iter::once(Ok(c_string(program)?))
            .chain(launch.args.iter().map(|a| c_string(a.as_bytes())))
            .collect::<io::Result<_>>()?;
        let envp: Vec<CString> =
            launch.env.iter().map(|(k, v)| c_string(format!("{k}={v}").as_bytes())).collect::<io::Result<_>>()?;
        let cwd = c_string(launch.cwd.as_os_str().as_bytes())?;
        let pointers = [pointers(&candidates), pointers(&argv), pointers(&envp)];
        let mut strings = candidates;
        strings.extend(argv);
        strings.extend(envp);
        let cwd_ptr = cwd.as_ptr();
        strings.push(cwd);
        Ok(Box::new(Prepared {
            plan: Plan {
                programs: pointers[0].as_ptr(),
                argv: pointers[1].as_ptr(),
                envp: pointers[2].as_ptr(),
                cwd: cwd_ptr,
                stdio,
                status,
            },
            _strings: strings,
            _pointers: pointers,
            stack: Box::new_uninit_slice(STACK_BYTES / size_of::<u128>()),
        }))
    }
}

/// A pipe, both ends close-on-exec.
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    Ok((r.into(), w.into()))
}

/// A descriptor the child will `dup2` from must not be 0, 1 or 2 (the daemon's own may be
/// closed, so a new pipe can get them): moved up, still close-on-exec.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 { Ok(fd) } else { fd.try_clone() }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A started program: the leader of its own process group, its pipes, and its pidfd.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Kept until the child has exec'd; leaked (never freed) if this is dropped before, since the
    /// child may still read it.
    prepared: Option<Box<Prepared>>,
    /// The exit code once reaped (`Some(None)`: ended by a signal).
    exit: Option<Option<i32>>,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepared")
    }
}

pub(crate) async fn spawn(launch: Launch<'_>) -> io::Result<Option<Child>> {
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let (stdin_r, stdin_w) = pipe_pair()?;
    let (stdout_r, stdout_w) = pipe_pair()?;
    let (stderr_r, stderr_w) = pipe_pair()?;
    let (status_r, status_w) = pipe_pair()?;
    let (stdin_r, stdout_w, stderr_w, status_w) =
        (above_stdio(stdin_r)?, above_stdio(stdout_w)?, above_stdio(stderr_w)?, above_stdio(status_w)?);
    let mut prepared = Prepared::new(
        &launch,
        [stdin_r.as_raw_fd(), stdout_w.as_raw_fd(), stderr_w.as_raw_fd()],
        status_w.as_raw_fd(),
    )?;
    for fd in [&stdin_w, &stdout_r, &stderr_r, &status_r] {
        set_nonblocking(fd)?;
    }

    let mut pidfd: c_int = -1;
    let stack = prepared.stack.as_mut_ptr();
    let args = libc::clone_args {
        flags: (libc::CLONE_VM | libc::CLONE_PIDFD) as u64 | CLONE_CLEAR_SIGHAND,
        pidfd: (&raw mut pidfd) as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack as u64,
        stack_size: STACK_BYTES as u64,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    // SAFETY: `prepared` (the plan and the stack) stays allocated until the status pipe reports
    // that the child has exec'd or is gone (or is leaked, see `Child::drop`); the child runs
    // `child_main` on that stack and nothing else.
    let ret = unsafe { clone3(&args, &raw const prepared.plan) };
    if ret < 0 {
        let errno = (ret as i32).wrapping_neg();
        if matches!(errno, libc::ENOSYS | libc::EPERM | libc::EINVAL) {
            UNAVAILABLE.store(true, Ordering::Relaxed);
            return Ok(None);
        }
        return Err(io::Error::from_raw_os_error(errno));
    }
    // SAFETY: with CLONE_PIDFD the kernel wrote a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // The child has its own copy of the descriptor table: the parent's copies of its ends go now,
    // so the status pipe reaches end-of-file when the child's `execve` closes the last one.
    drop((stdin_r, stdout_w, stderr_w, status_w));
    let pid = ret as i32;
    // SAFETY: an `OwnedFd` keeps its one descriptor open, unchanged, for as long as it lives.
    let pidfd = match unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) } {
        Ok(fd) => fd,
        Err(e) => {
            let e = e.into_parts().1;
            // Not behind the reactor, so nothing could wait for it: end and reap it here. The
            // plan is leaked, as the child may not have exec'd.
            std::mem::forget(prepared);
            // SAFETY: kill(2) and waitpid(2) of the child just created, not reaped by anyone else.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
    };
    // From here a dropped `Child` (an error below, or the caller's future cancelled) kills and
    // reaps the program, and leaks the plan if the child may still read it.
    let mut child = Child {
        pid,
        pidfd: Some(pidfd),
        prepared: Some(prepared),
        exit: None,
        stdin: None,
        stdout: None,
        stderr: None,
    };
    child.stdin = Some(pipe::Sender::from_owned_fd_unchecked(stdin_w)?);
    child.stdout = Some(pipe::Receiver::from_owned_fd_unchecked(stdout_r)?);
    child.stderr = Some(pipe::Receiver::from_owned_fd_unchecked(stderr_r)?);
    let mut report = Vec::with_capacity(8);
    pipe::Receiver::from_owned_fd_unchecked(status_r)?.read_to_end(&mut report).await?;
    // End of file: the `execve` closed the child's end, or the child is gone. Either way it no
    // longer runs in this address space.
    child.prepared = None;
    if report.is_empty() {
        return Ok(Some(child));
    }
    let failed = match <[u8; 8]>::try_from(report.as_slice()) {
        Ok(r) => {
            let step = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
            let errno = i32::from_ne_bytes([r[4], r[5], r[6], r[7]]);
            Step::from_u32(step).map_or_else(|| io::Error::from_raw_os_error(errno), |s| s.error(errno))
        }
        Err(_) => io::Error::other(format!("the program's start-up report was {} bytes, not 8", report.len())),
    };
    // The child exits with 127 after its report: reap it.
    let _ = child.wait().await;
    Err(failed)
}

impl Child {
    /// The program's pid, which is also its process group's id.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Waits for the program to end and reaps it: its exit code, `None` when a signal ended it.
    /// Cancel-safe, and once reaped it answers the same again.
    pub async fn wait(&mut self) -> io::Result<Option<i32>> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        let Some(pidfd) = &self.pidfd else { return Err(io::Error::other("the program's pidfd is gone")) };
        loop {
            let mut ready = pidfd.readable().await?;
            match reap(pidfd.get_ref(), false)? {
                Some(exit) => {
                    self.exit = Some(exit);
                    return Ok(exit);
                }
                None => ready.clear_ready(),
            }
        }
    }

    /// SIGKILL to the program's whole process group (after the leader was reaped too: what it
    /// started may still run).
    pub fn kill_group(&self) -> io::Result<()> {
        self.signal_group(libc::SIGKILL)
    }

    /// A signal to the program's whole process group.
    pub fn signal_group(&self, signal: c_int) -> io::Result<()> {
        // SAFETY: killpg(2) takes two integers.
        if unsafe { libc::killpg(self.pid, signal) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(prepared) = self.prepared.take() {
            // Dropped before the child was known to have exec'd: it may still read this memory.
            std::mem::forget(prepared);
        }
        if self.exit.is_some() {
            return;
        }
        // Abandoned before it was reaped: end it and what it started, then reap it so no zombie
        // is left. Before its `setpgid` the group does not exist yet, hence the pidfd signal too.
        let Some(pidfd) = self.pidfd.take() else { return };
        // SAFETY: pidfd_send_signal(2) with a descriptor we own, no siginfo and no flags.
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, 0usize, 0u32) };
        let _ = self.kill_group();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    loop {
                        let Ok(mut ready) = pidfd.readable().await else { return };
                        match reap(pidfd.get_ref(), false) {
                            Ok(None) => ready.clear_ready(),
                            _ => return,
                        }
                    }
                });
            }
            Err(_) => {
                let _ = reap(&pidfd.into_inner(), true);
            }
        }
    }
}

/// `waitid(P_PIDFD, …, WEXITED)`: `Ok(None)` while the program runs (only without `block`).
fn reap(pidfd: &OwnedFd, block: bool) -> io::Result<Option<Option<i32>>> {
    let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
    // SAFETY: an all-zero siginfo_t is valid (plain integers and unions of them).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waitid(2) writes into `info`, which outlives the call.
        let r = unsafe { libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // SAFETY: waitid filled a SIGCHLD siginfo (or left it zeroed under WNOHANG).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some((info.si_code == libc::CLD_EXITED).then_some(status)))
}

/// `clone3` on x86-64: returns the child's pid (or `-errno`) in the parent; the child starts on
/// `args.stack` and calls `child_main(plan)`, which never returns.
///
/// # Safety
/// `args` must give a valid stack of `args.stack_size` bytes, 16-byte aligned, and `plan` must
/// point to a [`Plan`] whose pointers are valid; both must stay valid until the child has exec'd
/// or exited.
unsafe fn clone3(args: &libc::clone_args, plan: *const Plan) -> isize {
    let ret: isize;
    // SAFETY: the parent's side is a plain system call (rax, rcx, r11 changed). The child starts
    // with the parent's registers on its own stack (rsp = stack + stack_size), clears the frame
    // pointer, and calls `child_main`, which ends in exit_group and never returns into frames of
    // the parent's.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call {child}",
            "ud2",
            "2:",
            child = sym child_main,
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *const libc::clone_args,
            in("rsi") size_of::<libc::clone_args>(),
            in("r12") plan,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// A raw system call: returns the result or `-errno`, and never touches `errno` (the child shares
/// the parent thread's thread-local storage).
///
/// # Safety
/// The arguments must be valid for system call `nr`.
#[inline(always)]
unsafe fn syscall4(nr: c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for `nr`; `syscall` changes rax, rcx and r11.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// The child, between the clone and the `execve`, in the parent's address space: raw system
/// calls on the plan only (no allocation, no lock, no `errno`, no panic path).
///
/// # Safety
/// Only as the entry point `clone3` gives a new child, with a valid `plan`.
unsafe extern "C" fn child_main(plan: *const Plan) -> ! {
    // SAFETY: the parent keeps the plan alive until this child has exec'd or exited.
    let plan = unsafe { &*plan };
    let fail = |step: Step, ret: isize| -> ! {
        let errno = ret.wrapping_neg() as u32;
        let report: [u32; 2] = [step as u32, errno];
        // SAFETY: write(2) of 8 bytes from this stack; exit_group(2) does not return.
        unsafe {
            syscall4(libc::SYS_write, plan.status as usize, report.as_ptr() as usize, 8, 0);
            syscall4(libc::SYS_exit_group, 127, 0, 0, 0);
        }
        #[allow(clippy::empty_loop)]
        loop {}
    };
    // SAFETY: each call takes integers or pointers into the plan, valid for the call.
    unsafe {
        let r = syscall4(libc::SYS_setpgid, 0, 0, 0, 0);
        if r < 0 {
            fail(Step::ProcessGroup, r);
        }
        for (target, from) in plan.stdio.into_iter().enumerate() {
            let r = syscall4(libc::SYS_dup2, from as usize, target, 0, 0);
            if r < 0 {
                fail(Step::Stdio, r);
            }
        }
        let r = syscall4(libc::SYS_chdir, plan.cwd as usize, 0, 0, 0);
        if r < 0 {
            fail(Step::WorkingDirectory, r);
        }
        // SIGPIPE back to its default (the Rust runtime ignores it; a tool's `yes | head` needs it),
        // and no signal blocked: the state a program expects at its start.
        let default_action: [usize; 4] = [0; 4];
        let r = syscall4(libc::SYS_rt_sigaction, libc::SIGPIPE as usize, default_action.as_ptr() as usize, 0, 8);
        if r < 0 {
            fail(Step::Signals, r);
        }
        let empty_set: u64 = 0;
        let r = syscall4(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK as usize, (&raw const empty_set) as usize, 0, 8);
        if r < 0 {
            fail(Step::Signals, r);
        }
        // execvp's search: go on past a missing or unreadable candidate; report EACCES if one was
        // found but not executable, else the first other error, else ENOENT.
        let mut saw_eacces = false;
        let mut candidate = plan.programs;
        while !(*candidate).is_null() {
            let r = syscall4(libc::SYS_execve, *candidate as usize, plan.argv as usize, plan.envp as usize, 0);
            match (r as i32).wrapping_neg() {
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => fail(Step::Exec, r),
            }
            candidate = candidate.add(1);
        }
        fail(Step::Exec, -(if saw_eacces { libc::EACCES } else { libc::ENOENT }) as isize)
    }
}
