//! What `sett up` says once every component is ready: the instance, what was kept from a
//! previous run, where Redis and the logs are, and what to run next (only the name with
//! `--quiet`).

use anyhow::Result;
use sett_core::InstanceName;
use sett_core::config::SettConfig;
use sett_runtime::{Launch, Running};

use crate::ctx::Ctx;
use crate::output;

/// Prints the summary (only the instance name with `--quiet`).
pub(super) fn print(
    ctx: &Ctx,
    config: &SettConfig,
    name: &InstanceName,
    url: &str,
    launch: &Launch,
    kept: &[Running],
) -> Result<()> {
    if ctx.global.quiet {
        output::line(name.as_str())?;
        return Ok(());
    }
    if !kept.is_empty() {
        let names: Vec<&str> = kept.iter().map(|r| r.component.as_str()).collect();
        output::line(&format!("Already running and kept: {}.", names.join(", ")))?;
    }
    let agents: Vec<&str> = config.agents.keys().map(|a| a.as_str()).collect();
    match launch {
        Launch::Local(l) => {
            output::line(&format!(
                "Instance '{name}' is up: orchestrator and {} cub(s) ready ({}).",
                agents.len(),
                agents.join(", ")
            ))?;
            output::line(&format!("Redis: {}", sett_store::redact_url(url)))?;
            output::line(&format!("Logs:  {}", l.log_dir.display()))?;
        }
        Launch::Docker(spec) => {
            output::line(&format!(
                "Instance '{name}' is up in Docker (network {}): orchestrator and {} cub container(s) ready.",
                spec.network(),
                agents.len()
            ))?;
            match &spec.redis_container {
                Some(c) => output::line(&format!(
                    "Redis: {} (the workspace's container {c}, data in volume {c}-data; containers: {})",
                    sett_store::redact_url(url),
                    spec.redis_url
                ))?,
                None => output::line(&format!(
                    "Redis: {} (containers: {})",
                    sett_store::redact_url(url),
                    sett_store::redact_url(&spec.redis_url)
                ))?,
            }
            output::line(&format!("Logs:  {}", spec.log_dir.display()))?;
        }
    }
    output::line(&format!("Next:  sett forage --name {name} --goal \"...\" --watch"))?;
    Ok(())
}
