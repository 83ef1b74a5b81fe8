//! Integration tests: real `redis-server` processes on free ports, the real
//! binaries over HTTP, and the engine through the library.

mod api;
mod engine;
mod faults;
mod helpers;
mod ops;
mod semantics;
mod worker;
mod workflows;
