//! One shell for Sett's daemons (`sett-orchestrator`, `sett-cub`): the flags they share
//! ([`DaemonArgs`], flattened into each binary's own), and [`run_daemon`], which starts logging
//! before anything can be logged, runs the daemon on a single-threaded runtime and turns its
//! result into an exit code. [`Daemon`] gives the body the rest of the shell: connecting to Redis
//! with retry, the health/metrics server and the stop signals.
//!
//! Exit codes: 0 stopped cleanly; 1 failed (configuration, Redis, I/O); 3 refused to start
//! (the orchestrator's instance is locked by another run or being destroyed).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use sett_core::InstanceName;
use sett_core::config::SettConfig;
use sett_core::metrics::REDIS_RECONNECTS;
use sett_store::{Redis, RedisOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::{self, HealthState};

/// Exit code of a daemon that failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a daemon that refused to start because another owns its place.
pub const EXIT_REFUSED: u8 = 3;

/// How long a daemon waits for an unreachable (or still loading) Redis when it starts.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// The flags every daemon takes (flatten with `#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// The instance to serve.
    #[arg(long, env = "SETT_INSTANCE")]
    pub instance: String,
    /// Redis URL (`redis://`, `rediss://`, with optional `user:password@` for ACL users).
    #[arg(long, env = "SETT_REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true)]
    pub redis_url: String,
    /// Path to the instance's sett.yml.
    #[arg(long, env = "SETT_CONFIG", default_value = "sett.yml")]
    pub config: PathBuf,
    /// The workspace tools run in [default: the config file's directory].
    #[arg(long, env = "SETT_WORKSPACE")]
    pub workspace: Option<PathBuf>,
    /// Address of the /healthz, /readyz and /metrics server (port 0 picks a free port).
    #[arg(long, env = "SETT_HEALTH_ADDR", default_value = "127.0.0.1:0")]
    pub health_addr: SocketAddr,
    /// On SIGTERM/SIGINT, how long running tools (or workers) may finish before they are killed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

impl DaemonArgs {
    /// The validated `--instance`.
    pub fn instance_name(&self) -> anyhow::Result<InstanceName> {
        InstanceName::parse(&self.instance).with_context(|| format!("invalid --instance {:?}", self.instance))
    }

    /// Reads and validates `--config`.
    pub fn load_config(&self) -> anyhow::Result<SettConfig> {
        let text = std::fs::read_to_string(&self.config).with_context(|| {
            format!(
                "cannot read the configuration {} (pass --config or set SETT_CONFIG; 'sett init' creates one)",
                self.config.display()
            )
        })?;
        Ok(SettConfig::parse(&self.config.display().to_string(), &text)?)
    }

    /// `--config` as an absolute path when it exists (workers and containers get this one).
    pub fn config_path(&self) -> PathBuf {
        std::fs::canonicalize(&self.config).unwrap_or_else(|_| self.config.clone())
    }

    /// `--workspace`, or the directory of the config file, checked to be an existing directory
    /// and made absolute.
    pub fn workspace_dir(&self) -> anyhow::Result<PathBuf> {
        let workspace = match &self.workspace {
            Some(w) => w.clone(),
            None => config_dir(&self.config),
        };
        let workspace = workspace.canonicalize().with_context(|| {
            format!("the workspace {} does not exist (pass --workspace or set SETT_WORKSPACE)", workspace.display())
        })?;
        anyhow::ensure!(workspace.is_dir(), "the workspace {} is not a directory", workspace.display());
        Ok(workspace)
    }
}

fn config_dir(config: &Path) -> PathBuf {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Who a daemon is, for every log line and metric label.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The bunyan `name` of its log lines (`orchestrator`, `cub`).
    pub service: &'static str,
    /// The component (`orchestrator`, `cub:<agent>`, `worker:<agent>`).
    pub component: String,
    pub instance: String,
}

/// Runs a daemon: JSON logging first (so nothing is logged before a logger exists), then `body`
/// on a single-threaded runtime. An error of `body` is logged and exits 1. `Err` only when
/// logging could not start: nothing could be logged, so the binary tells it on stderr (this
/// library never prints).
pub fn run_daemon<F, Fut>(identity: Identity, body: F) -> Result<ExitCode, crate::telemetry::TelemetryError>
where
    F: FnOnce(Daemon) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    // Every line names its instance and component, even outside the daemon's own spans.
    let fields = [("instance", identity.instance.as_str()), ("component", identity.component.as_str())];
    let traces = crate::otel::install(&format!("sett-{}", identity.service), &fields)?;
    crate::telemetry::init_json_logs_traced(identity.service, &fields, traces)?;
    // One thread: a daemon waits on Redis round trips and on its tools' pipes, not on CPU; a
    // single-threaded runtime avoids cross-thread wake-ups on every round trip (lower latency,
    // near-zero idle cost).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let service = identity.service;
    let daemon = Daemon { identity };
    let code = runtime.block_on(async move {
        body(daemon).await.unwrap_or_else(|e| {
            tracing::error!(error = format!("{e:#}"), "{service} failed");
            ExitCode::from(EXIT_FAILED)
        })
    });
    // Child processes are already reaped; do not wait for stray blocking tasks.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // The last spans (a workflow that ended just before the stop) are sent before exiting.
    if let Some(t) = traces {
        t.shutdown();
    }
    Ok(code)
}

/// The shell's services, handed to a daemon's body by [`run_daemon`].
#[derive(Debug)]
pub struct Daemon {
    identity: Identity,
}

impl Daemon {
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Connects to Redis, waiting up to 30 s while it is unreachable or loading (a daemon
    /// started during a short outage or a Redis restart waits instead of dying); counts and logs
    /// every later reconnection.
    pub async fn connect(&self, url: &str) -> anyhow::Result<Redis> {
        let redis = Redis::connect_retrying(RedisOptions::new(url.to_owned()), CONNECT_PATIENCE).await?;
        let component = self.identity.service;
        redis.on_reconnect(move || {
            metrics::counter!(REDIS_RECONNECTS, "component" => component).increment(1);
            tracing::warn!("reconnected to Redis");
        });
        Ok(redis)
    }

    /// Installs the metrics recorder and binds the /healthz, /readyz and /metrics server on
    /// `addr` (bound first so its real address can be registered before it serves).
    pub async fn bind_health(&self, addr: SocketAddr) -> anyhow::Result<HealthListener> {
        let metrics = crate::telemetry::install_metrics()?;
        let (listener, bound) = health::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (change --health-addr / SETT_HEALTH_ADDR)"))?;
        Ok(HealthListener { identity: self.identity.clone(), listener, addr: bound, metrics })
    }

    /// A token cancelled on the first SIGTERM or SIGINT; the watcher stops with the guard.
    pub fn stop_signal(&self) -> SignalGuard {
        let token = CancellationToken::new();
        let task = tokio::spawn({
            let token = token.clone();
            async move {
                terminated().await;
                token.cancel();
            }
        });
        SignalGuard { token, task }
    }
}

/// A bound, not yet serving, health server.
pub struct HealthListener {
    identity: Identity,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl std::fmt::Debug for HealthListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthListener").field("addr", &self.addr).finish()
    }
}

impl HealthListener {
    /// The bound address (the real port when `--health-addr` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts serving; `/readyz` answers 200 once `ready` is set. Stopped by
    /// [`HealthServer::stop`] (or aborted when dropped).
    pub fn serve(self, redis: &Redis, ready: Arc<AtomicBool>) -> HealthServer {
        let stop = CancellationToken::new();
        let state = HealthState {
            component: self.identity.component,
            instance: self.identity.instance,
            redis: redis.clone(),
            ready,
            metrics: Some(self.metrics),
        };
        let task = tokio::spawn(health::serve(self.listener, state, stop.clone()));
        tracing::info!(health_addr = %self.addr, "health server listening");
        HealthServer { addr: self.addr, stop, task: Some(task) }
    }
}

/// The running health server.
#[derive(Debug)]
pub struct HealthServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl HealthServer {
    /// The bound address (the real port when `--health-addr` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and lets open connections finish (bounded by the server).
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Owns the signal watcher of [`Daemon::stop_signal`]; dropping it stops watching.
#[derive(Debug)]
pub struct SignalGuard {
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl SignalGuard {
    /// Cancelled on the first SIGTERM or SIGINT.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Resolves on the first SIGTERM or SIGINT.
    pub async fn received(&self) {
        self.token.cancelled().await;
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops this daemon");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    // Cancel-safe: both arms only wait for a signal; losing the race drops a receiver, not a
    // signal that was delivered.
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "stopping"),
    }
}
