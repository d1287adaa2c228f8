//! `sett down`: stop the orchestrator and the cubs of an instance gracefully (running tools get
//! the grace period), release its lock, keep its data. The managed Redis (a `redis-server`
//! process, or the workspace's `sett-redis` container) stops too when no instance using it still
//! runs; any later command restarts it with its data. The instance's
//! runtime (local processes or Docker, see `sett_runtime::Runtime`) finds and stops them.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use sett_core::config::RuntimeKind;
use sett_runtime::Runtime;
use sett_store::{InstanceStatus, now_ms};

use crate::cli::DownArgs;
use crate::ctx::Ctx;
use crate::output;

pub(crate) async fn run(ctx: &Ctx, args: DownArgs) -> Result<ExitCode> {
    let redis = ctx.redis().await?;
    let name = ctx.instance_name(&redis).await?;
    let store = redis.instance(&name);
    // Not registered (started without 'sett up'): local processes.
    let registered = match redis.instance_record(&name).await? {
        Some(r) => r.runtime.kind()?,
        None => RuntimeKind::Local,
    };
    let runtime = Runtime::connect(registered, name.as_str()).await?;
    let components = store.components().await?;
    let holder = store.lock_holder().await?;
    let running = runtime.running(&components, holder.as_ref()).await?;
    if running.is_empty() && holder.is_none() {
        // Docker: stopped containers and the network of a crashed run go too.
        runtime.stop(&[], args.grace).await?;
        output::line(&format!("Instance '{name}' is not running; its data is kept."))?;
        stop_managed_redis_if_idle(ctx, &redis).await;
        return Ok(ExitCode::SUCCESS);
    }
    // Stop every component at once; each gets the grace period for its running tools.
    let forced = runtime.stop(&running, args.grace + Duration::from_secs(5)).await?;
    // A killed orchestrator cannot release its lock or update the registry: do it for it.
    if let Some(h) = store.lock_holder().await? {
        store.release_lock(&h.run_id).await?;
    }
    for c in components.keys() {
        store.remove_component(c).await?;
    }
    redis.mark_instance_stopped(&name, None, now_ms()).await?;
    if !forced.is_empty() {
        eprintln!("warning: {} did not stop within the grace period and were killed", forced.join(", "));
    }
    let what = match runtime.kind() {
        RuntimeKind::Docker => {
            format!("{} container(s) and network {} removed", running.len(), sett_docker::network_name(name.as_str()))
        }
        RuntimeKind::Local => format!("{} component(s)", running.len()),
    };
    output::line(&format!(
        "Instance '{name}' stopped ({what}); its data is kept. Start it again with 'sett up --name {name}'."
    ))?;
    // An anchor: the head as the run left it, in the audit stream and for the operator to keep.
    match sett_ops::verify::anchor(&store, "down").await {
        Ok(Some(head)) => {
            output::line(&format!(
                "Ledger head: {head} (recorded in the audit stream; 'sett verify --head {head}' checks it later)"
            ))?;
            let file = ctx.witness_file();
            match sett_ops::witness::witness_head(&store, &head, "down", &file, None).await {
                Ok(_) => output::line(&format!(
                    "Witnessed in {} ('sett verify --witness {}' proves later that nothing before it was lost)",
                    file.display(),
                    file.display()
                ))?,
                Err(e) => eprintln!("warning: {e}"),
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: could not record the ledger head: {e}"),
    }
    stop_managed_redis_if_idle(ctx, &redis).await;
    Ok(ExitCode::SUCCESS)
}

async fn stop_managed_redis_if_idle(ctx: &Ctx, redis: &sett_store::Redis) {
    if ctx.global.redis_url.is_some() {
        return;
    }
    let managed = ctx.managed_redis();
    if !managed.is_running().await {
        return;
    }
    let busy = match redis.instances().await {
        Ok(all) => all.values().any(|r| r.status == InstanceStatus::Running),
        Err(_) => true,
    };
    if !busy {
        redis.quit().await;
        if let Err(e) = managed.stop(Duration::from_secs(10)).await {
            eprintln!("warning: could not stop the workspace's Redis: {e}");
        }
    }
}
