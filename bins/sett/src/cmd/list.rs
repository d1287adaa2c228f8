//! `sett list`.

use std::process::ExitCode;

use anyhow::Result;

#[allow(unused_imports)]
use crate::cli::*;
use crate::ctx::Ctx;

pub(crate) async fn run(_ctx: &Ctx) -> Result<ExitCode> {
    anyhow::bail!("'sett list' is not implemented yet")
}
