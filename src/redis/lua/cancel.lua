--[[ cancel: a task that has not started (queued, delayed, retrying, held by a
  workflow) ends REVOKED and never runs; a running task is marked and its worker
  told (pub/sub now, its next heartbeat as a fallback); it ends REVOKED when it stops.
  KEYS[1] task HASH   KEYS[2] events STREAM   KEYS[3] seq STRING
  ARGV[1] task id     ARGV[2] cancel channel  ARGV[3] delayed key prefix (the task's
  queue is learned here)  ARGV[4] now ms   ARGV[5] events MAXLEN   ARGV[6] result TTL ms,
  then key prefixes: ARGV[7] done channel   ARGV[8] idempotency   ARGV[9] task
  ARGV[10] workflow   ARGV[11] queue   ARGV[12] wake   ARGV[13] listing index
  Returns: 1 revoked | 2 cancellation requested (running) | -1 no such task | -4 already final ]]
local rcall = redis.call
local task_key, events_key, seq_key = KEYS[1], KEYS[2], KEYS[3]
local id, cancel_channel, delayed_prefix, now, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local ttl, done_prefix, idem_prefix, task_prefix = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local workflow_prefix, queue_prefix, wake_prefix = ARGV[10], ARGV[11], ARGV[12]
local idx_prefix = ARGV[13]
--- @include "includes/codes"
--- @include "includes/finalize"

local t = read_task(task_key)
if not t.status then return NO_SUCH_TASK end
if FINAL[t.status] then return WRONG_STATE end
if t.status == 'STARTED' then
  rcall('HSET', task_key, 'cancel_requested', now)
  rcall('PUBLISH', cancel_channel, id)
  emit('cancel_requested', id, t.queue, 'STARTED')
  return 2
end
rcall('ZREM', queue_prefix .. t.queue, id)
rcall('ZREM', delayed_prefix .. t.queue, id)
finalize(id, task_key, t, 'REVOKED', revoked_result('cancelled'), 'revoked')
return 1
