//! sett-testkit
