//! `cargo xtask ci`: formatting, lints, the full test suite against a real Redis, supply-chain
//! checks. The same command runs locally and in `.ci/run`.

use anyhow::Result;
use xshell::{Shell, cmd};

use crate::redis::TempRedis;

#[derive(Debug, clap::Args)]
pub struct CiArgs {
    /// Skip fmt and clippy (tests only).
    #[arg(long)]
    tests_only: bool,
}

pub fn run(args: CiArgs) -> Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(crate::project_root());
    if !args.tests_only {
        cmd!(sh, "cargo fmt --all -- --check").run()?;
        cmd!(sh, "cargo clippy --workspace --all-targets --locked -- -D warnings").run()?;
    }
    // End-to-end tests drive the real binaries: build them first.
    cmd!(sh, "cargo build --workspace --bins --locked").run()?;
    crate::images::run(crate::images::ImagesArgs { release: false, force: false, no_build: true })?;
    let dir = std::env::temp_dir().join(format!("sett-ci-redis-{}", std::process::id()));
    let redis = TempRedis::start(&dir, &[])?;
    let url = redis.url();
    let _env = sh.push_env("SETT_TEST_REDIS_URL", &url);
    // `--workspace` includes xtask, so this also runs the tidy checks (tidy.rs), the unused
    // dependency check among them (`every_dependency_is_used`, in place of `cargo machete`).
    cmd!(sh, "cargo nextest run --workspace --locked --profile ci").run()?;
    drop(redis);
    if cmd!(sh, "cargo deny --version").quiet().ignore_stderr().read().is_ok() {
        // The advisory database cannot be fetched offline; bans, licences and sources can be checked.
        cmd!(sh, "cargo deny --all-features check bans licenses sources").run()?;
    } else {
        eprintln!(
            "xtask: cargo-deny is not installed; skipping `cargo deny check` (install: cargo install --locked cargo-deny)"
        );
    }
    Ok(())
}
