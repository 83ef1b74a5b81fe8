//! Tasks every worker ships with: the classic demo's `add`, `noop` and `sleep`,
//! plus `echo` and `fail` for testing pipelines end to end.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, de::IgnoredAny};
use serde_json::{Number, Value};

use super::{Registry, TaskContext, TaskError};

/// Longest `sleep` accepted (one day).
const MAX_SLEEP_SECS: f64 = 86_400.0;

/// `add` takes `{"x": 1, "y": 2}` or `[1, 2]`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum AddArgs {
    Named { x: Number, y: Number },
    Pair(Number, Number),
}

#[derive(Deserialize, JsonSchema)]
struct SleepArgs {
    #[serde(default)]
    seconds: f64,
}

#[derive(Deserialize, JsonSchema)]
struct FailArgs {
    #[serde(default = "default_fail_message")]
    message: String,
}

fn default_fail_message() -> String {
    "task failed on purpose".to_owned()
}

impl Registry {
    /// A registry holding the built-in tasks (`add`, `noop`, `sleep`, `echo`, `fail`).
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        register(&mut r);
        r
    }
}

fn register(r: &mut Registry) {
    r.register_typed("add", |_ctx: TaskContext, args: AddArgs| async move { add(args) })
        .register("noop", |_ctx: TaskContext, _args: IgnoredAny| async {
            Ok::<_, TaskError>(Value::Null)
        })
        .register("echo", |_ctx: TaskContext, args: Value| async move {
            Ok::<_, TaskError>(args)
        })
        .register_typed("sleep", |ctx: TaskContext, args: SleepArgs| async move {
            sleep(ctx, args.seconds).await
        })
        .register_typed("fail", |_ctx: TaskContext, args: FailArgs| async move {
            // The message given is the exception's message (as Celery shows it).
            Err::<Value, _>(TaskError::new("TaskFailed", anyhow::anyhow!("{}", args.message)))
        });
}

fn add(args: AddArgs) -> Result<Value, TaskError> {
    let (AddArgs::Named { x, y } | AddArgs::Pair(x, y)) = args;
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64())
        && let Some(sum) = a.checked_add(b)
    {
        return Ok(Value::from(sum));
    }
    let sum = x.as_f64().unwrap_or(f64::NAN) + y.as_f64().unwrap_or(f64::NAN);
    Number::from_f64(sum)
        .map(Value::Number)
        .ok_or_else(|| TaskError::fatal("ArithmeticError", anyhow::anyhow!("{x} + {y} is not a finite number")))
}

async fn sleep(ctx: TaskContext, seconds: f64) -> Result<Value, TaskError> {
    if !(0.0..=MAX_SLEEP_SECS).contains(&seconds) {
        return Err(TaskError::fatal(
            "InvalidArguments",
            anyhow::anyhow!("seconds must be between 0 and {MAX_SLEEP_SECS}"),
        ));
    }
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => Ok(Value::Null),
        () = ctx.cancellation().cancelled() => Err(TaskError::fatal("Cancelled", anyhow::anyhow!("sleep interrupted"))),
    }
}
