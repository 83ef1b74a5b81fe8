//! Running a checked command: its own process group, output tails, progress
//! from stdout, and the group killed on cancel, timeout or drop.

use std::{
    process::{ExitStatus, Stdio},
    time::Instant,
};

use nix::{sys::signal::Signal, unistd::Pid};
use regex::Regex;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::super::{TaskContext, TaskError};

use super::catalog::*;
use super::*;

pub(super) async fn run(catalog: &CommandCatalog, ctx: TaskContext, args: CommandArgs) -> Result<Value, TaskError> {
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

pub(super) enum End {
    Exited(std::io::Result<ExitStatus>),
    Cancelled,
    TimedOut,
}

pub(super) fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "failed".to_owned(),
    }
}

/// The first char boundary of `s` at or after `from`.
pub(super) fn char_boundary_at_or_after(s: &str, from: usize) -> usize {
    let mut i = from.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The command's process group. Dropping it unfinished (the task was aborted)
/// sends SIGTERM, and SIGKILL after the grace from a thread, which works even
/// while the runtime shuts down.
pub(super) struct ProcessGroup {
    pub(super) pgid: Pid,
    pub(super) armed: bool,
}

impl ProcessGroup {
    pub(super) fn new(pid: u32) -> Self {
        Self {
            pgid: Pid::from_raw(pid as i32),
            armed: true,
        }
    }

    pub(super) fn signal(&self, sig: Signal) {
        // ESRCH (nobody left in the group) is the normal end.
        let _ = nix::sys::signal::killpg(self.pgid, sig);
    }

    /// SIGTERM, then SIGKILL if the leader is still there after the grace.
    pub(super) async fn terminate(&mut self, child: &mut tokio::process::Child) {
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
            self.signal(Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }

    /// Kills whatever is left in the group once the leader is gone.
    pub(super) fn finish(&mut self) {
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
pub(super) struct Reporter {
    pub(super) re: Regex,
    pub(super) ctx: TaskContext,
    pub(super) last_sent: Option<Instant>,
    pub(super) pending: Option<(u64, u64, String)>,
}

impl Reporter {
    pub(super) fn new(re: Regex, ctx: TaskContext) -> Self {
        Self {
            re,
            ctx,
            last_sent: None,
            pending: None,
        }
    }

    pub(super) async fn line(&mut self, raw: &[u8]) {
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

    pub(super) async fn flush(&mut self) {
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
pub(super) async fn read_tail(
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
