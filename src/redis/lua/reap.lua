--[[ reap: return tasks whose lease expired (their worker died or hung) to the
  front of their queue, or give up on them after too many lost deliveries
  (FAILURE + dead-letter list). Any process may run it; it only touches leases
  that are past their deadline.
  KEYS[3] leases ZSET   KEYS[4] dead-letter LIST
  ARGV[A+1] max tasks per call   ARGV[A+2] lost deliveries before giving up
  Returns: { requeued, dead } ]]
local expired = rcall('ZRANGEBYSCORE', KEYS[3], '-inf', ctx.now, 'LIMIT', 0, tonumber(ARGV[A + 1]))
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  rcall('ZREM', KEYS[3], id)
  local key = ctx.task .. id
  local f = rcall('HMGET', key, 'status', 'queue', 'priority', 'cancel_requested')
  if f[1] == 'STARTED' then
    rcall('HDEL', key, 'lease')
    local lost = rcall('HINCRBY', key, 'lost_deliveries', 1)
    if f[4] then
      finalize(id, key, 'REVOKED', revoked_result('cancelled'), nil, f[2], 'revoked')
    elseif lost > tonumber(ARGV[A + 2]) then
      local err = cjson.encode({ exc_type = 'WorkerLostError',
        exc_message = 'the worker running this task was lost ' .. lost .. ' times' })
      finalize(id, key, 'FAILURE', err, 'WorkerLostError: lease expired ' .. lost .. ' times without a heartbeat',
        f[2], 'dead')
      rcall('RPUSH', KEYS[4], id)
      -- Capped like the events stream: the newest dead letters are kept.
      rcall('LTRIM', KEYS[4], -tonumber(ctx.maxlen), -1)
      dead = dead + 1
    else
      rcall('HSET', key, 'status', 'PENDING')
      make_ready(id, f[2], f[3], true)
      emit('requeued', id, f[2], 'PENDING')
      requeued = requeued + 1
    end
  end
end
return { requeued, dead }
