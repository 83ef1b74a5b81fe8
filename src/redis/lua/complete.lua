--[[ complete: STARTED → SUCCESS (or REVOKED when a cancellation was requested),
  only if the caller still holds the lease; advances the task's workflow.
  KEYS[1] task HASH   KEYS[2] leases ZSET   KEYS[3] events STREAM   KEYS[4] seq STRING
  ARGV[1] task id     ARGV[2] lease token   ARGV[3] result JSON     ARGV[4] now ms
  ARGV[5] events MAXLEN   ARGV[6] result TTL ms, then key prefixes (workflow members
  are learned here): ARGV[7] done channel   ARGV[8] idempotency   ARGV[9] task
  ARGV[10] workflow   ARGV[11] queue   ARGV[12] wake   ARGV[13] listing index
  Returns: 1 ok | -1 no such task | -2 not running | -3 lease lost ]]
local rcall = redis.call
local task_key, leases_key, events_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, token, result, now, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local ttl, done_prefix, idem_prefix, task_prefix = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local workflow_prefix, queue_prefix, wake_prefix = ARGV[10], ARGV[11], ARGV[12]
local idx_prefix = ARGV[13]
--- @include "includes/lease_guard"
--- @include "includes/finalize"

local f = rcall('HMGET', task_key, 'status', 'lease', 'queue', 'cancel_requested', 'idempotency_key', 'workflow')
local refusal = lease_refusal(f[1], f[2], token)
if refusal then return refusal end
rcall('ZREM', leases_key, id)
if f[4] then
  finalize(id, task_key, 'REVOKED', revoked_result('cancelled'), f[3], 'revoked', f[5], f[6])
else
  finalize(id, task_key, 'SUCCESS', result, f[3], 'succeeded', f[5], f[6])
end
return 1
