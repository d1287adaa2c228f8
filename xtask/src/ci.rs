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
    // A CI run builds once from a fresh clone: incremental caches would only double the target
    // directory (one CI run ran out of disk while linking the test binaries). A caller that sets
    // CARGO_INCREMENTAL itself keeps its choice.
    let _incremental = std::env::var_os("CARGO_INCREMENTAL").is_none().then(|| sh.push_env("CARGO_INCREMENTAL", "0"));
    report_free_disk(&sh, "before the build");
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
    report_free_disk(&sh, "after the tests");
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

/// Prints the free space of the filesystem holding the target directory, so that a run that fails
/// for lack of disk says so next to the figures (best effort: `df` may be missing).
fn report_free_disk(sh: &Shell, when: &str) {
    let target: std::path::PathBuf =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| crate::project_root().join("target"), Into::into);
    let dir = if target.exists() { target } else { crate::project_root() };
    if let Ok(out) = cmd!(sh, "df -h --output=avail,size {dir}").quiet().ignore_stderr().read() {
        let avail = out.lines().nth(1).unwrap_or("?").trim().to_owned();
        eprintln!("xtask ci: disk {when}: {avail} (available, size)");
    }
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
