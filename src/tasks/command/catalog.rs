//! The operator's catalogue of commands: the TOML file, its checks at load time,
//! and what the API and the worker publish of it.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fmt,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::params::*;
use super::*;

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
    pub(super) commands: BTreeMap<String, Arc<CommandDef>>,
}

/// A command ready to run: program resolved, templates parsed, regex compiled.
pub(super) struct CommandDef {
    pub(super) name: String,
    pub(super) program: PathBuf,
    pub(super) args: Vec<Vec<Piece>>,
    pub(super) timeout: Duration,
    pub(super) progress: Option<Regex>,
    pub(super) params: BTreeMap<String, ParamInfo>,
    pub(super) env: BTreeMap<String, String>,
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
pub(super) enum Piece {
    Text(String),
    Param(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileToml {
    #[serde(default)]
    pub(super) commands: BTreeMap<String, CommandToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandToml {
    pub(super) program: String,
    #[serde(default)]
    pub(super) args: Vec<String>,
    pub(super) timeout: Option<f64>,
    pub(super) progress: Option<String>,
    #[serde(default)]
    pub(super) params: BTreeMap<String, ParamToml>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ParamToml {
    pub(super) kind: ParamKind,
    #[serde(default)]
    pub(super) roots: Vec<PathBuf>,
    #[serde(default)]
    pub(super) allow_dash: bool,
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

pub(super) fn build_command(name: &str, def: CommandToml) -> Result<CommandDef, String> {
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
pub(super) fn find_program(program: &str) -> Result<PathBuf, String> {
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
pub(super) fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
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
