--[[ resubmit: a FAILURE or REVOKED task goes back to its queue as a new attempt
  (its earlier errors are kept). A task of a workflow that is still running
  cannot be resubmitted (its workflow already counted it as finished).
  KEYS[1] task HASH   KEYS[2] dead-letter ZSET   KEYS[3] events STREAM   KEYS[4] seq STRING
  KEYS[5] dead-letter counts HASH
  ARGV[1] task id     ARGV[2] now ms   ARGV[3] events MAXLEN, then key prefixes (the
  task's queue and workflow are learned here): ARGV[4] workflow   ARGV[5] idempotency
  ARGV[6] queue   ARGV[7] wake   ARGV[8] listing index
  Returns: 1 queued | -1 no such task | -4 not failed or revoked, or its workflow runs ]]
local rcall = redis.call
local task_key, dead_key, events_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local workflow_prefix, idem_prefix, queue_prefix, wake_prefix = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local idx_prefix = ARGV[8]
--- @include "includes/codes"
--- @include "includes/status"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/index"

local f = rcall('HMGET', task_key, 'status', 'queue', 'priority', 'workflow', 'idempotency_key', 'created_at')
if not f[1] then return NO_SUCH_TASK end
if f[1] ~= 'FAILURE' and f[1] ~= 'REVOKED' then return WRONG_STATE end
if f[4] then
  local wstatus = rcall('HGET', workflow_prefix .. f[4], 'status')
  if wstatus and not FINAL[wstatus] then return WRONG_STATE end
end
if rcall('ZREM', dead_key, id) == 1 then rcall('HINCRBY', KEYS[5], f[2], -1) end
rcall('HDEL', task_key, 'result', 'traceback', 'finished_at', 'cancel_requested', 'lost_deliveries',
  'eta', 'expires_at', 'waiting')
rcall('HSET', task_key, 'status', 'PENDING', 'retries', 0)
rcall('PERSIST', task_key)
index_status(id, f[1], 'PENDING', f[6])
-- Its idempotency key lives as long as the task again.
if f[5] then rcall('PERSIST', idem_prefix .. f[5]) end
make_ready(id, queue_prefix .. f[2], wake_prefix .. f[2], f[3], false)
emit('resubmitted', id, f[2], 'PENDING')
return 1
