//! Every Redis key and channel name celeriac uses, built in one place, and the
//! only table of what each key holds.
//!
//! All names share the hash tag `{<namespace>}` so that every multi-key Lua
//! script stays legal on Redis Cluster (all keys of a namespace map to one
//! slot). Scripts that act on tasks they only learn about inside Redis (a batch
//! claim, the reaper, workflow steps) receive a key *prefix* from here and append
//! the task id or queue name; the tag in the prefix keeps those keys in the same slot.
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `{ns}:task:<id>` | HASH | the task record (its id is the key's): `name queue args status priority max_retries retries attempts lost_deliveries handbacks created_at eta started_at finished_at expires_at worker lease (the token of its latest claim, honoured only while STARTED) result traceback errors children parent_id progress options idempotency_key cancel_requested workflow wf_index wf_role next waiting callback_url callback`; times are ms since the epoch, `args`/`result`/`errors`/`children`/`progress`/`options`/`callback` JSON; `attempts`, `retries` and `max_retries` may be absent (read as 0). Expires `result_ttl` after a final state. |
//! | `{ns}:queue:<q>` | ZSET | ready task ids; score `(9 - priority) * 2^44 + seq`, so ZPOPMIN gives priority, then FIFO |
//! | `{ns}:delayed:<q>` | ZSET | task ids waiting for their time (countdown, ETA, retry backoff, rate limit); score = due ms |
//! | `{ns}:wake:<q>` | ZSET | one member `w`: set whenever work may be waiting; idle workers block on it with BZPOPMIN |
//! | `{ns}:leases` | ZSET | claimed task id → lease deadline ms; the reaper returns expired ones to their queue |
//! | `{ns}:seq` | STRING | FIFO counter |
//! | `{ns}:events` | STREAM | every transition (`event task_id queue status ts`) and worker change (`event worker hostname queue status ts`), capped with MAXLEN ~ |
//! | `{ns}:dead:v2` | ZSET | tasks given up after too many lost deliveries; score = when (ms); capped like the events stream (v1, `{ns}:dead`, was a LIST) |
//! | `{ns}:dead:v2:counts` | HASH | queue → tasks of the queue in `{ns}:dead:v2` |
//! | `{ns}:paused_queues` | SET | names of queues no worker claims from (claim.lua checks it) |
//! | `{ns}:queues` | SET | queue names ever used |
//! | `{ns}:task_names` | SET | task names registered by workers |
//! | `{ns}:task_defaults` | HASH | task name → default options JSON published at registration |
//! | `{ns}:task_schemas` | HASH | task name → JSON Schema of its arguments, published at registration; dropped with the name |
//! | `{ns}:rate_limits` | HASH | task name → `"<count> <window_ms>"` |
//! | `{ns}:rate:<name>` | ZSET | recent start times of a rate-limited name (sliding window) |
//! | `{ns}:idem:<key>` | STRING | idempotency key → id of the task created with it; expires with the task |
//! | `{ns}:idem_batch:<key>` | STRING | a batch's idempotency key → the ids of its tasks, joined by `,`; expires `result_ttl` after the batch |
//! | `{ns}:workers` | ZSET | worker name → last heartbeat ms (or clean stop); pruned on read after the retention time |
//! | `{ns}:worker:<name>` | HASH | worker registration `name hostname pid version queues concurrency started_at last_seen heartbeat_ms processed status(online/stopped) stopped_at tasks commands` (`tasks`: JSON array of the names it runs; `commands`: the `command` task's published commands, JSON); expires the retention time after its last heartbeat |
//! | `{ns}:workflow:<id>` | HASH | a chain, group or chord: `kind status total done failed tasks callback failed_task result r:<i> created_at finished_at` |
//! | `{ns}:idx:status:<S>` | ZSET | listing index: ids of tasks in status S (every status but STARTED: listing reads the leases ZSET for it); score = created_at ms (ties by id); moved by every transition, final ones trimmed by the reaper once their record expired |
//! | `{ns}:idx:queue:<q>` | ZSET | listing index: ids of tasks created in queue q; score = created_at ms |
//! | `{ns}:idx:name:<n>` | ZSET | listing index: ids of tasks named n; score = created_at ms |
//! | `{ns}:idx:worker:<w>` | ZSET | listing index: ids of tasks claimed by worker w (the latest attempt's worker wins on read); score = created_at ms |
//! | `{ns}:idx:schedule:<s>` | ZSET | listing index: ids of tasks fired by schedule s; score = created_at ms |
//! | `{ns}:idx:done:<q>` | HASH | minute (ms / 60000) → tasks of queue q that reached a final state in it; the last 16 minutes, expires 16 min after the latest |
//! | `{ns}:done:<id>` | channel | PUBLISHed when a task or workflow reaches a final state (long-polling clients) |
//! | `{ns}:cancel` | channel | task ids whose cancellation was requested while running (workers) |

/// Builds key names for one namespace.
#[derive(Clone, Debug)]
pub struct Keys {
    /// `{ns}`: the namespace wrapped in a Cluster hash tag.
    tag: String,
}

impl Keys {
    /// Keys for `namespace` (validated by the config: no braces, not empty).
    pub fn new(namespace: &str) -> Self {
        Self {
            tag: format!("{{{namespace}}}"),
        }
    }

    /// HASH: one task's record (see `redis/mod.rs` for its fields).
    pub fn task(&self, id: &str) -> String {
        format!("{}:task:{id}", self.tag)
    }

    /// Prefix of [`Keys::task`], for scripts that append the id themselves.
    pub fn task_prefix(&self) -> String {
        format!("{}:task:", self.tag)
    }

    /// ZSET: ready tasks of a queue; score = priority band and FIFO sequence.
    pub fn queue(&self, queue: &str) -> String {
        format!("{}:queue:{queue}", self.tag)
    }

    /// Prefix of [`Keys::queue`].
    pub fn queue_prefix(&self) -> String {
        format!("{}:queue:", self.tag)
    }

    /// ZSET: tasks of a queue waiting for their time (countdown, ETA, retry); score = due ms.
    pub fn delayed(&self, queue: &str) -> String {
        format!("{}:delayed:{queue}", self.tag)
    }

    /// Prefix of [`Keys::delayed`].
    pub fn delayed_prefix(&self) -> String {
        format!("{}:delayed:", self.tag)
    }

    /// ZSET with at most one member: the wake-up marker idle workers block on (BZPOPMIN).
    pub fn wake(&self, queue: &str) -> String {
        format!("{}:wake:{queue}", self.tag)
    }

    /// Prefix of [`Keys::wake`].
    pub fn wake_prefix(&self) -> String {
        format!("{}:wake:", self.tag)
    }

    /// ZSET: task id → lease deadline (ms) of every claimed task.
    pub fn leases(&self) -> String {
        format!("{}:leases", self.tag)
    }

    /// STRING: the fence of the claim call whose lease tokens start with
    /// `token_base`, set when its caller lost the answer (`claim_receipt.lua`):
    /// the call, if it reaches Redis after that, claims nothing.
    pub fn claim_fence(&self, token_base: &str) -> String {
        format!("{}:claim_fence:{token_base}", self.tag)
    }

    /// STRING: counter giving FIFO order inside a priority band.
    pub fn seq(&self) -> String {
        format!("{}:seq", self.tag)
    }

    /// STREAM: capped log of every task transition.
    pub fn events(&self) -> String {
        format!("{}:events", self.tag)
    }

    /// ZSET: ids of tasks given up after too many lost deliveries; score = when (ms).
    /// Versioned: `{ns}:dead` was a LIST.
    pub fn dead_letter(&self) -> String {
        format!("{}:dead:v2", self.tag)
    }

    /// HASH: queue → how many of its tasks are in [`Keys::dead_letter`].
    pub fn dead_letter_counts(&self) -> String {
        format!("{}:dead:v2:counts", self.tag)
    }

    /// SET: names of paused queues (no worker claims from them).
    pub fn paused_queues(&self) -> String {
        format!("{}:paused_queues", self.tag)
    }

    /// HASH: minute (ms / 60000) → tasks of `queue` that reached a final state in it.
    pub fn finished_per_minute(&self, queue: &str) -> String {
        format!("{}:idx:done:{queue}", self.tag)
    }

    /// SET: names of queues that ever received a task.
    pub fn queues(&self) -> String {
        format!("{}:queues", self.tag)
    }

    /// SET: task names registered by workers (custom worker binaries add theirs).
    pub fn task_names(&self) -> String {
        format!("{}:task_names", self.tag)
    }

    /// ZSET: worker name → last heartbeat (ms).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.tag)
    }

    /// HASH: one worker's registration (hostname, pid, queues, concurrency, …), with a TTL.
    pub fn worker(&self, name: &str) -> String {
        format!("{}:worker:{name}", self.tag)
    }

    /// HASH: a workflow (chain, group, chord): kind, status, counts, member ids, results.
    pub fn workflow(&self, id: &str) -> String {
        format!("{}:workflow:{id}", self.tag)
    }

    /// Prefix of [`Keys::workflow`].
    pub fn workflow_prefix(&self) -> String {
        format!("{}:workflow:", self.tag)
    }

    /// HASH: task name → default options (JSON) published by the worker that registers it.
    pub fn task_defaults(&self) -> String {
        format!("{}:task_defaults", self.tag)
    }

    /// HASH: task name → JSON Schema of its arguments, published by the worker that registers it.
    pub fn task_schemas(&self) -> String {
        format!("{}:task_schemas", self.tag)
    }

    /// HASH: task name → rate limit (`"<count> <window_ms>"`), enforced by the claim script.
    pub fn rate_limits(&self) -> String {
        format!("{}:rate_limits", self.tag)
    }

    /// Prefix of the per-name ZSET of recent start times (the rate limiter's sliding window).
    pub fn rate_log_prefix(&self) -> String {
        format!("{}:rate:", self.tag)
    }

    /// STRING: idempotency key → the id of the task created with it.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.tag)
    }

    /// STRING: a batch's idempotency key → the ids of its tasks, joined by `,`.
    pub fn batch_idempotency(&self, key: &str) -> String {
        format!("{}:idem_batch:{key}", self.tag)
    }

    /// Prefix of [`Keys::idempotency`].
    pub fn idempotency_prefix(&self) -> String {
        format!("{}:idem:", self.tag)
    }

    /// Prefix of every listing index (`{ns}:idx:`); scripts append `status:<S>`,
    /// `queue:<q>`, `name:<n>`, `worker:<w>` or `schedule:<s>`.
    pub fn index_prefix(&self) -> String {
        format!("{}:idx:", self.tag)
    }

    /// ZSET: ids of tasks in `status` (upper case); score = created_at ms.
    pub fn status_index(&self, status: &str) -> String {
        format!("{}:idx:status:{status}", self.tag)
    }

    /// ZSET: ids of tasks created in `queue`; score = created_at ms.
    pub fn queue_index(&self, queue: &str) -> String {
        format!("{}:idx:queue:{queue}", self.tag)
    }

    /// ZSET: ids of tasks named `name`; score = created_at ms.
    pub fn name_index(&self, name: &str) -> String {
        format!("{}:idx:name:{name}", self.tag)
    }

    /// ZSET: ids of tasks claimed by `worker`; score = created_at ms.
    pub fn worker_index(&self, worker: &str) -> String {
        format!("{}:idx:worker:{worker}", self.tag)
    }

    /// ZSET: ids of tasks fired by `schedule`; score = created_at ms.
    pub fn schedule_index(&self, schedule: &str) -> String {
        format!("{}:idx:schedule:{schedule}", self.tag)
    }

    /// Pub/sub channel telling workers that a running task was cancelled (payload: task id).
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.tag)
    }

    /// Pub/sub channel announcing that a task reached a final state.
    pub fn done_channel(&self, id: &str) -> String {
        format!("{}:done:{id}", self.tag)
    }

    /// Prefix of [`Keys::done_channel`].
    pub fn done_channel_prefix(&self) -> String {
        format!("{}:done:", self.tag)
    }

    /// HASH: one schedule: `def` (its definition, JSON), `version`, `next_run_at`,
    /// `last_run_at`, `last_due_at`, `last_task_id`, `runs`, `created_at`, `updated_at`.
    pub fn schedule(&self, name: &str) -> String {
        format!("{}:schedule:{name}", self.tag)
    }

    /// ZSET: schedule name → next run (ms); `+inf` while paused or ended.
    pub fn schedules(&self) -> String {
        format!("{}:schedules", self.tag)
    }

    /// Pub/sub channel telling schedulers that a schedule was saved or deleted.
    pub fn schedules_channel(&self) -> String {
        format!("{}:schedules:changed", self.tag)
    }

    /// HASH with a TTL (the lease): the scheduler leader's `name`, `token`, `since` (ms).
    pub fn scheduler_leader(&self) -> String {
        format!("{}:scheduler:leader", self.tag)
    }

    /// STRING: fencing counter, INCRed on each new scheduler leadership.
    pub fn scheduler_fencing(&self) -> String {
        format!("{}:scheduler:fencing", self.tag)
    }

    /// ZSET: scheduler process name → last seen (ms).
    pub fn scheduler_replicas(&self) -> String {
        format!("{}:scheduler:replicas", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn every_key_carries_the_namespace_hash_tag() {
        let k = Keys::new("celeriac");
        assert_eq!(k.task("abc"), "{celeriac}:task:abc");
        assert_eq!(k.task_prefix() + "abc", k.task("abc"));
        assert_eq!(k.queue("default"), "{celeriac}:queue:default");
        assert_eq!(k.queue_prefix() + "default", k.queue("default"));
        assert_eq!(k.delayed("q"), "{celeriac}:delayed:q");
        assert_eq!(k.delayed_prefix() + "q", k.delayed("q"));
        assert_eq!(k.wake("q"), "{celeriac}:wake:q");
        assert_eq!(k.wake_prefix() + "q", k.wake("q"));
        assert_eq!(k.leases(), "{celeriac}:leases");
        assert_eq!(k.claim_fence("t1"), "{celeriac}:claim_fence:t1");
        assert_eq!(k.seq(), "{celeriac}:seq");
        assert_eq!(k.events(), "{celeriac}:events");
        assert_eq!(k.dead_letter(), "{celeriac}:dead:v2");
        assert_eq!(k.dead_letter_counts(), "{celeriac}:dead:v2:counts");
        assert_eq!(k.paused_queues(), "{celeriac}:paused_queues");
        assert_eq!(k.queues(), "{celeriac}:queues");
        assert_eq!(k.task_names(), "{celeriac}:task_names");
        assert_eq!(k.workers(), "{celeriac}:workers");
        assert_eq!(k.worker("w1"), "{celeriac}:worker:w1");
        assert_eq!(k.done_channel("abc"), "{celeriac}:done:abc");
        assert_eq!(k.done_channel_prefix() + "abc", k.done_channel("abc"));
        assert_eq!(k.workflow("w"), "{celeriac}:workflow:w");
        assert_eq!(k.workflow_prefix() + "w", k.workflow("w"));
        assert_eq!(k.task_defaults(), "{celeriac}:task_defaults");
        assert_eq!(k.rate_limits(), "{celeriac}:rate_limits");
        assert_eq!(k.task_schemas(), "{celeriac}:task_schemas");
        assert_eq!(k.rate_log_prefix(), "{celeriac}:rate:");
        assert_eq!(k.idempotency("k"), "{celeriac}:idem:k");
        assert_eq!(k.idempotency_prefix() + "k", k.idempotency("k"));
        assert_eq!(k.batch_idempotency("k"), "{celeriac}:idem_batch:k");
        assert_eq!(k.cancel_channel(), "{celeriac}:cancel");
    }

    #[test]
    fn listing_index_keys_carry_the_namespace_hash_tag() {
        let k = Keys::new("celeriac");
        assert_eq!(k.index_prefix(), "{celeriac}:idx:");
        assert_eq!(k.status_index("SUCCESS"), "{celeriac}:idx:status:SUCCESS");
        assert_eq!(k.queue_index("default"), "{celeriac}:idx:queue:default");
        assert_eq!(k.name_index("noop"), "{celeriac}:idx:name:noop");
        assert_eq!(k.worker_index("w1"), "{celeriac}:idx:worker:w1");
        assert_eq!(k.schedule_index("nightly"), "{celeriac}:idx:schedule:nightly");
        assert_eq!(k.index_prefix() + "status:PAUSED", k.status_index("PAUSED"));
        assert_eq!(k.finished_per_minute("q"), "{celeriac}:idx:done:q");
        assert_eq!(k.index_prefix() + "done:q", k.finished_per_minute("q"));
    }

    #[test]
    fn scheduler_keys_carry_the_namespace_hash_tag() {
        let k = Keys::new("celeriac");
        assert_eq!(k.schedule("nightly"), "{celeriac}:schedule:nightly");
        assert_eq!(k.schedules(), "{celeriac}:schedules");
        assert_eq!(k.schedules_channel(), "{celeriac}:schedules:changed");
        assert_eq!(k.scheduler_leader(), "{celeriac}:scheduler:leader");
        assert_eq!(k.scheduler_fencing(), "{celeriac}:scheduler:fencing");
        assert_eq!(k.scheduler_replicas(), "{celeriac}:scheduler:replicas");
    }
}
