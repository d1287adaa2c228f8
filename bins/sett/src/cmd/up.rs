//! `sett up`: validate sett.yml, pick the instance, start the orchestrator and one cub per agent
//! (local runtime), wait until every component is ready, say where the logs are.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sett_core::InstanceName;
use sett_core::config::{RuntimeKind, SettConfig};
use sett_runtime::{DaemonSpec, is_alive, spawn_daemon};
use sett_store::{InstanceRecord, InstanceStatus, LockPurpose, Redis, RedisOptions, Store, now_ms};

use crate::cli::UpArgs;
use crate::ctx::Ctx;
use crate::output;

/// Reads and validates the workspace's sett.yml, with the parser's own error (file, key, fix).
pub(crate) fn load_config(ctx: &Ctx) -> Result<SettConfig> {
    let path = ctx.workspace.config_path();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}: run 'sett init' in your repository to create one", path.display()))?;
    Ok(SettConfig::parse(&path.display().to_string(), &text)?)
}

pub(crate) async fn run(ctx: &Ctx, args: UpArgs) -> Result<ExitCode> {
    let config = load_config(ctx)?;
    if config.runtime == RuntimeKind::Docker {
        return up_docker(ctx, args, &config).await;
    }
    let url = match ctx.ensure_redis_url().await? {
        Some(url) => url,
        None => ctx.managed_redis().ensure().await?,
    };
    let redis = Redis::connect(RedisOptions::new(url.clone())).await?;
    let name = pick_instance(ctx, &redis, args.force).await?;
    let store = redis.instance(&name);
    let running_orchestrator = refuse_if_running(&store, &name).await?;
    register(ctx, &redis, &name, &url, "local").await?;
    // Components of a previous run that still run (e.g. cubs whose orchestrator crashed) are
    // kept; records of the others would make readiness look satisfied too early.
    let host = sett_runtime::host_name();
    let mut alive: BTreeMap<String, u32> = BTreeMap::new();
    for (component, rec) in store.components().await? {
        let pid = rec.get("pid").and_then(serde_json::Value::as_u64).map(|p| p as u32);
        let local = rec.get("host").and_then(|h| h.as_str()).is_none_or(|h| h == host);
        match pid {
            Some(pid)
                if local && is_alive(pid) && (component != "orchestrator" || running_orchestrator == Some(pid)) =>
            {
                alive.insert(component, pid);
            }
            _ => store.remove_component(&component).await?,
        }
    }

    let bins = sett_runtime::bin_dir();
    let log_dir = ctx.workspace.sett_dir().join("logs").join(name.as_str());
    let config_path = ctx.workspace.config_path();
    // Per-component ACL users (docs/security.md): SETT_ORCHESTRATOR_REDIS_URL for the
    // orchestrator, SETT_CUB_REDIS_URL for cubs and controller workers; each defaults to the
    // URL `up` itself uses. Passed through the environment, never on a command line.
    let component_url = |var: &str| std::env::var(var).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| url.clone());
    let cub_url = component_url("SETT_CUB_REDIS_URL");
    let env_o = BTreeMap::from([
        ("SETT_REDIS_URL".to_owned(), component_url("SETT_ORCHESTRATOR_REDIS_URL")),
        ("SETT_WORKER_REDIS_URL".to_owned(), cub_url.clone()),
    ]);
    let env = BTreeMap::from([("SETT_REDIS_URL".to_owned(), cub_url)]);
    let common = |component: &str| {
        vec![
            "--instance".to_owned(),
            name.to_string(),
            "--config".to_owned(),
            config_path.display().to_string(),
            "--workspace".to_owned(),
            ctx.workspace.root.display().to_string(),
            format!("--{component}"),
        ]
    };
    let mut started: Vec<(String, u32)> = Vec::new();
    let mut args_o = common("log-dir");
    args_o.push(log_dir.display().to_string());
    match alive.get("orchestrator") {
        Some(pid) => started.push(("orchestrator".into(), *pid)),
        None => {
            let pid = spawn_daemon(&DaemonSpec {
                program: bins.join("sett-orchestrator"),
                args: args_o,
                env: env_o,
                cwd: ctx.workspace.root.clone(),
                log_file: ctx.workspace.log_path(name.as_str(), "orchestrator"),
            })?;
            started.push(("orchestrator".into(), pid));
        }
    }
    for agent in config.agents.keys() {
        let component = format!("cub:{agent}");
        if let Some(pid) = alive.get(&component) {
            started.push((component, *pid));
            continue;
        }
        let mut a = common("agent");
        a.push(agent.to_string());
        let pid = spawn_daemon(&DaemonSpec {
            program: bins.join("sett-cub"),
            args: a,
            env: env.clone(),
            cwd: ctx.workspace.root.clone(),
            log_file: ctx.workspace.log_path(name.as_str(), agent.as_str()),
        })?;
        started.push((format!("cub:{agent}"), pid));
    }

    if let Err(e) = wait_ready(ctx, &store, &name, &started, args.timeout).await {
        for (_, pid) in started.iter().filter(|(c, _)| !alive.contains_key(c)) {
            sett_runtime::terminate(*pid, Duration::from_secs(2));
        }
        return Err(e);
    }
    if ctx.global.quiet {
        output::line(name.as_str())?;
    } else {
        if !alive.is_empty() {
            output::line(&format!(
                "Already running and kept: {}.",
                alive.keys().cloned().collect::<Vec<_>>().join(", ")
            ))?;
        }
        output::line(&format!(
            "Instance '{name}' is up: orchestrator and {} cub(s) ready ({}).",
            config.agents.len(),
            config.agents.keys().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
        ))?;
        output::line(&format!("Redis: {}", sett_store::redact_url(&url)))?;
        output::line(&format!("Logs:  {}", log_dir.display()))?;
        output::line(&format!("Next:  sett forage --name {name} --goal \"...\" --watch"))?;
    }
    Ok(ExitCode::SUCCESS)
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

/// Refuses to start an instance being destroyed or run from another host. Returns the pid of
/// this host's live orchestrator, if one runs (then only missing cubs are started).
async fn refuse_if_running(store: &Store, name: &InstanceName) -> Result<Option<u32>> {
    let Some(holder) = store.lock_holder().await? else { return Ok(None) };
    let local = holder.host == sett_runtime::host_name();
    if local && !is_alive(holder.pid) {
        if holder.purpose == LockPurpose::Destroy {
            // Starting a half-destroyed instance would run on partial data.
            bail!(
                "a 'sett destroy' of instance '{name}' was interrupted (pid {} is gone): run 'sett destroy --name {name}' again to finish it",
                holder.pid
            );
        }
        // A crashed orchestrator: the new orchestrator takes the lock over at once.
        return Ok(None);
    }
    match holder.purpose {
        LockPurpose::Destroy => bail!(
            "instance '{name}' is being destroyed (by {} pid {}): wait for 'sett destroy' to finish",
            holder.host,
            holder.pid
        ),
        LockPurpose::Run if local => Ok(Some(holder.pid)),
        LockPurpose::Run => bail!(
            "instance '{name}' is already running on host {} (pid {}): see 'sett status --name {name}', or stop it there with 'sett down --name {name}'",
            holder.host,
            holder.pid
        ),
    }
}

async fn register(ctx: &Ctx, redis: &Redis, name: &InstanceName, url: &str, runtime: &str) -> Result<()> {
    let now = now_ms();
    let previous = redis.instance_record(name).await?;
    let rec = InstanceRecord {
        run_id: previous.as_ref().map(|r| r.run_id.clone()).unwrap_or_default(),
        workspace: ctx.workspace.root.display().to_string(),
        runtime: runtime.into(),
        redis: sett_store::redact_url(url),
        created_at: previous.as_ref().map_or(now, |r| r.created_at),
        started_at: previous.as_ref().and_then(|r| r.started_at),
        stopped_at: previous.as_ref().and_then(|r| r.stopped_at),
        status: previous.map_or(InstanceStatus::Stopped, |r| r.status),
    };
    redis.put_instance_record(name, &rec).await?;
    Ok(())
}

/// Waits until every started component has registered and answers `/readyz` with 200.
async fn wait_ready(
    ctx: &Ctx,
    store: &Store,
    name: &InstanceName,
    started: &[(String, u32)],
    limit: Duration,
) -> Result<()> {
    let until = Instant::now() + limit;
    let mut pending: Vec<&(String, u32)> = started.iter().collect();
    while !pending.is_empty() {
        let components = store.components().await?;
        let mut still = Vec::new();
        for entry in pending {
            let (component, pid) = entry;
            if !is_alive(*pid) {
                let log = log_of(ctx, name, component);
                bail!("{component} exited during startup; its log ({}) ends with:\n{}", log.display(), tail(&log, 15));
            }
            let addr = components.get(component).and_then(|c| c.get("addr")).and_then(|a| a.as_str());
            let ready = match addr {
                Some(addr) => sett_ops::status::probe(addr, "/readyz", Duration::from_secs(1)).await == Ok(200),
                None => false,
            };
            if !ready {
                still.push(entry);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > until {
            let names: Vec<&str> = pending.iter().map(|(c, _)| c.as_str()).collect();
            bail!(
                "not ready after {}: {}; see 'sett logs --name {name} {}'",
                humantime::format_duration(limit),
                names.join(", "),
                names[0].trim_start_matches("cub:")
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

fn log_of(ctx: &Ctx, name: &InstanceName, component: &str) -> std::path::PathBuf {
    ctx.workspace.log_path(name.as_str(), component.trim_start_matches("cub:"))
}

/// The last `n` lines of a file, for startup errors.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `sett up` with `runtime: docker`: the instance network, the orchestrator container and one
/// cub container per agent (running ones are kept), then the same readiness wait as locally.
/// Redis is the configured URL; containers reach a loopback URL through the Docker host gateway.
async fn up_docker(ctx: &Ctx, args: UpArgs, config: &SettConfig) -> Result<ExitCode> {
    // Before anything starts: a container whose user cannot read its workspace dies at once.
    let workspace = ctx.workspace.root.clone();
    let user = std::env::var("SETT_DOCKER_USER").unwrap_or_else(|_| sett_docker::default_user(&workspace));
    let write = !sett_docker::rw_agents(config).is_empty();
    sett_docker::check_workspace_access(&workspace, &ctx.workspace.config_path(), &user, write)
        .map_err(|e| anyhow::anyhow!("cannot start instance containers: {e}"))?;
    let Some(url) = ctx.ensure_redis_url().await? else {
        bail!(
            "runtime: docker needs a Redis the containers can reach: pass --redis-url or set SETT_REDIS_URL \
             (a server listening beyond loopback, e.g. `docker run -d -p 6379:6379 sett-redis:dev` after `cargo xtask images`)"
        );
    };
    let redis = Redis::connect(RedisOptions::new(url.clone())).await?;
    let name = pick_instance(ctx, &redis, args.force).await?;
    let store = redis.instance(&name);
    let rt = sett_docker::DockerRuntime::connect(name.as_str()).await?;
    let image = std::env::var("SETT_DOCKER_IMAGE").unwrap_or_else(|_| sett_docker::DEFAULT_IMAGE.to_owned());
    rt.require_image(&image).await?;
    let log_dir = ctx.workspace.sett_dir().join("logs").join(name.as_str());
    let socket = config.agents.values().any(|a| a.is_controller()).then(sett_docker::local_socket).flatten();
    let component_url = |var: &str| std::env::var(var).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| url.clone());
    let spec = sett_docker::Spec {
        instance: name.to_string(),
        image,
        workspace: workspace.clone(),
        config: ctx.workspace.config_path(),
        log_dir: log_dir.clone(),
        user,
        // Per-component ACL users as with the local runtime (docs/security.md).
        redis_url: sett_docker::container_redis_url(&component_url("SETT_ORCHESTRATOR_REDIS_URL")),
        cub_redis_url: Some(sett_docker::container_redis_url(&component_url("SETT_CUB_REDIS_URL"))),
        socket: socket.as_ref().map(|(p, _)| p.clone()),
        socket_gid: socket.map(|(_, g)| g),
        rw_agents: sett_docker::rw_agents(config),
    };
    let orchestrator_host = spec.container_name("orchestrator");
    if let Some(h) = store.lock_holder().await? {
        match h.purpose {
            LockPurpose::Destroy => bail!("instance '{name}' is being destroyed: wait for 'sett destroy' to finish"),
            LockPurpose::Run if h.host != orchestrator_host && h.host != sett_runtime::host_name() => bail!(
                "instance '{name}' is already running on host {} (pid {}): stop it there with 'sett down --name {name}'",
                h.host,
                h.pid
            ),
            LockPurpose::Run => {}
        }
    }
    register(ctx, &redis, &name, &url, "docker").await?;
    let containers = rt.containers(None).await?;
    let alive: Vec<String> = containers
        .iter()
        .filter(|c| c.running && c.component != "worker")
        .map(sett_docker::Component::registered_as)
        .collect();
    for component in store.components().await?.keys() {
        if !alive.contains(component) {
            store.remove_component(component).await?;
        }
    }
    std::fs::create_dir_all(&log_dir).with_context(|| format!("cannot create {}", log_dir.display()))?;
    share_with_container_user(&log_dir, &spec.user);
    rt.ensure_network().await?;
    let mut started = Vec::new();
    if !alive.iter().any(|c| c == "orchestrator") {
        rt.start_orchestrator(&spec).await?;
        started.push("orchestrator".to_owned());
    }
    for agent in config.agents.keys() {
        let component = format!("cub:{agent}");
        if !alive.contains(&component) {
            rt.start_cub(&spec, agent.as_str()).await?;
            started.push(component);
        }
    }
    let all: Vec<String> =
        std::iter::once("orchestrator".to_owned()).chain(config.agents.keys().map(|a| format!("cub:{a}"))).collect();
    if let Err(e) = wait_ready_docker(ctx, &store, &rt, &name, &all, args.timeout).await {
        // Leave nothing half-started behind.
        for c in rt.containers(None).await? {
            if started.contains(&c.registered_as()) {
                rt.remove(&c.id).await?;
            }
        }
        return Err(e);
    }
    if ctx.global.quiet {
        output::line(name.as_str())?;
    } else {
        let kept: Vec<&String> = all.iter().filter(|c| !started.contains(c)).collect();
        if !kept.is_empty() {
            output::line(&format!(
                "Already running and kept: {}.",
                kept.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))?;
        }
        output::line(&format!(
            "Instance '{name}' is up in Docker (network {}): orchestrator and {} cub container(s) ready.",
            spec.network(),
            config.agents.len()
        ))?;
        output::line(&format!(
            "Redis: {} (containers: {})",
            sett_store::redact_url(&url),
            sett_store::redact_url(&spec.redis_url)
        ))?;
        output::line(&format!("Logs:  {}", log_dir.display()))?;
        output::line(&format!("Next:  sett forage --name {name} --goal \"...\" --watch"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Lets the containers' user write the log directory (when this CLI runs as root, it owns it).
fn share_with_container_user(dir: &Path, user: &str) {
    let mut ids = user.split(':').map(|p| p.parse::<u32>().ok());
    let (Some(Some(uid)), gid) = (ids.next(), ids.next().flatten()) else { return };
    let _ = std::os::unix::fs::chown(dir, Some(uid), gid);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::os::unix::fs::chown(e.path(), Some(uid), gid);
        }
    }
}

/// Waits until every component has registered and answers `/readyz`; a component whose
/// container stopped fails at once with the end of its log.
async fn wait_ready_docker(
    ctx: &Ctx,
    store: &Store,
    rt: &sett_docker::DockerRuntime,
    name: &InstanceName,
    components: &[String],
    limit: Duration,
) -> Result<()> {
    let until = Instant::now() + limit;
    let mut pending: Vec<&String> = components.iter().collect();
    while !pending.is_empty() {
        let registered = store.components().await?;
        let containers = rt.containers(None).await?;
        let mut still = Vec::new();
        for component in pending {
            if !containers.iter().any(|c| c.running && &c.registered_as() == component) {
                let log = log_of(ctx, name, component);
                let logged = tail(&log, 15);
                if !logged.trim().is_empty() {
                    bail!("{component} exited during startup; its log ({}) ends with:\n{logged}", log.display());
                }
                // It died before writing its log: what the container itself printed is all there is.
                let stopped = containers.iter().find(|c| &c.registered_as() == component);
                let (code, output) = match stopped {
                    Some(c) => rt.exit_report(&c.id, 30).await.unwrap_or((None, String::new())),
                    None => (None, String::new()),
                };
                bail!(
                    "{component} exited during startup (exit code {}) before writing its log ({}); the container's own output:\n{}",
                    code.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
                    log.display(),
                    if output.trim().is_empty() { "(nothing)".to_owned() } else { output.trim_end().to_owned() }
                );
            }
            let addr = registered.get(component).and_then(|c| c.get("addr")).and_then(|a| a.as_str());
            let ready = match addr {
                Some(addr) => sett_ops::status::probe(addr, "/readyz", Duration::from_secs(1)).await == Ok(200),
                None => false,
            };
            if !ready {
                still.push(component);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > until {
            let names: Vec<&str> = pending.iter().map(|c| c.as_str()).collect();
            bail!(
                "not ready after {}: {}; see 'sett logs --name {name} {}'",
                humantime::format_duration(limit),
                names.join(", "),
                names[0].trim_start_matches("cub:")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
