//! celeriac: a task queue service. A stateless HTTP API enqueues tasks into
//! Redis, workers claim and run them under leases, and results stay in Redis
//! until they expire.
//!
//! # Layout
//! - [`config`]: typed settings of the engine, the API and the worker (no env reads).
//! - [`task`]: the task model (statuses, new tasks, claimed tasks, records).
//! - [`queue`]: the facade both binaries use; one round trip per operation.
//! - [`redis`]: keys, Lua scripts (one per transition), connections, pub/sub wake-ups.
//! - [`api`]: the HTTP API (poem-openapi): tasks, queues, health, docs.
//! - [`worker`]: the consume loop, the executor, the task registry and built-in tasks.
//! - [`inspect`]: `celeriac-api inspect …` (workers, running tasks, queues) for operators.
//! - [`telemetry`], [`shutdown`], [`error`]: logs, signals, the engine's error type.
//!
//! `src/bin/api.rs` and `src/bin/worker.rs` only parse settings and call
//! [`api::serve`] and [`worker::run`].

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

pub mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod inspect;
pub mod model;
pub mod queue;
pub mod redis;
pub mod shutdown;
pub mod tasks;
pub mod telemetry;
pub mod worker;

pub use error::{QueueError, Result};
pub use queue::Queue;
