//! Redis: the broker and the result backend.
//!
//! | file | what |
//! | --- | --- |
//! | `connect/` | every client and connection: the shared multiplexed one, blocking and pub/sub ones, TLS, Sentinel, Cluster |
//! | `keys.rs` | every key name, and the table of what each key holds |
//! | `codec.rs` | hash fields ↔ task and workflow records |
//! | `scripts/` | one typed function per Lua script (create, lease, control, listing); script codes → errors |
//! | `invocation.rs` | a script's source with its includes expanded, and one call of it (EVALSHA) |
//! | `notify.rs` | pub/sub wake-ups for waiting clients, one reader per process |
//! | `events.rs` | the events stream reader (SSE), one per process, fanned out |
//! | `lua/` | one script per state transition, `lua/includes/` for shared pieces |
//!
//! # Lifecycle
//! `enqueue` → queue (or delayed) → `claim` (lease + token) → `heartbeat`* →
//! `complete` | `fail` (→ delayed for a retry, or FAILURE) | `release` (shutdown) |
//! `reap` (lease expired: back to the queue, or FAILURE + dead letter). Each arrow
//! is one Lua script in `lua/`; Rust never reads, modifies and writes a record.

pub mod codec;
pub mod connect;
pub mod events;
pub(crate) mod invocation;
pub mod keys;
pub mod notify;
pub mod scripts;
