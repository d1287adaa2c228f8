//! `sett verify [--file EXPORT] [--head SEQ:HASH]`: recomputes an instance's artifact hashes and
//! event chain (from Redis, or offline from an export) and prints the head an operator records
//! elsewhere. Exit 0 when intact; 1 naming the first broken record (docs/operations.md, "sett
//! verify failed").

use std::io::BufReader;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sett_ops::verify::{ExportLedger, Outcome, verify};

use crate::cli::{OutputFormat, VerifyArgs};
use crate::ctx::Ctx;
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
    match &o.breach {
        None => {
            if let Some(h) = &r.head {
                out.push(format!("Record the head elsewhere (a ticket, a git tag); later run 'sett verify --head {h}'."));
            }
        }
        Some(_) => out.push(
            "Next: stop writers ('sett down'), keep this output, export the instance for evidence, and follow docs/operations.md \"sett verify failed\".".to_owned(),
        ),
    }
    out
}

pub(crate) async fn run(ctx: &Ctx, args: crate::cli::VerifyArgs) -> Result<ExitCode> {
    let VerifyArgs { file, head } = args;
    let (what, outcome) = match &file {
        Some(path) => {
            let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut src =
                ExportLedger::read(BufReader::new(f)).with_context(|| format!("reading {}", path.display()))?;
            (format!("export {}", path.display()), verify(&mut src, head.as_ref()).await?)
        }
        None => {
            let mut store = ctx.store().await?;
            let what = format!("instance '{}'", store.instance());
            let outcome = verify(&mut store, head.as_ref()).await.with_context(|| format!("verifying {what}"))?;
            (what, outcome)
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
        }
    }
    Ok(if outcome.intact() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
