//! Sett's operations: what the CLI, the console, the MCP server and the daemons do to an
//! instance, as library functions that never print (they log through tracing and return data).
//! The process shell they run in (logging, health server, OTLP) is `sett-daemon`.
//!
//! - acting on workflows: [`answer`] (answering a question), [`approval`] (approvals as an
//!   operator decides them), [`cancel`], [`forage`] (starting a workflow), [`fork`], [`pause`]
//!   (pause / resume), [`retry`];
//! - reading them: [`feed`] (event and log lines for humans), [`resolve`] (ids and `--since`
//!   points from what an operator types), [`status`] (status aggregation), [`usage`] (usage
//!   views), [`workflow`] (workflow membership from the event stream);
//! - the orchestrator's watches: [`budget`] (the budget watch), [`ledger_watch`] (a ledger that
//!   went back), [`witness`] (the witness file outside Redis);
//! - the ledger as a whole: [`verify`] (hashes and the chain; an export file as a ledger source
//!   in `verify/file.rs`), [`transfer`] (`sett export` / `sett import`), [`archive`] (retention
//!   and archival), [`destroy`] (the instance destroyer);
//! - [`operator`]: who is acting, for audit records.

pub mod destroy;
pub mod ledger_watch;
pub mod operator;
pub mod pause;

pub mod answer;
pub mod approval;
pub mod archive;
pub mod budget;
pub mod cancel;
pub mod feed;
pub mod forage;
pub mod fork;
pub mod resolve;
pub mod retry;
pub mod status;
pub mod transfer;
pub mod usage;
pub mod verify;
pub mod witness;
pub mod workflow;
