--[[ release: hand a claimed task back: to the front of its queue (graceful
  worker shutdown), or to its delayed set until a due time (a worker that does
  not have the task). The interrupted attempt is not counted, and its start is
  taken out of its rate-limit window. A task whose cancellation was requested
  ends REVOKED instead; one handed back more than the allowed number of times
  ends FAILURE (no worker of its queue has it).
  KEYS[1] task HASH   KEYS[2] leases ZSET   KEYS[3] events STREAM   KEYS[4] seq STRING
  ARGV[1] task id     ARGV[2] lease token   ARGV[3] due ms (0: now, at the front)
  ARGV[4] most hand-backs with a due time   ARGV[5] rate-limit log key prefix
  ARGV[6] delayed key prefix (the task's queue is learned here)
  ARGV[7] now ms      ARGV[8] events MAXLEN ARGV[9] result TTL ms, then key prefixes:
  ARGV[10] done channel   ARGV[11] idempotency   ARGV[12] task   ARGV[13] workflow
  ARGV[14] queue   ARGV[15] wake   ARGV[16] listing index
  Returns: 1 released | 2 failed: handed back too often | -1 no such task | -2 not running | -3 lease lost ]]
local rcall = redis.call
local task_key, leases_key, events_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, token, due, max_handbacks = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rate_prefix, delayed_prefix, now, maxlen = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local ttl, done_prefix, idem_prefix, task_prefix = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local workflow_prefix, queue_prefix, wake_prefix = ARGV[13], ARGV[14], ARGV[15]
local idx_prefix = ARGV[16]
--- @include "includes/lease_guard"
--- @include "includes/finalize"

local t = read_task(task_key, 'priority')
local refusal = lease_refusal(t.status, t.lease, token)
if refusal then return refusal end
local queue = t.queue
rcall('ZREM', leases_key, id)
rcall('ZREM', rate_prefix .. t.name, token)
rcall('HINCRBY', task_key, 'attempts', -1)
if t.cancel_requested then
  finalize(id, task_key, t, 'REVOKED', revoked_result('cancelled'), 'revoked')
  return 1
end
if due > now and rcall('HINCRBY', task_key, 'handbacks', 1) > max_handbacks then
  local err = cjson.encode({ exc_type = 'NotRegistered',
    exc_message = 'no worker consuming queue ' .. queue .. ' has task ' .. t.name })
  rcall('HSET', task_key, 'traceback', 'NotRegistered: handed back ' .. max_handbacks .. ' times')
  finalize(id, task_key, t, 'FAILURE', err, 'failed')
  return 2
end
rcall('HSET', task_key, 'status', 'PENDING')
index_status(id, 'STARTED', 'PENDING', t.created_at)
rcall('HDEL', task_key, 'lease')
if due > now then
  rcall('ZADD', delayed_prefix .. queue, due, id)
  rcall('ZADD', wake_prefix .. queue, 0, 'w')
else
  make_ready(id, queue_prefix .. queue, wake_prefix .. queue, t.priority, true)
end
emit('released', id, queue, 'PENDING')
return 1
