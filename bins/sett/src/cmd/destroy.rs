//! `sett destroy`: the seed's M4.3 UX (warning, "Type the instance name to confirm:", per-family
//! counts, exact error messages) on top of `sett_ops::destroy`, which owns the lock, the audit
//! record and the deletion. With `runtime: docker` and no configured Redis URL, the workspace's
//! own Redis container and its volume go too, once no other instance is registered in it.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use inquire::ui::{RenderConfig, Styled};
use sett_ops::destroy::{self, Acquired, Destroyer, Operator, Plan, Report, thousands};

use crate::cli::{DestroyArgs, LogFormat, OutputFormat};
use crate::ctx::{Ctx, usage};

pub(crate) async fn run(ctx: &Ctx, args: DestroyArgs) -> Result<ExitCode> {
    // The audit record is also logged (target `sett::audit`); make sure it reaches stderr even
    // when nothing else installed a subscriber. An existing subscriber wins.
    let _ = match ctx.global.log_format {
        LogFormat::Text => sett_daemon::telemetry::init_text_logs("warn,sett::audit=info"),
        LogFormat::Json => sett_daemon::telemetry::init_json_logs("sett"),
    };
    // Destroy never guesses the instance from the workspace: the operator names it.
    let Some(name) = ctx.explicit_name()? else {
        return Err(usage("sett destroy needs the instance name: pass --name NAME (see 'sett list')"));
    };
    let redis = ctx.redis().await?;
    let store = redis.instance(&name);
    let human = ctx.output() == OutputFormat::Table;

    let removes_redis = workspace_redis_removal(ctx, &redis, &name).await?;
    if args.dry_run {
        let plan = destroy::plan(&store).await?;
        let json = serde_json::json!({"instance": name.as_str(), "dry_run": true, "plan": plan, "removes_redis": removes_redis});
        match ctx.output() {
            OutputFormat::Table => {
                print_warning(name.as_str(), &plan, removes_redis.as_deref())?;
                crate::output::line("Dry run: nothing was deleted.")?;
            }
            OutputFormat::Json => crate::output::json(&json)?,
            OutputFormat::Jsonl => crate::output::jsonl(&json)?,
        }
        return Ok(ExitCode::SUCCESS);
    }

    // A confirmation shows the counts first; with --force nobody reads them before the deletion,
    // so it counts while it deletes — one pass over the keys instead of two.
    let operator = Operator::current(ctx.operator());
    let mut destroyer = if args.force {
        Destroyer::begin_uncounted(&store, operator).await?
    } else {
        Destroyer::begin(&store, operator).await?
    };
    if let Some(what) = &removes_redis {
        destroyer.removes_redis(what.clone());
    }
    if let Acquired::TookOver(prev) = destroyer.acquired() {
        eprintln!(
            "Note: a previous destroy of '{name}' (pid {} on {}) died mid-way; taking over its lock and finishing the job",
            prev.pid, prev.host
        );
    }
    if !args.force {
        if human {
            print_warning(name.as_str(), destroyer.plan(), removes_redis.as_deref())?;
        }
        if let Err(e) = confirm(name.as_str()) {
            destroyer.abort().await;
            return Err(e);
        }
    }

    if let Some(path) = &args.backup {
        match destroyer.backup(path).await {
            Ok(n) => {
                if human && !args.force && !ctx.global.quiet {
                    crate::output::line(&format!("✓ Backed up {} keys to {}", thousands(n), path.display()))?;
                }
            }
            Err(e) => {
                destroyer.abort().await;
                return Err(e.into());
            }
        }
    }

    if human && !args.force {
        crate::output::line(&format!("Destroying instance '{name}'..."))?;
    }
    // The head of the ledger that ends here, for the witness file: the heads witnessed before
    // belong to a ledger destroyed on purpose.
    let destroyed_head = store.ledger_head().await?;
    let plan = destroyer.plan();
    let bar = progress_bar(plan.counted.then(|| plan.total_keys()), ctx.global.quiet);
    let report = destroyer.execute(args.backup.as_deref(), |n| bar.set_position(n)).await;
    bar.finish_and_clear();
    let report = report?;
    // Its ledger is gone on purpose: a new instance of the same name starts a new one.
    if let Err(e) = sett_ops::ledger_watch::forget_state(ctx.workspace_root(), name.as_str()) {
        eprintln!("Warning: could not remove this workspace's record of the destroyed ledger's head: {e}");
    }
    let head = destroyed_head.unwrap_or(sett_core::ledger::Head { seq: 0, hash: String::new() });
    let witness = sett_ops::witness::record(name.as_str(), &head, sett_core::witness::REASON_DESTROY);
    if let Err(e) = sett_ops::witness::append(&ctx.witness_file(), &witness) {
        eprintln!("Warning: {e}; 'sett verify --witness' will take the destroyed ledger's heads for lost events");
    }
    if removes_redis.is_some() {
        // The instance's keys are gone; the container goes with every other key in it.
        redis.quit().await;
        ctx.managed_redis().remove().await.context(
            "the instance was destroyed, but its Redis container could not be removed: run 'sett destroy' again, or `docker rm -f` it and `docker volume rm` its volume",
        )?;
    }
    match ctx.output() {
        OutputFormat::Table => {
            if !args.force {
                print_report(&report)?;
            }
            if let Some(what) = &removes_redis {
                crate::output::line(&format!("Removed the workspace's Redis ({what}) with its data"))?;
            }
            crate::output::line(&format!("Instance '{name}' destroyed successfully"))?;
        }
        OutputFormat::Json => crate::output::json(&serde_json::to_value(&report)?)?,
        OutputFormat::Jsonl => crate::output::jsonl(&serde_json::to_value(&report)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// The workspace's own Redis container goes with the last instance registered in it: what
/// `destroy` then removes (container and volume), `None` otherwise (a configured Redis URL, a
/// `redis-server` process, or other instances still using the container).
async fn workspace_redis_removal(
    ctx: &Ctx,
    redis: &sett_store::Redis,
    name: &sett_core::InstanceName,
) -> Result<Option<String>> {
    if ctx.global.redis_url.is_some() {
        return Ok(None);
    }
    let Some(what) = ctx.managed_redis().removal() else { return Ok(None) };
    let others = redis.instances().await?.into_iter().any(|(n, _)| &n != name);
    Ok((!others).then_some(what))
}

fn print_warning(name: &str, plan: &Plan, removes_redis: Option<&str>) -> Result<()> {
    let out = crate::output::line;
    out(&format!("WARNING: This will permanently delete ALL data for instance '{name}'"))?;
    out("This includes:")?;
    out(&format!(
        "  - All artifacts and claims ({}, {})",
        plural(plan.count("artifact"), "artifact", "artifacts"),
        plural(plan.count("claim"), "claim", "claims")
    ))?;
    out(&format!("  - All thread history ({})", plural(plan.count("thread"), "thread", "threads")))?;
    out(&format!(
        "  - All metadata ({}{})",
        plural(plan.metadata_keys(), "key", "keys"),
        if plan.registered { " and the registry entry" } else { "" }
    ))?;
    if let Some(what) = removes_redis {
        out(&format!("  - The workspace's Redis: {what} (no other instance uses it)"))?;
    }
    out("")?;
    Ok(())
}

fn print_report(r: &Report) -> Result<()> {
    let out = crate::output::line;
    out(&format!("✓ Removed {}", plural(r.count("artifact"), "artifact", "artifacts")))?;
    out(&format!("✓ Removed {}", plural(r.count("claim"), "claim", "claims")))?;
    out(&format!("✓ Removed {}", plural(r.count("thread"), "thread", "threads")))?;
    let families: Vec<String> = r
        .counts
        .iter()
        .filter(|(f, _)| !matches!(f.as_str(), "artifact" | "claim" | "thread"))
        .map(|(f, n)| format!("{f}: {}", thousands(*n)))
        .collect();
    if families.is_empty() {
        out("✓ Removed metadata")?;
    } else {
        out(&format!("✓ Removed metadata ({})", families.join(", ")))?;
    }
    Ok(())
}

/// Asks the operator to re-type the instance name. Never blocks without a terminal.
fn confirm(name: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to destroy instance '{name}' without confirmation: stdin is not a terminal\nRun 'sett destroy --name {name} --force' to destroy it from a script"
        );
    }
    let config =
        RenderConfig::default().with_prompt_prefix(Styled::new("")).with_answered_prompt_prefix(Styled::new(""));
    let answer = inquire::Text::new("Type the instance name to confirm:").with_render_config(config).prompt();
    match answer {
        Ok(typed) if typed.trim() == name => Ok(()),
        Ok(typed) => anyhow::bail!(
            "'{}' does not match the instance name '{name}' - nothing was deleted\nRun 'sett destroy --name {name}' again and type the name exactly",
            typed.trim()
        ),
        Err(inquire::InquireError::OperationCanceled | inquire::InquireError::OperationInterrupted) => {
            anyhow::bail!("destroy of instance '{name}' cancelled - nothing was deleted")
        }
        Err(e) => Err(e).context("cannot read the confirmation - nothing was deleted; use --force in scripts"),
    }
}

/// A progress bar on stderr when it is a terminal (indicatif hides itself otherwise); a running
/// count when the total was not counted first (`--force`).
fn progress_bar(total: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let Some(total) = total else {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {human_pos} keys deleted") {
            bar.set_style(style);
        }
        return bar;
    };
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} keys (eta {eta})") {
        bar.set_style(style);
    }
    bar
}
