//! Integration tests: real `redis-server` processes on free ports, the real
//! binaries over HTTP, and the engine through the library.

mod api;
mod engine;
mod faults;
mod helpers;
mod redis_topologies;
mod semantics;
mod topology_helpers;
mod worker;
mod workflows;
