//! sett-store
