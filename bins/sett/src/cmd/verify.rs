//! `sett verify [--file EXPORT] [--head SEQ:HASH] [--witness [FILE]]`: recomputes an instance's
//! artifact hashes and event chain (from Redis, or offline from an export), checks every head a
//! witness file saw, and prints the head an operator records elsewhere. Exit 0 when intact; 1
//! naming the first broken record (docs/operations.md, "sett verify failed" and "The ledger went
//! back").

use std::process::ExitCode;

use anyhow::{Context, Result};
use sett_core::config::ArchiveTarget;
use sett_core::witness::Witnesses;
use sett_ops::archive::ledger::{ArchivedLedger, ArchivedPart};
use sett_ops::verify::{ExportLedger, ExportedArchive, Outcome, WITNESSED_HEAD, verify_witnessed};

use crate::cli::{OutputFormat, VerifyArgs};
use crate::ctx::{Ctx, usage};
use crate::output;

fn render(what: &str, o: &Outcome) -> Vec<String> {
    let r = &o.report;
    let mut out = Vec::new();
    match &o.breach {
        None => out.push(format!("Ledger of {what} is intact.")),
        Some(b) => out.push(format!("Ledger of {what} is BROKEN at {}: {}", b.record, b.problem)),
    }
    let head = r.head.as_ref().map_or_else(|| "none (no chained event yet)".to_owned(), ToString::to_string);
    out.push(format!("Head:       {head}"));
    out.push(format!(
        "Verified:   {} events, {} artifacts, {} answers, {} claims{}",
        r.events,
        r.artifacts,
        r.answers,
        r.claims,
        if o.breach.is_some() { " (before the break)" } else { "" }
    ));
    if let Some(n) = r.unverified_before() {
        out.push(format!(
            "Unverified before event {n}: {} events, {} artifacts and {} claims were written before the ledger existed",
            r.unverified_events, r.unverified_artifacts, r.unverified_claims
        ));
    }
    if r.recorded_head_matches == Some(true) {
        out.push("Recorded head: found in the chain (no rewrite since it was recorded).".to_owned());
    }
    if let Some(w) = &r.witnessed {
        let replaced = if w.replaced > 0 {
            format!("; {} of ledgers destroyed or imported over were not checked", w.replaced)
        } else {
            String::new()
        };
        let highest = w.highest.as_ref().map_or_else(String::new, |h| format!(", the highest {h}"));
        let verdict = if o.breach.is_none() { ": every one is in the chain" } else { "" };
        out.push(format!("Witnessed:  {} head(s){highest}{verdict}{replaced}", w.heads));
    }
    match &o.breach {
        None => {
            if let Some(h) = &r.head {
                out.push(format!("Record the head elsewhere (a ticket, a git tag); later run 'sett verify --head {h}'."));
            }
        }
        Some(b) if b.record == WITNESSED_HEAD => out.push(
            "Next: the events named are gone from Redis (not tampered with: lost). Keep this output, stop writers ('sett down') and follow docs/operations.md \"The ledger went back\".".to_owned(),
        ),
        Some(_) => out.push(
            "Next: stop writers ('sett down'), keep this output, export the instance for evidence, and follow docs/operations.md \"sett verify failed\".".to_owned(),
        ),
    }
    out
}

pub(crate) async fn run(ctx: &Ctx, args: crate::cli::VerifyArgs) -> Result<ExitCode> {
    let VerifyArgs { file, head, witness } = args;
    // `--witness` alone: this workspace's witness file.
    let witness = witness.map(|w| w.unwrap_or_else(|| ctx.witness_file()));
    let mut archived: Option<ArchivedPart> = None;
    let (what, outcome) = match &file {
        Some(path) => {
            let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut src = ExportLedger::read(f).with_context(|| format!("reading {}", path.display()))?;
            let witnesses = match &witness {
                Some(w) => Some(witnesses_for_export(ctx, w)?),
                None => None,
            };
            let what = format!("export {}", path.display());
            match src.archive().cloned() {
                None => (what, verify_witnessed(&mut src, head.as_ref(), witnesses.as_ref()).await?),
                // The export's stream continues an archive: verify the two as one chain.
                Some(a) => {
                    let objects = export_archive(ctx, &a)?;
                    let manifests = sett_ops::archive::parse_manifests(a.segments)?;
                    let outcome = match ArchivedLedger::over(src, manifests, a.head_id, &objects).await? {
                        Ok(mut ledger) => {
                            archived = Some(ledger.archived_part());
                            verify_witnessed(&mut ledger, head.as_ref(), witnesses.as_ref()).await?
                        }
                        Err(breach) => Outcome { report: Default::default(), breach: Some(breach) },
                    };
                    (format!("{what} (with its archive in {})", objects.target()), outcome)
                }
            }
        }
        None => {
            let mut store = ctx.store().await?;
            let what = format!("instance '{}'", store.instance());
            let witnesses = match &witness {
                Some(w) => Some(sett_ops::witness::witnesses_of(w, store.instance().as_str())?),
                None => None,
            };
            if sett_ops::archive::has_archive(&store).await? {
                // Archive + live stream as one chain.
                let Some(objects) = ctx.archive_objects(&store).await? else {
                    anyhow::bail!(
                        "{what} has an archive whose location is unknown here: run 'sett verify' from its workspace (retention.archive in sett.yml)"
                    );
                };
                let outcome = match ArchivedLedger::open(&store, &objects).await? {
                    Ok(mut ledger) => {
                        archived = Some(ledger.archived_part());
                        verify_witnessed(&mut ledger, head.as_ref(), witnesses.as_ref())
                            .await
                            .with_context(|| format!("verifying {what}"))?
                    }
                    Err(breach) => Outcome { report: Default::default(), breach: Some(breach) },
                };
                (format!("{what} (with its archive in {})", objects.target()), outcome)
            } else {
                let outcome = verify_witnessed(&mut store, head.as_ref(), witnesses.as_ref())
                    .await
                    .with_context(|| format!("verifying {what}"))?;
                (what, outcome)
            }
        }
    };
    match ctx.output() {
        OutputFormat::Json | OutputFormat::Jsonl => {
            let v = serde_json::json!({
                "source": what,
                "intact": outcome.intact(),
                "head": outcome.report.head.as_ref().map(ToString::to_string),
                "unverified_before": outcome.report.unverified_before(),
                "report": outcome.report,
                "breach": outcome.breach,
                "archive": archived,
            });
            if ctx.output() == OutputFormat::Json { output::json(&v)? } else { output::jsonl(&v)? }
        }
        OutputFormat::Table if ctx.global.quiet => {
            // Scripts record the head; a break still names the record.
            match (&outcome.breach, &outcome.report.head) {
                (Some(b), _) => output::line(&format!("BROKEN {}: {}", b.record, b.problem))?,
                (None, Some(h)) => output::line(&h.to_string())?,
                (None, None) => {}
            }
        }
        OutputFormat::Table => {
            for l in render(&what, &outcome) {
                output::line(&l)?;
            }
            if let Some(a) = &archived {
                output::line(&format!(
                    "From the archive: {} segment(s): {} events, {} artifacts, {} claims (the stream continues its chain).",
                    a.segments, a.events, a.artifacts, a.claims
                ))?;
            }
        }
    }
    Ok(if outcome.intact() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The archive an export's chain starts in: the location the export recorded (else this
/// workspace's `retention.archive`), under the instance named by `--name`.
fn export_archive(ctx: &Ctx, a: &ExportedArchive) -> Result<sett_ops::archive::ArchiveObjects> {
    let target = match &a.location {
        Some(l) => serde_json::from_str::<ArchiveTarget>(l)
            .with_context(|| format!("the export's archive:state location {l:?} is not an archive location"))?,
        None => ctx.retention()?.map(|r| r.archive).ok_or_else(|| {
            usage("the export's chain begins in an archive whose location it does not record: run 'sett verify --file' in the workspace whose sett.yml has retention.archive")
        })?,
    };
    let name = ctx.explicit_name()?.ok_or_else(|| {
        usage(format!(
            "the export's chain begins in an archive ({target}): pass --name NAME, the instance it was exported from, so its segments are found"
        ))
    })?;
    Ok(sett_ops::archive::ArchiveObjects::open(&target, &name)?)
}

/// The heads a witness file saw of the instance an export holds: `--name`, else the one
/// instance the file names.
fn witnesses_for_export(ctx: &Ctx, witness: &std::path::Path) -> Result<Witnesses> {
    let instance = match ctx.explicit_name()? {
        Some(n) => n.to_string(),
        None => sett_ops::witness::only_instance(witness)?.ok_or_else(|| {
            crate::ctx::usage(format!(
                "{} holds the heads of several instances (or none): pass --name NAME to say which one the export is",
                witness.display()
            ))
        })?,
    };
    Ok(sett_ops::witness::witnesses_of(witness, &instance)?)
}
