//! The Lua scripts (one per state transition), loaded once and called through
//! one typed function each.
//!
//! Shared Lua pieces live in `lua/includes/`; a script names each piece it uses
//! with a marker line `--- @include "includes/<name>"`, expanded by
//! `invocation.rs` when the script is first used. Every script
//! takes its own KEYS and ARGV (see its header): every key known before the call
//! is a KEY; key prefixes go in ARGV only where a script learns ids inside Redis.
//! Refusal codes mean the same in every script and are mapped by
//! [`QueueError::from_script_code`]. Calls go out as EVALSHA, and a script is
//! loaded again after a Redis restart (`Invocation`).
//!
//! | file | scripts |
//! | --- | --- |
//! | `create.rs` | enqueue, enqueue_batch, workflow |
//! | `lease.rs` | claim, claim_receipt, heartbeat, complete, fail, release, reap |
//! | `control.rs` | cancel, resubmit, forget, pause, resume, progress, callback_status, purge |
//! | `listing.rs` | list_page, trim_indexes |
//!
//! The scheduler's scripts (`leader_*`, `schedule_*`) are called from
//! `scheduler/store.rs`; they are listed here for the expansion test.

use super::{invocation::Invocation, keys::Keys};
use crate::error::{QueueError, Result};

/// A script, its includes expanded, loaded on first use (paths from `src/redis/lua/`).
macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(&$crate::redis::invocation::expand(include_str!(concat!(
                "../lua/", $file
            ))))
        })
    };
}

mod control;
mod create;
mod lease;
mod listing;

pub use control::*;
pub use create::*;
pub use lease::*;
pub use listing::*;

/// Every script's source, for the expansion test.
#[cfg(test)]
static SOURCES: &[(&str, &str)] = &[
    ("enqueue", include_str!("../lua/enqueue.lua")),
    ("claim", include_str!("../lua/claim.lua")),
    ("claim_receipt", include_str!("../lua/claim_receipt.lua")),
    ("heartbeat", include_str!("../lua/heartbeat.lua")),
    ("complete", include_str!("../lua/complete.lua")),
    ("fail", include_str!("../lua/fail.lua")),
    ("reap", include_str!("../lua/reap.lua")),
    ("release", include_str!("../lua/release.lua")),
    ("cancel", include_str!("../lua/cancel.lua")),
    ("resubmit", include_str!("../lua/resubmit.lua")),
    ("forget", include_str!("../lua/forget.lua")),
    ("progress", include_str!("../lua/progress.lua")),
    ("workflow", include_str!("../lua/workflow.lua")),
    ("callback_status", include_str!("../lua/callback_status.lua")),
    ("enqueue_batch", include_str!("../lua/enqueue_batch.lua")),
    ("pause", include_str!("../lua/pause.lua")),
    ("resume", include_str!("../lua/resume.lua")),
    ("list_page", include_str!("../lua/list_page.lua")),
    ("trim_indexes", include_str!("../lua/trim_indexes.lua")),
    ("purge", include_str!("../lua/purge.lua")),
    ("leader_acquire", include_str!("../lua/leader_acquire.lua")),
    ("leader_release", include_str!("../lua/leader_release.lua")),
    ("schedule_save", include_str!("../lua/schedule_save.lua")),
    ("schedule_delete", include_str!("../lua/schedule_delete.lua")),
    ("schedule_fire", include_str!("../lua/schedule_fire.lua")),
];

/// What every script call may need besides its own arguments: the namespace's
/// keys, the caller's clock, and the engine's settings.
pub struct Ctx<'a> {
    /// Key builder of the namespace.
    pub keys: &'a Keys,
    /// The caller's clock, ms since the epoch.
    pub now_ms: i64,
    /// How long final records are kept, ms.
    pub result_ttl_ms: u64,
    /// Approximate cap of the events stream.
    pub events_maxlen: u64,
}

impl Ctx<'_> {
    /// Appends what `includes/finalize` needs, in the order every finalizing
    /// script reads it: result TTL, then the done channel, idempotency, task,
    /// workflow, queue, wake and listing index key prefixes (a workflow's
    /// members are learned inside Redis).
    fn finalize_args(&self, inv: &mut Invocation) {
        let k = self.keys;
        inv.arg(self.result_ttl_ms)
            .arg(k.done_channel_prefix())
            .arg(k.idempotency_prefix())
            .arg(k.task_prefix())
            .arg(k.workflow_prefix())
            .arg(k.queue_prefix())
            .arg(k.wake_prefix())
            .arg(k.index_prefix());
    }
}

/// Maps a script's reply code (no name attached).
fn code(c: i64) -> Result<i64> {
    QueueError::from_script_code(c, "")
}

#[cfg(test)]
mod tests {
    use super::SOURCES;
    use crate::redis::invocation::{INCLUDES, expand, include_marker};

    #[test]
    fn every_script_expands_with_no_marker_left_and_its_own_lines_in_order() {
        for (name, source) in SOURCES {
            let expanded = expand(source);
            assert!(
                !expanded.lines().any(|l| include_marker(l).is_some()),
                "{name}: a marker is left"
            );
            // The script's own lines appear in order: Redis' line numbers of an
            // error point at them, shifted only by the pieces included before.
            let mut rest = expanded.as_str();
            for line in source.lines().filter(|l| include_marker(l).is_none()) {
                let at = rest
                    .find(&format!("{line}\n"))
                    .unwrap_or_else(|| panic!("{name}: line {line:?} missing or out of order"));
                rest = &rest[at + line.len() + 1..];
            }
            // Its header stays on line 1.
            assert_eq!(expanded.lines().next(), source.lines().next(), "{name}");
        }
    }

    #[test]
    fn each_piece_is_included_once_after_its_own_includes() {
        let expanded = expand(SOURCES.iter().find(|(n, _)| *n == "claim").unwrap().1);
        for (name, body) in INCLUDES {
            let first_line = body.lines().next().unwrap();
            let count = expanded.matches(first_line).count();
            if [
                "includes/finalize",
                "includes/emit",
                "includes/ready",
                "includes/status",
            ]
            .contains(name)
            {
                assert_eq!(count, 1, "{name} in claim");
            }
        }
        let at = |piece: &str| expanded.find(piece).unwrap_or_else(|| panic!("{piece} missing"));
        assert!(at("local function emit(") < at("local function finish_workflow("));
        assert!(at("local finalize\n") < at("local function revoke_waiting_chain("));
        assert!(at("local function advance_workflow(") < at("finalize = function("));
    }

    #[test]
    fn every_include_is_used_by_some_script() {
        for (name, _) in INCLUDES {
            assert!(
                SOURCES
                    .iter()
                    .any(|(_, s)| expand(s).contains(&format!("-- >> {name}\n"))),
                "{name} is never included"
            );
        }
    }
}
