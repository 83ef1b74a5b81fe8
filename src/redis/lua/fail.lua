--[[ fail: STARTED → RETRY (delayed until retry_at) or → FAILURE, only with the lease.
  The executor decides between retry and failure (retry policy lives in Rust).
  KEYS[1] task HASH   KEYS[2] leases ZSET   KEYS[3] delayed ZSET   KEYS[4] wake ZSET
  KEYS[5] events STREAM
  ARGV[1] task id     ARGV[2] lease token   ARGV[3] now_ms   ARGV[4] error JSON (the result)
  ARGV[5] traceback   ARGV[6] retry at ms, or -1 for a final failure
  ARGV[7] result TTL ms   ARGV[8] events MAXLEN   ARGV[9] done channel
  Returns: 1 failed | 2 retry scheduled | -1 no such task | -2 not running | -3 lease lost ]]
local f = rcall('HMGET', KEYS[1], 'status', 'lease', 'queue', 'attempts', 'errors')
if not f[1] then return -1 end
if f[1] ~= 'STARTED' then return -2 end
if f[2] ~= ARGV[2] then return -3 end
local now, retry_at = ARGV[3], tonumber(ARGV[6])
local errors = cjson.decode(f[5] or '[]')
errors[#errors + 1] = { attempt = tonumber(f[4]), error = cjson.decode(ARGV[4]), at = tonumber(now) }
rcall('HSET', KEYS[1], 'errors', cjson.encode(errors), 'traceback', ARGV[5])
rcall('HDEL', KEYS[1], 'lease')
rcall('ZREM', KEYS[2], ARGV[1])
if retry_at >= 0 then
  rcall('HSET', KEYS[1], 'status', 'RETRY', 'eta', retry_at)
  rcall('HINCRBY', KEYS[1], 'retries', 1)
  rcall('ZADD', KEYS[3], retry_at, ARGV[1])
  rcall('ZADD', KEYS[4], 0, 'w')
  emit(KEYS[5], ARGV[8], 'retry', ARGV[1], f[3], 'RETRY', now)
  return 2
end
rcall('HSET', KEYS[1], 'status', 'FAILURE', 'result', ARGV[4], 'finished_at', now)
rcall('PEXPIRE', KEYS[1], ARGV[7])
emit(KEYS[5], ARGV[8], 'failed', ARGV[1], f[3], 'FAILURE', now)
rcall('PUBLISH', ARGV[9], 'FAILURE')
return 1
