//! Built-in tasks that do real work.

pub mod command;
pub mod http;
