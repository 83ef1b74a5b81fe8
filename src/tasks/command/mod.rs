//! The built-in `command` task: runs a program the operator defined, never one
//! the request names, and never through a shell.
//!
//! Commands live in a TOML file (`CELERIAC_COMMANDS_FILE` on the worker):
//!
//! ```toml
//! [commands.checksum]
//! program = "sha256sum"            # looked up on PATH, or an absolute path
//! args = ["{input}"]               # templates; {name} is a parameter, {{ and }} are braces
//! timeout = 60                     # seconds (default 3600); the process group is killed then
//! progress = '^(?P<current>\d+)/(?P<total>\d+)$'   # optional: progress from stdout lines
//! env = { LC_ALL = "C" }           # optional: extra environment variables
//! [commands.checksum.params.input]
//! kind = "path"                    # "path" | "string" | "int"
//! roots = ["/srv/media"]           # a path must resolve (symlinks followed) inside one of these
//! ```
//!
//! A request `{"command": "checksum", "params": {"input": "/srv/media/a.mp4"}}`
//! is checked completely before anything runs ([`CommandCatalog::validate`]):
//! unknown or missing parameters, wrong kinds, paths outside their roots (after
//! `..` and symlinks are resolved), and values starting with `-` (which a
//! program would read as an option) unless `allow_dash = true`. A refusal is a
//! fatal error. The program runs in its own process group; cancellation, the
//! soft limit, the command's timeout and dropping the task (hard limit) all
//! signal the whole group (SIGTERM, then SIGKILL after a grace), so no child
//! outlives its task.
//!
//! The program does not inherit the worker's environment, which holds the
//! broker URL and other secrets: it gets only [`PASSED_ENV`] from the worker,
//! plus the command's own `env` table.

mod catalog;
mod params;
mod run;
#[cfg(test)]
mod tests;

use std::{path::Path, sync::Arc, time::Duration};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Registry, TaskContext};
pub use catalog::{CatalogError, CommandCatalog, CommandInfo};
pub use params::{ParamInfo, ParamKind};
use run::run;

/// The setting that names the commands file (named in messages).
pub const COMMANDS_FILE_SETTING: &str = "CELERIAC_COMMANDS_FILE";
/// How much of stdout and stderr a result keeps (the end of each).
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;
/// The worker's environment variables a command inherits (if set); the rest,
/// secrets included, stay with the worker.
pub const PASSED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];
/// Timeout of a command that sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Time between SIGTERM and SIGKILL. Shorter than the worker's default cancel
/// grace (10 s), so the group is dead before the executor gives up on the task.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long output is still read after the process group is gone (pipes held
/// by a process that left the group would otherwise keep the task open).
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest stdout line matched against the progress regex.
pub(super) const MAX_PROGRESS_LINE: usize = 4096;
/// Progress updates are written at most this often (the last one always).
pub(super) const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// How much of stderr goes into a `CommandFailed` message.
pub(super) const ERROR_STDERR_BYTES: usize = 4096;

/// The task's arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandArgs {
    pub(super) command: String,
    #[serde(default)]
    pub(super) params: Map<String, Value>,
}

/// Registers the `command` task over `catalog`.
/// The commands and their parameters are published with the worker's
/// registration (the API checks requests against them) along with a JSON
/// Schema of the arguments.
pub fn register(registry: &mut Registry, catalog: CommandCatalog) {
    let described = catalog.describe();
    let catalog = Arc::new(catalog);
    registry
        .register("command", move |ctx: TaskContext, args: CommandArgs| {
            let catalog = catalog.clone();
            async move { run(&catalog, ctx, args).await }
        })
        .set_args_schema("command", args_schema(&described))
        .set_commands(described);
}

/// A JSON Schema of the `command` task's arguments: one alternative per command,
/// its parameters required and typed. Roots and dashes are not expressible in
/// it; [`CommandInfo::check`] covers them.
pub fn args_schema(commands: &[CommandInfo]) -> Value {
    let alternatives: Vec<Value> = commands
        .iter()
        .map(|c| {
            let params: Map<String, Value> = c
                .params
                .iter()
                .map(|(name, p)| {
                    let ty = match p.kind {
                        ParamKind::Int => "integer",
                        ParamKind::Path | ParamKind::String => "string",
                    };
                    (name.clone(), json!({"type": ty}))
                })
                .collect();
            json!({
                "type": "object",
                "properties": {
                    "command": {"const": c.name},
                    "params": {
                        "type": "object",
                        "properties": params,
                        "required": c.params.keys().collect::<Vec<_>>(),
                        "additionalProperties": false,
                    },
                },
                "required": ["command"],
                "additionalProperties": false,
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "CommandArgs",
        "oneOf": alternatives,
    })
}

/// Checks a request's `{"command", "params"}` against published commands, as
/// far as the API can tell (no file system): an unknown command, unknown,
/// missing or mistyped parameters, dashes, paths leaving their roots.
pub fn check_request(commands: &[CommandInfo], args: &Value) -> Result<(), String> {
    let args: CommandArgs = serde_json::from_value(args.clone()).map_err(|e| e.to_string())?;
    let info = commands.iter().find(|c| c.name == args.command).ok_or_else(|| {
        let known: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        format!("unknown command {:?} (known: {})", args.command, known.join(", "))
    })?;
    info.check(&args.params)
}

/// Registers the `command` task from the commands file `path`, if one is named
/// and exists; a missing file only means the task is not offered (logged).
/// Returns whether the task was registered.
pub fn register_from_file(registry: &mut Registry, path: Option<&Path>) -> Result<bool, CatalogError> {
    let Some(path) = path else { return Ok(false) };
    match CommandCatalog::load_optional(path)? {
        Some(catalog) => {
            tracing::info!(file = %path.display(), commands = ?catalog.names(), "command task offered");
            register(registry, catalog);
            Ok(true)
        }
        None => {
            tracing::info!(file = %path.display(), "no commands file; command task not offered");
            Ok(false)
        }
    }
}
