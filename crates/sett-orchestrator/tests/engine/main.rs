//! In-process tests of the orchestrator's paths: the real engine as a task of the test against
//! a real Redis (no child process), the test playing the cubs, the workers and the operator
//! through the store (see [`harness`]). What needs real processes (the cub's tool runs, the
//! CLI's output, process supervision) stays in the end-to-end suite (`tests/`).

mod harness;

mod bidding;
mod phases;
mod questions;
mod safety_nets;
mod timeouts;
mod workers;
