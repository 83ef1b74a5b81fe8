--[[ release: hand a claimed task back to the front of its queue (graceful worker
  shutdown); the interrupted attempt is not counted. A task whose cancellation
  was requested ends REVOKED instead.
  KEYS[3] task HASH   KEYS[4] leases ZSET
  ARGV[A+1] task id   ARGV[A+2] lease token
  Returns: 1 released | -1 no such task | -2 not running | -3 lease lost ]]
local id = ARGV[A + 1]
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
make_ready(id, f[3], f[4], true)
emit('released', id, f[3], 'PENDING')
return 1
