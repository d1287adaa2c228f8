//! The one event-consumer driver and the one retry policy. The orchestrator, every cub and the
//! notifier read the event stream through a [`ConsumerDriver`], so delivery and failure work one
//! way everywhere:
//!
//! - **A read that fails** (Redis unreachable or failing over, the stream deleted) is retried
//!   after a pause of the [`backoff`] for as long as it takes; the read after a failure or a
//!   reconnection takes this consumer's pending entries first ([`GroupConsumer::read`]).
//! - **An event whose handler failed** stays unacknowledged. After a pause of the same backoff
//!   the driver re-reads this consumer's pending entries from the first, before any new entry
//!   (so nothing later overtakes it), and hands them to the handler again, until they are
//!   handled. Never "until a restart". A handler that finishes its events in tasks of its own
//!   (the cub) reports a failure later through [`Redeliver`], and skips the re-read entries it is
//!   still working on.
//! - **Every handler is idempotent**: delivery is at least once.
//!
//! A consumer given a [`Bell`] ([`ConsumerDriver::with_bell`]) waits on it while it is armed
//! instead of blocking on the stream: it reads what is there when rung, and at least every
//! [`BELL_FALLBACK`], so an event whose writer rang nobody is handled late, never lost.
//!
//! Calls inside a handler that may fail for a moment retry with the same [`backoff`] (through
//! `backon`, bounded by the caller's own limit: a deadline, a number of attempts, a shutdown).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Sleeper};
use sett_core::event::Event;
use sett_core::metrics::REDIS_ERRORS;
use tokio_util::sync::CancellationToken;

use crate::consumer::{GroupAcks, GroupConsumer};
use crate::{Bell, Result};

/// The first pause of a retry.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two reads of the event stream (or two passes over the pending
/// entries) while they fail.
pub const RETRY_LONGEST: Duration = Duration::from_secs(5);

/// The longest a consumer waiting on its bell goes without reading the stream: the delay of an
/// event nobody rang for (a writer without `spublish` permission, a ring lost in a
/// reconnection). Such a consumer reads once a second when idle, one command, where a blocking
/// read costs one every [`ConsumerDriver::new`]'s `block`.
pub const BELL_FALLBACK: Duration = Duration::from_secs(1);

/// The backoff of every retry in Sett: [`RETRY_FIRST`], doubling up to `longest`, jittered (so
/// components that lost Redis together do not come back in step), with no limit on attempts:
/// each caller bounds it by its own deadline, attempt count or shutdown.
pub fn backoff(longest: Duration) -> ExponentialBuilder {
    ExponentialBuilder::new().with_min_delay(RETRY_FIRST).with_max_delay(longest).with_jitter().without_max_times()
}

/// A backoff sleep that ends early when its token is cancelled (for `backon`'s `.sleep(…)`):
/// a retry never holds up a shutdown.
#[derive(Debug, Clone)]
pub struct CancellableSleep(pub CancellationToken);

impl Sleeper for CancellableSleep {
    type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn sleep(&self, pause: Duration) -> Self::Sleep {
        let token = self.0.clone();
        Box::pin(async move {
            // Cancel-safe: a token and a sleep.
            tokio::select! {
                () = token.cancelled() => {}
                () = tokio::time::sleep(pause) => {}
            }
        })
    }
}

/// Sleeps `pause` unless `stop` comes first; returns whether it was stopped.
async fn pause_or_stop(stop: &CancellationToken, pause: Duration) -> bool {
    // Cancel-safe: a token and a sleep.
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(pause) => false,
    }
}

/// Tells the driver that a handler failed an event after returning (from a task of its own):
/// the pending entries are read again after the backoff. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Redeliver(Arc<AtomicBool>);

impl Redeliver {
    /// An event stays unacknowledged: read the pending entries again.
    pub fn failed(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

/// One consumer of the event stream driven by the failure policy of this module.
#[derive(Debug)]
pub struct ConsumerDriver {
    stream: GroupConsumer,
    /// The `component` label of the Redis-error metric and of the log lines.
    component: &'static str,
    count: u64,
    block: Duration,
    redeliver: Redeliver,
    ready: Option<Arc<AtomicBool>>,
    /// Waited on instead of a blocking read while its flag is set ([`ConsumerDriver::with_bell`]).
    bell: Option<(Bell, Arc<AtomicBool>)>,
}

impl ConsumerDriver {
    /// Drives `stream`, reading up to `count` events at a time and blocking up to `block` for
    /// new ones (the driver looks at its stop token at least that often).
    pub fn new(stream: GroupConsumer, component: &'static str, count: u64, block: Duration) -> Self {
        Self { stream, component, count, block, redeliver: Redeliver::default(), ready: None, bell: None }
    }

    /// While `armed` is set, waits for `bell` (or [`BELL_FALLBACK`]) and then reads what is
    /// there, instead of blocking on the stream: for a consumer that most events do not concern,
    /// and whose writers ring it for the ones that do.
    pub fn with_bell(mut self, bell: Bell, armed: Arc<AtomicBool>) -> Self {
        self.bell = Some((bell, armed));
        self
    }

    /// Sets `ready` while the last read of the stream succeeded, clears it while reads fail.
    pub fn with_ready(mut self, ready: Arc<AtomicBool>) -> Self {
        self.ready = Some(ready);
        self
    }

    /// Acknowledges for this consumer (from the handler or its tasks).
    pub fn acks(&self) -> GroupAcks {
        self.stream.acks()
    }

    /// Acknowledgements sent in the background ([`GroupAcks::batched`]), a failed one counted
    /// as a Redis error of this consumer's component; the task ends once every handle is dropped.
    pub fn batched_acks(&self) -> (crate::BatchedAcks, tokio::task::JoinHandle<()>) {
        self.stream.acks().batched(self.component)
    }

    /// Reports handler failures that happen after the handler returned.
    pub fn redeliver(&self) -> Redeliver {
        self.redeliver.clone()
    }

    /// Creates the consumer group if it does not exist, retrying with the backoff while Redis
    /// does not answer ([`GroupConsumer::attach`]). Returns whether it attached; `false` when
    /// `stop` came first.
    pub async fn attach(&self, stop: &CancellationToken) -> bool {
        // Cancel-safe: attaching only creates the group, which is idempotent.
        tokio::select! {
            () = stop.cancelled() => false,
            () = self.stream.attach() => true,
        }
    }

    /// The backlog at start: this consumer's entries delivered before a restart and never
    /// acknowledged, handed to `handle` a page of up to `page` at a time (a cursor: an entry a
    /// handler still works on is not handed out twice) until none is left or `stop`. When
    /// `handle` reports a failure, the pending entries are read again, after the backoff, by
    /// [`ConsumerDriver::run`].
    pub async fn drain_pending<F, Fut>(&mut self, page: u64, stop: &CancellationToken, mut handle: F) -> Result<()>
    where
        F: FnMut(Vec<Event>) -> Fut,
        Fut: Future<Output = bool>,
    {
        while !stop.is_cancelled() {
            let events = self.stream.read_pending(page).await?;
            if events.is_empty() {
                break;
            }
            tracing::info!(
                consumer = self.component,
                count = events.len(),
                "re-reading events received before a restart"
            );
            if !handle(events).await {
                self.redeliver.failed();
                break;
            }
        }
        Ok(())
    }

    /// Reads events and hands each batch to `handle` until `stop`. `handle` returns `false`
    /// when it failed an event (leaving it unacknowledged): the pending entries are then read
    /// again after the backoff, before any new entry.
    pub async fn run<F, Fut>(&mut self, stop: &CancellationToken, mut handle: F)
    where
        F: FnMut(Vec<Event>) -> Fut,
        Fut: Future<Output = bool>,
    {
        let policy = backoff(RETRY_LONGEST);
        let mut pauses = policy.build();
        // The last read returned a full batch: read again before waiting for the bell.
        let mut more = false;
        while !stop.is_cancelled() {
            if self.redeliver.take() {
                let pause = pauses.next().unwrap_or(RETRY_LONGEST);
                tracing::info!(consumer = self.component, retry_in = ?pause, "an event was not handled; reading the pending events again");
                if pause_or_stop(stop, pause).await {
                    break;
                }
                self.stream.reread_pending();
            }
            // Cancel-safe: a read abandoned at shutdown loses nothing (what Redis served it stays
            // pending for this consumer and is re-read at the next start).
            let bell = self.bell.as_ref().filter(|(_, armed)| armed.load(Ordering::SeqCst)).map(|(b, _)| b.clone());
            let read = match bell {
                Some(bell) => {
                    if !more {
                        // Cancel-safe: a token, a ring kept for the next wait, and a sleep.
                        tokio::select! {
                            biased;
                            () = stop.cancelled() => break,
                            () = bell.rung() => {}
                            () = tokio::time::sleep(BELL_FALLBACK) => {}
                        }
                    }
                    tokio::select! {
                        biased;
                        () = stop.cancelled() => break,
                        r = self.stream.read_now(self.count) => r,
                    }
                }
                None => tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    r = self.stream.read(self.count, self.block) => r,
                },
            };
            more = matches!(&read, Ok(events) if events.len() as u64 >= self.count);
            match read {
                Ok(events) => {
                    self.set_ready(true);
                    if !events.is_empty() && !handle(events).await {
                        self.redeliver.failed();
                    } else if !self.redeliver.0.load(Ordering::SeqCst) {
                        pauses = policy.build();
                    }
                }
                Err(e) => {
                    self.set_ready(false);
                    metrics::counter!(REDIS_ERRORS, "component" => self.component).increment(1);
                    let pause = pauses.next().unwrap_or(RETRY_LONGEST);
                    // The next read recreates the group (the stream may have been deleted) and
                    // takes the pending entries first.
                    tracing::warn!(consumer = self.component, error = %e, retry_in = ?pause, "reading the event stream failed; retrying");
                    if pause_or_stop(stop, pause).await {
                        break;
                    }
                }
            }
        }
        self.set_ready(false);
    }

    fn set_ready(&self, ready: bool) {
        if let Some(r) = &self.ready {
            r.store(ready, Ordering::SeqCst);
        }
    }

    /// Closes the reading connection. It may still sit in a blocking read abandoned at
    /// shutdown (up to `block`); a caller that must not wait runs this in the background.
    pub async fn quit(&self) {
        self.stream.quit().await;
    }
}
