//! `sett hoard`: list artifacts oldest first (filters: type, agent, structural type, since), or
//! print one artifact in full by id or short id.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{Result, bail};
use sett_core::text::excerpt;
use sett_core::text::unique_prefixes;
use sett_core::{Artifact, ArtifactId, StructuralType};
use sett_ops::resolve::{IdQuery, Resolution, Since, resolve_artifact};
use sett_store::{Store, now_ms};

use crate::cli::{HoardArgs, OutputFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

/// Artifacts fetched per page (ids from the creation index, then the hashes concurrently).
const PAGE: i64 = 500;
/// Up to this many artifacts in the instance, the table is sized to its contents and shows
/// short ids; above it rows are streamed in fixed-width columns as they are read (a sized table
/// would hold the whole hoard in memory before printing its first line).
const TABLE_MAX: i64 = 2_000;

/// Resolves an operator-typed id to one artifact id, or fails with the candidates / a hint.
pub(crate) async fn resolve_one(store: &Store, raw: &str) -> Result<ArtifactId> {
    let query = IdQuery::parse(raw).map_err(usage)?;
    match resolve_artifact(store, &query).await? {
        Resolution::One(id) => Ok(id),
        Resolution::None => bail!(
            "no artifact matches '{raw}' in instance '{}'\nList artifacts with 'sett hoard -n {}' (or check --name)",
            store.instance(),
            store.instance()
        ),
        Resolution::Ambiguous(ids) => bail!("{}", ambiguous(store, raw, &ids).await?),
    }
}

/// The message for an id prefix that matches several artifacts.
pub(crate) async fn ambiguous(store: &Store, raw: &str, ids: &[ArtifactId]) -> Result<String> {
    let mut msg = format!("'{raw}' matches several artifacts in instance '{}':", store.instance());
    for id in ids {
        let what = store.get_artifact(id).await?.map(|a| format!("{} ({})", a.artifact_type, a.structural_type));
        msg.push_str(&format!("\n  {id}  {}", what.unwrap_or_default()));
    }
    msg.push_str("\nType more characters of the id.");
    Ok(msg)
}

fn row(a: &Artifact, short: &HashMap<ArtifactId, String>, now: i64) -> Vec<String> {
    let text = a.summary.as_deref().filter(|s| !s.is_empty()).unwrap_or(&a.payload);
    vec![
        short.get(&a.id).cloned().unwrap_or_else(|| a.id.to_string()),
        a.artifact_type.clone(),
        a.structural_type.to_string(),
        a.version.to_string(),
        a.produced_by_role.clone(),
        format!("{} ago", output::human_ms(now - a.created_at_ms)),
        match a.forked_from {
            // A branch's first artifact (`sett fork`) says where the branch starts.
            Some(f) => format!("forked from {}: {}", sett_core::text::short(&f.to_string()), excerpt(text, 40)),
            None => excerpt(text, 60),
        },
    ]
}

/// One page of artifacts in creation order (`start` is a rank): the ids from the creation index,
/// then every hash in one pipelined burst (the client pipelines concurrent commands). Returns the
/// ids read (to know whether more follow) and the artifacts still present.
async fn page(store: &Store, start: i64) -> Result<(Vec<ArtifactId>, Vec<Artifact>)> {
    let ids = store.artifact_ids(start, PAGE).await?;
    let fetched = futures::future::try_join_all(ids.iter().map(|id| store.get_artifact(id))).await?;
    Ok((ids, fetched.into_iter().flatten().collect()))
}

/// Calls `each` with every artifact, oldest first, page by page: memory holds one page whatever
/// the size of the hoard, and the first rows are out before the last page is read.
async fn each_artifact(store: &Store, mut each: impl FnMut(Artifact) -> Result<()>) -> Result<()> {
    let mut start = 0;
    loop {
        let (ids, artifacts) = page(store, start).await?;
        for a in artifacts {
            each(a)?;
        }
        // Rows reach a reader (`hoard | head`) page by page, never all at the end.
        output::flush()?;
        if (ids.len() as i64) < PAGE {
            return Ok(());
        }
        start += PAGE;
    }
}

/// A fixed-width row for hoards too large for a sized table: the full id (a short id is only
/// unique against every other id, which a streamed listing has not read yet).
fn stream_row(a: &Artifact, now: i64) -> String {
    let text = a.summary.as_deref().filter(|s| !s.is_empty()).unwrap_or(&a.payload);
    format!(
        "{:<36}  {:<20}  {:<10}  {:>3}  {:<14}  {:>10}  {}",
        a.id,
        a.artifact_type,
        a.structural_type.to_string(),
        a.version,
        a.produced_by_role,
        format!("{} ago", output::human_ms(now - a.created_at_ms)),
        excerpt(text, 60)
    )
}

/// An artifact no longer in Redis, looked up in the instance's archive by its full id.
async fn from_archive(
    ctx: &Ctx,
    store: &Store,
    raw: &str,
) -> Result<Option<(Artifact, sett_ops::archive::ArchivedArtifact)>> {
    let Ok(id) = ArtifactId::parse(raw.trim()) else { return Ok(None) };
    if !sett_ops::archive::has_archive(store).await? {
        return Ok(None);
    }
    let Some(objects) = ctx.archive_objects(store).await? else { return Ok(None) };
    let Some(found) = sett_ops::archive::find_artifact(store, &objects, &id).await? else { return Ok(None) };
    let a = sett_store::codec::decode_artifact(found.fields.clone(), false)?;
    Ok(Some((a, found)))
}

async fn show_one(ctx: &Ctx, store: &Store, raw: &str) -> Result<ExitCode> {
    let (a, archived) = match resolve_one(store, raw).await {
        Ok(id) => {
            let Some(a) = store.get_artifact(&id).await? else {
                bail!("artifact {id} disappeared while reading it (was instance '{}' destroyed?)", store.instance());
            };
            (a, None)
        }
        Err(e) => match from_archive(ctx, store, raw).await? {
            Some((a, found)) => (a, Some(found)),
            None => return Err(e),
        },
    };
    let json = || -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(&a)?;
        if let (Some(f), Some(m)) = (&archived, v.as_object_mut()) {
            m.insert("archive".into(), serde_json::json!({"segment": f.segment, "workflow": f.workflow}));
        }
        Ok(v)
    };
    match ctx.output() {
        OutputFormat::Json => output::json(&json()?)?,
        OutputFormat::Jsonl => output::jsonl(&json()?)?,
        OutputFormat::Table => {
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            let mut lines = vec![
                format!("id:               {}", a.id),
                format!("type:             {}", a.artifact_type),
                format!("structural type:  {}", a.structural_type),
                format!("logical id:       {}", a.logical_id),
                format!("version:          {}", a.version),
                format!("produced by:      {}", a.produced_by_role),
                format!("claim:            {}", opt(a.claim_id.map(|c| c.to_string()))),
                format!(
                    "created:          {} ({} ago)",
                    output::rfc3339_ms(a.created_at_ms),
                    output::human_ms(now_ms() - a.created_at_ms)
                ),
                format!(
                    "sources:          {}",
                    if a.source_artifacts.is_empty() {
                        "-".to_owned()
                    } else {
                        a.source_artifacts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    }
                ),
            ];
            if let Some(f) = a.forked_from {
                lines.push(format!("forked from:      {f} (a branch starts here: sett fork)"));
            }
            if let Some(s) = &a.summary {
                lines.push(format!("summary:          {s}"));
            }
            if let Some(u) = &a.usage {
                let mut t = sett_core::usage::UsageTotals::default();
                t.add(u);
                lines.push(format!(
                    "usage:            {} tokens ({} in, {} out), {}{}",
                    t.tokens(),
                    t.input_tokens,
                    t.output_tokens,
                    t.cost_text(),
                    u.model.as_deref().map(|m| format!(", model {m}")).unwrap_or_default()
                ));
            }
            if let Some(by) = &a.answered_by {
                lines.push(format!("answered by:      {by}{}", if a.timed_out { " (timed out)" } else { "" }));
            }
            if let Some(f) = &archived {
                lines.push(format!(
                    "archived:         from the archive (segment {}, workflow {}); 'sett restore {}' brings it back",
                    f.segment, f.workflow, f.workflow
                ));
            }
            if a.structural_type == StructuralType::Question && archived.is_none() {
                let state = match store.answer_record(&a.id).await? {
                    Some(r) => format!(
                        "answered by {} at {} ({})",
                        r.answered_by,
                        output::rfc3339_ms(r.answered_at_ms),
                        r.answer_id
                    ),
                    None => "open".to_owned(),
                };
                lines.push(format!("question:         {state}"));
            }
            lines.push("payload:".to_owned());
            lines.push(a.payload.clone());
            output::line(&lines.join("\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(ctx: &Ctx, args: HoardArgs) -> Result<ExitCode> {
    let structural = args
        .structural_type
        .as_deref()
        .map(str::parse::<StructuralType>)
        .transpose()
        .map_err(|e| usage(e.to_string()))?;
    let since = args.since.as_deref().map(|s| Since::parse(s, now_ms())).transpose().map_err(usage)?;
    if let Some(raw) = &args.id {
        // Validate before connecting: a bad id is a usage error whatever the instance.
        IdQuery::parse(raw).map_err(usage)?;
        let store = ctx.store().await?;
        return show_one(ctx, &store, raw).await;
    }
    let store = ctx.store().await?;
    let min_time = since.as_ref().map(Since::min_time_ms);
    let keep = |a: &Artifact| {
        args.artifact_type.as_ref().is_none_or(|t| &a.artifact_type == t)
            && args.agent.as_ref().is_none_or(|g| &a.produced_by_role == g)
            && structural.is_none_or(|s| a.structural_type == s)
            && min_time.is_none_or(|m| a.created_at_ms >= m)
    };
    let mut shown = 0u64;
    match ctx.output() {
        OutputFormat::Json => {
            // One JSON array written element by element, exactly as a whole-array pretty print
            // would lay it out.
            use serde::ser::{SerializeSeq, Serializer};
            let mut ser = serde_json::Serializer::pretty(output::Buffered);
            let mut seq = ser.serialize_seq(None)?;
            each_artifact(&store, |a| {
                if keep(&a) {
                    seq.serialize_element(&serde_json::to_value(&a)?)?;
                }
                Ok(())
            })
            .await?;
            seq.end()?;
            output::buffered_line("")?;
        }
        OutputFormat::Jsonl => {
            each_artifact(&store, |a| {
                if keep(&a) {
                    output::buffered_line(&serde_json::to_value(&a)?.to_string())?;
                }
                Ok(())
            })
            .await?;
        }
        OutputFormat::Table if ctx.global.quiet => {
            each_artifact(&store, |a| {
                if keep(&a) {
                    output::buffered_line(&a.id.to_string())?;
                }
                Ok(())
            })
            .await?;
        }
        OutputFormat::Table if store.artifact_count().await? <= TABLE_MAX as u64 => {
            // Small enough for a table sized to its contents, with short ids unique across the
            // whole instance.
            let mut list = Vec::new();
            let mut all_ids = Vec::new();
            let mut start = 0;
            loop {
                let (ids, artifacts) = page(&store, start).await?;
                list.extend(artifacts.into_iter().filter(|a| keep(a)));
                let done = (ids.len() as i64) < PAGE;
                all_ids.extend(ids);
                if done {
                    break;
                }
                start += PAGE;
            }
            shown = list.len() as u64;
            if !list.is_empty() {
                let now = now_ms();
                let short = unique_prefixes(&all_ids, 8);
                output::table(
                    &["ID", "TYPE", "STRUCTURAL", "V", "PRODUCER", "AGE", "SUMMARY"],
                    list.iter().map(|a| row(a, &short, now)).collect(),
                )?;
            }
        }
        OutputFormat::Table => {
            let now = now_ms();
            let mut header = false;
            each_artifact(&store, |a| {
                if !keep(&a) {
                    return Ok(());
                }
                if !header {
                    header = true;
                    output::buffered_line(&format!(
                        "{:<36}  {:<20}  {:<10}  {:>3}  {:<14}  {:>10}  SUMMARY",
                        "ID", "TYPE", "STRUCTURAL", "V", "PRODUCER", "AGE"
                    ))?;
                }
                shown += 1;
                output::buffered_line(&stream_row(&a, now))
            })
            .await?;
        }
    }
    if ctx.output() == OutputFormat::Table && !ctx.global.quiet && shown == 0 {
        eprintln!(
            "No artifacts match in instance '{}'. Start a workflow with 'sett forage --goal \"...\"'.",
            store.instance()
        );
    }
    Ok(ExitCode::SUCCESS)
}
