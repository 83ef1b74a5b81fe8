--[[ claim: promote due delayed tasks, then take up to N ready tasks under a lease.
  KEYS[1] leases ZSET    KEYS[2] events STREAM  KEYS[3] seq STRING
  then per queue: KEYS[3i+1] queue ZSET, KEYS[3i+2] delayed ZSET, KEYS[3i+3] wake ZSET
  ARGV[1] now_ms         ARGV[2] max tasks      ARGV[3] lease ms       ARGV[4] worker name
  ARGV[5] lease token base (unique per call)    ARGV[6] task key prefix
  ARGV[7] events MAXLEN  ARGV[8] max promotions per queue
  Returns: { next due ms of a delayed task or -1,
             { { id, token, name, args, queue, attempts, retries, max_retries }, ... } }
  Tasks whose record is gone (expired) or already final are dropped from the queue. ]]
local now, want, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local worker, token_base, prefix, maxlen = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local promote_limit = tonumber(ARGV[8])
local out = {}
local next_due = nil

for q = 4, #KEYS, 3 do
  local queue_key, delayed_key, wake_key = KEYS[q], KEYS[q + 1], KEYS[q + 2]
  local due = rcall('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, promote_limit)
  for _, id in ipairs(due) do
    rcall('ZREM', delayed_key, id)
    local priority = rcall('HGET', prefix .. id, 'priority')
    if priority then
      rcall('ZADD', queue_key, ready_score(priority, rcall('INCR', KEYS[3])), id)
    end
  end
  local first = rcall('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
  if first[2] then
    local t = tonumber(first[2])
    if next_due == nil or t < next_due then next_due = t end
  end

  while want > 0 do
    local popped = rcall('ZPOPMIN', queue_key, want)
    if #popped == 0 then break end
    for i = 1, #popped, 2 do
      local id = popped[i]
      local key = prefix .. id
      local status = rcall('HGET', key, 'status')
      if status and not FINAL[status] then
        local token = token_base .. ':' .. (#out + 1)
        rcall('HSET', key, 'status', 'STARTED', 'worker', worker, 'lease', token, 'started_at', now)
        local attempts = rcall('HINCRBY', key, 'attempts', 1)
        rcall('ZADD', KEYS[1], now + lease_ms, id)
        local f = rcall('HMGET', key, 'name', 'args', 'queue', 'retries', 'max_retries')
        emit(KEYS[2], maxlen, 'started', id, f[3], 'STARTED', now)
        out[#out + 1] = { id, token, f[1], f[2], f[3], attempts, f[4] or '0', f[5] or '0' }
        want = want - 1
      end
    end
  end
  -- More work is waiting: wake another blocked worker.
  if rcall('ZCARD', queue_key) > 0 then
    rcall('ZADD', wake_key, 0, 'w')
  end
end

return { next_due or -1, out }
