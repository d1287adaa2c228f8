//! The MCP server (`sett mcp`): Sett's operations as Model Context Protocol tools and resources
//! for LLM applications, on the official Rust SDK (`rmcp`), over stdio (a desktop client
//! launches it) or streamable HTTP (loopback by default, bearer tokens under the console's
//! rules). The tools call the library functions the CLI and the console use (`sett_ops`,
//! `sett_console::data`); the server is read-only unless started with `allow_answers`
//! (answering questions) or `allow_actions` (starting workflows). This crate never prints.

mod follow;
mod http;
mod server;
pub mod views;

use std::sync::Arc;

use sett_store::Store;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use follow::QuestionEvent;
pub use http::MCP_PATH;
pub use server::SettMcp;

/// The largest answer accepted, in bytes (the console's limit).
pub const MAX_ANSWER_BYTES: usize = sett_console::MAX_ANSWER_BYTES;

/// How many question events a slow session may fall behind before it is told "changed".
const FAN_OUT: usize = 256;

/// What a server may do, and as whom.
#[derive(Debug, Clone)]
pub struct Config {
    /// Who answers are recorded under (stdio, and HTTP with a single token).
    pub operator: String,
    /// Whether the `answer_question` tool writes answers (otherwise it refuses, saying how to
    /// allow it).
    pub allow_answers: bool,
    /// Whether the tools that start or change workflows act (`forage`, `cancel_workflow`);
    /// otherwise they refuse, saying how to allow them.
    pub allow_actions: bool,
}

/// The user an HTTP request's token belongs to (name and role); put into the request's
/// extensions by the token check and read by the tools that write (answers are recorded under
/// the name; the role limits what the token may do, under the server's own `allow_*` flags).
#[derive(Debug, Clone)]
pub(crate) struct Operator(pub(crate) sett_console::auth::User);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("the MCP session could not start: {0}")]
    Start(String),
    #[error("the MCP session ended with an error: {0}")]
    Session(String),
}

fn shared(store: Store, config: Config, shutdown: &CancellationToken) -> Arc<server::Shared> {
    let (questions, _) = broadcast::channel(FAN_OUT);
    tokio::spawn(follow::follow_questions(store.clone(), questions.clone(), shutdown.child_token()));
    Arc::new(server::Shared { store, config, questions, shutdown: shutdown.clone() })
}

/// Serves one client over stdin/stdout until it disconnects or `shutdown` is cancelled.
pub async fn serve_stdio(store: Store, config: Config, shutdown: CancellationToken) -> Result<(), McpError> {
    use rmcp::ServiceExt;
    let handler = SettMcp::new(shared(store, config, &shutdown));
    let running = handler
        .serve_with_ct(rmcp::transport::stdio(), shutdown.child_token())
        .await
        .map_err(|e| McpError::Start(e.to_string()))?;
    let quit = running.waiting().await.map_err(|e| McpError::Session(e.to_string()));
    shutdown.cancel();
    quit.map(|_| ())
}

/// Serves streamable HTTP on `listener` (path `/mcp`) until `shutdown` is cancelled. Every
/// request needs `Authorization: Bearer <token>` with a token of `users`; its operator is who
/// answers are recorded under, and its role (`viewer`, `answerer`, `operator`) what it may do
/// of what the server allows.
pub async fn serve_http(
    listener: TcpListener,
    store: Store,
    config: Config,
    users: sett_console::Users,
    shutdown: CancellationToken,
) {
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let shared = shared(store, config, &shutdown);
    http::serve(listener, shared, users, loopback, shutdown).await;
}
