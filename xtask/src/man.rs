//! `cargo xtask man`: builds `sett` and writes its man pages (clap_mangen, through the hidden
//! `sett man-pages` command, so the pages always match the binary's own argument grammar).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Where to write `sett.1` and `sett-<command>.1` (default: target/man).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> Result<()> {
    let root = crate::project_root();
    let out = args.out.unwrap_or_else(|| root.join("target/man"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["run", "-q", "-p", "sett", "--", "man-pages", "--dir"])
        .arg(&out)
        .current_dir(&root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`sett man-pages` failed ({status}); see the output above");
    }
    let pages = std::fs::read_dir(&out)?
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1")))
        .count();
    println!("Wrote {pages} man pages to {} (view one with: man {}/sett.1)", out.display(), out.display());
    Ok(())
}
