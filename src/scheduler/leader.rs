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

use std::{sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use redis::{Script, aio::ConnectionLike};

use crate::{
    error::{QueueError, Result},
    model::now_ms,
    queue::Queue,
    redis::{invocation::Invocation, keys::Keys},
};

static LEADER_ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../redis/lua/leader_acquire.lua")));
static LEADER_RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../redis/lua/leader_release.lua")));

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
        let lease = acquire(
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
        release(&mut queue.connection(), queue.keys(), &self.name, self.held).await?;
        self.held = 0;
        Ok(())
    }
}

/// The outcome of `leader_acquire`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// The caller leads with `token` (`fresh`: it just became leader).
    Leader {
        /// The fencing token.
        token: u64,
        /// True when this call started the leadership.
        fresh: bool,
    },
    /// Another process leads; its lease ends in `ttl_ms` at the latest.
    Standby {
        /// Ms left of the leader's lease.
        ttl_ms: u64,
    },
}

/// Runs `leader_acquire.lua` for process `name`, which believes it holds `held` (0: nothing).
pub async fn acquire(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    name: &str,
    held: u64,
    lease_ms: u64,
    now_ms: i64,
) -> Result<Lease> {
    let (code, token, _since, ttl): (i64, u64, i64, u64) = Invocation::new(&LEADER_ACQUIRE)
        .key(keys.scheduler_leader())
        .key(keys.scheduler_fencing())
        .key(keys.scheduler_replicas())
        .arg(name)
        .arg(now_ms)
        .arg(lease_ms)
        .arg(held)
        .arg((lease_ms * 3).max(10_000))
        .invoke_async(conn)
        .await?;
    match code {
        1 | 2 => Ok(Lease::Leader {
            token,
            fresh: code == 2,
        }),
        0 => Ok(Lease::Standby { ttl_ms: ttl }),
        c => Err(QueueError::UnexpectedReply(c)),
    }
}

/// Runs `leader_release.lua`: gives up the leadership if `name` holds `held`; true when it did.
pub async fn release(conn: &mut impl ConnectionLike, keys: &Keys, name: &str, held: u64) -> Result<bool> {
    let code: i64 = Invocation::new(&LEADER_RELEASE)
        .key(keys.scheduler_leader())
        .key(keys.scheduler_replicas())
        .arg(name)
        .arg(held)
        .invoke_async(conn)
        .await?;
    Ok(code == 1)
}

/// Who leads the schedulers, as `GET /scheduler` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// The leader's process name, if any process leads.
    pub leader: Option<String>,
    /// Since when.
    pub since: Option<DateTime<Utc>>,
    /// Its fencing token.
    pub fencing_token: Option<u64>,
    /// Scheduler processes seen recently: (name, last seen).
    pub replicas: Vec<(String, DateTime<Utc>)>,
}

/// Reads the leadership and the replicas (one pipeline).
pub async fn leadership(conn: &mut impl ConnectionLike, keys: &Keys) -> Result<Leadership> {
    type Leader = (Option<String>, Option<u64>, Option<i64>);
    let ((name, token, since), replicas): (Leader, Vec<(String, f64)>) = redis::pipe()
        .cmd("HMGET")
        .arg(keys.scheduler_leader())
        .arg("name")
        .arg("token")
        .arg("since")
        .cmd("ZRANGE")
        .arg(keys.scheduler_replicas())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    Ok(Leadership {
        leader: name,
        since: since.and_then(DateTime::from_timestamp_millis),
        fencing_token: token,
        replicas: replicas
            .into_iter()
            .filter_map(|(n, s)| DateTime::from_timestamp_millis(s as i64).map(|t| (n, t)))
            .collect(),
    })
}
