--[[ complete: STARTED → SUCCESS (or REVOKED when a cancellation was requested),
  only if the caller still holds the lease; advances the task's workflow.
  KEYS[3] task HASH   KEYS[4] leases ZSET
  ARGV[A+1] task id   ARGV[A+2] lease token   ARGV[A+3] result JSON
  Returns: 1 ok | -1 no such task | -2 not running | -3 lease lost (token mismatch) ]]
local id = ARGV[A + 1]
local f = rcall('HMGET', KEYS[3], 'status', 'lease', 'queue', 'cancel_requested')
if not f[1] then return -1 end
if f[1] ~= 'STARTED' then return -2 end
if f[2] ~= ARGV[A + 2] then return -3 end
rcall('ZREM', KEYS[4], id)
if f[4] then
  finalize(id, KEYS[3], 'REVOKED', revoked_result('cancelled'), nil, f[3], 'revoked')
else
  finalize(id, KEYS[3], 'SUCCESS', ARGV[A + 3], nil, f[3], 'succeeded')
end
return 1
