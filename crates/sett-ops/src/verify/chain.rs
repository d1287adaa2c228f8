//! One event's link in the hash chain: its seq follows the one before, its hash recomputes from
//! its content and the hash before it, and a head recorded earlier agrees with it. Entries
//! written before the ledger existed are counted, not checked. Entries do not store `prev` (the
//! hash before them, which the walk has in hand); entries written before issue 29 do, and it
//! must then be that hash.

use sett_core::ledger::{self, GENESIS, GENESIS_V1, Head};

use super::Fields;
use super::report::{Breach, breach};

/// The chain walk's state.
#[derive(Debug)]
pub(super) struct Chain {
    pub(super) started: bool,
    pub(super) seq: u64,
    /// The hash of the last chained event walked ([`GENESIS`] before the first): what the next
    /// one links to.
    pub(super) prev: String,
    pub(super) legacy: u64,
}

pub(super) fn event_record(id: &str, f: &Fields) -> String {
    match f.get("seq") {
        Some(s) => format!("event {id} (seq {s})"),
        None => format!("event {id}"),
    }
}

/// The `prev` of a chain's first event: 40 zeros, or 64 for a chain begun by the first ledger
/// version.
fn is_genesis(prev: &str) -> bool {
    prev == GENESIS || prev == GENESIS_V1
}

impl Chain {
    /// Checks one entry; `Ok(false)` for an entry written before the ledger.
    pub(super) fn step(&mut self, id: &str, f: &Fields, recorded: Option<&Head>) -> Result<bool, Breach> {
        let rec = || event_record(id, f);
        let Some(hash) = f.get("hash") else {
            if self.started {
                return Err(breach(
                    rec(),
                    "not chained (no seq/hash): an event was inserted without going through Sett's store, or its chain fields were removed",
                ));
            }
            self.legacy += 1;
            return Ok(false);
        };
        // Canonical decimal only: "05" would hash like "5" and hide an edit.
        let seq: u64 = f
            .get("seq")
            .and_then(|s| s.parse().ok().filter(|n: &u64| n.to_string() == *s))
            .ok_or_else(|| breach(rec(), "its seq is missing or not a number: the event was edited"))?;
        // Stored by the versions before issue 29 only; otherwise the hash the link follows is the
        // one the walk has: the genesis for the first chained event, else the hash before it.
        let stored_prev = f.get("prev").map(String::as_str);
        if !self.started {
            self.started = true;
            let first = self.legacy + 1;
            if seq > first || (seq == first && stored_prev.is_some_and(|p| !is_genesis(p)) && self.legacy == 0) {
                return Err(breach(
                    rec(),
                    format!(
                        "the stream was truncated: it is the first chained event but has seq {seq} (expected {first}); {} earlier event(s) were removed (XTRIM/XDEL)",
                        seq.saturating_sub(first).max(1)
                    ),
                ));
            }
            if seq < first {
                return Err(breach(
                    rec(),
                    format!("seq {seq} where {first} was expected: unchained events were inserted before it"),
                ));
            }
            if stored_prev.is_some_and(|p| !is_genesis(p)) {
                return Err(breach(rec(), "the first chained event's prev is not all zeros: the chain was edited"));
            }
        } else {
            let expected = self.seq + 1;
            if seq > expected {
                let missing = if seq == expected + 1 {
                    format!("the event with seq {expected} is missing")
                } else {
                    format!("the events with seq {expected}..{} are missing", seq - 1)
                };
                return Err(breach(rec(), format!("{missing} before it (deleted, e.g. XDEL)")));
            }
            if seq < expected {
                return Err(breach(
                    rec(),
                    format!("seq {seq} where {expected} was expected: an event was inserted or the stream reordered"),
                ));
            }
            if stored_prev.is_some_and(|p| p != self.prev) {
                return Err(breach(
                    rec(),
                    "its prev is not the hash of the event before it: an earlier event was replaced or the chain edited",
                ));
            }
        }
        let (Some(kind), Some(ts), Some(data)) = (f.get("kind"), f.get("ts"), f.get("data")) else {
            return Err(breach(rec(), "its kind, ts or data field is missing: the event was edited"));
        };
        // `self.prev` starts as the genesis (`walk`), so it is the right one for the first too.
        let prev = stored_prev.unwrap_or(&self.prev);
        let digest = ledger::event_digest(kind, ts, data, f.get("claim").map(String::as_str));
        let link = ledger::recompute_link(prev, &digest, seq, hash)
            .ok_or_else(|| breach(rec(), "its prev is not a 40-digit hex hash: the event was edited"))?;
        if link != *hash {
            let problem = if stored_prev.is_some() {
                "content changed: its kind, ts, data or claim no longer match its hash"
            } else {
                // Without a stored `prev` an edit of this entry and a replaced entry before it
                // (its hash recomputed) look alike: both are named.
                "content changed: its kind, ts, data or claim no longer match its hash, or the event before it was replaced"
            };
            return Err(breach(rec(), problem));
        }
        if let Some(r) = recorded
            && r.seq == seq
            && r.hash != *hash
        {
            return Err(breach(
                rec(),
                format!(
                    "head mismatch: the head recorded earlier is {r} but the chain now has {seq}:{hash} here: the chain was rewritten"
                ),
            ));
        }
        self.seq = seq;
        self.prev = hash.clone();
        Ok(true)
    }
}
