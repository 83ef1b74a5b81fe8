//! Domain types only, no I/O.

pub mod schedule;
