//! Waiting in tests: [`eventually`] (one bounded poll of a condition, with a failure message
//! that names what was awaited and what was last seen) and [`wait_for_event`] /
//! [`wait_for_events`] (blocking reads of the event stream, no polling). Tests synchronise
//! through these, never through a sleep.

use std::fmt::Debug;
use std::time::Duration;

use sett_core::event::Event;
use sett_store::Store;
use tokio::time::Instant;

/// How long a test waits for something that should happen at once (a few round trips, a
/// deadline of a few seconds) before it fails: long enough for a loaded CI machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// The first pause between two probes of [`eventually`]; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// What a probe of [`eventually`] returns: ready with a value, or not yet (with what it saw).
pub trait Probe {
    type Ready;
    /// `Ok` when the awaited condition holds, `Err(what was seen)` otherwise.
    fn check(self) -> Result<Self::Ready, String>;
}

impl Probe for bool {
    type Ready = ();
    fn check(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("false".into()) }
    }
}

impl<T> Probe for Option<T> {
    type Ready = T;
    fn check(self) -> Result<T, String> {
        self.ok_or_else(|| "None".into())
    }
}

impl<T, E: Debug> Probe for Result<T, E> {
    type Ready = T;
    fn check(self) -> Result<T, String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// [`try_eventually`] gave up: `what` did not hold within `limit`; `last` is what the last probe
/// saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    pub what: String,
    pub limit: Duration,
    pub probes: u32,
    pub last: String,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timed out after {:?} ({} probes) waiting until {}; the last probe saw: {}",
            self.limit, self.probes, self.what, self.last
        )
    }
}

impl std::error::Error for TimedOut {}

/// Probes until `probe` is ready (`true`, `Some`, `Ok`) and returns its value; fails the test
/// with `what` and the last probe's observation when `limit` passes first. The probe runs at
/// once, then after pauses growing from 5 ms to 100 ms (a condition that holds at once costs
/// nothing; a slow one costs few probes).
pub async fn eventually<P: Probe>(limit: Duration, what: &str, probe: impl AsyncFnMut() -> P) -> P::Ready {
    try_eventually(limit, what, probe).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`eventually`], but returns the timeout instead of failing, for a caller that adds its
/// own context (logs) to the failure message.
pub async fn try_eventually<P: Probe>(
    limit: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> P,
) -> Result<P::Ready, TimedOut> {
    let until = Instant::now() + limit;
    let mut pause = FIRST_PAUSE;
    let mut probes = 0;
    loop {
        probes += 1;
        let last = match probe().await.check() {
            Ok(ready) => return Ok(ready),
            Err(last) => last,
        };
        let now = Instant::now();
        if now >= until {
            return Err(TimedOut { what: what.to_owned(), limit, probes, last });
        }
        tokio::time::sleep(pause.min(until - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Reads the event stream from its start (XREAD BLOCK on its own connection: no polling) until
/// an event satisfies `pred`, and returns it; fails the test with `what` after `limit`.
pub async fn wait_for_event(store: &Store, limit: Duration, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let mut found = wait_for_events(store, limit, what, 1, pred).await;
    found.swap_remove(0)
}

/// Like [`wait_for_event`], until `n` events satisfy `pred`; returns them in stream order.
pub async fn wait_for_events(
    store: &Store,
    limit: Duration,
    what: &str,
    n: usize,
    pred: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    try_wait_for_events(store, limit, what, n, pred).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`wait_for_events`], but returns the timeout (with what was found) instead of failing.
pub async fn try_wait_for_events(
    store: &Store,
    limit: Duration,
    what: &str,
    n: usize,
    pred: impl Fn(&Event) -> bool,
) -> Result<Vec<Event>, TimedOut> {
    let reader = store.event_reader().await.expect("an event reader on the test Redis");
    let until = Instant::now() + limit;
    let mut after = "0".to_owned();
    let mut found = Vec::new();
    let mut reads = 0;
    while found.len() < n {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            reader.quit().await;
            let last = format!("{} of {n}: {found:?}", found.len());
            return Err(TimedOut { what: what.to_owned(), limit, probes: reads, last });
        }
        reads += 1;
        let page = reader.read_after(&after, 1000, left.min(Duration::from_secs(1))).await.expect("read events");
        if let Some(e) = page.last() {
            after = e.id.clone();
        }
        found.extend(page.into_iter().filter(|e| pred(e)));
    }
    reader.quit().await;
    found.truncate(n);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_that_holds_is_returned_at_once() {
        assert_eq!(eventually(WAIT, "a value", async || Some(3)).await, 3);
        let mut n = 0;
        let got = eventually(WAIT, "the third probe", async || {
            n += 1;
            if n == 3 { Ok(n) } else { Err(n) }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn a_condition_that_never_holds_names_what_was_awaited_and_seen() {
        let e = try_eventually(Duration::from_millis(30), "the answer", async || Err::<(), _>("still 41"))
            .await
            .unwrap_err();
        assert_eq!(e.what, "the answer");
        assert!(e.probes >= 2, "{e:?}");
        let text = e.to_string();
        assert!(text.contains("waiting until the answer") && text.contains("\"still 41\""), "{text}");
    }
}
