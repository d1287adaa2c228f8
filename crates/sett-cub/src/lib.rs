//! sett-cub
