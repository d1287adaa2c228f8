//! What every long-running Sett process shares: the daemon shell ([`daemon`]: the common flags,
//! logging first, Redis with retry, signals, exit codes), telemetry ([`telemetry`]: bunyan JSON
//! or text logs, the Prometheus recorder), the health / readiness / metrics HTTP server
//! ([`health`]), OpenTelemetry export over OTLP ([`otel`]) and the workflows' spans told from the
//! ledger ([`traces`]). It owns the heavy dependencies (hyper server, Prometheus exporter,
//! tracing-subscriber, OTLP, clap) so the operations in `sett-ops` and their users (the notifier,
//! the CLI's commands) need not pull them.
//! This crate never prints; it logs through tracing and returns data.

pub mod daemon;
pub mod health;
pub mod otel;
pub mod telemetry;
pub mod traces;
