//! One module per command; `run` dispatches.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::ctx::Ctx;
use sett_core::approval::Decision;

mod answer;
mod approve;
mod archive;
mod cancel;
mod claims;
mod config;
mod console;
mod destroy;
mod down;
mod export;
mod forage;
mod fork;
mod hoard;
mod import;
mod init;
mod ledger;
mod list;
mod logs;
mod mcp;
mod pause;
mod questions;
mod retry;
mod status;
mod up;
mod usage;
mod verify;
mod watch;

pub(crate) async fn run(cli: Cli) -> Result<ExitCode> {
    // Commands that need no workspace or Redis.
    match &cli.command {
        Command::Completions(a) => return config::completions(a.shell),
        Command::ManPages(a) => return config::man_pages(&a.dir),
        _ => {}
    }
    let ctx = Ctx::new(cli.global)?;
    match cli.command {
        Command::Init(a) => init::run(&ctx, a).await,
        Command::Up(a) => up::run(&ctx, a).await,
        Command::Down(a) => down::run(&ctx, a).await,
        Command::List => list::run(&ctx).await,
        Command::Forage(a) => forage::run(&ctx, a).await,
        Command::Watch(a) => watch::run(&ctx, a).await,
        Command::Hoard(a) => hoard::run(&ctx, a).await,
        Command::Questions(a) => questions::run(&ctx, a).await,
        Command::Answer(a) => answer::run(&ctx, a).await,
        Command::Approve(a) => approve::run(&ctx, &a.approval, Decision::Approve, a.reason.as_deref()).await,
        Command::Reject(a) => approve::run(&ctx, &a.approval, Decision::Reject, Some(&a.reason)).await,
        Command::Cancel(a) => cancel::run(&ctx, a).await,
        Command::Pause(a) => pause::run(&ctx, a, pause::Action::Pause).await,
        Command::Resume(a) => pause::run(&ctx, a, pause::Action::Resume).await,
        Command::Retry(a) => retry::run(&ctx, a).await,
        Command::Fork(a) => fork::run(&ctx, a).await,
        Command::Status(a) => status::run(&ctx, a).await,
        Command::Claims(a) => claims::run(&ctx, a).await,
        Command::Logs(a) => logs::run(&ctx, a).await,
        Command::Destroy(a) => destroy::run(&ctx, a).await,
        Command::Export(a) => export::run(&ctx, a).await,
        Command::Import(a) => import::run(&ctx, a).await,
        Command::Console(a) => console::run(&ctx, a).await,
        Command::Config(c) => config::run(&ctx, c),
        Command::Completions(_) | Command::ManPages(_) => unreachable!("handled before the context"),
        Command::Verify(a) => verify::run(&ctx, a).await,
        Command::Archive(a) => archive::run(&ctx, a).await,
        Command::Restore(a) => archive::restore(&ctx, a).await,
        Command::Usage(a) => usage::run(&ctx, a).await,
        Command::Mcp(a) => mcp::run(&ctx, a).await,
        Command::Ledger(c) => ledger::run(&ctx, c).await,
        Command::Version => {
            crate::output::line(&format!("sett {}", env!("CARGO_PKG_VERSION")))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
