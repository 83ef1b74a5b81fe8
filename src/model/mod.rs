//! Domain types only, no I/O: tasks, workflows, workers, queues, rate limits,
//! routes, schedules. Everything above (the queue engine, the API, the worker, the
//! scheduler) speaks in these.

pub mod callback;
pub mod name;
pub mod queue;
pub mod rate_limit;
pub mod route;
pub mod schedule;
pub mod task;
mod task_json;
pub mod task_type;
pub mod worker;
pub mod workflow;

pub use callback::{CallbackState, CallbackStatus, QueueCallbacks};
pub use queue::QueueStats;
pub use rate_limit::RateLimit;
pub use route::Routes;
pub use schedule::Schedule;
pub use task::{ClaimedTask, DEFAULT_QUEUE, NewTask, TaskOptions, TaskRecord, TaskStatus, now_ms};
pub use task_type::TaskType;
pub use worker::{ActiveTask, WorkerBeat, WorkerInfo, WorkerState, WorkerStatus};
pub use workflow::{WorkflowCreated, WorkflowKind, WorkflowRecord};
