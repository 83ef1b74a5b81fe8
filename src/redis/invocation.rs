//! How a script reaches Redis: its source with the shared pieces of
//! `lua/includes/` expanded, and [`Invocation`], one call of it.
//!
//! A script names each piece it uses with a marker line
//! `--- @include "includes/<name>"`, expanded when the script is first used
//! (each piece once, its own includes first).

use std::collections::HashSet;

use redis::{Cmd, ErrorKind, FromRedisValue, RedisWrite, Script, ServerErrorKind, ToRedisArgs, aio::ConnectionLike};

/// The shared pieces, by the name scripts give them in their markers.
pub(super) static INCLUDES: &[(&str, &str)] = &[
    ("includes/codes", include_str!("lua/includes/codes.lua")),
    ("includes/lease_guard", include_str!("lua/includes/lease_guard.lua")),
    ("includes/status", include_str!("lua/includes/status.lua")),
    ("includes/emit", include_str!("lua/includes/emit.lua")),
    ("includes/ready", include_str!("lua/includes/ready.lua")),
    ("includes/index", include_str!("lua/includes/index.lua")),
    ("includes/finished", include_str!("lua/includes/finished.lua")),
    ("includes/create_task", include_str!("lua/includes/create_task.lua")),
    (
        "includes/workflow_advance",
        include_str!("lua/includes/workflow_advance.lua"),
    ),
    ("includes/record", include_str!("lua/includes/record.lua")),
    ("includes/finalize", include_str!("lua/includes/finalize.lua")),
    ("includes/callback", include_str!("lua/includes/callback.lua")),
    ("includes/complete", include_str!("lua/includes/complete.lua")),
];

const INCLUDE_MARKER: &str = "--- @include \"";

/// The name in an include marker line, if `line` is one.
pub(super) fn include_marker(line: &str) -> Option<&str> {
    line.trim().strip_prefix(INCLUDE_MARKER)?.strip_suffix('"')
}

/// A script's source with every include marker replaced by its piece (each piece
/// once, dependencies first). A marker becomes a `-- >>` comment line, so the
/// script's own lines keep their order and Redis' line numbers can be traced.
pub(super) fn expand(source: &str) -> String {
    fn walk<'a>(source: &'a str, seen: &mut HashSet<&'a str>, out: &mut String) {
        for line in source.lines() {
            match include_marker(line) {
                Some(name) => {
                    let Some(&(name, body)) = INCLUDES.iter().find(|(n, _)| *n == name) else {
                        panic!("unknown Lua include {name:?}");
                    };
                    out.push_str("-- >> ");
                    out.push_str(name);
                    out.push('\n');
                    if seen.insert(name) {
                        walk(body, seen, out);
                    }
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    let mut out = String::with_capacity(source.len() * 4);
    walk(source, &mut HashSet::new(), &mut out);
    out
}

/// One call of a script, its KEYS and ARGV each packed in one buffer: redis-rs'
/// `ScriptInvocation` allocates a `Vec` per argument (about forty per enqueue,
/// a few % of the API's CPU per request). Sent as EVALSHA; after a NOSCRIPT
/// (Redis restarted or flushed its scripts) the script is loaded and the call
/// sent again, as `ScriptInvocation` does.
pub(crate) struct Invocation {
    script: &'static Script,
    keys: Packed,
    args: Packed,
}

/// Arguments written end to end, with where each one ends.
#[derive(Default)]
struct Packed {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Packed {
    fn each(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.bytes[a..b])
    }
}

impl RedisWrite for Packed {
    fn write_arg(&mut self, arg: &[u8]) {
        self.bytes.extend_from_slice(arg);
        self.ends.push(self.bytes.len());
    }

    fn writer_for_next_arg(&mut self) -> impl std::io::Write + '_ {
        PackedArg(self)
    }
}

/// Writes one argument of a [`Packed`]; the argument ends when it is dropped.
struct PackedArg<'a>(&'a mut Packed);

impl std::io::Write for PackedArg<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for PackedArg<'_> {
    fn drop(&mut self) {
        self.0.ends.push(self.0.bytes.len());
    }
}

impl Invocation {
    pub(crate) fn new(script: &'static Script) -> Self {
        Self {
            script,
            keys: Packed::default(),
            args: Packed::default(),
        }
    }

    pub(crate) fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    pub(crate) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    pub(crate) async fn invoke_async<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> redis::RedisResult<T> {
        let mut cmd = Cmd::with_capacity(
            3 + self.keys.ends.len() + self.args.ends.len(),
            64 + self.keys.bytes.len() + self.args.bytes.len(),
        );
        cmd.arg("EVALSHA").arg(self.script.get_hash()).arg(self.keys.ends.len());
        for a in self.keys.each().chain(self.args.each()) {
            cmd.arg(a);
        }
        match cmd.query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(conn).await?;
                cmd.query_async(conn).await
            }
            r => r,
        }
    }
}
