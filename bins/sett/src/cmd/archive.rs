//! `sett archive [--now] [--older-than D]` and `sett restore <workflow>`: run an archiving pass
//! (retention, docs/backup-recovery.md "Retention and archive") or show the archive; bring one
//! archived workflow back into Redis.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sett_core::ArtifactId;
use sett_ops::archive::{self, Policy};
use sett_store::now_ms;

use crate::cli::{ArchiveArgs, OutputFormat, RestoreArgs};
use crate::ctx::{Ctx, usage};
use crate::output;

fn kb(bytes: u64) -> String {
    if bytes < 10 * 1024 { format!("{bytes} B") } else { format!("{:.1} KB", bytes as f64 / 1024.0) }
}

fn ago(ms: Option<i64>) -> String {
    ms.map_or_else(|| "never".to_owned(), |t| format!("{} ago", output::human_ms(now_ms() - t)))
}

pub(crate) async fn run(ctx: &Ctx, args: ArchiveArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let retention = ctx.retention().context("reading retention: in sett.yml")?;
    if !args.now {
        let s = archive::summary(&store).await?;
        match ctx.output() {
            OutputFormat::Json => output::json(&serde_json::to_value(&s)?)?,
            OutputFormat::Jsonl => output::jsonl(&serde_json::to_value(&s)?)?,
            OutputFormat::Table => {
                let location = s.location.clone().unwrap_or_else(|| "none yet".to_owned());
                output::line(&format!("Archive of instance '{}': {location}", store.instance()))?;
                output::line(&format!(
                    "Segments:   {} ({}), {} workflows, {} events{}",
                    s.segments,
                    kb(s.bytes),
                    s.workflows,
                    s.events,
                    s.head_seq.map(|h| format!(" (the stream continues after seq {h})")).unwrap_or_default()
                ))?;
                let last = if s.failing() {
                    format!(
                        "FAILED {}: {} (Redis keeps everything until a pass succeeds)",
                        ago(s.last_error_ms),
                        s.last_error.as_deref().unwrap_or("")
                    )
                } else {
                    format!("{}, ok", ago(s.last_success_ms))
                };
                output::line(&format!("Last pass:  {last}"))?;
                if let Some(p) = &s.pending {
                    output::line(&format!(
                        "Pending:    {p} (a pass that did not finish; the next pass completes or discards it)"
                    ))?;
                }
                if let Some(g) = &s.held_by {
                    output::line(&format!(
                        "Trimming:   held back by consumer group '{g}' (archived events stay in the stream until it has delivered and acknowledged them)"
                    ))?;
                }
                if s.restored > 0 {
                    output::line(&format!("Restored:   {} workflow(s) (kept in Redis)", s.restored))?;
                }
                match &retention {
                    Some(r) => output::line(&format!(
                        "Retention:  archive_after {}, every {}",
                        humantime::format_duration(r.archive_after),
                        humantime::format_duration(r.every)
                    ))?,
                    None => output::line(
                        "Retention:  not configured (add retention: {archive_after: 7d} to sett.yml; 'sett archive --now --older-than 7d' runs one pass)",
                    )?,
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let archive_after = match (args.older_than, &retention) {
        (Some(d), _) => d,
        (None, Some(r)) => r.archive_after,
        (None, None) => {
            return Err(usage(
                "no retention: in sett.yml: add retention: {archive_after: 7d} (see docs/configuration.md), or pass --older-than",
            ));
        }
    };
    let Some(objects) = ctx.archive_objects(&store).await? else {
        // No recorded location and no sett.yml section: the default directory of this workspace.
        bail!(
            "no archive location: add retention: {{archive_after: …, archive: {{dir: …}}}} to sett.yml in {}",
            ctx.workspace_root().display()
        );
    };
    let r = archive::run_pass(&store, &objects, Policy { archive_after }).await?;
    match ctx.output() {
        OutputFormat::Json => output::json(&serde_json::to_value(&r)?)?,
        OutputFormat::Jsonl => output::jsonl(&serde_json::to_value(&r)?)?,
        OutputFormat::Table => {
            if let Some(p) = &r.resumed {
                output::line(&format!("Finished the pass a crash had left ({p})."))?;
            }
            match &r.segment {
                Some(seg) => output::line(&format!(
                    "Archived {} workflow(s) ({} records) and {} event(s) into {seg} ({}) in {}.",
                    r.workflows,
                    r.records,
                    r.events,
                    kb(r.bytes),
                    objects.target()
                ))?,
                None => output::line("Nothing to archive.")?,
            }
            if r.open > 0 {
                output::line(&format!(
                    "Kept {} ended workflow(s) in Redis: something of theirs is still open (a claim, a question, a follow-up).",
                    r.open
                ))?;
            }
            output::line(&format!("Trimmed {} event(s) from the stream.", r.trimmed))?;
            if let Some(g) = &r.held_by {
                output::line(&format!(
                    "Consumer group '{g}' has not delivered or acknowledged every archived event: those stay in the stream until it has."
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn restore(ctx: &Ctx, args: RestoreArgs) -> Result<ExitCode> {
    let goal = ArtifactId::parse(args.workflow.trim())
        .map_err(|e| usage(format!("'{}' is not a workflow id ({e}): give its goal's full id", args.workflow)))?;
    let store = ctx.store().await?;
    let Some(objects) = ctx.archive_objects(&store).await? else {
        bail!("instance '{}' has no archive: nothing to restore", store.instance());
    };
    let r = archive::restore(&store, &objects, &goal, &ctx.operator()).await?;
    match ctx.output() {
        OutputFormat::Json => output::json(&serde_json::to_value(&r)?)?,
        OutputFormat::Jsonl => output::jsonl(&serde_json::to_value(&r)?)?,
        OutputFormat::Table => output::line(&format!(
            "Restored workflow {} from {}: {} records, as archived. Its events stay in the archive ('sett verify' reads them there); archiving passes leave it in Redis.",
            r.workflow, r.segment, r.records
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}
