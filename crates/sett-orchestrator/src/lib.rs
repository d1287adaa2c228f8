//! sett-orchestrator
