//! `sett up`: validate sett.yml, resolve Redis, pick the instance, start the orchestrator and
//! one cub per agent in the configured runtime (local processes or Docker containers, see
//! `sett_runtime::Runtime`), wait until every component is ready, say where the logs are.
//! One flow for both runtimes; what differs per runtime is in sett-runtime's `start.rs`.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sett_core::InstanceName;
use sett_core::config::{RuntimeKind, SettConfig};
use sett_core::record::cub_agent;
use sett_runtime::{Component, Launch, LocalLaunch, Running, Runtime};
use sett_store::{Redis, RedisOptions, Store, now_ms};

use crate::cli::UpArgs;
use crate::ctx::Ctx;

mod summary;

/// Reads and validates the workspace's sett.yml, with the parser's own error (file, key, fix).
pub(crate) fn load_config(ctx: &Ctx) -> Result<SettConfig> {
    let path = ctx.workspace.config_path();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}: run 'sett init' in your repository to create one", path.display()))?;
    Ok(SettConfig::parse(&path.display().to_string(), &text)?)
}

pub(crate) async fn run(ctx: &Ctx, args: UpArgs) -> Result<ExitCode> {
    let config = load_config(ctx)?;
    refuse_host_socket_for_containers(ctx, &config)?;
    // Before anything starts: a container whose user cannot read its workspace dies at once.
    sett_runtime::check_workspace_access(&config, &ctx.workspace.root, &ctx.workspace.config_path())?;
    let url = resolve_redis(ctx, config.runtime).await?;
    let redis = Redis::connect(RedisOptions::new(url.clone())).await?.with_configured_durability(&ctx.redis_config());
    let name = pick_instance(ctx, &redis, args.force).await?;
    let store = redis.instance(&name);
    let runtime = Runtime::connect(config.runtime, name.as_str()).await?;
    let launch = launch(ctx, &config, &name, &url).await?;
    let running_orchestrator = runtime.may_start(name.as_str(), store.lock_holder().await?.as_ref(), &launch)?;
    let workspace = ctx.workspace.root.display().to_string();
    redis.register_instance(&name, &workspace, config.runtime, &url, now_ms()).await?;
    // Components of a previous run that still run (e.g. cubs whose orchestrator crashed) are
    // kept; records of the others would make readiness look satisfied too early.
    let kept = runtime.kept(&store.components().await?, running_orchestrator).await?;
    for component in store.components().await?.keys() {
        if !kept.iter().any(|r| &r.component == component) {
            store.remove_component(component).await?;
        }
    }
    runtime.prepare(&launch).await?;
    let (mut all, mut started) = (Vec::new(), Vec::new());
    for component in Component::all(&config) {
        match kept.iter().find(|r| r.component == component.registered_as()) {
            Some(r) => all.push(r.clone()),
            None => {
                let r = runtime.start(&launch, &component).await?;
                started.push(r.clone());
                all.push(r);
            }
        }
    }
    if let Err(e) = wait_ready(ctx, &store, &runtime, &name, &all, args.timeout).await {
        // Leave nothing half-started behind.
        runtime.discard(&started).await?;
        return Err(e);
    }
    summary::print(ctx, &config, &name, &url, &launch, &kept)?;
    // Where the work runs: a primary no synced replica copies loses it whole when it dies.
    let replication = sett_ops::status::Replication::of(&store).await;
    if !ctx.global.quiet {
        crate::output::line(&format!("Redis: {}", replication.summary()))?;
    }
    if let Some(w) = &replication.warning {
        eprintln!("WARNING: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A Unix socket is this host's alone: `runtime: docker` with a `redis+unix://` URL (the
/// configured one, or a component's own) is refused before anything starts, with the fix.
fn refuse_host_socket_for_containers(ctx: &Ctx, config: &SettConfig) -> Result<()> {
    let Some(url) = ctx.global.redis_url.as_deref().filter(|_| config.runtime == RuntimeKind::Docker) else {
        return Ok(());
    };
    let own = ["SETT_ORCHESTRATOR_REDIS_URL", "SETT_CUB_REDIS_URL"]
        .map(|var| std::env::var(var).ok().filter(|u| !u.is_empty()));
    if let Some(socket) =
        std::iter::once(url).chain(own.iter().flatten().map(String::as_str)).find(|u| sett_store::is_unix_socket_url(u))
    {
        bail!(
            "runtime: docker cannot use the Redis URL {}: its containers cannot reach a Unix socket on this host; \
             pass --redis-url / SETT_REDIS_URL (and SETT_ORCHESTRATOR_REDIS_URL / SETT_CUB_REDIS_URL, if set) as a redis:// URL \
             on an address the Docker bridge reaches, or use runtime: local",
            sett_store::redact_url(socket)
        );
    }
    Ok(())
}

/// The configured Redis URL; without one, the workspace's own Redis in the instance's runtime
/// (a `redis-server` process, or a `sett-redis` container for `runtime: docker`), started or
/// reused with its data.
async fn resolve_redis(ctx: &Ctx, runtime: RuntimeKind) -> Result<String> {
    match &ctx.global.redis_url {
        Some(url) => Ok(url.clone()),
        None => Ok(ctx.managed_redis().ensure_for(runtime).await?),
    }
}

/// How this instance's components are started. Per-component ACL users (docs/security.md):
/// SETT_ORCHESTRATOR_REDIS_URL for the orchestrator, SETT_CUB_REDIS_URL for cubs and
/// controller workers; each defaults to the URL `up` itself uses. With the workspace's own Redis
/// container, the containers reach it by its name on the instance network.
async fn launch(ctx: &Ctx, config: &SettConfig, name: &InstanceName, url: &str) -> Result<Launch> {
    let component_url = |var: &str| std::env::var(var).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| url.to_owned());
    let workspace = ctx.workspace.root.clone();
    let log_dir = ctx.workspace.sett_dir().join("logs").join(name.as_str());
    Ok(match config.runtime {
        RuntimeKind::Local => Launch::Local(LocalLaunch {
            instance: name.to_string(),
            bins: sett_runtime::bin_dir(),
            config: ctx.workspace.config_path(),
            workspace,
            log_dir,
            orchestrator_url: component_url("SETT_ORCHESTRATOR_REDIS_URL"),
            cub_url: component_url("SETT_CUB_REDIS_URL"),
        }),
        RuntimeKind::Docker => {
            let image = std::env::var("SETT_DOCKER_IMAGE").unwrap_or_else(|_| sett_docker::DEFAULT_IMAGE.to_owned());
            sett_docker::DockerRuntime::connect(name.as_str()).await?.require_image(&image).await?;
            let socket = config.agents.values().any(|a| a.is_controller()).then(sett_docker::local_socket).flatten();
            let managed = ctx.global.redis_url.is_none().then(|| ctx.managed_redis());
            let redis_container = managed.as_ref().and_then(|m| m.container());
            let container_url = |var: &str| match managed.as_ref().and_then(|m| m.container_url()) {
                Some(url) => url,
                None => sett_docker::container_redis_url(&component_url(var)),
            };
            Launch::Docker(Box::new(sett_docker::Spec {
                instance: name.to_string(),
                image,
                user: sett_runtime::docker_user(&workspace),
                workspace,
                config: ctx.workspace.config_path(),
                log_dir,
                redis_url: container_url("SETT_ORCHESTRATOR_REDIS_URL"),
                cub_redis_url: Some(container_url("SETT_CUB_REDIS_URL")),
                socket: socket.as_ref().map(|(p, _)| p.clone()),
                socket_gid: socket.map(|(_, g)| g),
                rw_agents: sett_docker::rw_agents(config),
                pass_env: sett_docker::pass_env(config),
                redis_container,
            }))
        }
    })
}

/// `--name`, else the instance registered for this workspace, else a new `default-N`.
async fn pick_instance(ctx: &Ctx, redis: &Redis, force: bool) -> Result<InstanceName> {
    let root = ctx.workspace.root.display().to_string();
    if let Some(name) = ctx.explicit_name()? {
        if let Some(rec) = redis.instance_record(&name).await?
            && !rec.workspace.is_empty()
            && rec.workspace != root
            && !force
        {
            bail!(
                "instance '{name}' belongs to workspace {}: run 'sett up' there, pick another --name, or pass --force to move it here",
                rec.workspace
            );
        }
        return Ok(name);
    }
    let mine: Vec<InstanceName> =
        redis.instances().await?.into_iter().filter(|(_, r)| r.workspace == root).map(|(n, _)| n).collect();
    match mine.as_slice() {
        [one] => Ok(one.clone()),
        [] => Ok(InstanceName::numbered_default(redis.next_instance_number().await?)),
        many => Err(crate::ctx::usage(format!(
            "several instances use {root} ({}): pass --name NAME",
            many.iter().map(InstanceName::as_str).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Waits until every component has registered and answers `/readyz` with 200; a component that
/// stopped fails at once with the end of its log.
async fn wait_ready(
    ctx: &Ctx,
    store: &Store,
    runtime: &Runtime,
    name: &InstanceName,
    components: &[Running],
    limit: Duration,
) -> Result<()> {
    let until = Instant::now() + limit;
    let mut pending: Vec<&Running> = components.iter().collect();
    while !pending.is_empty() {
        let registered = store.components().await?;
        let alive = runtime.alive(&pending.iter().map(|r| (*r).clone()).collect::<Vec<_>>()).await?;
        let mut still = Vec::new();
        for (r, alive) in pending.into_iter().zip(alive) {
            let component = &r.component;
            if !alive {
                let log = ctx.workspace.log_path(name.as_str(), cub_agent(component).unwrap_or(component));
                let logged = tail(&log, 15);
                // A container that died before writing its log: what it printed is all there is.
                if let (true, Some((code, output))) = (logged.trim().is_empty(), runtime.exit_report(r).await) {
                    bail!(
                        "{component} exited during startup (exit code {}) before writing its log ({}); the container's own output:\n{}",
                        code.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
                        log.display(),
                        if output.trim().is_empty() { "(nothing)" } else { output.trim_end() }
                    );
                }
                bail!("{component} exited during startup; its log ({}) ends with:\n{logged}", log.display());
            }
            let addr = registered.get(component).and_then(|c| c.addr.as_deref());
            let ready = match addr {
                Some(addr) => sett_ops::status::probe(addr, "/readyz", Duration::from_secs(1)).await == Ok(200),
                None => false,
            };
            if !ready {
                still.push(r);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > until {
            let names: Vec<&str> = pending.iter().map(|r| r.component.as_str()).collect();
            bail!(
                "not ready after {}: {}; see 'sett logs --name {name} {}'",
                humantime::format_duration(limit),
                names.join(", "),
                cub_agent(names[0]).unwrap_or(names[0])
            );
        }
        tokio::time::sleep(runtime.poll_interval()).await;
    }
    Ok(())
}

/// The last `n` lines of a file, for startup errors.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
