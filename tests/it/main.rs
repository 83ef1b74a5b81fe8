//! Integration tests: real `redis-server` processes on free ports, the real
//! binaries over HTTP, and the engine through the library.

mod api;
mod auth;
mod dashboard;
mod engine;
mod faults;
mod hardening;
mod helpers;
mod ops;
mod realwork;
mod schedules;
mod semantics;
mod worker;
mod workflows;
