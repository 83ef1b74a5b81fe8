--[[ reap: return tasks whose lease expired (their worker died or hung) to the
  front of their queue, or give up on them after too many lost deliveries
  (FAILURE + the dead-letter ZSET, score = when, and its per-queue count). Any process may run it; it only touches leases
  that are past their deadline.
  KEYS[1] leases ZSET   KEYS[2] dead-letter ZSET   KEYS[3] events STREAM   KEYS[4] seq STRING
  KEYS[5] dead-letter counts HASH (queue → tasks)
  ARGV[1] now ms        ARGV[2] max tasks per call ARGV[3] lost deliveries before giving up
  ARGV[4] events MAXLEN (also the dead-letter cap)  ARGV[5] result TTL ms, then key
  prefixes (tasks are learned here): ARGV[6] done channel   ARGV[7] idempotency
  ARGV[8] task   ARGV[9] workflow   ARGV[10] queue   ARGV[11] wake   ARGV[12] listing index
  Returns: { requeued, dead } ]]
local rcall = redis.call
local leases_key, dead_key, events_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, limit, max_lost, maxlen = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local ttl, done_prefix, idem_prefix, task_prefix = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local workflow_prefix, queue_prefix, wake_prefix = ARGV[9], ARGV[10], ARGV[11]
local idx_prefix = ARGV[12]
--- @include "includes/finalize"

local expired = rcall('ZRANGEBYSCORE', leases_key, '-inf', now, 'LIMIT', 0, limit)
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  rcall('ZREM', leases_key, id)
  local key = task_prefix .. id
  local t = read_task(key, 'priority')
  if t.status == 'STARTED' then
    rcall('HDEL', key, 'lease')
    t.lease = nil
    local lost = rcall('HINCRBY', key, 'lost_deliveries', 1)
    if t.cancel_requested then
      finalize(id, key, t, 'REVOKED', revoked_result('cancelled'), 'revoked')
    elseif lost > max_lost then
      local err = cjson.encode({ exc_type = 'WorkerLostError',
        exc_message = 'the worker running this task was lost ' .. lost .. ' times' })
      rcall('HSET', key, 'traceback', 'WorkerLostError: lease expired ' .. lost .. ' times without a heartbeat')
      finalize(id, key, t, 'FAILURE', err, 'dead')
      rcall('ZADD', dead_key, now, id)
      rcall('HINCRBY', KEYS[5], t.queue, 1)
      -- Capped like the events stream: the newest dead letters are kept (the
      -- per-queue counts do not follow this rare trim).
      rcall('ZREMRANGEBYRANK', dead_key, 0, -tonumber(maxlen) - 1)
      dead = dead + 1
    else
      rcall('HSET', key, 'status', 'PENDING')
      index_status(id, 'STARTED', 'PENDING', t.created_at)
      make_ready(id, queue_prefix .. t.queue, wake_prefix .. t.queue, t.priority, true)
      emit('requeued', id, t.queue, 'PENDING')
      requeued = requeued + 1
    end
  end
end
return { requeued, dead }
