--[[ fail: STARTED → RETRY (delayed until retry_at) or → FAILURE (REVOKED when a
  cancellation was requested), only with the lease. The executor decides between
  retry and failure; the retry policy lives in Rust.
  KEYS[3] task HASH   KEYS[4] leases ZSET   KEYS[5] delayed ZSET   KEYS[6] wake ZSET
  ARGV[A+1] task id   ARGV[A+2] lease token   ARGV[A+3] error JSON (the result)
  ARGV[A+4] traceback   ARGV[A+5] retry at ms, or -1 for a final failure
  Returns: 1 failed | 2 retry scheduled | -1 no such task | -2 not running | -3 lease lost ]]
local id, retry_at = ARGV[A + 1], tonumber(ARGV[A + 5])
local f = rcall('HMGET', KEYS[3], 'status', 'lease', 'queue', 'attempts', 'errors', 'cancel_requested')
if not f[1] then return -1 end
if f[1] ~= 'STARTED' then return -2 end
if f[2] ~= ARGV[A + 2] then return -3 end
local errors = cjson.decode(f[5] or '[]')
errors[#errors + 1] = { attempt = tonumber(f[4]), error = cjson.decode(ARGV[A + 3]), at = ctx.now }
rcall('HSET', KEYS[3], 'errors', cjson.encode(errors), 'traceback', ARGV[A + 4])
rcall('HDEL', KEYS[3], 'lease')
rcall('ZREM', KEYS[4], id)
if f[6] then
  finalize(id, KEYS[3], 'REVOKED', revoked_result('cancelled'), nil, f[3], 'revoked')
  return 1
end
if retry_at >= 0 then
  rcall('HSET', KEYS[3], 'status', 'RETRY', 'eta', retry_at)
  rcall('HINCRBY', KEYS[3], 'retries', 1)
  rcall('ZADD', KEYS[5], retry_at, id)
  rcall('ZADD', KEYS[6], 0, 'w')
  emit('retry', id, f[3], 'RETRY')
  return 2
end
finalize(id, KEYS[3], 'FAILURE', ARGV[A + 3], nil, f[3], 'failed')
return 1
