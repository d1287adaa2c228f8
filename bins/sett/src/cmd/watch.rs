//! `sett watch`: replay the ledger (XRANGE from `--since`), then follow it live (XREAD from the
//! last replayed id), so replay and live events form one sequence with no gap and no duplicate.
//! Also the event-streaming driver `forage --watch` uses.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use sett_core::ClaimStatus;
use sett_core::event::Event;
use sett_ops::archive::{ArchiveObjects, ArchivedEvents};
use sett_ops::feed::{self, EventFilter, Missing};
use sett_ops::resolve::Since;
use sett_ops::workflow::{Outcome, Workflows};
use sett_store::{LedgerEntry, Store, now_ms};
use tokio::time::Instant;

use crate::cli::{OutputFormat, WatchArgs};
use crate::ctx::{Ctx, usage};
use crate::output;

/// Events per XRANGE page during replay (and per live read): large pages keep the replay to one
/// round trip per thousands of events.
const PAGE: u64 = 2_000;
/// Longest single blocking read; the loop re-checks its deadline between reads.
const MAX_BLOCK: Duration = Duration::from_secs(5);

/// What a stream consumer sees.
pub(crate) enum Step<'e> {
    Event(&'e Event),
    /// Replay is done; what follows is live.
    CaughtUp,
}

/// Feeds every event strictly after `after` to `handle` — history first (from `archive` for
/// the part the stream was trimmed of, when given), then live — until `handle` returns an exit
/// code or `deadline` passes (returns `None`).
pub(crate) async fn stream_events(
    store: &Store,
    after: String,
    deadline: Option<Instant>,
    archive: Option<&ArchiveObjects>,
    mut handle: impl AsyncFnMut(Step<'_>) -> Result<Option<ExitCode>>,
) -> Result<Option<ExitCode>> {
    let mut cursor = after;
    if let Some(objects) = archive {
        let mut archived = ArchivedEvents::after(store, Some(&cursor)).await?;
        let mut announced = false;
        while let Some((segment, page)) = archived.next_page(objects).await? {
            if !announced && !page.is_empty() {
                announced = true;
                eprintln!(
                    "Events up to {} come from the archive ({}, segment {segment} on); the live stream follows.",
                    archived.head_id.as_deref().unwrap_or("?"),
                    objects.target()
                );
            }
            for entry in &page {
                let Some(e) = usable(store, &mut cursor, entry) else { continue };
                if let Some(code) = handle(Step::Event(e)).await? {
                    output::flush()?;
                    return Ok(Some(code));
                }
            }
            output::flush()?;
        }
        // Archived events not trimmed yet are in the stream too: the stream goes on after them.
        if let Some(head) = archived.head_id
            && sett_store::parse_stream_id(&head) > sett_store::parse_stream_id(&cursor)
        {
            cursor = head;
        }
    }
    let fetch = |after: String| {
        let store = store.clone();
        tokio::spawn(async move { store.entries_after(Some(&after), PAGE).await })
    };
    let mut next = fetch(cursor.clone());
    loop {
        let page = next.await.map_err(|e| anyhow::anyhow!("reading the ledger: {e}"))??;
        let full = page.len() as u64 == PAGE;
        // Ask for the next page before printing this one, so Redis reads while this prints
        // (replay is otherwise a strict alternation of the two).
        let last = page.last().map(|e| match e {
            Ok(e) => e.id.clone(),
            Err(bad) => bad.id.clone(),
        });
        next = match (full, last) {
            (true, Some(last)) => fetch(last),
            _ => tokio::spawn(async { Ok(Vec::new()) }),
        };
        for entry in &page {
            let Some(e) = usable(store, &mut cursor, entry) else { continue };
            if let Some(code) = handle(Step::Event(e)).await? {
                output::flush()?;
                next.abort();
                return Ok(Some(code));
            }
        }
        if !full {
            break;
        }
    }
    output::flush()?;
    if let Some(code) = handle(Step::CaughtUp).await? {
        output::flush()?;
        return Ok(Some(code));
    }
    let reader = store.event_reader().await?;
    loop {
        let block = match deadline {
            None => MAX_BLOCK,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    output::flush()?;
                    reader.quit().await;
                    return Ok(None);
                }
                // XREAD BLOCK 0 would block forever: always ask for at least 1 ms.
                left.min(MAX_BLOCK).max(Duration::from_millis(1))
            }
        };
        for entry in reader.read_entries_after(&cursor, PAGE, block).await? {
            let Some(e) = usable(store, &mut cursor, &entry) else { continue };
            if let Some(code) = handle(Step::Event(e)).await? {
                output::flush()?;
                reader.quit().await;
                return Ok(Some(code));
            }
        }
        // Live events are shown as they arrive: flush before blocking again.
        output::flush()?;
    }
}

/// Moves `cursor` past `entry` and returns its event; a malformed entry (anyone with `XADD` on
/// the stream can write one) is reported on stderr and skipped, so one bad entry never stops a
/// follower (security finding 14). The entry stays in the ledger; `sett export` keeps it.
fn usable<'e>(store: &Store, cursor: &mut String, entry: &'e LedgerEntry) -> Option<&'e Event> {
    match entry {
        Ok(e) => {
            cursor.clone_from(&e.id);
            Some(e)
        }
        Err(bad) => {
            cursor.clone_from(&bad.id);
            // The lines printed before it come first.
            let _ = output::flush();
            eprintln!(
                "Warning: skipping malformed ledger entry {} in instance '{}': {}. It stays in the ledger; \
                 inspect it with 'redis-cli XRANGE' or 'sett export -n {}'.",
                bad.id,
                store.instance(),
                bad.error,
                store.instance()
            );
            None
        }
    }
}

/// Prints one event in the chosen format, through the shared stdout buffer ([`stream_events`]
/// flushes it after each page and before every wait).
pub(crate) fn print_event(format: OutputFormat, e: &Event) -> Result<()> {
    match format {
        OutputFormat::Table => {
            output::buffered_line(&format!("{} {}", output::rfc3339_ms(e.ts_ms), feed::event_line(e)))
        }
        // Through a `Value` (sorted keys), as every other JSON the CLI prints.
        OutputFormat::Json => output::buffered_line(&serde_json::to_string_pretty(&serde_json::to_value(e)?)?),
        OutputFormat::Jsonl => output::buffered_line(&serde_json::to_value(e)?.to_string()),
    }
}

/// Prints how a workflow ended; Terminal → 0, Failure → its reason on stderr and 1.
pub(crate) async fn report_outcome(ctx: &Ctx, store: &Store, outcome: &Outcome) -> Result<ExitCode> {
    // What was printed before the outcome comes first.
    output::flush()?;
    match outcome {
        Outcome::Terminal { artifact_id } => {
            if !ctx.global.quiet && ctx.output() == OutputFormat::Table {
                eprintln!("Workflow complete: Terminal artifact {}", sett_core::text::short(&artifact_id.to_string()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Failure { artifact_id, failure_type } => {
            let reason = store
                .get_artifact(artifact_id)
                .await?
                .map(|a| sett_core::failure::FailurePayload::reason_of(&a.payload));
            let short = artifact_id.to_string();
            let short = sett_core::text::short(&short);
            eprintln!(
                "Error: the workflow failed: {failure_type} ({short}): {}\nInspect it with 'sett hoard {short} -n {}' and 'sett claims -n {}'",
                reason.unwrap_or_else(|| "no reason recorded".into()),
                store.instance(),
                store.instance(),
            );
            Ok(ExitCode::from(1))
        }
        Outcome::Stopped { claim_id, status, reason } => {
            let i = store.instance();
            let next = if *status == ClaimStatus::Dormant {
                format!(
                    "no agent bid on the goal: check the agents' bidding_strategy in sett.yml and 'sett status -n {i}'"
                )
            } else {
                format!("inspect it with 'sett claims -n {i}' and 'sett watch -n {i}'")
            };
            eprintln!(
                "Error: the workflow stopped: the goal's claim {} is {status}{}\n{next}",
                sett_core::text::short(&claim_id.to_string()),
                reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(),
            );
            Ok(ExitCode::from(1))
        }
        Outcome::Cancelled { operator, reason } => {
            eprintln!(
                "Error: the workflow was cancelled by {operator}{}\nSee what it did with 'sett watch -n {}'",
                reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(),
                store.instance(),
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// The message and exit code for a wait that ran out of time.
pub(crate) fn timed_out(what: &str, after: Duration, instance: &str) -> ExitCode {
    eprintln!(
        "Timed out after {} waiting for {what} in instance '{instance}' (exit code 2). Check 'sett status -n {instance}'.",
        humantime::format_duration(after)
    );
    ExitCode::from(2)
}

/// Fills in what the filter needs about an event whose subject predates the replay.
async fn teach(store: &Store, filter: &mut EventFilter, missing: Missing) -> Result<()> {
    match missing {
        Missing::ArtifactType(id) => {
            let t = store.get_artifact(&id).await?.map(|a| a.artifact_type);
            // Unknown (deleted): remember as no type so it never matches.
            filter.insert_type(id, t.as_deref().unwrap_or(""));
        }
        Missing::ClaimArtifact(id) => {
            let a = store.get_claim(&id).await?.map(|c| c.artifact_id);
            filter.insert_claim(id, a);
        }
    }
    Ok(())
}

async fn passes(store: &Store, filter: &mut EventFilter, e: &Event) -> Result<bool> {
    // At most two look-ups: claim → artifact, then artifact → type.
    for _ in 0..3 {
        match filter.check(e) {
            Ok(ok) => return Ok(ok),
            Err(m) => teach(store, filter, m).await?,
        }
    }
    Ok(false)
}

pub(crate) async fn run(ctx: &Ctx, args: WatchArgs) -> Result<ExitCode> {
    if args.timeout.is_some_and(|t| t.is_zero()) {
        return Err(usage("--timeout must be more than 0 (e.g. 30s)"));
    }
    let since = args.since.as_deref().map(|s| Since::parse(s, now_ms())).transpose().map_err(usage)?;
    let store = ctx.store().await?;
    let after = since.as_ref().map_or_else(|| "0-0".to_owned(), Since::after_id);
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let format = ctx.output();
    let mut filter = EventFilter::new(args.artifact_type.clone(), args.agent.clone());
    let mut flows = Workflows::new();
    let mut caught_up = false;
    let exit_on_completion = args.exit_on_completion;
    // History before the stream's first entry is in the archive, if there is one.
    let archive = match since {
        Some(_) if sett_ops::archive::has_archive(&store).await? => ctx.archive_objects(&store).await?,
        _ => None,
    };
    let result = stream_events(&store, after, deadline, archive.as_ref(), async |step| {
        let e = match step {
            Step::CaughtUp => {
                caught_up = true;
                // Everything replayed has already ended: nothing left to wait for.
                if exit_on_completion
                    && flows.all_ended()
                    && let Some(o) = flows.last_outcome()
                {
                    return report_outcome(ctx, &store, o).await.map(Some);
                }
                return Ok(None);
            }
            Step::Event(e) => e,
        };
        // Bookkeeping only when it is used: a plain replay keeps no per-event state, so its memory
        // and its cost per event do not grow with the history.
        let ended = if exit_on_completion { flows.observe(e) } else { None };
        if !filter.is_noop() {
            filter.learn(e);
        }
        if filter.is_noop() || passes(&store, &mut filter, e).await? {
            print_event(format, e)?;
        }
        // Exit once the last workflow still running ends (live only: replayed endings were
        // judged at the switch to live).
        if exit_on_completion
            && caught_up
            && flows.all_ended()
            && let Some(o) = &ended
        {
            return report_outcome(ctx, &store, o).await.map(Some);
        }
        Ok(None)
    })
    .await
    .with_context(|| format!("watching instance '{}'", store.instance()))?;
    match result {
        Some(code) => Ok(code),
        None => Ok(timed_out(
            if exit_on_completion { "the workflow to end" } else { "new events (--timeout)" },
            args.timeout.unwrap_or_default(),
            store.instance().as_str(),
        )),
    }
}
