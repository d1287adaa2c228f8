//! The operator console: a read + answer web UI and JSON API over one Redis (`sett console`).
//! Pages are rendered on the server (`html`, `graph`), data comes from the blackboard (`data`),
//! access is by token (`auth`), and pages follow the ledger live over server-sent events
//! (`live`). The service takes a bound listener and a shutdown token, so tests bind port 0.
//! It never destroys, stops or imports anything.

pub mod auth;
pub mod data;
pub mod graph;
pub mod html;
pub mod live;
mod server;

use std::sync::Arc;

use sett_core::InstanceName;
use sett_store::Redis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{Users, UsersError, random_token};
pub use server::MAX_ANSWER_BYTES;

/// What a console serves, and to whom.
#[derive(Debug, Clone)]
pub struct Config {
    /// The instances shown; `None` shows every instance registered in the Redis.
    pub instances: Option<Vec<InstanceName>>,
    /// The accepted tokens and the operator name each answers as.
    pub users: Users,
}

/// Serves the console on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, redis: Redis, config: Config, shutdown: CancellationToken) {
    let app = Arc::new(server::App::new(redis, config, shutdown.clone()));
    server::serve(listener, app, shutdown).await;
}
