//! Integration tests: real `redis-server` processes on free ports, the real
//! binaries over HTTP, and the engine through the library.

mod api;
mod auth;
mod dashboard;
mod engine;
mod faults;
mod hardening;
mod helpers;
mod listing;
mod ops;
mod realwork;
mod redis_topologies;
mod schedules;
mod semantics;
mod topology_helpers;
mod worker;
mod workflows;
