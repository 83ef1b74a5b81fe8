//! Leader election among scheduler processes: a lease in Redis (the leader HASH
//! with a TTL) and a fencing token INCRed on each new leadership. The leader
//! renews at a third of the lease, so two renewals may fail before it lapses; a
//! standby retries when the leader's lease would end (or at the same cadence),
//! so it takes over at most a lease plus a third after a kill -9.
//!
//! Holding the lease is only a hint: every fire presents the token, and the fire
//! script refuses a token that is not the current leader's. A leader that was
//! paused (SIGSTOP, a long GC, a partition) past its lease therefore fires
//! nothing, even before it learns that it lost.

use std::time::Duration;

use super::store::{self, Lease};
use crate::{error::Result, model::now_ms, queue::Queue};

/// One process's view of the leadership.
pub struct Elector {
    name: String,
    lease: Duration,
    /// The token this process believes it holds (0: none).
    held: u64,
}

/// What this process should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Lead with this fencing token until the next renewal.
    Leader(u64),
    /// Stand by; try again after this long at the latest.
    Standby(Duration),
}

impl Elector {
    /// An elector for process `name` with leases of `lease`.
    pub fn new(name: impl Into<String>, lease: Duration) -> Self {
        Self {
            name: name.into(),
            lease,
            held: 0,
        }
    }

    /// How often the leader renews: a third of the lease.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Takes, renews or observes the leadership (one script call).
    pub async fn step(&mut self, queue: &Queue) -> Result<Role> {
        let lease_ms = self.lease.as_millis() as u64;
        let lease = store::acquire(
            &mut queue.connection(),
            queue.keys(),
            &self.name,
            self.held,
            lease_ms,
            now_ms(),
        )
        .await?;
        Ok(match lease {
            Lease::Leader { token, fresh } => {
                if fresh {
                    tracing::info!(scheduler = %self.name, fencing_token = token, "became the scheduler leader");
                }
                self.held = token;
                Role::Leader(token)
            }
            Lease::Standby { ttl_ms } => {
                if self.held != 0 {
                    tracing::warn!(scheduler = %self.name, "lost the scheduler leadership");
                    self.held = 0;
                }
                Role::Standby(Duration::from_millis(ttl_ms + 10).min(self.renew_every()))
            }
        })
    }

    /// Forgets the leadership after a fire was refused for a stale token.
    pub fn lost(&mut self) {
        tracing::warn!(scheduler = %self.name, fencing_token = self.held, "fencing token is stale; standing by");
        self.held = 0;
    }

    /// Gives the leadership up (graceful stop), so a standby takes over at once.
    pub async fn release(&mut self, queue: &Queue) -> Result<()> {
        store::release(&mut queue.connection(), queue.keys(), &self.name, self.held).await?;
        self.held = 0;
        Ok(())
    }
}
