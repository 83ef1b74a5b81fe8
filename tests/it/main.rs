//! Integration tests: real `redis-server` processes on free ports, the real
//! binaries over HTTP, and the engine through the library.

mod api;
mod auth;
mod callbacks;
mod chaos;
mod chaos_helpers;
mod dashboard;
mod engine;
mod faults;
mod fuzz;
mod hardening;
mod helpers;
mod listing;
mod ops;
mod realwork;
mod redis_topologies;
mod schedules;
mod semantics;
mod task_library;
mod topology_helpers;
mod worker;
mod workflows;
