//! `sett-cub`: the agent runtime daemon (one per agent and instance), or, with
//! `--execute-claim <id> --seq <n>`, a worker process that executes one controller grant and
//! exits. Thin: its own flags and wiring; the shell (logging, Redis, health server, signals) is
//! `sett_daemon::daemon`, the work is in `sett_cub`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Parser;
use sett_core::{AgentName, ClaimId, InstanceName};
use sett_cub::{Cub, CubSettings, RunOptions, execute_grant_stoppable, stop_when_cancelled};
use sett_daemon::daemon::{Daemon, DaemonArgs, Identity, run_daemon};
use sett_ops::ledger_watch::LedgerWatch;
use sett_store::redact_url;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// mimalloc instead of glibc's malloc, as in the orchestrator: a cub decodes and encodes many
/// small short-lived strings per event (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "sett-cub",
    version,
    about = "Sett's agent runtime: bids on claims and runs the agent's tool for its grants"
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// The agent (a key under `agents:` in sett.yml).
    #[arg(long, env = "SETT_AGENT")]
    agent: String,
    /// Worker mode: execute this claim's grant `--seq` once and exit (0 = the tool succeeded).
    #[arg(long, value_name = "CLAIM_ID", requires = "seq")]
    execute_claim: Option<String>,
    /// The grant's sequence number (worker mode).
    #[arg(long, requires = "execute_claim")]
    seq: Option<u64>,
}

/// Everything validated before logging starts.
struct Setup {
    args: DaemonArgs,
    instance: InstanceName,
    settings: CubSettings,
    redis_config: sett_core::config::RedisConfig,
    worker: Option<(ClaimId, u64)>,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            // --help / --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(sett_daemon::daemon::EXIT_FAILED);
        }
    };
    let setup = match configure(args) {
        Ok(s) => s,
        Err(e) => return fail_before_logging("sett-cub", &e),
    };
    // `cub:<agent>`, or `worker:<agent>` for a controller's worker.
    let role = if setup.worker.is_some() { "worker" } else { "cub" };
    let identity = Identity {
        service: "cub",
        component: format!("{role}:{}", setup.settings.agent.name),
        instance: setup.instance.to_string(),
    };
    run_daemon(identity, |daemon| {
        // Created here, after logging started (a span made before is disabled).
        let span = tracing::info_span!("sett-cub", agent = %setup.settings.agent.name);
        async move {
            match setup.worker {
                Some((claim, seq)) => {
                    let span = tracing::info_span!("worker", claim_id = %claim, seq);
                    execute_one(&daemon, &setup, claim, seq).instrument(span).await
                }
                None => serve(&daemon, &setup).await,
            }
        }
        .instrument(span)
    })
    .unwrap_or_else(|e| fail_before_logging("sett-cub", &format!("cannot start logging: {e}")))
}

/// Reads and checks everything the operator configured.
fn configure(args: Args) -> anyhow::Result<Setup> {
    let instance = args.daemon.instance_name()?;
    let agent_name = AgentName::parse(&args.agent).with_context(|| format!("invalid --agent {:?}", args.agent))?;
    let config = args.daemon.load_config()?;
    let Some(agent) = config.agents.get(&agent_name).cloned() else {
        let known: Vec<&str> = config.agents.keys().map(AgentName::as_str).collect();
        anyhow::bail!(
            "agent '{agent_name}' is not defined in {} (defined: {}); fix --agent / SETT_AGENT",
            args.daemon.config.display(),
            known.join(", ")
        );
    };
    let workspace = args.daemon.workspace_dir()?;
    let worker = match (&args.execute_claim, args.seq) {
        (Some(c), Some(seq)) => {
            let claim = ClaimId::parse(c)
                .with_context(|| format!("invalid --execute-claim {c:?}: expected a claim id (UUID)"))?;
            Some((claim, seq))
        }
        _ => None,
    };
    let mut settings = CubSettings::new(agent, workspace);
    settings.redis_url = Some(args.daemon.redis_url.clone());
    settings.worker_mode = worker.is_some();
    settings.traces = sett_daemon::otel::enabled_by(|name| std::env::var(name).ok());
    Ok(Setup { args: args.daemon, instance, settings, redis_config: config.redis, worker })
}

async fn serve(daemon: &Daemon, setup: &Setup) -> anyhow::Result<ExitCode> {
    tracing::info!(redis = %redact_url(&setup.args.redis_url), workspace = %setup.settings.workspace.display(), "starting");
    let redis = daemon.connect(&setup.args.redis_url).await?.with_configured_durability(&setup.redis_config);
    let store = redis.instance(&setup.instance);
    let ready = Arc::new(AtomicBool::new(false));
    let listener = daemon.bind_health(setup.args.health_addr).await?;
    let addr = listener.addr();
    let health = listener.serve(&redis, ready.clone());
    let signals = daemon.stop_signal();
    let mut options = RunOptions::new(signals.token());
    options.grace = setup.args.grace;
    options.ready = ready;
    options.health_addr = Some(addr);
    // This cub's own check of the ledger head (in memory: the orchestrator keeps one outside
    // Redis); it stops with the cub.
    let watch_stop = signals.token().child_token();
    let component = sett_core::record::cub_component(&setup.settings.agent.name);
    let watch = tokio::spawn(LedgerWatch::new(store.clone(), component).run(watch_stop.clone(), None));
    let result = Cub::new(store, setup.settings.clone()).run(options).await;
    watch_stop.cancel();
    let _ = watch.await;
    drop(signals);
    health.stop().await;
    redis.quit().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn execute_one(daemon: &Daemon, setup: &Setup, claim: ClaimId, seq: u64) -> anyhow::Result<ExitCode> {
    tracing::info!(redis = %redact_url(&setup.args.redis_url), workspace = %setup.settings.workspace.display(), "executing one grant");
    let redis = daemon.connect(&setup.args.redis_url).await?.with_configured_durability(&setup.redis_config);
    let store = redis.instance(&setup.instance);
    // A signal gives the running tool the grace period, then kills its process group (the
    // Failure is still written).
    let signals = daemon.stop_signal();
    let kill = CancellationToken::new();
    let grace = setup.args.grace;
    let killer = tokio::spawn({
        let kill = kill.clone();
        let stop = signals.token();
        async move {
            stop.cancelled().await;
            tracing::info!(grace = ?grace, "letting the tool finish within the grace period");
            tokio::time::sleep(grace).await;
            kill.cancel();
        }
    });
    // A worker reads no event stream: it asks whether its workflow was cancelled.
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(stop_when_cancelled(store.clone(), claim, stop.clone()));
    let outcome = execute_grant_stoppable(&store, &setup.settings, claim, seq, kill, stop).await;
    watcher.abort();
    killer.abort();
    drop(signals);
    redis.quit().await;
    let outcome = outcome?;
    tracing::info!(?outcome, "worker done");
    Ok(ExitCode::from(outcome.exit_code()))
}

/// Tells a failure that happened before logging could start (bad flags or configuration, or
/// logging itself): stderr is the one place it can always be told.
#[allow(clippy::print_stderr)]
fn fail_before_logging(binary: &str, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{binary}: {error:#}");
    ExitCode::from(sett_daemon::daemon::EXIT_FAILED)
}
