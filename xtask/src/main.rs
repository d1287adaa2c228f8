//! `cargo xtask`: the project's automation, in plain Rust (see matklad's cargo-xtask write-up).
//!
//! - `ci`: everything CI checks (fmt, clippy with warnings denied, the whole test suite against a
//!   real Redis, cargo-deny when installed).
//! - `demo`: build Sett and run a real multi-agent workflow in a temporary git repository, with
//!   a human-in-the-loop answer, then show the audit trail.
//! - `bench`: the benchmarks recorded in `docs/benchmarks.md`.
//! - `man`: man pages for `sett` and its subcommands (target/man).
#![allow(clippy::print_stdout, clippy::print_stderr)]
// In a binary every `pub` is crate-visible anyway.
#![allow(unreachable_pub)]

mod bench;
mod bench_archive;
mod bench_cluster;
mod bench_hotpath;
mod bench_ledger;
mod bench_notify;
mod bench_peers;
mod bench_stream;
mod bench_traces;
mod bench_usage;
mod ci;
mod demo;
mod images;
mod man;
mod redis;
#[cfg(test)]
mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run every check CI runs.
    Ci(ci::CiArgs),
    /// Run a real workflow end to end and show its audit trail.
    Demo(demo::DemoArgs),
    /// Run the benchmarks; `--record` writes target/bench/results.json and docs/benchmarks.json.
    Bench(bench::BenchArgs),
    /// Build the container images of `runtime: docker` locally (no registry pull).
    Images(images::ImagesArgs),
    /// Write man pages for sett and its subcommands (default: target/man).
    Man(man::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Ci(a) => ci::run(a),
        Task::Demo(a) => demo::run(a),
        Task::Bench(a) => bench::run(a),
        Task::Images(a) => images::run(a),
        Task::Man(a) => man::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent").to_owned()
}
