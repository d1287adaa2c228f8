//! `sett import FILE|-`: restore `sett export` output into an instance. Refuses a running
//! instance, and one that already has data unless `--force`.

use std::io::{BufReader, Seek};
use std::process::ExitCode;

use anyhow::{Context, Result};
use sett_ops::transfer::{check_dumps, import_stream};

use crate::cli::ImportArgs;
use crate::ctx::Ctx;

pub(crate) async fn run(ctx: &Ctx, args: ImportArgs) -> Result<ExitCode> {
    let from_stdin = args.file.as_os_str() == "-";
    // Two passes over the export — check every line, then restore — so a bad line never leaves
    // half an instance, with one line in memory at a time; stdin is first copied to an
    // anonymous temporary file to be read twice.
    let (mut file, what) = if from_stdin {
        let mut spool = tempfile::tempfile()
            .context("cannot create a temporary file for the export read from stdin (check $TMPDIR)")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool).context("reading the export from stdin")?;
        (spool, "the export read from stdin".to_owned())
    } else {
        let f = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
        (f, args.file.display().to_string())
    };
    file.rewind()?;
    check_dumps(BufReader::new(&file)).with_context(|| format!("reading {what}"))?;
    file.rewind()?;
    let store = ctx.store().await?;
    let report =
        import_stream(&store, BufReader::new(&file), args.force).await.with_context(|| format!("importing {what}"))?;
    // The instance's ledger is now the imported one, on purpose: no component may take it for a
    // ledger that went back.
    sett_ops::ledger_watch::record_import(&store, &ctx.operator())
        .await
        .context("recording the import in the audit stream")?;
    if let Err(e) = sett_ops::ledger_watch::forget_state(ctx.workspace_root(), store.instance().as_str()) {
        eprintln!("Warning: could not reset this workspace's record of the instance's ledger head: {e}");
    }
    // The witness file starts the imported ledger at its head.
    let head = store.ledger_head().await?.unwrap_or(sett_core::ledger::Head { seq: 0, hash: String::new() });
    let witness = sett_ops::witness::record(store.instance().as_str(), &head, sett_core::witness::REASON_IMPORT);
    if let Err(e) = sett_ops::witness::append(&ctx.witness_file(), &witness) {
        eprintln!("Warning: {e}; 'sett verify --witness' will take the replaced ledger's heads for lost events");
    }
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
