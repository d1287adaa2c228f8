//! `sett-cub`: the agent runtime daemon (one per agent and instance), or, with
//! `--execute-claim <id> --seq <n>`, a worker process that executes one controller grant and
//! exits. Thin: flags and env, telemetry, the health server, signals; the work is in `sett_cub`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sett_core::config::SettConfig;
use sett_core::metrics::REDIS_RECONNECTS;
use sett_core::{AgentName, ClaimId, InstanceName};
use sett_cub::{Cub, CubSettings, RunOptions, execute_grant};
use sett_ops::health::{self, HealthState};
use sett_store::{Redis, RedisOptions, redact_url};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, Parser)]
#[command(
    name = "sett-cub",
    version,
    about = "Sett's agent runtime: bids on claims and runs the agent's tool for its grants"
)]
struct Args {
    /// The instance to serve.
    #[arg(long, env = "SETT_INSTANCE")]
    instance: String,
    /// The agent (a key under `agents:` in sett.yml).
    #[arg(long, env = "SETT_AGENT")]
    agent: String,
    /// Redis URL (`redis://`, `rediss://`, with optional `user:password@`).
    #[arg(long, env = "SETT_REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true)]
    redis_url: String,
    /// Path to sett.yml; the agent's definition is read from it.
    #[arg(long, env = "SETT_CONFIG", default_value = "sett.yml")]
    config: PathBuf,
    /// The directory tools run in [default: the config file's directory].
    #[arg(long, env = "SETT_WORKSPACE")]
    workspace: Option<PathBuf>,
    /// Address of the /healthz, /readyz and /metrics server (port 0 picks a free port).
    #[arg(long, env = "SETT_HEALTH_ADDR", default_value = "127.0.0.1:0")]
    health_addr: SocketAddr,
    /// On SIGTERM/SIGINT, how long running tools may finish before they are killed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// Worker mode: execute this claim's grant `--seq` once and exit (0 = the tool succeeded).
    #[arg(long, value_name = "CLAIM_ID", requires = "seq")]
    execute_claim: Option<String>,
    /// The grant's sequence number (worker mode).
    #[arg(long, requires = "execute_claim")]
    seq: Option<u64>,
}

/// Everything validated before logging starts.
struct Setup {
    instance: InstanceName,
    settings: CubSettings,
    redis_url: String,
    worker: Option<(ClaimId, u64)>,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            // Logging may not be up: stderr is the one place a failure can always be told.
            report(&format!("sett-cub: {e:#}"));
            ExitCode::from(1)
        }
    }
}

#[allow(clippy::print_stderr)]
fn report(message: &str) {
    eprintln!("{message}");
}

fn run() -> anyhow::Result<ExitCode> {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            // --help / --version.
            let _ = e.print();
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(1));
        }
    };
    let setup = configure(&args)?;
    // Every line names its instance and component (`cub:<agent>`, or `worker:<agent>` for a
    // controller's worker), even outside the cub's spans.
    let role = if setup.worker.is_some() { "worker" } else { "cub" };
    let component = format!("{role}:{}", setup.settings.agent.name);
    sett_ops::telemetry::init_json_logs_with(
        "cub",
        &[("instance", setup.instance.as_str()), ("component", &component)],
    )
    .context("cannot start logging")?;
    // One thread: a cub waits on Redis and on its tools' pipes; a single-threaded runtime
    // avoids cross-thread wake-ups on every round trip (lower latency, near-zero idle cost).
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let span = tracing::info_span!("sett-cub", instance = %setup.instance, agent = %setup.settings.agent.name);
    let code = runtime.block_on(
        async {
            let result = match setup.worker {
                Some((claim, seq)) => worker(&setup, claim, seq, args.grace).await,
                None => daemon(&setup, &args).await,
            };
            result.unwrap_or_else(|e| {
                tracing::error!(error = format!("{e:#}"), "sett-cub failed");
                ExitCode::from(1)
            })
        }
        .instrument(span),
    );
    // Tool processes are already reaped; do not wait for stray blocking tasks.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(code)
}

/// Reads and checks everything the operator configured.
fn configure(args: &Args) -> anyhow::Result<Setup> {
    let instance =
        InstanceName::parse(&args.instance).with_context(|| format!("invalid --instance {:?}", args.instance))?;
    let agent_name = AgentName::parse(&args.agent).with_context(|| format!("invalid --agent {:?}", args.agent))?;
    let text = std::fs::read_to_string(&args.config).with_context(|| {
        format!("cannot read the configuration {} (pass --config or set SETT_CONFIG)", args.config.display())
    })?;
    let config = SettConfig::parse(&args.config.display().to_string(), &text)?;
    let Some(agent) = config.agents.get(&agent_name).cloned() else {
        let known: Vec<&str> = config.agents.keys().map(AgentName::as_str).collect();
        anyhow::bail!(
            "agent '{agent_name}' is not defined in {} (defined: {}); fix --agent / SETT_AGENT",
            args.config.display(),
            known.join(", ")
        );
    };
    let workspace = match &args.workspace {
        Some(w) => w.clone(),
        None => config_dir(&args.config),
    };
    let workspace = workspace.canonicalize().with_context(|| {
        format!("the workspace {} does not exist (pass --workspace or set SETT_WORKSPACE)", workspace.display())
    })?;
    anyhow::ensure!(workspace.is_dir(), "the workspace {} is not a directory", workspace.display());
    let worker = match (&args.execute_claim, args.seq) {
        (Some(c), Some(seq)) => {
            let claim = ClaimId::parse(c)
                .with_context(|| format!("invalid --execute-claim {c:?}: expected a claim id (UUID)"))?;
            Some((claim, seq))
        }
        _ => None,
    };
    let mut settings = CubSettings::new(agent, workspace);
    settings.redis_url = Some(args.redis_url.clone());
    settings.worker_mode = worker.is_some();
    Ok(Setup { instance, settings, redis_url: args.redis_url.clone(), worker })
}

fn config_dir(config: &Path) -> PathBuf {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

async fn connect(setup: &Setup) -> anyhow::Result<Redis> {
    // A cub or worker started during a short Redis outage or restart waits for it.
    let redis = Redis::connect_retrying(RedisOptions::new(setup.redis_url.clone()), Duration::from_secs(30)).await?;
    redis.on_reconnect(|| {
        metrics::counter!(REDIS_RECONNECTS, "component" => "cub").increment(1);
        tracing::warn!("reconnected to Redis");
    });
    Ok(redis)
}

/// Resolves on the first SIGTERM or SIGINT.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops the cub");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "stopping"),
    }
}

async fn daemon(setup: &Setup, args: &Args) -> anyhow::Result<ExitCode> {
    let metrics = sett_ops::telemetry::install_metrics()?;
    tracing::info!(redis = %redact_url(&setup.redis_url), workspace = %setup.settings.workspace.display(), "starting");
    let redis = connect(setup).await?;
    let store = redis.instance(&setup.instance);
    let (listener, addr) = health::bind(args.health_addr)
        .await
        .with_context(|| format!("cannot listen on {} (change --health-addr / SETT_HEALTH_ADDR)", args.health_addr))?;
    let ready = Arc::new(AtomicBool::new(false));
    let http_stop = CancellationToken::new();
    let state = HealthState {
        component: format!("cub:{}", setup.settings.agent.name),
        instance: setup.instance.to_string(),
        redis: redis.clone(),
        ready: ready.clone(),
        metrics: Some(metrics),
    };
    let http = tokio::spawn(health::serve(listener, state, http_stop.clone()));
    tracing::info!(health_addr = %addr, "health server listening");

    let shutdown = CancellationToken::new();
    let signals = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            terminated().await;
            shutdown.cancel();
        }
    });
    let mut options = RunOptions::new(shutdown);
    options.grace = args.grace;
    options.ready = ready;
    options.health_addr = Some(addr);
    let result = Cub::new(store, setup.settings.clone()).run(options).await;
    signals.abort();
    http_stop.cancel();
    let _ = http.await;
    redis.quit().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn worker(setup: &Setup, claim: ClaimId, seq: u64, grace: Duration) -> anyhow::Result<ExitCode> {
    let span = tracing::info_span!("worker", claim_id = %claim, seq);
    execute_one(setup, claim, seq, grace).instrument(span).await
}

async fn execute_one(setup: &Setup, claim: ClaimId, seq: u64, grace: Duration) -> anyhow::Result<ExitCode> {
    tracing::info!(redis = %redact_url(&setup.redis_url), workspace = %setup.settings.workspace.display(), "executing one grant");
    let redis = connect(setup).await?;
    let store = redis.instance(&setup.instance);
    // A signal gives the running tool the grace period, then kills its process group (the
    // Failure is still written).
    let kill = CancellationToken::new();
    let signals = tokio::spawn({
        let kill = kill.clone();
        async move {
            terminated().await;
            tracing::info!(grace = ?grace, "letting the tool finish within the grace period");
            tokio::time::sleep(grace).await;
            kill.cancel();
        }
    });
    let outcome = execute_grant(&store, &setup.settings, claim, seq, kill).await;
    signals.abort();
    redis.quit().await;
    let outcome = outcome?;
    tracing::info!(?outcome, "worker done");
    Ok(ExitCode::from(outcome.exit_code()))
}
