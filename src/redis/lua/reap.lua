--[[ reap: return tasks whose lease expired (their worker died or hung) to their queue,
  or give up on them after too many lost deliveries (FAILURE + dead-letter list).
  Any process may run it; it only touches leases that are past their deadline.
  KEYS[1] leases ZSET   KEYS[2] events STREAM   KEYS[3] dead-letter LIST
  ARGV[1] now_ms        ARGV[2] max tasks per call
  ARGV[3] task key prefix   ARGV[4] queue key prefix   ARGV[5] wake key prefix
  ARGV[6] max lost deliveries before giving up   ARGV[7] result TTL ms
  ARGV[8] events MAXLEN     ARGV[9] done channel prefix
  Returns: { requeued, dead } ]]
local now = ARGV[1]
local expired = rcall('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  rcall('ZREM', KEYS[1], id)
  local key = ARGV[3] .. id
  local f = rcall('HMGET', key, 'status', 'queue', 'priority')
  if f[1] == 'STARTED' then
    rcall('HDEL', key, 'lease')
    local lost = rcall('HINCRBY', key, 'lost_deliveries', 1)
    if lost > tonumber(ARGV[6]) then
      local err = cjson.encode({ exc_type = 'WorkerLostError',
        exc_message = 'the worker running this task was lost ' .. lost .. ' times' })
      rcall('HSET', key, 'status', 'FAILURE', 'result', err, 'finished_at', now,
        'traceback', 'WorkerLostError: lease expired ' .. lost .. ' times without a heartbeat')
      rcall('PEXPIRE', key, ARGV[7])
      rcall('RPUSH', KEYS[3], id)
      emit(KEYS[2], ARGV[8], 'dead', id, f[2], 'FAILURE', now)
      rcall('PUBLISH', ARGV[9] .. id, 'FAILURE')
      dead = dead + 1
    else
      rcall('HSET', key, 'status', 'PENDING')
      -- Score 0 inside its band: a lost task runs before newer tasks of its priority.
      rcall('ZADD', ARGV[4] .. f[2], ready_score(f[3], 0), id)
      rcall('ZADD', ARGV[5] .. f[2], 0, 'w')
      emit(KEYS[2], ARGV[8], 'requeued', id, f[2], 'PENDING', now)
      requeued = requeued + 1
    end
  end
end
return { requeued, dead }
