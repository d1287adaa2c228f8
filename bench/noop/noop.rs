//! `sett-noop`: the benchmark's no-op agent. Writes its first argument (the tool output JSON) to
//! stdout and exits; it never reads stdin. It has no libc and no runtime: only the `write` and
//! `exit` system calls, so a tool run costs one exec. (On the benchmark VM a glibc program such as
//! `/bin/true` costs ~0.6 ms of CPU per run in its start-up, this one ~0.09 ms: that would
//! measure the agent, not Sett.)
//! `cargo xtask bench` compiles it with plain `rustc` for x86-64 Linux.
#![no_std]
#![no_main]

use core::arch::{asm, naked_asm};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    exit(1)
}

fn exit(code: i32) -> ! {
    // SAFETY: exit_group(2) takes one integer and does not return.
    unsafe { asm!("syscall", in("rax") 231, in("rdi") code, options(noreturn)) }
}

/// The process entry point: passes the initial stack pointer (argc, argv...) to `main`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!("mov rdi, rsp", "and rsp, -16", "call {main}", main = sym main)
}

/// `sp` points at argc, followed by the argv pointers (System V x86-64 process start).
unsafe extern "C" fn main(sp: *const usize) -> ! {
    // SAFETY: the kernel lays out argc then argc argv pointers to NUL-terminated strings.
    unsafe {
        if *sp >= 2 {
            let arg = *sp.add(2) as *const u8;
            let mut len = 0;
            // Volatile: a plain loop would be turned into a call to libc's `strlen`.
            while core::ptr::read_volatile(arg.add(len)) != 0 {
                len += 1;
            }
            let mut done = 0;
            while done < len {
                let n: isize;
                asm!("syscall", inlateout("rax") 1isize => n, in("rdi") 1, in("rsi") arg.add(done),
                     in("rdx") len - done, lateout("rcx") _, lateout("r11") _, options(nostack));
                if n <= 0 {
                    exit(1);
                }
                done += n as usize;
            }
        }
    }
    exit(0)
}
