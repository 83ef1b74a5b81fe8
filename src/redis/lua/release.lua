--[[ release: hand a claimed task back: to the front of its queue (graceful
  worker shutdown), or to its delayed set until a due time (a worker that does
  not have the task). The interrupted attempt is not counted, and its start is
  taken out of its rate-limit window. A task whose cancellation was requested
  ends REVOKED instead; one handed back more than the allowed number of times
  ends FAILURE (no worker of its queue has it).
  KEYS[3] task HASH   KEYS[4] leases ZSET
  ARGV[A+1] task id   ARGV[A+2] lease token   ARGV[A+3] due ms (0: now, at the front)
  ARGV[A+4] most hand-backs with a due time   ARGV[A+5] rate-limit log key prefix
  Returns: 1 released | 2 failed: handed back too often | -1 no such task | -2 not running | -3 lease lost ]]
local id, due = ARGV[A + 1], tonumber(ARGV[A + 3])
local f = rcall('HMGET', KEYS[3], 'status', 'lease', 'queue', 'priority', 'cancel_requested', 'name')
if not f[1] then return -1 end
if f[1] ~= 'STARTED' then return -2 end
if f[2] ~= ARGV[A + 2] then return -3 end
rcall('ZREM', KEYS[4], id)
rcall('ZREM', ARGV[A + 5] .. f[6], ARGV[A + 2])
rcall('HINCRBY', KEYS[3], 'attempts', -1)
if f[5] then
  finalize(id, KEYS[3], 'REVOKED', revoked_result('cancelled'), nil, f[3], 'revoked')
  return 1
end
if due > ctx.now and rcall('HINCRBY', KEYS[3], 'handbacks', 1) > tonumber(ARGV[A + 4]) then
  local err = cjson.encode({ exc_type = 'NotRegistered',
    exc_message = 'no worker consuming queue ' .. f[3] .. ' has task ' .. f[6] })
  finalize(id, KEYS[3], 'FAILURE', err, 'NotRegistered: handed back ' .. ARGV[A + 4] .. ' times', f[3], 'failed')
  return 2
end
rcall('HSET', KEYS[3], 'status', 'PENDING')
rcall('HDEL', KEYS[3], 'lease')
if due > ctx.now then
  rcall('ZADD', ctx.delayed .. f[3], due, id)
  rcall('ZADD', ctx.wake .. f[3], 0, 'w')
else
  make_ready(id, f[3], f[4], true)
end
emit('released', id, f[3], 'PENDING')
return 1
