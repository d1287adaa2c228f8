//! sett-ops
