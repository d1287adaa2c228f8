//! Sett's domain model: ids, artifacts, claims, events, the `sett.yml` model and the pure claim
//! state machine. This crate does no I/O: no Redis, no files, no clock, no processes.
//!
//! Layout:
//! - [`ids`]: parse-don't-validate newtypes for every identifier that crosses a boundary.
//! - [`derive`]: every id Sett derives (claims, outputs, failures, questions) and why.
//! - [`artifact`]: immutable artifacts and their structural types.
//! - [`claim`]: the claim record, bids, grants and statuses.
//! - [`machine`]: the claim state machine (`state + input → new state + effects`).
//! - [`policy`]: what the machine applies, built from `sett.yml` by [`config`].
//! - [`event`]: the audit-ledger event model shared by the store, the orchestrator and `watch`.
//! - [`record`]: the daemons' component health records and grant execution records.
//! - [`ledger`]: the tamper-evident ledger's canonical encodings (artifact hashes, event chain).
//! - [`regression`]: telling a ledger that went back from one that moved on.
//! - [`config`]: the `sett.yml` model, parsed with serde-saphyr and validated.
//! - [`answer_spec`]: what answer a structured question wants, and validating answers.
//! - [`review`]: human reviewers' questions and the Review artifacts their answers become.
//! - [`routing`]: who a question is addressed to, who may answer it, reminders and escalation.
//! - [`failure`]: the payload of a Failure artifact (why a tool run or a claim failed).
//! - [`tool`]: the tool contract (what a tool receives on stdin and must print on stdout).
//! - [`usage`]: what an agent's run cost (tokens, an exact cost, counters) and totals of it.
//! - [`budget`]: budgets on that usage per workflow and agent, and the question when one is reached.
//! - [`approval`]: approval gates' subject, binding and judgement.
//! - [`metrics`]: Prometheus metric names and label keys (the contract of docs/metrics.md).
//! - [`trace`]: trace and span ids derived from the ledger's ids.
//! - [`witness`]: witness records of the ledger outside Redis and the check of a chain against them.
//! - [`text`]: pure text helpers for people (short ids, unique prefixes, excerpts).

pub mod answer_spec;
pub mod approval;
pub mod artifact;
pub mod budget;
pub mod claim;
pub mod config;
pub mod derive;
pub mod event;
pub mod failure;
pub mod ids;
pub mod ledger;
pub mod machine;
pub mod metrics;
pub mod policy;
pub mod record;
pub mod regression;
pub mod review;
pub mod routing;
pub mod text;
pub mod tool;
pub mod trace;
pub mod usage;
pub mod witness;

pub use artifact::{Artifact, StructuralType};
pub use claim::{BidType, Claim, ClaimStatus, ClaimType, Phase};
pub use ids::{AgentName, ArtifactId, ClaimId, IdError, InstanceName, ShortId};
