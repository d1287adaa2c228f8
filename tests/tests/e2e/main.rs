//! End-to-end tests: the real `sett`, `sett-orchestrator` and `sett-cub` binaries against a real
//! Redis, in temporary git workspaces. One test binary (modules by area) so it links once.

mod answers;
mod approvals;
mod archive;
mod budgets;
mod cluster;
mod console;
mod deploy;
mod destroy;
mod docker;
mod engine;
mod faults;
mod hitl;
mod ledger;
mod mcp;
mod notify;
mod observability;
mod python_sdk;
mod recovery;
mod regression;
mod reviews;
mod routing;
mod security;
mod steer;
mod steer_branches;
mod traces;
mod unix_socket;
mod usage;
