//! `sett up`.

use std::process::ExitCode;

use anyhow::Result;

#[allow(unused_imports)]
use crate::cli::*;
use crate::ctx::Ctx;

pub(crate) async fn run(_ctx: &Ctx, _args: UpArgs) -> Result<ExitCode> {
    anyhow::bail!("'sett up' is not implemented yet")
}
