--[[ release: hand a claimed task back to its queue (graceful worker shutdown).
  KEYS[1] task HASH   KEYS[2] leases ZSET   KEYS[3] queue ZSET   KEYS[4] wake ZSET
  KEYS[5] events STREAM
  ARGV[1] task id     ARGV[2] lease token   ARGV[3] now_ms       ARGV[4] events MAXLEN
  Returns: 1 released | -1 no such task | -2 not running | -3 lease lost ]]
local f = rcall('HMGET', KEYS[1], 'status', 'lease', 'queue', 'priority')
if not f[1] then return -1 end
if f[1] ~= 'STARTED' then return -2 end
if f[2] ~= ARGV[2] then return -3 end
rcall('HSET', KEYS[1], 'status', 'PENDING')
rcall('HDEL', KEYS[1], 'lease')
rcall('HINCRBY', KEYS[1], 'attempts', -1)
rcall('ZREM', KEYS[2], ARGV[1])
rcall('ZADD', KEYS[3], ready_score(f[4], 0), ARGV[1])
rcall('ZADD', KEYS[4], 0, 'w')
emit(KEYS[5], ARGV[4], 'released', ARGV[1], f[3], 'PENDING', ARGV[3])
return 1
