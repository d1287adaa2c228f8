//! `sett logs <component>`: print a component's log file from the local runtime
//! (`.sett/logs/<instance>/<component>.log`, bunyan JSON lines), rendered one line per record
//! (raw with `-o jsonl`/`-o json`); `-f` keeps following as the file grows.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sett_core::record::{cub_agent, cub_component};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};

use crate::cli::{LogsArgs, OutputFormat};
use crate::ctx::Ctx;
use crate::output;
use crate::workspace::Workspace;

/// How often `-f` looks for new data at the end of the file.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// The instance and the workspace holding its logs: `--name` (its logs are in the workspace the
/// registry records for it, wherever this command runs), else the instance registered for this
/// workspace; without Redis, the only log directory of this workspace.
async fn instance(ctx: &Ctx) -> Result<(String, Workspace)> {
    let redis = ctx.redis().await;
    if let Some(n) = ctx.explicit_name()? {
        let recorded = match &redis {
            Ok(r) => r.instance_record(&n).await.ok().flatten(),
            Err(_) => None,
        };
        let ws = recorded
            .map(|rec| Workspace { root: PathBuf::from(rec.workspace) })
            .filter(|w| w.sett_dir().is_dir())
            .unwrap_or_else(|| ctx.workspace.clone());
        return Ok((n.to_string(), ws));
    }
    let registered = match redis {
        Ok(r) => ctx.instance_name(&r).await.map(|n| n.to_string()),
        Err(e) => Err(e),
    };
    match registered {
        Ok(n) => Ok((n, ctx.workspace.clone())),
        Err(e) => {
            let dir = ctx.sett_dir().join("logs");
            let dirs: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|d| d.path().is_dir())
                        .map(|d| d.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            match dirs.as_slice() {
                [one] => Ok((one.clone(), ctx.workspace.clone())),
                _ => Err(e),
            }
        }
    }
}

/// Log files available for `instance`, by component name.
fn available(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|d| d.file_name().to_str().and_then(|n| n.strip_suffix(".log")).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `orchestrator`, an agent name, or a registered component name (`cub:<agent>`).
fn locate(ws: &Workspace, instance: &str, component: &str) -> Result<PathBuf> {
    let bare = cub_agent(component).unwrap_or(component);
    for candidate in [component.to_owned(), bare.to_owned(), format!("cub-{bare}"), cub_component(bare)] {
        let p = ws.log_path(instance, &candidate);
        if p.is_file() {
            return Ok(p);
        }
    }
    let dir = ws.log_path(instance, "x").parent().map(Path::to_path_buf).unwrap_or_default();
    let names = available(&dir);
    if names.is_empty() {
        bail!(
            "no logs for instance '{instance}' in {}: logs exist for the local runtime after 'sett up --name {instance}' (for docker, use 'docker logs')",
            dir.display()
        );
    }
    bail!(
        "no log for component '{component}' of instance '{instance}'. Available: {}\nRun e.g. 'sett logs {} -n {instance}'",
        names.join(", "),
        names[0]
    )
}

fn emit(format: OutputFormat, raw: &str) -> Result<()> {
    match format {
        OutputFormat::Table => output::line(&sett_ops::feed::log_line(raw)),
        OutputFormat::Json | OutputFormat::Jsonl => output::line(raw),
    }
}

pub(crate) async fn run(ctx: &Ctx, args: LogsArgs) -> Result<ExitCode> {
    let (instance, ws) = instance(ctx).await?;
    let path = locate(&ws, &instance, &args.component)?;
    let format = ctx.output();
    let file = tokio::fs::File::open(&path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut line = String::new();
    // Read to EOF, keeping only the last N lines when asked.
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']).to_owned();
        match args.lines {
            Some(n) => {
                if n > 0 {
                    if tail.len() == n {
                        tail.pop_front();
                    }
                    tail.push_back(text);
                }
            }
            None => emit(format, &text)?,
        }
    }
    for t in &tail {
        emit(format, t)?;
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: wait for growth; a line is printed only once complete. A truncated (rotated)
    // file is read again from its start.
    let mut pos = reader.stream_position().await?;
    let mut partial = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).await?;
        if n == 0 {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            let len = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(pos);
            if len < pos {
                reader.seek(std::io::SeekFrom::Start(0)).await?;
                pos = 0;
                partial.clear();
            }
            continue;
        }
        pos += n as u64;
        partial.push_str(&line);
        if partial.ends_with('\n') {
            emit(format, partial.trim_end_matches(['\n', '\r']))?;
            partial.clear();
        }
    }
}
