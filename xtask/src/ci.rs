//! `cargo xtask ci`: formatting, lints, the full test suite against a real Redis, supply-chain
//! checks. The same command runs locally and in `.ci/run`.

use anyhow::{Result, bail};
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
    python_sdk_tests(&sh)?;
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

/// The Python SDK's own suite (sdk/python/tests), which tests the source tree (pyproject.toml sets
/// pytest's pythonpath). `.ci/run` installs pytest.
fn python_sdk_tests(sh: &Shell) -> Result<()> {
    if cmd!(sh, "python3 -m pytest --version").quiet().ignore_stdout().ignore_stderr().run().is_err() {
        bail!(
            "the Python SDK's tests need python3 with pytest: python3 -m pip install pytest ./sdk/python (.ci/run does this)"
        );
    }
    let _dir = sh.push_dir(crate::project_root().join("sdk").join("python"));
    let _no_bytecode = sh.push_env("PYTHONDONTWRITEBYTECODE", "1");
    cmd!(sh, "python3 -m pytest -q -p no:cacheprovider").run()?;
    Ok(())
}
