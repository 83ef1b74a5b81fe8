//! Request and response bodies of the HTTP API (separate from the domain types),
//! one file per resource.
//!
//! | file | what |
//! | --- | --- |
//! | `body.rs` | reading a request body: the lenient JSON extractor, its size limit, strict names |
//! | `task.rs` | a task: `POST /tasks`' body (one or a batch), a task's answer (`TaskView`, written in one pass), a page of tasks |
//! | `workflow.rs` | a workflow: `POST /workflows`' body and its view |
//! | `schedule.rs` | a schedule: its body and view, the list, the scheduler's leadership |
//! | `cluster.rs` | queues, workers and health |

mod body;
mod cluster;
mod schedule;
mod task;
mod workflow;

pub use body::{BodyLimit, JsonBody, MAX_QUEUE_NAME, MAX_TASK_NAME, QueueName, TaskName, Text, is_safe_name};
pub use cluster::{ActiveTaskView, HealthView, QueueView, WorkerList, WorkerView, ms_to_time};
pub use schedule::{MissedPolicy, ScheduleList, ScheduleRequest, ScheduleView, SchedulerReplica, SchedulerView};
pub use task::{
    BatchCreated, BatchRequest, CallbackDelivery, CallbackView, NewTaskRequest, Status, TaskCreated, TaskList,
    TaskSchema, TaskView,
};
pub use workflow::{WorkflowCreatedView, WorkflowRequest, WorkflowType, WorkflowView};
