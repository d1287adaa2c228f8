//! `sett list`: every instance in the `sett:instances` registry with its live state (running /
//! stopped / degraded / destroying), workspace, runtime and age.

use std::process::ExitCode;

use anyhow::Result;
use futures::StreamExt;
use serde::Serialize;
use sett_core::InstanceName;
use sett_ops::status::{Health, PROBE_TIMEOUT, instance_health};
use sett_store::{InstanceRecord, Redis, now_ms};

use crate::cli::OutputFormat;
use crate::ctx::Ctx;
use crate::output;

/// Instances judged concurrently.
const CONCURRENCY: usize = 16;

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    status: Health,
    workspace: String,
    runtime: String,
    redis: String,
    created_at_ms: i64,
    started_at_ms: Option<i64>,
    /// Components that are not healthy (degraded instances).
    unhealthy: Vec<String>,
}

async fn judge(redis: &Redis, name: InstanceName, rec: InstanceRecord, now: i64) -> Result<Row> {
    let (status, _, components) = instance_health(&redis.instance(&name), now, PROBE_TIMEOUT).await?;
    Ok(Row {
        name: name.to_string(),
        status,
        workspace: rec.workspace,
        runtime: rec.runtime.as_str().to_owned(),
        redis: rec.redis,
        created_at_ms: rec.created_at,
        started_at_ms: rec.started_at,
        unhealthy: components.into_iter().filter(|c| !c.healthy).map(|c| c.name).collect(),
    })
}

pub(crate) async fn run(ctx: &Ctx) -> Result<ExitCode> {
    let redis = ctx.redis().await?;
    let now = now_ms();
    let rows: Vec<Row> = futures::stream::iter(redis.instances().await?)
        .map(|(name, rec)| judge(&redis, name, rec, now))
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    match ctx.output() {
        OutputFormat::Json => output::json(&serde_json::to_value(&rows)?)?,
        OutputFormat::Jsonl => {
            for r in &rows {
                output::jsonl(&serde_json::to_value(r)?)?;
            }
        }
        OutputFormat::Table if ctx.global.quiet => {
            for r in &rows {
                output::line(&r.name)?;
            }
        }
        OutputFormat::Table if rows.is_empty() => {
            output::line("No instances. Create one with 'sett init' and 'sett up' in a git repository.")?;
        }
        OutputFormat::Table => {
            let table = rows
                .iter()
                .map(|r| {
                    let mut status = r.status.as_str().to_owned();
                    if !r.unhealthy.is_empty() {
                        status.push_str(&format!(" ({})", r.unhealthy.join(", ")));
                    }
                    vec![
                        r.name.clone(),
                        status,
                        r.workspace.clone(),
                        r.runtime.clone(),
                        output::human_ms(now - r.created_at_ms),
                    ]
                })
                .collect();
            output::table(&["NAME", "STATUS", "WORKSPACE", "RUNTIME", "AGE"], table)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
