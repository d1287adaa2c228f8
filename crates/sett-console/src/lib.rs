//! The operator console: a read + answer web UI and JSON API over one Redis (`sett console`),
//! served by axum from one route table (`routes`). Pages are maud templates rendered on the
//! server (`html`, `graph`; escaped by default) by the page handlers (`pages`); the JSON API is
//! `api` and `actions`; data comes from the blackboard (`data`); access is by token (`auth`,
//! `access`, `csrf`), and pages follow the ledger live over server-sent events (`live`). The
//! service takes a bound listener and a shutdown future, so tests bind port 0. It never
//! destroys, stops or imports anything.

mod access;
mod actions;
mod api;
mod app;
pub mod auth;
mod csrf;
pub mod data;
pub mod graph;
pub mod html;
mod ledger;
pub mod live;
mod pages;
mod respond;
mod routes;

use std::sync::Arc;

use sett_core::InstanceName;
use sett_store::Redis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use api::MAX_ANSWER_BYTES;
pub use auth::{Clock, SESSION_LIFETIME, Users, UsersError, random_token, system_clock};

/// What a console serves, and to whom.
#[derive(Clone)]
pub struct Config {
    /// The instances shown; `None` shows every instance registered in the Redis.
    pub instances: Option<Vec<InstanceName>>,
    /// The accepted tokens and the operator name each answers as.
    pub users: Users,
    /// How long a browser session lasts (absolute, from the token exchange).
    pub session_lifetime: std::time::Duration,
    /// The clock sessions expire by (tests inject one).
    pub clock: Clock,
    /// The process's Prometheus recorder, served on `GET /metrics`; `None`: 404 there.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Config {
    /// The defaults: sessions of [`SESSION_LIFETIME`] on the system clock.
    pub fn new(instances: Option<Vec<InstanceName>>, users: Users) -> Self {
        Self { instances, users, session_lifetime: SESSION_LIFETIME, clock: system_clock(), metrics: None }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("instances", &self.instances)
            .field("users", &self.users)
            .field("session_lifetime", &self.session_lifetime)
            .finish_non_exhaustive()
    }
}

/// Serves the console on `listener` until `shutdown` completes (the CLI: a signal; tests: a
/// token's `cancelled_owned()`), then lets open requests finish for a moment; event streams end
/// at once.
pub async fn serve(
    listener: TcpListener,
    redis: Redis,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    // One token inside: the event hubs, the live streams and the ledger watch stop with it.
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    let signal = tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let app = Arc::new(app::App::new(redis, config, stop.clone()));
    let watch = tokio::spawn(ledger::watch(app.clone(), stop.clone()));
    routes::serve(listener, app, stop).await;
    watch.abort();
    signal.abort();
}
