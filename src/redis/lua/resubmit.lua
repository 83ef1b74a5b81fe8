--[[ resubmit: a FAILURE or REVOKED task goes back to its queue as a new attempt
  (its earlier errors are kept).
  KEYS[3] task HASH
  ARGV[A+1] task id
  A task of a workflow that is still running cannot be resubmitted (its workflow
  already counted it as finished).
  KEYS[4] dead-letter LIST
  Returns: 1 queued | -1 no such task | -4 not failed or revoked, or its workflow runs ]]
local id = ARGV[A + 1]
local f = rcall('HMGET', KEYS[3], 'status', 'queue', 'priority', 'workflow')
if not f[1] then return -1 end
if f[1] ~= 'FAILURE' and f[1] ~= 'REVOKED' then return -4 end
if f[4] then
  local wstatus = rcall('HGET', ctx.workflow .. f[4], 'status')
  if wstatus and not FINAL[wstatus] then return -4 end
end
rcall('LREM', KEYS[4], 0, id)
rcall('HDEL', KEYS[3], 'result', 'traceback', 'finished_at', 'cancel_requested', 'lost_deliveries',
  'eta', 'expires_at', 'waiting')
rcall('HSET', KEYS[3], 'status', 'PENDING', 'retries', 0)
rcall('PERSIST', KEYS[3])
-- Its idempotency key lives as long as the task again.
local idem = rcall('HGET', KEYS[3], 'idempotency_key')
if idem then rcall('PERSIST', ctx.idem .. idem) end
make_ready(id, f[2], f[3], false)
emit('resubmitted', id, f[2], 'PENDING')
return 1
