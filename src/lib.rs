//! celeriac: a task queue service. A stateless HTTP API enqueues tasks into
//! Redis, workers claim and run them under leases, and results stay in Redis
//! until they expire.
//!
//! # Layout
//! Floors, top to bottom; each only uses the floors below it.
//!
//! | concept | home |
//! | --- | --- |
//! | binaries (flags, env, telemetry, signals) | `src/bin/api.rs`, `src/bin/worker.rs`, [`cli`] |
//! | HTTP API: one file per resource, one JSON error | [`api`] |
//! | the worker: consume step, executor, leases, reaper, health port | [`worker`] |
//! | what a task author touches: registry, context, errors, built-ins | [`tasks`] |
//! | periodic tasks: leader election, firing, the schedule file | [`scheduler`] |
//! | the engine's one door, one file per concern | [`queue`] |
//! | Redis: connections, keys, codec, scripts, wake-ups | [`redis`] |
//! | domain types, no I/O | [`model`] |
//! | operator queries (`celeriac-api inspect …`) | [`inspect`] |
//! | a typed client for Rust producers (Redis, no HTTP) | [`client`] |
//! | settings (typed, validated, no env reads) | [`config`] |
//! | errors, logs, shutdown | [`error`], [`telemetry`], [`shutdown`] |
//!
//! # The path of a task from `POST /tasks` to `SUCCESS`
//! 1. `api::tasks` reads the body into a [`model::NewTask`] (its queue from the
//!    routes when none is given; arguments of built-in tasks are checked by
//!    [`tasks::Registry::validate`], others against the JSON Schema their worker
//!    published, `api/task_types.rs`) and calls [`Queue::enqueue`] (`queue/tasks.rs`);
//!    a Rust producer calls it through [`Client`] instead.
//! 2. `redis::scripts::enqueue` runs `lua/enqueue.lua`: the record hash, the
//!    queue ZSET (or the delayed ZSET), the wake marker and one event — one script.
//! 3. A worker's [`worker::Consumer`] holds free slots, is woken from BZPOPMIN on
//!    the wake marker, and claims up to that many tasks in one `lua/claim.lua`
//!    call: each gets a lease (deadline in the leases ZSET) and a lease token.
//! 4. `worker::executor` runs the handler from [`tasks::Registry`] under its time
//!    limits; the lease keeper (`worker/lease.rs`) extends the lease meanwhile.
//! 5. `worker/recorder.rs` sends the success to `lua/claim.lua` with the others
//!    that finished meanwhile (group commit); per task the script checks the lease
//!    token, writes `SUCCESS` and the result, sets the record's expiry, appends an
//!    event, PUBLISHes on the task's done channel (waking `GET /tasks/{id}?wait=`)
//!    and advances its workflow; then the same call claims the next tasks for the
//!    slots the successes free, started at once (`lua/complete.lua` when none is wanted).
//!
//! `src/bin/api.rs` and `src/bin/worker.rs` only parse settings and call
//! [`api::serve`] and [`worker::run`].

#![deny(unsafe_code)] // one audited exception: `cli::runtime` caps glibc malloc arenas
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod inspect;
pub mod model;
pub mod queue;
pub mod redis;
pub mod scheduler;
pub mod shutdown;
pub mod tasks;
pub mod telemetry;
pub mod worker;

pub use client::Client;
pub use error::{QueueError, Result};
pub use queue::Queue;
