//! A request's parameters checked against its command, before anything runs:
//! kinds, paths inside their roots (`..` and symlinks resolved), leading dashes.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    path::{Component, Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// A parameter value after the checks that need no file system.
pub(super) enum Checked {
    Text(String),
    /// Absolute, `.` and `..` removed, lexically inside a root.
    Path(PathBuf),
}

pub(super) fn check_params<'a>(
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
pub(super) fn lexical_path(name: &str, raw: &str, roots: &[PathBuf]) -> Result<PathBuf, String> {
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
pub(super) fn resolve_path(name: &str, path: &Path, roots: &[PathBuf]) -> Result<PathBuf, String> {
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

pub(super) fn show_roots(roots: &[PathBuf]) -> String {
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
