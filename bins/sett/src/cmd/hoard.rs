//! `sett hoard`.

use std::process::ExitCode;

use anyhow::Result;

#[allow(unused_imports)]
use crate::cli::*;
use crate::ctx::Ctx;

pub(crate) async fn run(_ctx: &Ctx, _args: HoardArgs) -> Result<ExitCode> {
    anyhow::bail!("'sett hoard' is not implemented yet")
}
