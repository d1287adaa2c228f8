//! `sett import FILE|-`: restore `sett export` output into an instance. Refuses a running
//! instance, and one that already has data unless `--force`.

use std::io::BufReader;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sett_ops::transfer::{import, read_dumps};

use crate::cli::ImportArgs;
use crate::ctx::Ctx;

pub(crate) async fn run(ctx: &Ctx, args: ImportArgs) -> Result<ExitCode> {
    let from_stdin = args.file.as_os_str() == "-";
    let dumps = if from_stdin {
        read_dumps(BufReader::new(std::io::stdin().lock())).context("reading the export from stdin")?
    } else {
        let f = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
        read_dumps(BufReader::new(f)).with_context(|| format!("reading {}", args.file.display()))?
    };
    let store = ctx.store().await?;
    let report = import(&store, &dumps, args.force).await?;
    if !ctx.global.quiet {
        eprintln!("Imported {} keys into instance '{}'.", report.restored, store.instance());
        if !report.skipped.is_empty() {
            eprintln!(
                "Skipped {} (a lock belongs to the run that was exported, not to this one).",
                report.skipped.join(", ")
            );
        }
        eprintln!(
            "Start it with 'sett up --name {}', or inspect it with 'sett hoard -n {}'.",
            store.instance(),
            store.instance()
        );
    }
    Ok(ExitCode::SUCCESS)
}
