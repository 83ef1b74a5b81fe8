--[[ fail: STARTED → RETRY (delayed until retry_at) or → FAILURE (REVOKED when a
  cancellation was requested), only with the lease. The executor decides between
  retry and failure; the retry policy lives in Rust.
  KEYS[1] task HASH   KEYS[2] leases ZSET   KEYS[3] delayed ZSET   KEYS[4] wake ZSET
  KEYS[5] events STREAM   KEYS[6] seq STRING
  ARGV[1] task id     ARGV[2] lease token   ARGV[3] error JSON (the result)
  ARGV[4] traceback   ARGV[5] retry at ms, or -1 for a final failure
  ARGV[6] now ms      ARGV[7] events MAXLEN   ARGV[8] result TTL ms, then key prefixes
  (workflow members are learned here): ARGV[9] done channel   ARGV[10] idempotency
  ARGV[11] task   ARGV[12] workflow   ARGV[13] queue   ARGV[14] wake   ARGV[15] listing index
  Returns: 1 failed | 2 retry scheduled | -1 no such task | -2 not running | -3 lease lost ]]
local rcall = redis.call
local task_key, leases_key, delayed_key, wake_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, seq_key = KEYS[5], KEYS[6]
local id, token, error_json, traceback = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local retry_at, now, maxlen, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local done_prefix, idem_prefix, task_prefix, workflow_prefix = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local queue_prefix, wake_prefix = ARGV[13], ARGV[14]
local idx_prefix = ARGV[15]
--- @include "includes/lease_guard"
--- @include "includes/finalize"

local t = read_task(task_key, 'attempts', 'errors')
local refusal = lease_refusal(t.status, t.lease, token)
if refusal then return refusal end
local errors = cjson.decode(t.errors or '[]')
errors[#errors + 1] = { attempt = tonumber(t.attempts), error = cjson.decode(error_json), at = now }
rcall('HSET', task_key, 'errors', cjson.encode(errors), 'traceback', traceback)
rcall('HDEL', task_key, 'lease')
t.lease = nil
rcall('ZREM', leases_key, id)
if t.cancel_requested then
  finalize(id, task_key, t, 'REVOKED', revoked_result('cancelled'), 'revoked')
  return 1
end
if retry_at >= 0 then
  rcall('HSET', task_key, 'status', 'RETRY', 'eta', retry_at)
  index_status(id, 'STARTED', 'RETRY', t.created_at)
  rcall('HINCRBY', task_key, 'retries', 1)
  rcall('ZADD', delayed_key, retry_at, id)
  rcall('ZADD', wake_key, 0, 'w')
  emit('retry', id, t.queue, 'RETRY')
  return 2
end
finalize(id, task_key, t, 'FAILURE', error_json, 'failed')
return 1
