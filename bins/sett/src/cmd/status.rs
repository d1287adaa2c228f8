//! `sett status`.

use std::process::ExitCode;

use anyhow::Result;

#[allow(unused_imports)]
use crate::cli::*;
use crate::ctx::Ctx;

pub(crate) async fn run(_ctx: &Ctx, _args: StatusArgs) -> Result<ExitCode> {
    anyhow::bail!("'sett status' is not implemented yet")
}
