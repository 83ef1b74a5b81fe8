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

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fmt,
    os::unix::fs::PermissionsExt,
    path::{Component, Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::{Registry, TaskContext, TaskError};

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
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long output is still read after the process group is gone (pipes held
/// by a process that left the group would otherwise keep the task open).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest stdout line matched against the progress regex.
const MAX_PROGRESS_LINE: usize = 4096;
/// Progress updates are written at most this often (the last one always).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// How much of stderr goes into a `CommandFailed` message.
const ERROR_STDERR_BYTES: usize = 4096;

/// Why a commands file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file cannot be read.
    #[error("cannot read the commands file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid commands file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint (with line and column).
        reason: String,
    },
    /// A command definition cannot work.
    #[error("invalid command {command:?}: {reason}")]
    Invalid {
        /// The command's name.
        command: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a parameter holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    /// A file system path inside one of the parameter's roots.
    Path,
    /// Any string (no NUL; no leading `-` unless allowed).
    String,
    /// A JSON integer (not negative unless a leading `-` is allowed).
    Int,
}

/// A parameter as published for the API (roots are resolved, absolute paths).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// What the parameter holds.
    pub kind: ParamKind,
    /// For paths: the directories a value must resolve inside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roots: Vec<PathBuf>,
    /// Whether a value may start with `-`.
    #[serde(default)]
    pub allow_dash: bool,
}

/// A command as published for the API: its name and parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// The command's name (`args.command` of a request).
    pub name: String,
    /// Its parameters, all required.
    pub params: BTreeMap<String, ParamInfo>,
}

impl CommandInfo {
    /// The checks that need no file system: names, kinds, dashes, and paths
    /// that are relative or leave their roots lexically (`..`). For the API,
    /// which does not see the workers' disks; the worker re-checks with symlinks
    /// resolved.
    pub fn check(&self, params: &Map<String, Value>) -> Result<(), String> {
        check_params(&self.name, &self.params, params).map(drop)
    }
}

/// The commands a worker offers, read from its commands file.
#[derive(Clone, Debug, Default)]
pub struct CommandCatalog {
    commands: BTreeMap<String, Arc<CommandDef>>,
}

/// A command ready to run: program resolved, templates parsed, regex compiled.
struct CommandDef {
    name: String,
    program: PathBuf,
    args: Vec<Vec<Piece>>,
    timeout: Duration,
    progress: Option<Regex>,
    params: BTreeMap<String, ParamInfo>,
    env: BTreeMap<String, String>,
}

impl fmt::Debug for CommandDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandDef")
            .field("program", &self.program)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A piece of an argument template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    commands: BTreeMap<String, CommandToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandToml {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    timeout: Option<f64>,
    progress: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, ParamToml>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamToml {
    kind: ParamKind,
    #[serde(default)]
    roots: Vec<PathBuf>,
    #[serde(default)]
    allow_dash: bool,
}

impl CommandCatalog {
    /// Reads and checks a commands file.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Like [`load`](Self::load), but a missing file is `Ok(None)`: the
    /// `command` task is then simply not offered.
    pub fn load_optional(path: &Path) -> Result<Option<Self>, CatalogError> {
        match Self::load(path) {
            Err(CatalogError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            other => other.map(Some),
        }
    }

    /// Parses the TOML text of a commands file; `origin` names it in errors.
    /// Programs must be found and roots must exist now, so a worker with a
    /// broken file refuses to start instead of failing tasks later.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, CatalogError> {
        let file: FileToml = toml::from_str(text).map_err(|e| CatalogError::Parse {
            path: origin.to_owned(),
            reason: e.to_string(),
        })?;
        let mut commands = BTreeMap::new();
        for (name, def) in file.commands {
            let invalid = |reason: String| CatalogError::Invalid {
                command: name.clone(),
                reason,
            };
            let def = build_command(&name, def).map_err(invalid)?;
            commands.insert(name, Arc::new(def));
        }
        Ok(Self { commands })
    }

    /// Command names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.commands.keys().cloned().collect()
    }

    /// True when the file defines no command.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The commands and their parameters, to publish at registration.
    pub fn describe(&self) -> Vec<CommandInfo> {
        self.commands
            .values()
            .map(|c| CommandInfo {
                name: c.name.clone(),
                params: c.params.clone(),
            })
            .collect()
    }

    /// Checks a request completely (paths resolved on this machine's file
    /// system) and returns the argument list to execute, or a message saying
    /// what is wrong.
    pub fn validate(&self, command: &str, params: &Map<String, Value>) -> Result<Vec<OsString>, String> {
        let def = self
            .commands
            .get(command)
            .ok_or_else(|| format!("unknown command {command:?} (known: {})", self.names().join(", ")))?;
        let checked = check_params(command, &def.params, params)?;
        let mut values: BTreeMap<&str, OsString> = BTreeMap::new();
        for (name, value) in &checked {
            let value = match value {
                Checked::Text(s) => OsString::from(s),
                Checked::Path(p) => resolve_path(name, p, &def.params[*name].roots)?.into_os_string(),
            };
            values.insert(name, value);
        }
        Ok(def
            .args
            .iter()
            .map(|pieces| {
                let mut arg = OsString::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => arg.push(t),
                        Piece::Param(p) => arg.push(&values[p.as_str()]),
                    }
                }
                arg
            })
            .collect())
    }
}

fn build_command(name: &str, def: CommandToml) -> Result<CommandDef, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err("names use letters, digits, '_', '.' and '-'".to_owned());
    }
    let program = find_program(&def.program)?;
    if let Some(k) = def
        .env
        .keys()
        .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err(format!("invalid environment variable name {k:?}"));
    }
    if def.env.values().any(|v| v.contains('\0')) {
        return Err("environment values may not contain NUL".to_owned());
    }
    let args = def
        .args
        .iter()
        .map(|a| parse_template(a))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = match def.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => Duration::try_from_secs_f64(t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("timeout must be a positive number of seconds, not {t}"))?,
    };
    let progress = def
        .progress
        .map(|p| {
            let re = Regex::new(&p).map_err(|e| format!("invalid progress regex: {e}"))?;
            let groups: Vec<_> = re.capture_names().flatten().collect();
            if !groups.contains(&"current") || !groups.contains(&"total") {
                return Err("the progress regex needs named groups `current` and `total`".to_owned());
            }
            Ok(re)
        })
        .transpose()?;
    let mut params = BTreeMap::new();
    for (pname, p) in def.params {
        let roots = match p.kind {
            ParamKind::Path if p.roots.is_empty() => {
                return Err(format!("path parameter {pname:?} needs at least one root"));
            }
            ParamKind::Path => p
                .roots
                .iter()
                .map(|r| {
                    if !r.is_absolute() {
                        return Err(format!("root {} of {pname:?} must be absolute", r.display()));
                    }
                    std::fs::canonicalize(r).map_err(|e| format!("root {} of {pname:?}: {e}", r.display()))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ if !p.roots.is_empty() => return Err(format!("only path parameters have roots ({pname:?})")),
            _ => Vec::new(),
        };
        if p.kind == ParamKind::Path && p.allow_dash {
            return Err(format!("allow_dash does not apply to path parameter {pname:?}"));
        }
        params.insert(
            pname,
            ParamInfo {
                kind: p.kind,
                roots,
                allow_dash: p.allow_dash,
            },
        );
    }
    let used: Vec<&str> = args
        .iter()
        .flatten()
        .filter_map(|p| match p {
            Piece::Param(p) => Some(p.as_str()),
            Piece::Text(_) => None,
        })
        .collect();
    if let Some(p) = used.iter().find(|p| !params.contains_key(**p)) {
        return Err(format!("args use {{{p}}}, which is not a declared parameter"));
    }
    if let Some(p) = params.keys().find(|p| !used.contains(&p.as_str())) {
        return Err(format!("parameter {p:?} is declared but no argument uses it"));
    }
    Ok(CommandDef {
        name: name.to_owned(),
        program,
        args,
        timeout,
        progress,
        params,
        env: def.env,
    })
}

/// Resolves the program now: an absolute path, or a name looked up on PATH.
fn find_program(program: &str) -> Result<PathBuf, String> {
    let is_executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = Path::new(program);
        if !p.is_absolute() {
            return Err(format!(
                "program {program:?} must be a name on PATH or an absolute path"
            ));
        }
        return if is_executable(p) {
            Ok(p.to_owned())
        } else {
            Err(format!("program {program:?} is not an executable file"))
        };
    }
    if program.is_empty() {
        return Err("program is empty".to_owned());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_absolute() && is_executable(p))
        .ok_or_else(|| format!("program {program:?} not found on PATH"))
}

/// `"--in={input}"` → `[Text("--in="), Param("input")]`; `{{`/`}}` are literal braces.
fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed || name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("bad placeholder in argument {template:?}"));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Param(name));
            }
            '}' => return Err(format!("unmatched '}}' in argument {template:?} (write '}}}}')")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// A parameter value after the checks that need no file system.
enum Checked {
    Text(String),
    /// Absolute, `.` and `..` removed, lexically inside a root.
    Path(PathBuf),
}

fn check_params<'a>(
    command: &str,
    declared: &'a BTreeMap<String, ParamInfo>,
    given: &Map<String, Value>,
) -> Result<Vec<(&'a str, Checked)>, String> {
    if let Some(unknown) = given.keys().find(|k| !declared.contains_key(*k)) {
        return Err(format!(
            "unknown parameter {unknown:?} for command {command:?} (expected: {})",
            declared.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let mut out = Vec::new();
    for (name, info) in declared {
        let value = given
            .get(name)
            .ok_or_else(|| format!("missing parameter {name:?} for command {command:?}"))?;
        let checked = match info.kind {
            ParamKind::String => {
                let s = value
                    .as_str()
                    .ok_or_else(|| format!("parameter {name:?} must be a string, not {value}"))?;
                if s.contains('\0') {
                    return Err(format!("parameter {name:?} contains a NUL byte"));
                }
                if s.starts_with('-') && !info.allow_dash {
                    return Err(format!(
                        "parameter {name:?} may not start with '-' (it would read as an option)"
                    ));
                }
                Checked::Text(s.to_owned())
            }
            ParamKind::Int => {
                let n = value
                    .as_i64()
                    .ok_or_else(|| format!("parameter {name:?} must be an integer, not {value}"))?;
                if n < 0 && !info.allow_dash {
                    return Err(format!(
                        "parameter {name:?} may not be negative (it would read as an option)"
                    ));
                }
                Checked::Text(n.to_string())
            }
            ParamKind::Path => {
                let s = value
                    .as_str()
                    .ok_or_else(|| format!("parameter {name:?} must be a path string, not {value}"))?;
                Checked::Path(lexical_path(name, s, &info.roots)?)
            }
        };
        out.push((name.as_str(), checked));
    }
    Ok(out)
}

/// Makes `raw` absolute-and-normalized without touching the disk, and checks it
/// stays inside a root.
fn lexical_path(name: &str, raw: &str, roots: &[PathBuf]) -> Result<PathBuf, String> {
    if raw.contains('\0') {
        return Err(format!("parameter {name:?} contains a NUL byte"));
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(format!("parameter {name:?}: path {raw:?} must be absolute"));
    }
    let mut normal = PathBuf::new();
    let mut dotdot = false;
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => normal.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                dotdot = true;
                normal.pop();
            }
            Component::Normal(part) => normal.push(part),
        }
    }
    if roots.iter().any(|r| normal.starts_with(r)) {
        return Ok(normal);
    }
    Err(if dotdot {
        format!("parameter {name:?}: path {raw:?} escapes its roots through '..'")
    } else {
        format!(
            "parameter {name:?}: path {raw:?} is outside the allowed roots ({})",
            show_roots(roots)
        )
    })
}

/// Resolves symlinks of the existing part of `path` (the rest may be an output
/// not created yet) and checks the result is still inside a root.
fn resolve_path(name: &str, path: &Path, roots: &[PathBuf]) -> Result<PathBuf, String> {
    let mut existing = path.to_path_buf();
    let mut missing: Vec<OsString> = Vec::new();
    let resolved = loop {
        match std::fs::canonicalize(&existing) {
            Ok(real) => break real,
            Err(_) => {
                // A dangling symlink would be followed when the program writes to it.
                if std::fs::symlink_metadata(&existing).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(format!(
                        "parameter {name:?}: {} is a symlink to nothing",
                        existing.display()
                    ));
                }
                match existing.file_name() {
                    Some(part) => missing.push(part.to_owned()),
                    None => return Err(format!("parameter {name:?}: cannot resolve {}", path.display())),
                }
                existing.pop();
            }
        }
    };
    let resolved = missing.iter().rev().fold(resolved, |p, part| p.join(part));
    if roots.iter().any(|r| resolved.starts_with(r)) {
        Ok(resolved)
    } else {
        Err(format!(
            "parameter {name:?}: path {} resolves to {}, outside the allowed roots ({})",
            path.display(),
            resolved.display(),
            show_roots(roots)
        ))
    }
}

fn show_roots(roots: &[PathBuf]) -> String {
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The task's arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandArgs {
    command: String,
    #[serde(default)]
    params: Map<String, Value>,
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

async fn run(catalog: &CommandCatalog, ctx: TaskContext, args: CommandArgs) -> Result<Value, TaskError> {
    let argv = catalog
        .validate(&args.command, &args.params)
        .map_err(|m| TaskError::fatal("InvalidArguments", anyhow::anyhow!(m)))?;
    let def = catalog.commands[&args.command].clone();
    let mut child = tokio::process::Command::new(&def.program)
        .args(&argv)
        .env_clear()
        .envs(PASSED_ENV.iter().filter_map(|k| Some((k, std::env::var_os(k)?))))
        .envs(&def.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            let e = anyhow::Error::new(e).context(format!("cannot start {}", def.program.display()));
            TaskError::fatal("CommandError", e)
        })?;
    let Some(pid) = child.id() else {
        return Err(TaskError::new(
            "CommandError",
            anyhow::anyhow!("the command exited at once"),
        ));
    };
    let mut group = ProcessGroup::new(pid);
    tracing::info!(command = %def.name, pid, "command started");
    let stop = CancellationToken::new();
    // If this future is dropped, the readers stop too (a process that left the
    // group could otherwise hold a pipe, and a reader, open).
    let _stop_on_drop = stop.clone().drop_guard();
    let reporter = def.progress.clone().map(|re| Reporter::new(re, ctx.clone()));
    let stdout = tokio::spawn(read_tail(child.stdout.take(), reporter, stop.clone()));
    let stderr = tokio::spawn(read_tail(child.stderr.take(), None, stop.clone()));

    let end = tokio::select! {
        status = child.wait() => End::Exited(status),
        () = ctx.cancellation().cancelled() => End::Cancelled,
        () = tokio::time::sleep(def.timeout) => End::TimedOut,
    };
    if !matches!(end, End::Exited(_)) {
        group.terminate(&mut child).await;
    }
    // Whatever the leader did, nothing it started may outlive the task.
    group.finish();
    let drained = async {
        let out = stdout.await.unwrap_or_default();
        let err = stderr.await.unwrap_or_default();
        (out, err)
    };
    let mut drained = std::pin::pin!(drained);
    let (out, err) = match tokio::time::timeout(DRAIN_TIMEOUT, &mut drained).await {
        Ok(r) => r,
        Err(_) => {
            stop.cancel();
            drained.await
        }
    };
    let (out, err) = (lossy(&out), lossy(&err));
    match end {
        End::Exited(Ok(status)) if status.success() => Ok(json!({"exit_code": 0, "stdout": out, "stderr": err})),
        End::Exited(Ok(status)) => {
            let excerpt = &err[char_boundary_at_or_after(&err, err.len().saturating_sub(ERROR_STDERR_BYTES))..];
            Err(TaskError::new(
                "CommandFailed",
                anyhow::anyhow!("command {} {}: {}", def.name, describe_exit(status), excerpt.trim_end()),
            ))
        }
        End::Exited(Err(e)) => Err(TaskError::new(
            "CommandError",
            anyhow::Error::new(e).context("cannot wait for the command"),
        )),
        End::Cancelled => Err(TaskError::fatal(
            "Cancelled",
            anyhow::anyhow!("command {} cancelled; its process group was killed", def.name),
        )),
        End::TimedOut => Err(TaskError::timeout(format!(
            "command {} exceeded its timeout of {}s; its process group was killed",
            def.name,
            def.timeout.as_secs_f64()
        ))),
    }
}

enum End {
    Exited(std::io::Result<ExitStatus>),
    Cancelled,
    TimedOut,
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "failed".to_owned(),
    }
}

/// The first char boundary of `s` at or after `from`.
fn char_boundary_at_or_after(s: &str, from: usize) -> usize {
    let mut i = from.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The command's process group. Dropping it unfinished (the task was aborted)
/// sends SIGTERM, and SIGKILL after the grace from a thread, which works even
/// while the runtime shuts down.
struct ProcessGroup {
    pgid: Pid,
    armed: bool,
}

impl ProcessGroup {
    fn new(pid: u32) -> Self {
        Self {
            pgid: Pid::from_raw(pid as i32),
            armed: true,
        }
    }

    fn signal(&self, sig: Signal) {
        // ESRCH (nobody left in the group) is the normal end.
        let _ = nix::sys::signal::killpg(self.pgid, sig);
    }

    /// SIGTERM, then SIGKILL if the leader is still there after the grace.
    async fn terminate(&mut self, child: &mut tokio::process::Child) {
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
            self.signal(Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }

    /// Kills whatever is left in the group once the leader is gone.
    fn finish(&mut self) {
        self.signal(Signal::SIGKILL);
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.signal(Signal::SIGTERM);
        let pgid = self.pgid;
        std::thread::spawn(move || {
            std::thread::sleep(KILL_GRACE);
            let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
        });
    }
}

/// Turns stdout lines matching the progress regex into progress updates,
/// at most one per `PROGRESS_INTERVAL` (and always the last one).
struct Reporter {
    re: Regex,
    ctx: TaskContext,
    last_sent: Option<Instant>,
    pending: Option<(u64, u64, String)>,
}

impl Reporter {
    fn new(re: Regex, ctx: TaskContext) -> Self {
        Self {
            re,
            ctx,
            last_sent: None,
            pending: None,
        }
    }

    async fn line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let Some(caps) = self.re.captures(&text) else { return };
        let number = |g: &str| caps.name(g).and_then(|m| m.as_str().parse::<u64>().ok());
        let (Some(current), Some(total)) = (number("current"), number("total")) else {
            return;
        };
        self.pending = Some((current, total, text.into_owned()));
        if self.last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL) {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if let Some((current, total, line)) = self.pending.take() {
            if let Err(e) = self.ctx.progress(current, total, line).await {
                tracing::debug!(error.message = %e, "progress update failed");
            }
            self.last_sent = Some(Instant::now());
        }
    }
}

/// Reads a pipe to its end (or `stop`), keeping the last `OUTPUT_TAIL_BYTES`
/// and feeding lines (`\n` or `\r` ended) to the progress reporter.
async fn read_tail(
    pipe: Option<impl AsyncRead + Unpin>,
    mut reporter: Option<Reporter>,
    stop: CancellationToken,
) -> Vec<u8> {
    let Some(mut pipe) = pipe else { return Vec::new() };
    let mut tail = Vec::new();
    let mut line = Vec::new();
    let mut overlong = false;
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = tokio::select! {
            r = pipe.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = stop.cancelled() => break,
        };
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * OUTPUT_TAIL_BYTES {
            tail.drain(..tail.len() - OUTPUT_TAIL_BYTES);
        }
        if let Some(reporter) = reporter.as_mut() {
            for &b in &chunk[..n] {
                if b == b'\n' || b == b'\r' {
                    if !overlong && !line.is_empty() {
                        reporter.line(&line).await;
                    }
                    line.clear();
                    overlong = false;
                } else if line.len() < MAX_PROGRESS_LINE {
                    line.push(b);
                } else {
                    overlong = true;
                }
            }
        }
    }
    if let Some(mut reporter) = reporter {
        if !overlong && !line.is_empty() {
            reporter.line(&line).await;
        }
        reporter.flush().await;
    }
    if tail.len() > OUTPUT_TAIL_BYTES {
        tail.drain(..tail.len() - OUTPUT_TAIL_BYTES);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private directory tree, removed on drop.
    struct TempTree(PathBuf);

    impl TempTree {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("celeriac-cmd-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(dir.join("media/sub")).unwrap();
            std::fs::create_dir_all(dir.join("outside")).unwrap();
            std::fs::write(dir.join("media/a.txt"), "a").unwrap();
            std::fs::write(dir.join("outside/secret.txt"), "s").unwrap();
            std::os::unix::fs::symlink(dir.join("outside"), dir.join("media/escape")).unwrap();
            std::os::unix::fs::symlink(dir.join("media/sub"), dir.join("media/inner")).unwrap();
            std::os::unix::fs::symlink(dir.join("outside/nothing"), dir.join("media/dangling")).unwrap();
            Self(dir)
        }

        fn media(&self) -> String {
            self.0.join("media").display().to_string()
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn catalog(tree: &TempTree) -> CommandCatalog {
        let toml = format!(
            r#"
            [commands.checksum]
            program = "sha256sum"
            args = ["--", "{{input}}"]
            [commands.checksum.params.input]
            kind = "path"
            roots = ["{media}"]

            [commands.tag]
            program = "/usr/bin/env"
            args = ["--title={{title}}", "{{flag}}", "n={{n}}", "{{{{literal}}}}"]
            timeout = 5
            [commands.tag.params.title]
            kind = "string"
            [commands.tag.params.flag]
            kind = "string"
            allow_dash = true
            [commands.tag.params.n]
            kind = "int"
            "#,
            media = tree.media()
        );
        CommandCatalog::parse(&toml, Path::new("test.toml")).unwrap()
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn templates_expand_into_one_argument_each_without_a_shell() {
        let tree = TempTree::new();
        let c = catalog(&tree);
        let argv = c
            .validate("tag", &params(json!({"title": "a b; rm -rf /", "flag": "-v", "n": 3})))
            .unwrap();
        assert_eq!(
            argv,
            ["--title=a b; rm -rf /", "-v", "n=3", "{literal}"].map(OsString::from)
        );
        let argv = c
            .validate(
                "checksum",
                &params(json!({"input": format!("{}/sub/../a.txt", tree.media())})),
            )
            .unwrap();
        let real = std::fs::canonicalize(tree.0.join("media/a.txt")).unwrap();
        assert_eq!(argv, [OsString::from("--"), real.into_os_string()]);
    }

    #[test]
    fn every_invalid_request_is_refused_with_a_clear_message() {
        let tree = TempTree::new();
        let c = catalog(&tree);
        let m = tree.media();
        let refuse = |cmd: &str, p: Value| c.validate(cmd, &params(p)).unwrap_err();
        let ok_tag = json!({"title": "t", "flag": "f", "n": 1});
        for (cmd, p, expected) in [
            ("rm", json!({}), "unknown command \"rm\""),
            (
                "tag",
                json!({"title": "t", "flag": "f", "n": 1, "x": 1}),
                "unknown parameter \"x\"",
            ),
            ("tag", json!({"title": "t", "flag": "f"}), "missing parameter \"n\""),
            (
                "tag",
                json!({"title": 5, "flag": "f", "n": 1}),
                "\"title\" must be a string",
            ),
            (
                "tag",
                json!({"title": "t", "flag": "f", "n": "1"}),
                "\"n\" must be an integer",
            ),
            (
                "tag",
                json!({"title": "t", "flag": "f", "n": 1.5}),
                "\"n\" must be an integer",
            ),
            (
                "tag",
                json!({"title": "-rf", "flag": "f", "n": 1}),
                "\"title\" may not start with '-'",
            ),
            (
                "tag",
                json!({"title": "t", "flag": "f", "n": -1}),
                "\"n\" may not be negative",
            ),
            ("tag", json!({"title": "a\u{0}b", "flag": "f", "n": 1}), "NUL"),
            ("checksum", json!({"input": 1}), "must be a path string"),
            ("checksum", json!({"input": "a.txt"}), "must be absolute"),
            ("checksum", json!({"input": "/etc/passwd"}), "outside the allowed roots"),
            (
                "checksum",
                json!({"input": format!("{m}/../outside/secret.txt")}),
                "escapes its roots through '..'",
            ),
            (
                "checksum",
                json!({"input": format!("{m}/escape/secret.txt")}),
                "outside the allowed roots",
            ),
            (
                "checksum",
                json!({"input": format!("{m}/dangling")}),
                "symlink to nothing",
            ),
            (
                "checksum",
                json!({"input": format!("{m}2/a.txt")}),
                "outside the allowed roots",
            ),
        ] {
            let msg = refuse(cmd, p.clone());
            assert!(msg.contains(expected), "{cmd} {p}: {msg:?} should contain {expected:?}");
        }
        assert!(c.validate("tag", &params(ok_tag)).is_ok());
        // A symlink that stays inside the roots is fine, and so is an output not created yet.
        assert!(
            c.validate("checksum", &params(json!({"input": format!("{m}/inner")})))
                .is_ok()
        );
        let out = c
            .validate("checksum", &params(json!({"input": format!("{m}/sub/new/out.mp4")})))
            .unwrap();
        assert!(out[1].to_string_lossy().ends_with("/media/sub/new/out.mp4"), "{out:?}");
    }

    #[test]
    fn the_published_description_checks_without_the_file_system() {
        let tree = TempTree::new();
        let c = catalog(&tree);
        let info = c.describe();
        assert_eq!(
            info.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["checksum", "tag"]
        );
        let json = serde_json::to_value(&info).unwrap();
        let back: Vec<CommandInfo> = serde_json::from_value(json).unwrap();
        assert_eq!(back, info);
        let checksum = &back[0];
        assert_eq!(checksum.params["input"].kind, ParamKind::Path);
        assert!(
            checksum
                .check(&params(json!({"input": format!("{}/x", tree.media())})))
                .is_ok()
        );
        let msg = checksum.check(&params(json!({"input": "/etc/passwd"}))).unwrap_err();
        assert!(msg.contains("outside"), "{msg}");
        assert!(checksum.check(&params(json!({}))).unwrap_err().contains("missing"));
    }

    #[test]
    fn broken_command_files_are_refused_at_load() {
        let tree = TempTree::new();
        let m = tree.media();
        for (toml, expected) in [
            (
                "[commands.x]\nprogram = 'sha256sum'\nargs = ['{a}']",
                "not a declared parameter",
            ),
            (
                "[commands.x]\nprogram = 'sha256sum'\n[commands.x.params.a]\nkind = 'string'",
                "no argument uses it",
            ),
            (
                "[commands.x]\nprogram = 'no-such-program-celeriac'",
                "not found on PATH",
            ),
            ("[commands.x]\nprogram = 'bin/ls'", "absolute path"),
            ("[commands.x]\nprogram = 'ls'\nprogress = '('", "invalid progress regex"),
            (
                "[commands.x]\nprogram = 'ls'\nprogress = '(?P<current>\\d+)'",
                "`current` and `total`",
            ),
            ("[commands.x]\nprogram = 'ls'\ntimeout = 0", "timeout"),
            ("[commands.x]\nprogram = 'ls'\nargs = ['{a']", "bad placeholder"),
            ("[commands.x]\nprogram = 'ls'\nargs = ['a}']", "unmatched"),
            (
                "[commands.x]\nprogram = 'ls'\nargs = ['{a}']\n[commands.x.params.a]\nkind = 'path'",
                "needs at least one root",
            ),
            (
                "[commands.x]\nprogram = 'ls'\nargs = ['{a}']\n[commands.x.params.a]\nkind = 'path'\nroots = ['/no/such/root']",
                "/no/such/root",
            ),
            (
                "[commands.x]\nprogram = 'ls'\nargs = ['{a}']\n[commands.x.params.a]\nkind = 'bool'",
                "invalid commands file",
            ),
            ("[commands.x]\nprogram = 'ls'\nshell = true", "invalid commands file"),
            ("[commands.'a b']\nprogram = 'ls'", "names use"),
        ] {
            let err = CommandCatalog::parse(toml, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{toml}: {err:?} should contain {expected:?}");
        }
        let ok = format!(
            "[commands.x]\nprogram = 'ls'\nargs = ['{{a}}']\n[commands.x.params.a]\nkind = 'path'\nroots = ['{m}']"
        );
        assert_eq!(CommandCatalog::parse(&ok, Path::new("c.toml")).unwrap().names(), ["x"]);
        assert!(
            CommandCatalog::load_optional(&tree.0.join("none.toml"))
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            CommandCatalog::load(&tree.0.join("none.toml")),
            Err(CatalogError::Read { .. })
        ));
    }
}
