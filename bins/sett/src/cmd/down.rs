//! `sett down`: stop the orchestrator and the cubs of an instance gracefully (running tools get
//! the grace period), release its lock, keep its data. The managed Redis stops too when no
//! instance using it still runs; any later command restarts it with its data.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use sett_store::{InstanceStatus, now_ms};

use crate::cli::DownArgs;
use crate::ctx::Ctx;
use crate::output;

pub(crate) async fn run(ctx: &Ctx, args: DownArgs) -> Result<ExitCode> {
    let redis = ctx.redis().await?;
    let name = ctx.instance_name(&redis).await?;
    let store = redis.instance(&name);
    if redis.instance_record(&name).await?.is_some_and(|r| r.runtime == "docker") {
        return down_docker(&redis, &name, args.grace).await;
    }
    let host = sett_runtime::host_name();
    let components = store.components().await?;
    let holder = store.lock_holder().await?;
    let mut pids: Vec<(String, u32)> = components
        .iter()
        .filter(|(_, rec)| rec.get("host").and_then(|h| h.as_str()).is_none_or(|h| h == host))
        .filter_map(|(c, rec)| rec.get("pid").and_then(serde_json::Value::as_u64).map(|p| (c.clone(), p as u32)))
        .collect();
    if let Some(h) = &holder
        && h.host == host
        && !pids.iter().any(|(_, p)| *p == h.pid)
    {
        pids.push(("orchestrator".into(), h.pid));
    }
    if let Some(h) = &holder
        && h.host != host
    {
        anyhow::bail!(
            "instance '{name}' runs on host {} (pid {}): run 'sett down --name {name}' there",
            h.host,
            h.pid
        );
    }
    let running: Vec<(String, u32)> = pids.into_iter().filter(|(_, p)| sett_runtime::is_alive(*p)).collect();
    if running.is_empty() && holder.is_none() {
        output::line(&format!("Instance '{name}' is not running; its data is kept."))?;
        stop_managed_redis_if_idle(ctx, &redis).await;
        return Ok(ExitCode::SUCCESS);
    }
    // Stop every component at once; each gets the grace period for its running tools.
    let grace = args.grace;
    let stops: Vec<_> = running
        .iter()
        .map(|(c, p)| {
            let (c, p) = (c.clone(), *p);
            tokio::task::spawn_blocking(move || (c, sett_runtime::terminate(p, grace + Duration::from_secs(5))))
        })
        .collect();
    let mut forced = Vec::new();
    for s in stops {
        if let Ok((c, graceful)) = s.await
            && !graceful
        {
            forced.push(c);
        }
    }
    // A killed orchestrator cannot release its lock or update the registry: do it for it.
    if let Some(h) = store.lock_holder().await? {
        store.release_lock(&h.run_id).await?;
    }
    for c in components.keys() {
        store.remove_component(c).await?;
    }
    if let Some(mut rec) = redis.instance_record(&name).await?
        && rec.status != InstanceStatus::Stopped
    {
        rec.status = InstanceStatus::Stopped;
        rec.stopped_at = Some(now_ms());
        redis.put_instance_record(&name, &rec).await?;
    }
    if !forced.is_empty() {
        eprintln!("warning: {} did not stop within the grace period and were killed", forced.join(", "));
    }
    output::line(&format!("Instance '{name}' stopped ({} component(s)); its data is kept. Start it again with 'sett up --name {name}'.", running.len()))?;
    stop_managed_redis_if_idle(ctx, &redis).await;
    Ok(ExitCode::SUCCESS)
}

async fn stop_managed_redis_if_idle(ctx: &Ctx, redis: &sett_store::Redis) {
    if ctx.global.redis_url.is_some() {
        return;
    }
    let managed = ctx.managed_redis();
    if !managed.is_running() {
        return;
    }
    let busy = match redis.instances().await {
        Ok(all) => all.values().any(|r| r.status == InstanceStatus::Running),
        Err(_) => true,
    };
    if !busy {
        redis.quit().await;
        managed.stop(Duration::from_secs(10));
    }
}

/// `sett down` of a docker instance: every container of the instance stopped (the grace period
/// for running tools, then killed) and removed, the instance network removed, the lock released.
async fn down_docker(redis: &sett_store::Redis, name: &sett_core::InstanceName, grace: Duration) -> Result<ExitCode> {
    let store = redis.instance(name);
    let rt = sett_docker::DockerRuntime::connect(name.as_str()).await?;
    let running = rt.containers(None).await?.iter().filter(|c| c.running).count();
    let forced = rt.down(grace + Duration::from_secs(5)).await?;
    if let Some(h) = store.lock_holder().await? {
        store.release_lock(&h.run_id).await?;
    }
    for c in store.components().await?.keys() {
        store.remove_component(c).await?;
    }
    if let Some(mut rec) = redis.instance_record(name).await?
        && rec.status != InstanceStatus::Stopped
    {
        rec.status = InstanceStatus::Stopped;
        rec.stopped_at = Some(now_ms());
        redis.put_instance_record(name, &rec).await?;
    }
    if !forced.is_empty() {
        eprintln!("warning: {} did not stop within the grace period and were killed", forced.join(", "));
    }
    output::line(&format!(
        "Instance '{name}' stopped ({running} container(s) removed, network {} removed); its data is kept. Start it again with 'sett up --name {name}'.",
        sett_docker::network_name(name.as_str())
    ))?;
    Ok(ExitCode::SUCCESS)
}
