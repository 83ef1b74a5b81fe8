--[[ complete: STARTED → SUCCESS, only if the caller still holds the lease.
  KEYS[1] task HASH   KEYS[2] leases ZSET   KEYS[3] events STREAM
  ARGV[1] task id     ARGV[2] lease token   ARGV[3] now_ms   ARGV[4] result JSON
  ARGV[5] result TTL ms   ARGV[6] events MAXLEN   ARGV[7] done channel
  Returns: 1 ok | -1 no such task | -2 not running | -3 lease lost (token mismatch) ]]
local f = rcall('HMGET', KEYS[1], 'status', 'lease', 'queue')
if not f[1] then return -1 end
if f[1] ~= 'STARTED' then return -2 end
if f[2] ~= ARGV[2] then return -3 end
rcall('HSET', KEYS[1], 'status', 'SUCCESS', 'result', ARGV[4], 'finished_at', ARGV[3])
rcall('HDEL', KEYS[1], 'lease')
rcall('ZREM', KEYS[2], ARGV[1])
rcall('PEXPIRE', KEYS[1], ARGV[5])
emit(KEYS[3], ARGV[6], 'succeeded', ARGV[1], f[3], 'SUCCESS', ARGV[3])
rcall('PUBLISH', ARGV[7], 'SUCCESS')
return 1
