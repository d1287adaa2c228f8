//! `sett mcp`: serves the MCP server over stdio (nothing else is written to stdout: it carries
//! the protocol) or, with `--http`, over streamable HTTP until Ctrl-C / SIGTERM, printing its
//! URL (and a generated token) on stdout. Everything else is in `sett_mcp`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use sett_console::auth::Role;
use sett_console::{Users, random_token};
use tokio_util::sync::CancellationToken;

use crate::cli::{LogFormat, McpArgs, OutputFormat};
use crate::ctx::{Ctx, usage};
use crate::output;

/// Cancels `token` on Ctrl-C or SIGTERM.
fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        token.cancel();
    });
}

pub(crate) async fn run(ctx: &Ctx, args: McpArgs) -> Result<ExitCode> {
    // Logs go to stderr: over stdio, stdout is the protocol.
    let _ = match ctx.global.log_format {
        LogFormat::Text => sett_daemon::telemetry::init_text_logs("warn"),
        LogFormat::Json => sett_daemon::telemetry::init_json_logs("sett-mcp"),
    };
    let operator = args.operator.clone().filter(|o| !o.trim().is_empty()).unwrap_or_else(|| ctx.operator());
    let config = sett_mcp::Config {
        operator: operator.clone(),
        allow_answers: args.allow_answers,
        allow_actions: args.allow_actions,
    };
    let store = ctx.store().await?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let Some(addr) = args.http else {
        sett_mcp::serve_stdio(store, config, shutdown).await?;
        return Ok(ExitCode::SUCCESS);
    };
    let (users, token) = match &args.users {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the users file {}", path.display()))?;
            (Users::parse(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?, None)
        }
        None => {
            let given = std::env::var("SETT_MCP_TOKEN").ok().filter(|t| !t.is_empty());
            let token = given.clone().unwrap_or_else(random_token);
            if token.len() < sett_console::auth::MIN_TOKEN_LEN {
                return Err(usage(format!(
                    "SETT_MCP_TOKEN is shorter than {} characters; use e.g. 'openssl rand -hex 32'",
                    sett_console::auth::MIN_TOKEN_LEN
                )));
            }
            // The one token may do whatever the server's --allow-* flags allow.
            (Users::single_with_role(token.clone(), operator, Role::Operator), given.is_none().then_some(token))
        }
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}: pick another with --http (port 0 = any free port)"))?;
    let local = listener.local_addr()?;
    let url = format!("http://{local}{}", sett_mcp::MCP_PATH);
    match ctx.output() {
        OutputFormat::Json | OutputFormat::Jsonl => {
            output::jsonl(&serde_json::json!({"url": url, "token": token, "instance": store.instance()}))?
        }
        OutputFormat::Table => {
            output::line(&url)?;
            if let Some(t) = &token {
                output::line(&format!("token {t}"))?;
            }
        }
    }
    if !ctx.global.quiet {
        eprintln!(
            "Sett MCP server for instance '{}' on {url} ({}). Clients send 'Authorization: Bearer <token>'. Stop with Ctrl-C.",
            store.instance(),
            match (args.allow_answers, args.allow_actions) {
                (false, false) => "read-only: answering needs --allow-answers, forage --allow-actions",
                (true, false) => "answers allowed; forage needs --allow-actions",
                (false, true) => "forage allowed; answering needs --allow-answers",
                (true, true) => "answers and forage allowed",
            }
        );
    }
    sett_mcp::serve_http(listener, store, config, users, shutdown).await;
    Ok(ExitCode::SUCCESS)
}
