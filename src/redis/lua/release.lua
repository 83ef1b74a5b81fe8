--[[ release: hand a claimed task back (graceful worker shutdown, or a worker
  that does not have the task): to the front of its queue, or to its delayed set
  until a due time. The interrupted attempt is not counted. A task whose
  cancellation was requested ends REVOKED instead.
  KEYS[3] task HASH   KEYS[4] leases ZSET
  ARGV[A+1] task id   ARGV[A+2] lease token   ARGV[A+3] due ms (0: now, at the front)
  Returns: 1 released | -1 no such task | -2 not running | -3 lease lost ]]
local id, due = ARGV[A + 1], tonumber(ARGV[A + 3])
local f = rcall('HMGET', KEYS[3], 'status', 'lease', 'queue', 'priority', 'cancel_requested')
if not f[1] then return -1 end
if f[1] ~= 'STARTED' then return -2 end
if f[2] ~= ARGV[A + 2] then return -3 end
rcall('ZREM', KEYS[4], id)
if f[5] then
  finalize(id, KEYS[3], 'REVOKED', revoked_result('cancelled'), nil, f[3], 'revoked')
  return 1
end
rcall('HSET', KEYS[3], 'status', 'PENDING')
rcall('HDEL', KEYS[3], 'lease')
rcall('HINCRBY', KEYS[3], 'attempts', -1)
if due > ctx.now then
  rcall('ZADD', ctx.delayed .. f[3], due, id)
  rcall('ZADD', ctx.wake .. f[3], 0, 'w')
else
  make_ready(id, f[3], f[4], true)
end
emit('released', id, f[3], 'PENDING')
return 1
