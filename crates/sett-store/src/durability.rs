//! `redis.durability: replicated`: a write others act on is confirmed by a replica before the
//! caller goes on. Redis replicates asynchronously, so a write the primary acknowledged can vanish
//! when that primary dies before its replica copied it; `WAIT 1 <ms>` on the connection that
//! made the write returns once a replica has everything that connection wrote.
//!
//! Two traps make a naive `WAIT` unsound, and both are handled here:
//! - `WAIT` counts the writes of *its own connection*. After a reconnect (a failover) the new
//!   connection has written nothing, so `WAIT` answers at once although the write may be gone.
//!   Each write notes the client's reconnect epoch first; if the epoch moved before `WAIT`
//!   answered, the write is reported unconfirmed instead of assumed.
//! - On a cluster `WAIT` has no key: it is routed to the primary owning the instance's hash slot
//!   (the one the write went to), and never retried by the client on another connection.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fred::prelude::*;
use fred::types::ClusterHash;
use fred::types::config::Options;
use sett_core::config::Durability;

use crate::{Result, Store, StoreError};

/// How long one `WAIT` blocks for a replica's acknowledgement before it is asked again.
const WAIT_MS: i64 = 500;

/// How long a write waits for a replica's confirmation before it fails. Longer than one command
/// timeout on purpose: after a failover the promoted replica has no replica of its own until the
/// old primary is back (Sentinel takes ~10-20 s to turn it into a replica), and replicated writes
/// pause meanwhile instead of failing work that would succeed a few seconds later.
pub(crate) const CONFIRM_LIMIT: Duration = Duration::from_secs(60);

/// How many times a write is made again after its connection was lost before a replica
/// confirmed it (each failover costs one).
const REWRITES: usize = 5;

impl Store {
    /// Runs `write` (an idempotent write: re-running it after it took effect changes nothing)
    /// and confirms it under `durability: replicated`. When the connection was re-established
    /// before a replica confirmed (a failover), the write may or may not have survived on the
    /// new primary, so it is made again and confirmed there. Returns the write's answer and
    /// whether it was made more than once (the caller then reads "exists" as its own write).
    pub(crate) async fn durable<T, F, Fut>(&self, mut write: F) -> Result<(T, bool)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            let epoch = self.write_epoch();
            let answer = write().await?;
            match self.confirm(epoch).await {
                Ok(()) => return Ok((answer, attempt > 0)),
                Err(StoreError::Unconfirmed(_)) if self.write_epoch() != epoch && attempt + 1 < REWRITES => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The reconnect epoch to pass to [`Store::confirm`]; read it *before* the write.
    pub(crate) fn write_epoch(&self) -> u64 {
        self.redis.epoch.load(Ordering::SeqCst)
    }

    /// Under `durability: replicated`, returns once at least one replica holds every write this
    /// connection made (so the caller's write too), retrying `WAIT` until the command timeout;
    /// otherwise [`StoreError::Unconfirmed`]. Under `fast`, returns at once.
    pub(crate) async fn confirm(&self, epoch: u64) -> Result<()> {
        if self.redis.durability == Durability::Fast {
            return Ok(());
        }
        let slot = fred::util::redis_keyslot(self.keys.prefix().as_bytes());
        let options = Options {
            cluster_hash: Some(ClusterHash::Custom(slot)),
            // A WAIT replayed on a new connection would confirm nothing: fail instead.
            max_attempts: Some(1),
            timeout: Some(Duration::from_millis(WAIT_MS as u64) + Duration::from_secs(5)),
            ..Default::default()
        };
        let limit = CONFIRM_LIMIT.max(self.redis.options.command_timeout);
        let until = Instant::now() + limit;
        let mut last_error = None;
        loop {
            let answer: std::result::Result<i64, _> = self.client().with_options(&options).wait(1, WAIT_MS).await;
            if self.write_epoch() != epoch {
                return Err(StoreError::Unconfirmed(
                    "the connection to Redis was re-established (a failover?) before a replica confirmed the write"
                        .to_owned(),
                ));
            }
            match answer {
                Ok(n) if n >= 1 => return Ok(()),
                Ok(_) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
            if Instant::now() >= until {
                return Err(StoreError::Unconfirmed(match last_error {
                    Some(e) => format!("no replica confirmed the write within {limit:?} (last error: {e})"),
                    None => format!("no replica confirmed the write within {limit:?} (is a replica connected?)"),
                }));
            }
        }
    }
}
