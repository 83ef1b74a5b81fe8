//! Arguments checked at the door, before a task is enqueued: against the JSON
//! Schema its worker published (`Registry::register_typed`), and for the
//! `command` task against the commands the workers published. Used by
//! `POST /tasks` (422) and by [`Client::enqueue`](crate::Client::enqueue).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::Value;

use super::{
    Registry,
    command::{self, CommandInfo},
};
use crate::{error::QueueError, queue::Queue};

/// A published schema's text and its compiled validator.
type Compiled = (String, Arc<jsonschema::Validator>);

/// Checks arguments against what the workers published; keeps compiled schemas
/// (recompiled when the published text changes). Cheap to clone.
#[derive(Clone, Default)]
pub struct ArgsCheck {
    compiled: Arc<Mutex<HashMap<String, Compiled>>>,
}

/// What a task's arguments are judged by, read once per name.
enum Rules {
    /// A built-in task: its own argument type (`Registry::validate`).
    Builtin,
    /// The `command` task: the union of the commands the workers published.
    Commands(Vec<CommandInfo>),
    /// The JSON Schema a worker published.
    Schema(Arc<jsonschema::Validator>),
    /// Nothing published (or nothing readable): the worker checks.
    Unchecked,
}

impl ArgsCheck {
    /// Checks `args` of the task `name`. `Ok(Err(message))` names what is wrong;
    /// `Ok(Ok(()))` also when nothing was published to check against (the worker
    /// checks then). Built-in tasks of `builtins` are checked with their own
    /// argument types.
    pub async fn check(
        &self,
        queue: &Queue,
        builtins: &Registry,
        name: &str,
        args: &Value,
    ) -> Result<Result<(), String>, QueueError> {
        let rules = self.rules(queue, builtins, name).await?;
        Ok(judge(&rules, builtins, name, args))
    }

    /// [`ArgsCheck::check`] for the tasks of a batch, given as (index, name,
    /// args), reading what a name is judged by once per batch:
    /// `Ok(Err((index, message)))` for the first one refused.
    pub async fn check_batch<'a>(
        &self,
        queue: &Queue,
        builtins: &Registry,
        tasks: impl IntoIterator<Item = (usize, &'a str, &'a Value)>,
    ) -> Result<Result<(), (usize, String)>, QueueError> {
        let mut by_name: HashMap<&str, Rules> = HashMap::new();
        for (i, name, args) in tasks {
            if !by_name.contains_key(name) {
                by_name.insert(name, self.rules(queue, builtins, name).await?);
            }
            if let Err(message) = judge(&by_name[name], builtins, name, args) {
                return Ok(Err((i, message)));
            }
        }
        Ok(Ok(()))
    }

    async fn rules(&self, queue: &Queue, builtins: &Registry, name: &str) -> Result<Rules, QueueError> {
        if builtins.contains(name) {
            return Ok(Rules::Builtin);
        }
        if name == "command" {
            let mut commands: Vec<CommandInfo> = Vec::new();
            for published in queue.published_commands().await? {
                match serde_json::from_str::<Vec<CommandInfo>>(&published) {
                    // Workers may offer different commands: the union is accepted.
                    Ok(list) => {
                        for c in list {
                            if !commands.iter().any(|k| k.name == c.name) {
                                commands.push(c);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error.message = %e, "ignoring unreadable published commands"),
                }
            }
            // No worker said what it offers (an older worker): the worker checks.
            return Ok(if commands.is_empty() {
                Rules::Unchecked
            } else {
                Rules::Commands(commands)
            });
        }
        let Some(schema) = queue.task_schema(name).await? else {
            return Ok(Rules::Unchecked);
        };
        Ok(self.validator(name, &schema).map_or(Rules::Unchecked, Rules::Schema))
    }

    /// The validator of `schema` (the text published for `name`); `None` when it does not compile.
    fn validator(&self, name: &str, schema: &str) -> Option<Arc<jsonschema::Validator>> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((text, v)) = compiled.get(name)
            && text == schema
        {
            return Some(v.clone());
        }
        let value: Value = serde_json::from_str(schema).ok()?;
        match jsonschema::validator_for(&value) {
            Ok(v) => {
                let v = Arc::new(v);
                compiled.insert(name.to_owned(), (schema.to_owned(), v.clone()));
                Some(v)
            }
            Err(e) => {
                // A worker's schema the validator cannot read is not the caller's fault.
                tracing::warn!(task = %name, error.message = %e, "ignoring a published argument schema that does not compile");
                None
            }
        }
    }
}

/// Judges `args` of `name` by `rules`: `Err(message)` names what is wrong.
fn judge(rules: &Rules, builtins: &Registry, name: &str, args: &Value) -> Result<(), String> {
    let validator = match rules {
        Rules::Builtin => return builtins.validate(name, args).unwrap_or(Ok(())),
        Rules::Commands(commands) => return command::check_request(commands, args),
        Rules::Unchecked => return Ok(()),
        Rules::Schema(v) => v,
    };
    let complaints: Vec<String> = validator
        .iter_errors(args)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect();
    if complaints.is_empty() {
        Ok(())
    } else {
        Err(complaints.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::ArgsCheck;
    use crate::tasks::{
        Registry,
        http::{self, HttpTaskConfig},
    };

    /// Every published schema compiles, accepts what its task accepts, and refuses the rest.
    #[test]
    fn published_schemas_of_the_shipped_tasks_judge_like_their_argument_types() {
        let mut r = Registry::with_builtins();
        http::register(&mut r, HttpTaskConfig::default()).unwrap();
        let check = ArgsCheck::default();
        let cases = [
            ("add", json!({"x": 1, "y": 2.5}), true),
            ("add", json!([1, 2]), true),
            ("add", json!({"x": "one", "y": 2}), false),
            ("sleep", json!({"seconds": 0.5}), true),
            ("sleep", json!({"seconds": "long"}), false),
            ("fail", json!({}), true),
            (
                "http",
                json!({"url": "https://app/done", "json": {"a": [1]}, "headers": {"X": "y"}}),
                true,
            ),
            (
                "http",
                json!({"url": "https://app/done", "body": "text", "timeout_s": 5}),
                true,
            ),
            ("http", json!({"method": "GET"}), false),
            ("http", json!({"url": "https://app", "bogus": 1}), false),
        ];
        for (name, args, valid) in cases {
            let schema = r
                .args_schema(name)
                .unwrap_or_else(|| panic!("{name} publishes a schema"));
            let v = check.validator(name, &schema.to_string()).expect("schema compiles");
            assert_eq!(v.is_valid(&args), valid, "{name} {args}");
            assert_eq!(r.validate(name, &args).unwrap().is_ok(), valid, "{name} {args} (serde)");
        }
    }
}
