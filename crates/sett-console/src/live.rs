//! Live updates: one reader of each instance's event stream per console process, fanned out to
//! every browser through a broadcast channel, so Redis load does not grow with viewers. A
//! client first replays what it missed (XRANGE after its last event id: `Last-Event-ID` on a
//! reconnect), then follows the broadcast; a client that lags behind the channel resyncs the
//! same way from its last id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sett_core::InstanceName;
use sett_core::event::Event;
use sett_store::{Redis, Store};
use tokio::sync::{Mutex, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Events buffered per instance; a client further behind resyncs from Redis.
const CHANNEL: usize = 1024;
/// Longest single blocking read of the stream.
const BLOCK: Duration = Duration::from_secs(5);
/// A comment line is sent this often so proxies keep the connection and dead clients are found.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Events read per XRANGE page while replaying.
const PAGE: u64 = 500;

/// `<ms>-<seq>` as a pair, for ordering stream ids.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The per-instance readers of one console process.
#[derive(Clone)]
pub struct Hubs {
    redis: Redis,
    hubs: Arc<Mutex<HashMap<InstanceName, broadcast::Sender<Arc<Event>>>>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Hubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hubs").finish_non_exhaustive()
    }
}

impl Hubs {
    pub fn new(redis: Redis, shutdown: CancellationToken) -> Self {
        Self { redis, hubs: Arc::default(), shutdown }
    }

    /// A receiver of every event of `instance` appended after this call returns. The first
    /// subscriber starts the instance's reader; its starting position is taken before
    /// returning, so a client that then replays up to "now" misses nothing in between.
    pub async fn subscribe(&self, instance: &InstanceName) -> sett_store::Result<broadcast::Receiver<Arc<Event>>> {
        let mut hubs = self.hubs.lock().await;
        if let Some(tx) = hubs.get(instance) {
            return Ok(tx.subscribe());
        }
        let store = self.redis.instance(instance);
        let start = store.last_event_id().await?.unwrap_or_else(|| "0-0".to_owned());
        let (tx, rx) = broadcast::channel(CHANNEL);
        hubs.insert(instance.clone(), tx.clone());
        tokio::spawn(follow(store, start, tx, self.shutdown.clone()));
        Ok(rx)
    }
}

/// The single reader of one instance's stream.
async fn follow(store: Store, mut cursor: String, tx: broadcast::Sender<Arc<Event>>, shutdown: CancellationToken) {
    let mut pause = Duration::from_millis(100);
    'connect: while !shutdown.is_cancelled() {
        let reader = match store.event_reader().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(instance = %store.instance(), error = %e, "console cannot follow the event stream; retrying");
                tokio::select! { () = tokio::time::sleep(pause) => {}, () = shutdown.cancelled() => break }
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let read = tokio::select! {
                r = reader.read_after(&cursor, PAGE, BLOCK) => r,
                () = shutdown.cancelled() => break 'connect,
            };
            match read {
                Ok(events) => {
                    pause = Duration::from_millis(100);
                    for e in events {
                        cursor.clone_from(&e.id);
                        // No receiver is fine: nobody is watching right now.
                        let _ = tx.send(Arc::new(e));
                    }
                }
                Err(e) => {
                    tracing::warn!(instance = %store.instance(), error = %e, "reading the event stream failed; reconnecting");
                    reader.quit().await;
                    tokio::select! { () = tokio::time::sleep(pause) => {}, () = shutdown.cancelled() => break 'connect }
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue 'connect;
                }
            }
        }
    }
}

/// One SSE message for `e`.
pub fn sse_frame(e: &Event) -> Bytes {
    let json = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("id: {}\ndata: {json}\n\n", e.id))
}

/// Feeds one SSE client: the events after `after` from Redis, then the broadcast. Ends when
/// the client goes away (its channel closes) or the console shuts down.
pub async fn feed(
    store: Store,
    mut rx: broadcast::Receiver<Arc<Event>>,
    after: String,
    out: mpsc::Sender<Bytes>,
    shutdown: CancellationToken,
) {
    let mut last = after;
    // Tell the client to reconnect quickly after a console restart.
    if out.send(Bytes::from_static(b"retry: 1000\n: connected\n\n")).await.is_err() {
        return;
    }
    if !replay(&store, &mut last, &out).await {
        return;
    }
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(e) => {
                    if parse_id(&e.id) <= parse_id(&last) {
                        continue;
                    }
                    last.clone_from(&e.id);
                    if out.send(sse_frame(&e)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "an SSE client lagged; resyncing from Redis");
                    if !replay(&store, &mut last, &out).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = keepalive.tick() => {
                if out.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                    return;
                }
            }
            () = out.closed() => return,
            () = shutdown.cancelled() => return,
        }
    }
}

/// Sends every event after `last` from Redis; false when the client is gone or Redis failed.
async fn replay(store: &Store, last: &mut String, out: &mpsc::Sender<Bytes>) -> bool {
    loop {
        let events = match store.events_after(Some(last), PAGE).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "replaying events for an SSE client failed; it will reconnect");
                return false;
            }
        };
        let done = (events.len() as u64) < PAGE;
        for e in events {
            last.clone_from(&e.id);
            if out.send(sse_frame(&e)).await.is_err() {
                return false;
            }
        }
        if done {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_numerically() {
        assert!(parse_id("10-0") > parse_id("9-5"));
        assert!(parse_id("10-10") > parse_id("10-9"));
        assert_eq!(parse_id("7"), Some((7, 0)));
        assert_eq!(parse_id("x-1"), None);
    }
}
