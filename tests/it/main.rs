//! Integration tests: real `redis-server` processes on free ports, the real
//! binaries over HTTP, and the engine through the library.

mod api;
mod chaos;
mod chaos_helpers;
mod engine;
mod faults;
mod fuzz;
mod helpers;
mod semantics;
mod worker;
mod workflows;
