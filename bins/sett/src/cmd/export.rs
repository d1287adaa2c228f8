//! `sett export`: every key of an instance as JSON lines (one `sett_store::Dump` per key, sorted
//! by key) on stdout or into a file; `sett import` restores it exactly.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use sett_ops::transfer::export_jsonl;

use crate::cli::ExportArgs;
use crate::ctx::Ctx;

pub(crate) async fn run(ctx: &Ctx, args: ExportArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let n = match &args.file {
        Some(path) => {
            // Write next to the target and rename, so a failed export never leaves half a file
            // where a good backup is expected.
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut out = BufWriter::new(file);
            let n = export_jsonl(&store, &mut out)
                .await
                .with_context(|| format!("exporting instance '{}'", store.instance()))?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
            n
        }
        None => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            let n = export_jsonl(&store, &mut out)
                .await
                .with_context(|| format!("exporting instance '{}'", store.instance()))?;
            out.flush()?;
            n
        }
    };
    // An anchor: the head of the data exported (verify the file later with --file --head).
    let head = sett_ops::verify::anchor(&store, "export").await.context("recording the ledger head")?;
    let witnessed = match &head {
        Some(h) => Some(sett_ops::witness::witness_head(&store, h, "export", &ctx.witness_file(), None).await),
        None => None,
    };
    if !ctx.global.quiet {
        if let Some(h) = &head {
            eprintln!(
                "Ledger head: {h} (recorded in the audit stream; check the file with 'sett verify --file <file> --head {h}')."
            );
        }
        if let Some(Err(e)) = &witnessed {
            eprintln!("Warning: {e}");
        }
        let target = args.file.as_ref().map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
        eprintln!("Exported {n} keys of instance '{}' to {target}.", store.instance());
        if sett_ops::archive::has_archive(&store).await? {
            let s = sett_ops::archive::summary(&store).await?;
            eprintln!(
                "From the archive: {} workflow(s) and {} event(s) (through seq {}) are in {} segment(s) at {}, not in this export; its stream continues their chain. Keep the archive with it: 'sett verify --file {target} --name {}' checks both as one chain.",
                s.workflows,
                s.events,
                s.head_seq.map_or_else(|| "-".to_owned(), |h| h.to_string()),
                s.segments,
                s.location.as_deref().unwrap_or("an unrecorded location"),
                store.instance()
            );
        }
        if n == 0 {
            eprintln!("Instance '{}' has no data: check --name (see 'sett list').", store.instance());
        }
    }
    Ok(ExitCode::SUCCESS)
}
