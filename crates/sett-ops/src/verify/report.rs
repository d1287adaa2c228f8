//! What a verification found: the first broken record ([`Breach`]), what was verified
//! ([`Report`], with a witness file's heads), and both together ([`Outcome`]).

use serde::Serialize;
use sett_core::ledger::Head;

/// The first broken record and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breach {
    /// e.g. `event 1733000000000-0 (seq 17)`, `artifact <id>`, `claim <id>`, `ledger head`.
    pub record: String,
    pub problem: String,
}

/// What was verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The chain's last event (`None` when nothing is chained yet).
    pub head: Option<Head>,
    /// Chained events verified.
    pub events: u64,
    /// Events written before the ledger existed (not verifiable): the chain starts after them.
    pub unverified_events: u64,
    pub artifacts: u64,
    pub unverified_artifacts: u64,
    pub answers: u64,
    pub claims: u64,
    pub unverified_claims: u64,
    /// Whether a head recorded earlier (`--head`) was found in the chain.
    pub recorded_head_matches: Option<bool>,
    /// What a witness file (`--witness`) said, when one was given.
    pub witnessed: Option<WitnessReport>,
}

/// The heads of a witness file checked against the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WitnessReport {
    /// Heads of the instance's current ledger, each of which must be a link of the chain.
    pub heads: u64,
    /// The highest of them.
    pub highest: Option<Head>,
    /// Heads of ledgers a destroy or an import replaced on purpose (not checked).
    pub replaced: u64,
}

impl Report {
    /// "unverified before event N": the seq of the first chained event, when earlier events
    /// exist that predate the ledger.
    pub fn unverified_before(&self) -> Option<u64> {
        (self.unverified_events > 0).then_some(self.unverified_events + 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub report: Report,
    /// `None` when intact.
    pub breach: Option<Breach>,
}

impl Outcome {
    pub fn intact(&self) -> bool {
        self.breach.is_none()
    }
}

pub(super) fn breach(record: impl Into<String>, problem: impl Into<String>) -> Breach {
    Breach { record: record.into(), problem: problem.into() }
}
