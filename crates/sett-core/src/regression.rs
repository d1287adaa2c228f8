//! Telling a ledger that went back from one that moved on: the pure judgement behind every
//! component's regression check (docs/operations.md, "The ledger went back"). A Redis restarted
//! on an older RDB/AOF, a failover to a replica that had not synced, or a `FLUSHALL` all leave a
//! consistent chain that `sett verify` accepts; only someone who saw a later head can tell.

use serde::{Deserialize, Serialize};

use crate::ledger::Head;

/// A ledger head as a watcher saw it: the chain position (`seq`, `hash`) and the stream id of
/// that entry (`id`, from the head record), so that once the head has moved on the entry can
/// be read again by id to check that history was extended, not replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenHead {
    pub seq: u64,
    pub hash: String,
    pub id: String,
}

impl SeenHead {
    pub fn head(&self) -> Head {
        Head { seq: self.seq, hash: self.hash.clone() }
    }
}

impl std::fmt::Display for SeenHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// What a new look at the head says about the highest head seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The same head.
    Same,
    /// A later head whose history contains the one seen.
    Advanced,
    /// The ledger lost what was seen (or replaced it).
    Regressed(Regression),
}

/// A ledger that went back: the highest head seen, the head found instead, and how many
/// events at least are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regression {
    pub seen: SeenHead,
    /// `None`: no ledger at all any more.
    pub found: Option<SeenHead>,
    /// A lower bound: `seen.seq - found.seq` (events appended since the loss may have filled
    /// some of the gap with different history; `sett verify --witness` names the exact range).
    pub lost_at_least: u64,
}

/// Judges the head `found` now against the highest head `seen` before. `at_seen` is what the
/// stream holds now at `seen.id` (its `seq` and `hash`), read only when `found` is later than
/// `seen` (`None`: no entry there any more).
pub fn judge(seen: &SeenHead, found: Option<&SeenHead>, at_seen: Option<&Head>) -> Verdict {
    let regressed = |found: Option<&SeenHead>| {
        let lost_at_least = seen.seq.saturating_sub(found.map_or(0, |f| f.seq));
        Verdict::Regressed(Regression { seen: seen.clone(), found: found.cloned(), lost_at_least })
    };
    match found {
        None => regressed(None),
        Some(f) if f.seq < seen.seq => regressed(found),
        Some(f) if f.seq == seen.seq => {
            if f.hash == seen.hash {
                Verdict::Same
            } else {
                regressed(found)
            }
        }
        Some(_) => match at_seen {
            Some(h) if h.seq == seen.seq && h.hash == seen.hash => Verdict::Advanced,
            _ => regressed(found),
        },
    }
}

/// A regression as recorded for operators (`sett status`, the console, `sett ledger ack`):
/// one record per lost head, whoever noticed it first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegressionRecord {
    /// The highest head seen before the loss (`<seq>:<hash>`), and its stream id.
    pub seen: String,
    pub seen_id: String,
    /// The head found instead (`<seq>:<hash>`), `null` when the ledger was gone.
    pub found: Option<String>,
    pub lost_at_least: u64,
    /// The component that noticed first (`orchestrator`, `cub:<agent>`, `console`, `status`).
    pub detected_by: String,
    pub detected_at_ms: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at_ms: Option<i64>,
}

impl RegressionRecord {
    pub fn new(r: &Regression, detected_by: &str, now_ms: i64) -> Self {
        Self {
            seen: r.seen.to_string(),
            seen_id: r.seen.id.clone(),
            found: r.found.as_ref().map(ToString::to_string),
            lost_at_least: r.lost_at_least,
            detected_by: detected_by.to_owned(),
            detected_at_ms: now_ms,
            acknowledged_by: None,
            acknowledged_at_ms: None,
        }
    }

    /// The record's key: the lost head (`<seq>:<hash>`), so components noticing the same loss
    /// write one record.
    pub fn key(&self) -> &str {
        &self.seen
    }

    pub fn is_acknowledged(&self) -> bool {
        self.acknowledged_at_ms.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: u64, hash: &str, id: &str) -> SeenHead {
        SeenHead { seq, hash: hash.to_owned(), id: id.to_owned() }
    }

    #[test]
    fn a_head_that_moved_on_over_the_same_history_is_no_regression() {
        let seen = head(10, "a", "100-0");
        assert_eq!(judge(&seen, Some(&seen), None), Verdict::Same);
        let later = head(12, "c", "120-0");
        assert_eq!(judge(&seen, Some(&later), Some(&seen.head())), Verdict::Advanced);
    }

    #[test]
    fn a_lower_head_a_lost_ledger_or_a_replaced_history_is_a_regression() {
        let seen = head(10, "a", "100-0");
        let Verdict::Regressed(r) = judge(&seen, Some(&head(7, "x", "70-0")), None) else { panic!() };
        assert_eq!(r.lost_at_least, 3);
        let Verdict::Regressed(r) = judge(&seen, None, None) else { panic!() };
        assert_eq!((r.lost_at_least, r.found), (10, None));
        // Same seq, another hash: a different history of the same length.
        assert!(matches!(judge(&seen, Some(&head(10, "b", "101-0")), None), Verdict::Regressed(_)));
        // Later, but the entry seen is gone or is another one: replaced, then grown past.
        let later = head(12, "c", "120-0");
        assert!(matches!(judge(&seen, Some(&later), None), Verdict::Regressed(_)));
        let other = Head { seq: 10, hash: "b".into() };
        let Verdict::Regressed(r) = judge(&seen, Some(&later), Some(&other)) else { panic!() };
        assert_eq!(r.lost_at_least, 0, "a lower bound: the gap was filled with other events");
    }

    #[test]
    fn a_record_is_keyed_by_the_lost_head() {
        let seen = head(10, "a", "100-0");
        let Verdict::Regressed(r) = judge(&seen, Some(&head(7, "x", "70-0")), None) else { panic!() };
        let rec = RegressionRecord::new(&r, "orchestrator", 5);
        assert_eq!((rec.key(), rec.found.as_deref(), rec.is_acknowledged()), ("10:a", Some("7:x"), false));
    }
}
