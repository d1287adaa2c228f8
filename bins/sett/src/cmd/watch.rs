//! `sett watch`.

use std::process::ExitCode;

use anyhow::Result;

#[allow(unused_imports)]
use crate::cli::*;
use crate::ctx::Ctx;

pub(crate) async fn run(_ctx: &Ctx, _args: WatchArgs) -> Result<ExitCode> {
    anyhow::bail!("'sett watch' is not implemented yet")
}
