//! `sett-orchestrator`: the orchestration daemon of one instance. Thin: its own flags, wiring
//! and exit codes; the shell (logging, Redis, health server, signals) is
//! `sett_daemon::daemon`, the engine is `sett-orchestrator`. Every line on stdout is a JSON log
//! record.
#![allow(unreachable_pub)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use sett_core::InstanceName;
use sett_core::config::SettConfig;
use sett_daemon::daemon::{Daemon, DaemonArgs, EXIT_REFUSED, Identity, run_daemon};
use sett_orchestrator::{Orchestrator, OrchestratorError, Settings};
use sett_runtime::WorkerCommand;
use tracing::{error, info};

/// mimalloc instead of glibc's malloc: the engine and the archiving pass allocate many small,
/// short-lived strings and maps, and glibc's free lists and consolidation were a third of the
/// orchestrator's CPU samples under load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "sett-orchestrator", version, about = "Sett's orchestration daemon for one instance")]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Redis URL given to controller workers (default: --redis-url), so workers can run as a
    /// less privileged ACL user than the orchestrator (docs/security.md).
    #[arg(long, env = "SETT_WORKER_REDIS_URL", hide_env_values = true)]
    worker_redis_url: Option<String>,
    /// Where controller workers write their logs.
    #[arg(long, env = "SETT_LOG_DIR")]
    log_dir: Option<PathBuf>,
    /// The `sett-cub` binary used for workers (default: next to this binary).
    #[arg(long, env = "SETT_CUB_BIN")]
    cub_bin: Option<PathBuf>,
    /// Time to live of the instance lock (renewed every third of it).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lock_ttl: Duration,
}

/// Everything validated before logging starts.
struct Setup {
    args: Args,
    instance: InstanceName,
    config: SettConfig,
    config_path: PathBuf,
    workspace: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let setup = match configure(args) {
        Ok(s) => s,
        Err(e) => return fail_before_logging("sett-orchestrator", &e),
    };
    let identity =
        Identity { service: "orchestrator", component: "orchestrator".into(), instance: setup.instance.to_string() };
    run_daemon(identity, |daemon| run(daemon, setup))
        .unwrap_or_else(|e| fail_before_logging("sett-orchestrator", &format!("cannot start logging: {e}")))
}

/// Reads and checks everything the operator configured.
fn configure(args: Args) -> Result<Setup> {
    let instance = args.daemon.instance_name()?;
    let config = args.daemon.load_config()?;
    // A webhook secret taken from the environment must be there before anything starts.
    sett_notify::check_secrets(&config.notifications, |var| std::env::var(var).ok())?;
    let config_path = args.daemon.config_path();
    let workspace = match &args.daemon.workspace {
        Some(w) => w.clone(),
        None => config_path.parent().map_or_else(|| ".".into(), std::path::Path::to_path_buf),
    };
    Ok(Setup { args, instance, config, config_path, workspace })
}

async fn run(daemon: Daemon, setup: Setup) -> Result<ExitCode> {
    let Setup { args, instance, config, config_path, workspace } = setup;
    let redis = daemon.connect(&args.daemon.redis_url).await?.with_configured_durability(&config.redis);
    let store = redis.instance(&instance);
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
            redis_url: args.worker_redis_url.clone().unwrap_or_else(|| args.daemon.redis_url.clone()),
        }
    })
    .await?;
    let host = sett_runtime::host_name();
    let this_host = host.clone();
    // Bound before the engine exists so its address can be registered with the engine.
    let listener = daemon.bind_health(args.daemon.health_addr).await?;
    // `budgets:`: the watch follows the ledger and sees each output with usage first.
    let team: Vec<String> = config.agents.keys().map(ToString::to_string).collect();
    let budgets = sett_ops::budget::budget_watch(store.clone(), config.budgets.clone(), team);
    let settings = Settings {
        instance: instance.clone(),
        config,
        run_id: uuid::Uuid::now_v7().to_string(),
        host,
        pid: std::process::id(),
        lock_ttl: args.lock_ttl,
        health_addr: Some(listener.addr().to_string()),
        shutdown_grace: args.daemon.grace,
        // In Docker the orchestrator's host name is its container's (one per instance), so a
        // holder with this host name is a dead predecessor even if its pid exists here.
        holder_is_gone: Box::new(move |h| h.host == this_host && (in_docker || !sett_runtime::is_alive(h.pid))),
        on_usage: budgets.clone().map(sett_ops::budget::usage_hook),
    };
    let notifications = settings.config.notifications.clone();
    let anchor_every = settings.config.ledger.anchor_every;
    let witness_file = settings.config.ledger.witness_path(&workspace);
    let on_regression = settings.config.ledger.on_regression;
    let retention = settings.config.retention.clone();
    let orchestrator = Orchestrator::new(store.clone(), settings, launcher);
    let health = listener.serve(&redis, orchestrator.ready_flag());
    info!(health_addr = %health.addr(), redis = %sett_store::redact_url(&args.daemon.redis_url), "orchestrator starting");
    let signals = daemon.stop_signal();
    // The notifier stops with the engine, whatever stopped the engine (a signal, a lost lock).
    let stop = signals.token().child_token();
    let (notifier, alerts) =
        start_notifier(store.clone(), notifications, orchestrator.ready_flag(), stop.clone()).await?;
    let anchors = anchor_every.map(|every| {
        tokio::spawn(sett_ops::verify::anchor_periodically(
            store.clone(),
            every,
            orchestrator.ready_flag(),
            stop.clone(),
            witness_file,
            alerts.clone().map(anchor_notification),
        ))
    });
    // `retention:`: an archiving pass every `every` (a bad archive location stops the start).
    let archiver = match retention {
        Some(r) => {
            let target = sett_ops::archive::resolve_target(&r.archive, &workspace);
            let objects = sett_ops::archive::ArchiveObjects::open(&target, &instance)?;
            Some(tokio::spawn(sett_ops::archive::archive_periodically(
                store.clone(),
                objects,
                sett_ops::archive::Policy { archive_after: r.archive_after },
                r.every,
                r.max_share,
                orchestrator.ready_flag(),
                stop.clone(),
            )))
        }
        None => None,
    };
    // OpenTelemetry (when OTEL_EXPORTER_OTLP_* configure it): the workflows' spans, from the ledger.
    let tracer =
        sett_daemon::otel::traces().map(|t| tokio::spawn(sett_daemon::traces::follow(store.clone(), t, stop.clone())));
    let budget_watch = budgets
        .map(|watch| tokio::spawn(sett_ops::budget::BudgetWatch::run(watch, orchestrator.ready_flag(), stop.clone())));
    let ledger_watch = watch_ledger(store, &workspace, alerts, on_regression, stop.clone());
    let result = orchestrator.run(signals.token()).await;
    stop.cancel();
    if let Some(a) = anchors {
        let _ = a.await;
    }
    if let Some(a) = archiver {
        let _ = a.await;
    }
    let _ = ledger_watch.await;
    if let Some(t) = tracer {
        let _ = t.await;
    }
    if let Some(b) = budget_watch {
        let _ = b.await;
    }
    if let Some(n) = notifier {
        // An attempt in flight is finished and recorded (bounded by its own timeout).
        let _ = tokio::time::timeout(Duration::from_secs(15), n).await;
    }
    health.stop().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ (OrchestratorError::AlreadyRunning { .. } | OrchestratorError::BeingDestroyed { .. })) => {
            error!(error = %e, "cannot start");
            Ok(ExitCode::from(EXIT_REFUSED))
        }
        Err(e) => Err(e.into()),
    }
}

/// Tells a failure that happened before logging could start (bad flags or configuration, or
/// logging itself): stderr is the one place it can always be told.
#[allow(clippy::print_stderr)]
fn fail_before_logging(binary: &str, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{binary}: {error:#}");
    ExitCode::from(sett_daemon::daemon::EXIT_FAILED)
}

/// Webhook notifications (`notifications:` in sett.yml): the consumer group is made before the
/// engine writes anything, and delivery starts once the engine holds the instance lock.
async fn start_notifier(
    store: sett_store::Store,
    config: sett_core::config::NotificationsConfig,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(Option<tokio::task::JoinHandle<()>>, Option<sett_notify::Alerts>)> {
    if !config.is_enabled() {
        return Ok((None, None));
    }
    let notifier = sett_notify::Notifier::new(store, &config, |var| std::env::var(var).ok())?;
    notifier.prepare().await.context("cannot attach the notifier to the event stream")?;
    let alerts = notifier.alerts();
    Ok((Some(tokio::spawn(notifier.run_when_ready(ready, stop))), Some(alerts)))
}

/// Each periodic anchor is also sent as a `ledger_anchor` notification (to the webhooks that
/// ask for it): a witness outside Redis and outside this machine.
fn anchor_notification(alerts: sett_notify::Alerts) -> sett_ops::witness::OnAnchor {
    std::sync::Arc::new(move |record| {
        let (alerts, record) = (alerts.clone(), record.clone());
        tokio::spawn(async move {
            if let Err(e) = alerts.ledger_anchor(&record).await {
                tracing::warn!(error = %e, "cannot queue the ledger_anchor notification");
            }
        });
    })
}

/// The ledger-regression check of this daemon (the engine's and the notifier's: one process,
/// one connection), keeping the highest head seen in the workspace's `.sett/ledger/`, so a
/// loss while the orchestrator was down is noticed when it starts. A regression is also sent
/// as a `ledger_regressed` notification and, with `ledger.on_regression: pause`, pauses the
/// instance until an operator resumes it.
fn watch_ledger(
    store: sett_store::Store,
    workspace: &std::path::Path,
    alerts: Option<sett_notify::Alerts>,
    reaction: sett_core::config::RegressionReaction,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    use sett_ops::ledger_watch::{LedgerWatch, state_path};
    let file = state_path(workspace, store.instance().as_str());
    let watch = LedgerWatch::persisted(store.clone(), "orchestrator", file.clone()).unwrap_or_else(|e| {
        tracing::warn!(file = %file.display(), error = %e, "cannot read the ledger head kept outside Redis; starting from the current head");
        LedgerWatch::new(store.clone(), "orchestrator")
    });
    let on_regression: sett_ops::ledger_watch::OnRegression = std::sync::Arc::new(move |record| {
        let (alerts, store, record) = (alerts.clone(), store.clone(), record.clone());
        tokio::spawn(async move {
            if reaction == sett_core::config::RegressionReaction::Pause {
                sett_ops::ledger_watch::pause_for(&store, &record).await;
            }
            if let Some(alerts) = alerts
                && let Err(e) = alerts.ledger_regressed(&record).await
            {
                tracing::error!(error = %e, "cannot queue the ledger_regressed notification");
            }
        });
    });
    tokio::spawn(watch.run(stop, Some(on_regression)))
}
