//! The Redis blackboard: the only crate that knows key names. It offers typed, atomic operations
//! (Lua scripts kept as files under `lua/`), the durable event stream, the instance lock, the
//! instance registry and scan-based deletion. It knows nothing about processes, HTTP or the CLI.
//!
//! Layout:
//! - [`keys`]: every key template (`sett:{<instance>}:…`).
//! - [`codec`]: hash encoding of artifacts and claims.
//! - [`context`]: the context chain of an artifact (what a tool is given, what an approver sees).
//! - [`driver`]: the one event-consumer driver and retry policy of every daemon.
//! - `dump`: one record of an export ([`Dump`], typed by Redis type), read and written in the
//!   `sett export` line format.
//! - [`Redis`]: one connection (with reconnect policy and command timeouts) shared by instances.
//! - [`Store`]: one instance's operations, split over `artifacts`, `claims`, `events`,
//!   `consumer` (consumer groups: [`GroupConsumer`]), `lock`, `questions`, `workers`, `notify`,
//!   `scan` and `registry`.

mod archive;
pub mod codec;
pub mod context;
pub mod keys;

mod artifacts;
mod budget;
mod cancel;
mod claims;
mod consumer;
pub mod driver;
mod dump;
mod durability;
mod events;
mod ledger;
mod lock;
mod notify;
mod pause;
mod presence;
mod purge;
mod questions;
mod registry;
mod regressions;
mod replication;
mod retry;
mod scan;
mod scripts;
pub mod time;
mod workers;

use std::time::Duration;

use fred::prelude::*;
use fred::types::config::ReconnectPolicy;
use sett_core::InstanceName;

pub use archive::{ArchivedRecord, TrimFloor, WorkflowMembers, WorkflowSnapshot, parse_stream_id};
pub use artifacts::{AnswerRecord, CreateOutcome};
pub use cancel::{CancelOutcome, CancelRecord, Fenced, WorkflowCancel};
pub use claims::{OutboxEntry, QuestionOp, StandingBids, WriteOutcome};
pub use consumer::{BatchedAcks, GroupAcks, GroupConsumer, GroupStart};
pub use driver::{CancellableSleep, ConsumerDriver, Redeliver, backoff};
pub use dump::{Dump, DumpValue, StreamChunk, StreamGroup};
pub use events::{EntryPages, EventReader, LedgerEntry, MalformedEvent, ledger_entry};
pub use keys::{Keys, RelativeKey};
pub use ledger::SourceState;
pub use lock::{LockHolder, LockPurpose};
pub use notify::{DeliveryRecord, DeliveryStatus, EndpointState, NewDelivery};
pub use pause::{ActionRecord, PauseOutcome, PauseRecord, PauseScope, PauseWrite, ResumeOutcome, ResumeWrite};
pub use presence::{Bell, Presence, RungGrant};
pub use purge::KeyIndexing;
pub use questions::OpenQuestionRef;
pub use registry::{AuditEntry, InstanceRecord, InstanceStatus, RegisteredRuntime};
pub use replication::{ReplicaState, ReplicationState, url_has_replicas};
pub use retry::{RetryOutcome, RetryWrite};
pub use scan::FamilyCounts;
pub use time::now_ms;
pub use workers::{WorkerOffer, WorkerRecord, parse_worker_grant_key, worker_grant_key};

/// Everything that can go wrong talking to the blackboard.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach Redis at {url}: {source} (is redis-server running? check --redis-url / SETT_REDIS_URL)")]
    Connect { url: String, source: fred::error::Error },
    #[error("Redis command failed: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("corrupt record in Redis: {0}")]
    Decode(String),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Conflict(String),
    /// `durability: replicated` could not confirm a write on a replica; it may or may not
    /// survive a failover, so the caller retries (writes are idempotent) or reports it.
    #[error(
        "write not confirmed by a replica: {0} (durability: replicated needs a connected replica; check the primary's INFO replication, or set redis.durability: fast)"
    )]
    Unconfirmed(String),
}

impl StoreError {
    /// Whether Redis itself failed (unreachable, an error reply, no answer in time), as opposed
    /// to a refused write or a record that does not decode: what `sett_redis_errors_total`
    /// counts.
    pub fn is_redis(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Redis(_) | Self::Timeout(_))
    }

    /// Whether the same call may succeed later (Redis unreachable, failing over, or a write a
    /// replica has not confirmed yet), as opposed to a refused write or a corrupt record: what a
    /// caller whose calls are idempotent retries instead of giving up on its work.
    pub fn is_transient(&self) -> bool {
        self.is_redis() || matches!(self, Self::Unconfirmed(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How to connect. `Debug` redacts the URL's password.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://`, `rediss://` (TLS), with optional `user:password@` (ACL),
    /// `redis+unix:///path/to/redis.sock` (a Redis on this host, by its Unix socket), or
    /// `redis-cluster://` / `redis-sentinel://`.
    pub url: String,
    /// Per-command timeout; a command that takes longer fails instead of hanging.
    pub command_timeout: Duration,
    /// Unknown hash fields are errors (tests) instead of warnings (production).
    pub strict_decoding: bool,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact_url(&self.url))
            .field("command_timeout", &self.command_timeout)
            .field("strict_decoding", &self.strict_decoding)
            .finish()
    }
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), command_timeout: Duration::from_secs(10), strict_decoding: false }
    }
}

/// A Redis connection shared by every instance it serves. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: Client,
    options: RedisOptions,
    durability: sett_core::config::Durability,
    /// Reconnections so far (see `durability.rs`: a `WAIT` after a reconnect proves nothing).
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the URL: it may carry a password.
        f.debug_struct("Redis").field("url", &redact_url(&self.options.url)).finish()
    }
}

/// Whether `url` reaches Redis by a Unix socket (`redis+unix:///path`): only processes on the
/// same host (and outside containers that do not mount the socket) can use it.
pub fn is_unix_socket_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| scheme.ends_with("+unix"))
}

/// `redis://user:secret@host` → `redis://user:***@host`, for messages and logs. Query
/// parameters naming a password (e.g. `sentinelPassword=`) are masked too. When the URL is
/// ambiguous (an `@` after the `?`, i.e. unencoded characters in a password) everything after
/// the scheme is hidden: redaction may hide too much, never too little.
pub fn redact_url(url: &str) -> String {
    let Some((main, query)) = url.split_once('?') else {
        return redact_userinfo(url);
    };
    if query.contains('@') {
        return match url.find("://") {
            Some(s) => format!("{}***", &url[..s + 3]),
            None => "***".to_owned(),
        };
    }
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("pass") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{}?{}", redact_userinfo(main), params.join("&"))
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            if creds.contains(':') {
                format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
            } else {
                format!("{}***{}", &url[..s + 3], &url[at..])
            }
        }
        _ => url.to_owned(),
    }
}

fn builder(options: &RedisOptions, command_timeout: Duration) -> Result<Builder> {
    let config = Config::from_url(&options.url)
        .map_err(|source| StoreError::Connect { url: redact_url(&options.url), source })?;
    let mut b = Builder::from_config(config);
    // fred never reconnects without a policy: retry forever, 100 ms doubling up to 2 s.
    b.set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
    b.with_connection_config(|c| {
        c.connection_timeout = Duration::from_secs(5);
        c.internal_command_timeout = Duration::from_secs(5);
        c.max_command_attempts = 3;
    });
    b.with_performance_config(|p| {
        p.default_command_timeout = command_timeout;
    });
    Ok(b)
}

impl Redis {
    /// Connects and verifies the server answers.
    pub async fn connect(options: RedisOptions) -> Result<Self> {
        let client = builder(&options, options.command_timeout)?
            .build()
            .map_err(|source| StoreError::Connect { url: redact_url(&options.url), source })?;
        client.init().await.map_err(|source| StoreError::Connect { url: redact_url(&options.url), source })?;
        let epoch = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        // Any event after which a `WAIT` may be answered by another connection or node than the
        // one the write went to moves the epoch: a reconnection, a lost connection, and a change
        // of the cluster's slot map (the slot's primary changed: fred routes the keyless `WAIT`
        // to the new one, which never saw the write, without reconnecting anything).
        let (mut reconnects, mut errors, mut changes) =
            (client.reconnect_rx(), client.error_rx(), client.cluster_change_rx());
        let counter = epoch.clone();
        tokio::spawn(async move {
            // A lagging receiver missed events, which is still an event; a closed one means the
            // client is gone.
            fn open<T>(r: &std::result::Result<T, tokio::sync::broadcast::error::RecvError>) -> bool {
                !matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed))
            }
            loop {
                let alive = tokio::select! {
                    r = reconnects.recv() => open(&r),
                    r = errors.recv() => open(&r),
                    r = changes.recv() => open(&r),
                };
                if !alive {
                    return;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Ok(Self { client, options, durability: Default::default(), epoch })
    }

    /// The same connection with `redis.durability` from `sett.yml` applied to every store.
    pub fn with_durability(mut self, durability: sett_core::config::Durability) -> Self {
        self.durability = durability;
        self
    }

    pub fn durability(&self) -> sett_core::config::Durability {
        self.durability
    }

    /// Like [`Redis::connect`], retrying for up to `limit` while Redis is unreachable or still
    /// loading its data (a restart), so a component started during a short outage (e.g. a
    /// controller's worker) waits instead of failing its grant. Authentication and
    /// configuration errors are returned at once.
    pub async fn connect_retrying(options: RedisOptions, limit: Duration) -> Result<Self> {
        let until = std::time::Instant::now() + limit;
        let mut pause = Duration::from_millis(100);
        loop {
            match Self::connect(options.clone()).await {
                Err(StoreError::Connect { source, .. })
                    if is_transient(&source) && std::time::Instant::now() + pause < until =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// A second, dedicated connection for blocking reads (a blocked connection serves nobody
    /// else), without a command timeout: callers bound each blocking call themselves.
    pub(crate) async fn dedicated(&self) -> Result<Client> {
        let client = builder(&self.options, Duration::ZERO)?.build()?;
        client.init().await.map_err(|source| StoreError::Connect { url: redact_url(&self.options.url), source })?;
        Ok(client)
    }

    /// A connection of its own for Pub/Sub subscriptions, subscribed again after each
    /// reconnection (presence.rs).
    pub(crate) async fn subscriber(&self) -> Result<fred::clients::SubscriberClient> {
        let client = builder(&self.options, Duration::ZERO)?.build_subscriber_client()?;
        client.init().await.map_err(|source| StoreError::Connect { url: redact_url(&self.options.url), source })?;
        Ok(client)
    }

    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The store for one instance.
    pub fn instance(&self, name: &InstanceName) -> Store {
        Store { redis: self.clone(), instance: name.clone(), keys: Keys::new(name), known_hashes: Default::default() }
    }

    /// PINGs Redis within `bound`; returns the round-trip time.
    pub async fn ping(&self, bound: Duration) -> Result<Duration> {
        let started = std::time::Instant::now();
        match tokio::time::timeout(bound, self.client.ping::<String>(None)).await {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Timeout(bound)),
        }
    }

    /// Whether the connection is up right now (false while fred is reconnecting), so a health
    /// check can answer at once instead of waiting for a PING that cannot succeed.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Registers a callback for every reconnection (for metrics and logs).
    pub fn on_reconnect<F>(&self, f: F)
    where
        F: Fn() + Send + 'static,
    {
        let mut rx = self.client.reconnect_rx();
        tokio::spawn(async move {
            while rx.recv().await.is_ok() {
                f();
            }
        });
    }

    pub async fn quit(&self) {
        let _ = self.client.quit().await;
    }
}

/// Errors worth retrying a connection for: the server is down, restarting or loading.
fn is_transient(e: &fred::error::Error) -> bool {
    use fred::error::ErrorKind;
    matches!(e.kind(), ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled)
        || e.details().contains("LOADING")
        || e.details().contains("Connection refused")
}

/// One instance's view of the blackboard. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    redis: Redis,
    instance: InstanceName,
    keys: Keys,
    /// Ledger hashes of artifacts this store read or wrote (shared by its clones): a source's
    /// hash is not read again before an artifact that cites it is written.
    known_hashes: std::sync::Arc<artifacts::KnownHashes>,
}

impl Store {
    pub fn instance(&self) -> &InstanceName {
        &self.instance
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    fn client(&self) -> &Client {
        self.redis.client()
    }

    fn strict(&self) -> bool {
        self.redis.options.strict_decoding
    }
}

/// A new time-ordered (UUID v7) artifact id. Ids are minted here, not in sett-core, which reads
/// no clock and no randomness.
pub fn new_artifact_id() -> sett_core::ArtifactId {
    sett_core::ArtifactId::from_uuid(uuid::Uuid::now_v7())
}

/// A new time-ordered (UUID v7) claim id (see [`new_artifact_id`]).
pub fn new_claim_id() -> sett_core::ClaimId {
    sett_core::ClaimId::from_uuid(uuid::Uuid::now_v7())
}

#[cfg(test)]
mod tests {
    use super::{is_unix_socket_url, redact_url};

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("redis://u:secret@h:6379/0"), "redis://u:***@h:6379/0");
        assert_eq!(redact_url("rediss://:secret@h"), "rediss://:***@h");
        assert_eq!(redact_url("redis://token@h"), "redis://***@h");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact_url("redis+unix://u:secret@h/run/redis.sock"), "redis+unix://u:***@h/run/redis.sock");
        assert!(is_unix_socket_url("redis+unix:///run/redis.sock") && is_unix_socket_url("valkey+unix:///r.sock"));
        assert!(!is_unix_socket_url("redis://127.0.0.1:6379") && !is_unix_socket_url("/run/redis.sock"));
    }
}
