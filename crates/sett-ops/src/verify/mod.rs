//! `sett verify`: recomputes every artifact hash and the whole event chain of an instance (from
//! Redis, or offline from an export file), checks that every artifact has its
//! `artifact_created` event, every answer its `question_answered` and every claim record the
//! event of its last transition, and names the **first** broken record. The canonical encodings
//! are in `sett_core::ledger` and docs/architecture.md ("Ledger").
//!
//! Streamed: events are read in pages of [`PAGE`] and each page's artifacts, sources and answer
//! records are fetched in one pipelined batch, so memory stays flat whatever the size (the
//! extra lookups that find an *inserted* record run only once a count says one exists).
//!
//! By concern:
//! - `walk`: [`verify`] and [`verify_witnessed`], the walk over the whole ledger (the chain page
//!   by page, the head, recorded and witnessed heads, inserted records, the claims).
//! - `chain`: one event's link in the hash chain.
//! - `page`: the records a page of chained events refers to, fetched in one batch.
//! - `records`: the check of each kind of record against its event (artifact, answer, gated
//!   grant, cancellation, operator action).
//! - `report`: what a run found ([`Outcome`], [`Report`], [`Breach`]).
//! - `source`: where the records come from ([`LedgerSource`]: Redis here; an export file in
//!   `file`, [`ExportLedger`]; the archive in `crate::archive`).
//! - `anchor`: the ledger head recorded in the global audit stream ([`anchor`],
//!   [`anchor_periodically`]).

mod anchor;
mod chain;
mod file;
mod page;
mod records;
mod report;
mod source;
mod walk;

use std::collections::HashMap;

use sett_store::StoreError;

pub use anchor::{anchor, anchor_periodically};
pub use file::{ExportLedger, ExportedArchive};
pub use report::{Breach, Outcome, Report, WitnessReport};
pub use source::LedgerSource;
pub use walk::{verify, verify_witnessed};

/// The record a break found by a witness file names.
pub const WITNESSED_HEAD: &str = "witnessed head";

/// Events per page (one XRANGE and one pipelined batch of lookups each).
pub const PAGE: usize = 1_000;

/// A stored record's fields (an artifact or claim hash, a stream entry).
type Fields = HashMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    File(String),
}
