//! What a task author touches, shared by the API (which checks arguments at
//! the door) and the worker (which runs the tasks): the registry, the context a
//! task receives, the failure taxonomy, and the built-in tasks (`http` and `command` are
//! opt-in by operator configuration).

mod allowed_hosts;
mod builtin;
pub mod callback;
pub mod command;
mod context;
mod door;
mod error;
pub mod http;
mod registry;

pub use context::TaskContext;
pub use door::ArgsCheck;
pub use error::{TaskError, TaskErrorKind, TaskResult};
pub use registry::Registry;
