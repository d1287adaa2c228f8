//! `sett claims`.

use std::process::ExitCode;

use anyhow::Result;

#[allow(unused_imports)]
use crate::cli::*;
use crate::ctx::Ctx;

pub(crate) async fn run(_ctx: &Ctx, _args: ClaimsArgs) -> Result<ExitCode> {
    anyhow::bail!("'sett claims' is not implemented yet")
}
