//! Domain types (no I/O).

pub mod route;
