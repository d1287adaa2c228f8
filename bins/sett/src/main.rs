//! `sett`: the operator CLI. Thin by design: parse arguments, resolve the instance and Redis,
//! call the libraries, print. Results go to stdout, errors to stderr with the next step to take.
//! Exit codes: 0 ok, 1 error, 2 usage error or wait timeout.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// In a binary every `pub` is crate-visible anyway.
#![allow(unreachable_pub)]

mod cli;
mod cmd;
mod ctx;
#[cfg(test)]
mod docs_check;
mod output;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Whatever a command left in the shared stdout buffer is written before it reports.
    let result = runtime.block_on(cmd::run(cli)).and_then(|code| output::flush().map(|()| code));
    if result.is_err() {
        let _ = output::flush();
    }
    match result {
        Ok(code) => code,
        Err(err) => {
            // `sett list | head` closes the pipe early: that is success, not an error.
            if err
                .chain()
                .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("Error: {err:#}");
            match err.downcast_ref::<ctx::UsageError>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::from(1),
            }
        }
    }
}
