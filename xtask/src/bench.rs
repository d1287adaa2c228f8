//! `cargo xtask bench`: measurements recorded in `docs/benchmarks.md`.

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> Result<()> {
    anyhow::bail!("benchmarks are not implemented yet")
}
