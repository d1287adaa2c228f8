//! `sett forage`.

use std::process::ExitCode;

use anyhow::Result;

#[allow(unused_imports)]
use crate::cli::*;
use crate::ctx::Ctx;

pub(crate) async fn run(_ctx: &Ctx, _args: ForageArgs) -> Result<ExitCode> {
    anyhow::bail!("'sett forage' is not implemented yet")
}
