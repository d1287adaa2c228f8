//! Operations support shared by the daemons and the CLI: the daemon shell, telemetry (bunyan JSON logs), the
//! health / readiness / metrics HTTP server, the instance destroyer and status aggregation.
//! This crate never prints; it logs through tracing and returns data.

pub mod daemon;
pub mod destroy;
pub mod health;
pub mod ledger_watch;
pub mod operator;
pub mod otel;
pub mod pause;
pub mod telemetry;

pub mod answer;
pub mod approval;
pub mod archive;
pub mod budget;
pub mod cancel;
pub mod export_ledger;
pub mod feed;
pub mod forage;
pub mod fork;
pub mod resolve;
pub mod retry;
pub mod status;
pub mod traces;
pub mod transfer;
pub mod usage;
pub mod verify;
pub mod witness;
pub mod workflow;
