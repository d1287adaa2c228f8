//! `sett-orchestrator`: the orchestration daemon of one instance. Thin: flags and environment,
//! JSON logging, the health/metrics server, signal handling and wiring; the engine lives in
//! `sett-orchestrator`. Every line on stdout is a JSON log record.
#![allow(unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use sett_core::InstanceName;
use sett_core::config::SettConfig;
use sett_orchestrator::{Orchestrator, OrchestratorError, Settings};
use sett_runtime::WorkerCommand;
use sett_store::{Redis, RedisOptions};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[derive(Debug, Parser)]
#[command(name = "sett-orchestrator", version, about = "Sett's orchestration daemon for one instance")]
struct Args {
    /// Instance name.
    #[arg(long, env = "SETT_INSTANCE")]
    instance: String,
    /// Redis URL (redis://, rediss://, user:password@ for ACL users).
    #[arg(long, env = "SETT_REDIS_URL", hide_env_values = true)]
    redis_url: String,
    /// Redis URL given to controller workers (default: --redis-url), so workers can run as a
    /// less privileged ACL user than the orchestrator (docs/security.md).
    #[arg(long, env = "SETT_WORKER_REDIS_URL", hide_env_values = true)]
    worker_redis_url: Option<String>,
    /// The instance's sett.yml.
    #[arg(long, env = "SETT_CONFIG", default_value = "sett.yml")]
    config: PathBuf,
    /// The workspace (default: the directory of the config file).
    #[arg(long, env = "SETT_WORKSPACE")]
    workspace: Option<PathBuf>,
    /// Address of the health and metrics server (port 0 picks a free port).
    #[arg(long, env = "SETT_HEALTH_ADDR", default_value = "127.0.0.1:0")]
    health_addr: SocketAddr,
    /// Where controller workers write their logs.
    #[arg(long, env = "SETT_LOG_DIR")]
    log_dir: Option<PathBuf>,
    /// The `sett-cub` binary used for workers (default: next to this binary).
    #[arg(long, env = "SETT_CUB_BIN")]
    cub_bin: Option<PathBuf>,
    /// Time to live of the instance lock (renewed every third of it).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lock_ttl: Duration,
    /// Grace period for workers when stopping.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    grace: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // One thread: the engine is bound by Redis round trips, not CPU; a single-threaded runtime
    // avoids cross-thread wake-ups on every round trip (lower latency, near-zero idle cost).
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("Error: cannot start the async runtime: {e}");
            }
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            error!(error = %format!("{e:#}"), "orchestrator failed");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    // Every line names its instance and component, even outside the engine's spans.
    sett_ops::telemetry::init_json_logs_with(
        "orchestrator",
        &[("instance", &args.instance), ("component", "orchestrator")],
    )?;
    let metrics = sett_ops::telemetry::install_metrics()?;
    let instance = InstanceName::parse(&args.instance).context("--instance")?;
    let config_text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}: run 'sett init' to create one", args.config.display()))?;
    let config = SettConfig::parse(&args.config.display().to_string(), &config_text)?;
    let config_path = std::fs::canonicalize(&args.config).unwrap_or(args.config.clone());
    let workspace = args
        .workspace
        .clone()
        .or_else(|| config_path.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| ".".into());
    let redis = Redis::connect(RedisOptions::new(args.redis_url.clone())).await?;
    let reconnects = redis.clone();
    reconnects.on_reconnect(|| {
        metrics::counter!(sett_core::metrics::REDIS_RECONNECTS, "component" => "orchestrator").increment(1);
        info!("reconnected to Redis");
    });
    let store = redis.instance(&instance);

    let (listener, bound) = sett_ops::health::bind(args.health_addr).await.context("cannot bind the health server")?;
    // Workers are containers when this orchestrator runs in the docker runtime (its spec in
    // SETT_DOCKER_SPEC), child processes otherwise.
    let has_controllers = config.agents.values().any(|a| a.is_controller());
    let (launcher, in_docker) = sett_runtime::worker_launcher(has_controllers, || {
        let log_dir =
            args.log_dir.clone().unwrap_or_else(|| workspace.join(".sett").join("logs").join(instance.as_str()));
        WorkerCommand {
            cub_bin: args.cub_bin.clone().unwrap_or_else(|| sett_runtime::bin_dir().join("sett-cub")),
            instance: instance.to_string(),
            config: config_path.clone(),
            workspace: workspace.clone(),
            log_dir,
            redis_url: args.worker_redis_url.clone().unwrap_or_else(|| args.redis_url.clone()),
        }
    })
    .await?;
    let host = sett_runtime::host_name();
    let this_host = host.clone();
    let settings = Settings {
        instance: instance.clone(),
        config,
        run_id: uuid::Uuid::now_v7().to_string(),
        host,
        pid: std::process::id(),
        lock_ttl: args.lock_ttl,
        health_addr: Some(bound.to_string()),
        shutdown_grace: args.grace,
        // In Docker the orchestrator's host name is its container's (one per instance), so a
        // holder with this host name is a dead predecessor even if its pid exists here.
        holder_is_gone: Box::new(move |h| h.host == this_host && (in_docker || !sett_runtime::is_alive(h.pid))),
    };
    let orchestrator = Orchestrator::new(store, settings, launcher);
    let shutdown = CancellationToken::new();
    let health = sett_ops::health::HealthState {
        component: "orchestrator".into(),
        instance: instance.to_string(),
        redis: redis.clone(),
        ready: orchestrator.ready_flag(),
        metrics: Some(metrics),
    };
    let server = tokio::spawn(sett_ops::health::serve(listener, health, shutdown.clone()));
    info!(instance = %instance, health_addr = %bound, redis = %sett_store::redact_url(&args.redis_url), "orchestrator starting");
    tokio::spawn(signals(shutdown.clone()));
    let result = orchestrator.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ (OrchestratorError::AlreadyRunning { .. } | OrchestratorError::BeingDestroyed { .. })) => {
            error!(error = %e, "cannot start");
            Ok(ExitCode::from(3))
        }
        Err(e) => Err(e.into()),
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = int.recv() => info!("SIGINT: stopping"),
    }
    shutdown.cancel();
}
