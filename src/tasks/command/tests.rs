//! Unit tests of the command task.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use serde_json::json;

use super::catalog::*;
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
