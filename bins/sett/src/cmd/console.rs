//! `sett console`: serves the web console until Ctrl-C / SIGTERM. Prints its URL with
//! `?token=` on stdout (the way Jupyter does); everything else is in `sett_console`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use sett_console::auth::Role;
use sett_console::{Config, Users, random_token};
use sett_core::InstanceName;

use crate::cli::{ConsoleArgs, LogFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

pub(crate) async fn run(ctx: &Ctx, args: ConsoleArgs) -> Result<ExitCode> {
    let _ = match ctx.global.log_format {
        LogFormat::Text => sett_daemon::telemetry::init_text_logs("warn"),
        LogFormat::Json => sett_daemon::telemetry::init_json_logs("sett-console"),
    };
    let mut names = Vec::new();
    for raw in &args.instances {
        names.push(InstanceName::parse(raw).map_err(|e| usage(format!("--instance: {e}")))?);
    }
    if names.is_empty()
        && let Some(n) = ctx.explicit_name()?
    {
        names.push(n);
    }
    let (users, token) = match &args.users {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the users file {}", path.display()))?;
            let users = Users::parse(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
            (users, None)
        }
        None => {
            let token = std::env::var("SETT_CONSOLE_TOKEN").ok().filter(|t| !t.is_empty()).unwrap_or_else(random_token);
            if token.len() < sett_console::auth::MIN_TOKEN_LEN {
                return Err(usage(format!(
                    "SETT_CONSOLE_TOKEN is shorter than {} characters; use e.g. 'openssl rand -hex 32'",
                    sett_console::auth::MIN_TOKEN_LEN
                )));
            }
            let operator = args.operator.clone().filter(|o| !o.trim().is_empty()).unwrap_or_else(|| ctx.operator());
            let role = if args.allow_actions { Role::Operator } else { Role::Answerer };
            (Users::single_with_role(token.clone(), operator, role), Some(token))
        }
    };
    let redis = ctx.redis().await?;
    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| {
        format!("cannot listen on {}: pick another with --addr (port 0 = any free port)", args.addr)
    })?;
    let addr = listener.local_addr()?;
    match &token {
        Some(t) => output::line(&format!("http://{addr}/?token={t}"))?,
        None => output::line(&format!(
            "http://{addr}/?token=<your token from {}>",
            args.users.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
        ))?,
    }
    if !ctx.global.quiet {
        let may = match &args.users {
            Some(_) => "each token as its role in the users file",
            None if args.allow_actions => "read, answer and act",
            None => "read + answer; actions need --allow-actions",
        };
        eprintln!("Sett console on http://{addr}/ ({may}). Stop with Ctrl-C.");
    }
    // Ctrl-C or SIGTERM stops the console.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    };
    let instances = (!names.is_empty()).then_some(names);
    // The console's own metrics (requests, refusals, answers, event streams) on GET /metrics.
    let metrics = sett_daemon::telemetry::install_metrics().ok();
    let config = Config { session_lifetime: args.session_lifetime, metrics, ..Config::new(instances, users) };
    sett_console::serve(listener, redis, config, shutdown).await;
    Ok(ExitCode::SUCCESS)
}
