//! Witnesses of the ledger outside Redis: the record of one anchored head in a witness file
//! (`ledger.witness_file`, JSON lines), and the pure check of a chain against every head a
//! witness file saw (`sett verify --witness`). A Redis that lost its newest events keeps a
//! consistent, shorter chain; only a head recorded somewhere Redis's fate does not decide
//! proves that more existed, and names what is gone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::Head;

/// `reason` of the record `sett destroy` writes: the instance's ledger ended on purpose, so the
/// heads witnessed before it belong to a ledger that no longer exists.
pub const REASON_DESTROY: &str = "destroy";
/// `reason` of the record `sett import` writes: the ledger was replaced by an imported one whose
/// head this record names; the heads witnessed before it belong to the replaced ledger.
pub const REASON_IMPORT: &str = "import";

/// `reason` of the record `sett ledger ack` writes: an operator accepted the ledger as it is now
/// (at this record's head) after a loss; the heads witnessed before it are only counted.
pub const REASON_ACKNOWLEDGED: &str = "acknowledged";

/// Whether a record of this `reason` starts the instance's ledger afresh: the heads witnessed
/// before it are no longer checked.
fn starts_afresh(reason: &str) -> bool {
    reason == REASON_DESTROY || reason == REASON_IMPORT || reason == REASON_ACKNOWLEDGED
}

/// One line of a witness file: a ledger head of `instance` as it was at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessRecord {
    pub instance: String,
    pub seq: u64,
    pub hash: String,
    /// When it was witnessed (RFC 3339, UTC).
    pub at: String,
    /// Why: `periodic`, `down`, `export`, `destroy`, `import`.
    #[serde(default)]
    pub reason: String,
}

impl WitnessRecord {
    pub fn head(&self) -> Head {
        Head { seq: self.seq, hash: self.hash.clone() }
    }
}

/// A witnessed head and where it came from (its line in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    pub line: usize,
    pub hash: String,
    pub at: String,
    pub reason: String,
}

impl Witnessed {
    fn describe(&self, seq: u64) -> String {
        let why = if self.reason.is_empty() { String::new() } else { format!(", {}", self.reason) };
        format!("{seq}:{} (line {}, {}{why})", self.hash, self.line, self.at)
    }
}

/// The heads one witness file saw of one instance's current ledger. Heads recorded before the
/// last `destroy`, `import` or `acknowledged` record of the instance belong to a ledger that was
/// replaced on purpose (or whose loss an operator accepted) and are only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Witnesses {
    by_seq: BTreeMap<u64, Vec<Witnessed>>,
    /// Heads of ledgers a destroy or an import replaced, or whose loss was acknowledged.
    pub replaced: u64,
}

impl Witnesses {
    /// The records of `instance`, in file order (`(line number, record)`).
    pub fn of_instance(instance: &str, records: impl IntoIterator<Item = (usize, WitnessRecord)>) -> Self {
        let mut me = Self::default();
        for (line, r) in records {
            if r.instance != instance {
                continue;
            }
            if starts_afresh(&r.reason) {
                me.replaced += me.count() + u64::from(r.reason == REASON_DESTROY);
                me.by_seq.clear();
                if r.reason == REASON_DESTROY {
                    continue;
                }
            }
            if r.seq == 0 {
                // An empty ledger (imported or destroyed before its first event) has no head.
                continue;
            }
            me.by_seq.entry(r.seq).or_default().push(Witnessed { line, hash: r.hash, at: r.at, reason: r.reason });
        }
        me
    }

    /// How many heads are checked.
    pub fn count(&self) -> u64 {
        self.by_seq.values().map(|v| v.len() as u64).sum()
    }

    /// The highest head witnessed (the latest of them when one seq was witnessed twice).
    pub fn highest(&self) -> Option<(u64, &Witnessed)> {
        self.by_seq.iter().next_back().and_then(|(s, w)| w.last().map(|w| (*s, w)))
    }
}

/// The walk of a chain, in order, against the witnessed heads: every witnessed head must be a
/// link of the chain.
#[derive(Debug)]
pub struct WitnessWalk<'a> {
    witnesses: &'a Witnesses,
    /// The highest witnessed seq found in the chain with its witnessed hash.
    last_match: u64,
}

impl<'a> WitnessWalk<'a> {
    pub fn new(witnesses: &'a Witnesses) -> Self {
        Self { witnesses, last_match: 0 }
    }

    /// The lost range from the first event after the last witnessed head that still matches to
    /// the highest witnessed one.
    fn lost_range(&self, from: u64) -> String {
        let to = self.witnesses.highest().map_or(from, |(s, _)| s);
        if from >= to { format!("event {to}") } else { format!("events {from}..{to}") }
    }

    /// Checks one link of the chain (`seq`, `hash`); `Err` names the witnessed head it
    /// contradicts and the events lost.
    pub fn link(&mut self, seq: u64, hash: &str) -> Result<(), String> {
        let Some(seen) = self.witnesses.by_seq.get(&seq) else { return Ok(()) };
        if let Some(w) = seen.iter().find(|w| w.hash != hash) {
            return Err(format!(
                "the witness file saw head {} but the chain has {seq}:{hash} there: the history after seq {} was replaced; {} as witnessed are lost",
                w.describe(seq),
                self.last_match,
                self.lost_range(self.last_match + 1),
            ));
        }
        self.last_match = seq;
        Ok(())
    }

    /// After the last link (`head`: the chain's end, `None` for an empty chain): a witnessed
    /// head beyond it is a lost tail.
    pub fn end(&self, head: Option<&Head>) -> Result<(), String> {
        let end = head.map_or(0, |h| h.seq);
        match self.witnesses.highest() {
            Some((seq, w)) if seq > end => Err(format!(
                "the witness file saw head {} but the chain ends at {}: {} are lost (Redis restarted on an older copy, a failover to a replica that had not synced, or a flush)",
                w.describe(seq),
                head.map_or_else(|| "nothing".to_owned(), ToString::to_string),
                self.lost_range(end + 1),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(instance: &str, seq: u64, hash: &str, reason: &str) -> WitnessRecord {
        WitnessRecord { instance: instance.into(), seq, hash: hash.into(), at: "t".into(), reason: reason.into() }
    }

    fn witnesses(records: Vec<WitnessRecord>) -> Witnesses {
        Witnesses::of_instance("a", records.into_iter().enumerate().map(|(i, r)| (i + 1, r)))
    }

    fn walk(w: &Witnesses, chain: &[(u64, &str)]) -> Result<(), String> {
        let mut walk = WitnessWalk::new(w);
        for (s, h) in chain {
            walk.link(*s, h)?;
        }
        walk.end(chain.last().map(|(s, h)| Head { seq: *s, hash: (*h).into() }).as_ref())
    }

    #[test]
    fn a_chain_holding_every_witnessed_head_passes() {
        let w = witnesses(vec![rec("a", 2, "h2", "periodic"), rec("b", 9, "x", "down"), rec("a", 3, "h3", "down")]);
        assert_eq!(w.count(), 2, "another instance's heads are not this one's");
        assert_eq!(walk(&w, &[(1, "h1"), (2, "h2"), (3, "h3"), (4, "h4")]), Ok(()));
    }

    #[test]
    fn a_lost_tail_names_the_events_lost() {
        let w = witnesses(vec![rec("a", 2, "h2", "periodic"), rec("a", 5, "h5", "down")]);
        let e = walk(&w, &[(1, "h1"), (2, "h2"), (3, "h3")]).unwrap_err();
        assert!(e.contains("5:h5 (line 2, t, down)") && e.contains("ends at 3:h3") && e.contains("events 4..5"), "{e}");
        let e = walk(&w, &[]).unwrap_err();
        assert!(e.contains("ends at nothing") && e.contains("events 1..5"), "{e}");
    }

    #[test]
    fn another_hash_at_a_witnessed_seq_names_what_was_replaced() {
        let w =
            witnesses(vec![rec("a", 2, "h2", "periodic"), rec("a", 4, "h4", "periodic"), rec("a", 6, "h6", "down")]);
        // Lost after seq 3, then grown again past seq 6 with other events.
        let e = walk(&w, &[(1, "h1"), (2, "h2"), (3, "h3"), (4, "X4"), (5, "X5"), (6, "X6"), (7, "X7")]).unwrap_err();
        assert!(e.contains("saw head 4:h4") && e.contains("after seq 2") && e.contains("events 3..6"), "{e}");
    }

    #[test]
    fn a_destroy_or_an_import_starts_a_new_ledger() {
        let w = witnesses(vec![rec("a", 9, "old9", "down"), rec("a", 9, "old9", "destroy"), rec("a", 2, "n2", "down")]);
        assert_eq!((w.count(), w.replaced), (1, 2));
        assert_eq!(walk(&w, &[(1, "n1"), (2, "n2")]), Ok(()));
        // The import's own head is witnessed: the imported ledger must still hold it.
        let w = witnesses(vec![rec("a", 9, "old9", "down"), rec("a", 4, "i4", "import")]);
        assert_eq!((w.count(), w.replaced), (1, 1));
        assert_eq!(walk(&w, &[(1, "i1"), (2, "i2"), (3, "i3"), (4, "i4")]), Ok(()));
        assert!(walk(&w, &[(1, "i1"), (2, "i2")]).is_err());
        // An acknowledged loss: checked from the head the operator accepted.
        let w = witnesses(vec![rec("a", 9, "old9", "down"), rec("a", 3, "h3", "acknowledged")]);
        assert_eq!(walk(&w, &[(1, "h1"), (2, "h2"), (3, "h3")]), Ok(()));
    }
}
