//! `sett export`.

use std::process::ExitCode;

use anyhow::Result;

#[allow(unused_imports)]
use crate::cli::*;
use crate::ctx::Ctx;

pub(crate) async fn run(_ctx: &Ctx, _args: ExportArgs) -> Result<ExitCode> {
    anyhow::bail!("'sett export' is not implemented yet")
}
