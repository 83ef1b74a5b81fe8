--[[ finalize: moves a task to a final state: record, expiry (with its idempotency
  key), one event, a wake-up of waiting clients, and its workflow's next step.
  Uses the script's locals: rcall, now, ttl (ms), done_prefix, idem_prefix, idx_prefix, and
  those of includes/emit, includes/ready and includes/workflow_advance. ]]
--- @include "includes/status"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/index"

--- @include "includes/callback"

-- Declared before the workflow piece, which revokes held steps through it.
local finalize
--- @include "includes/workflow_advance"

-- `idem` and `wid` are the task's idempotency_key and workflow fields (nil when
-- unset), read by the caller with the rest of its record; a workflow revoking its
-- own held steps passes no `wid`, so it is not advanced twice.
finalize = function(id, key, status, result, queue, event, idem, wid)
  local was = rcall('HMGET', key, 'status', 'created_at')
  index_status(id, was[1], status, was[2])
  rcall('HSET', key, 'status', status, 'result', result or 'null', 'finished_at', now)
  -- A final task waits for nothing: its `eta` (a retry's, a countdown's) goes.
  rcall('HDEL', key, 'lease', 'waiting', 'eta')
  rcall('PEXPIRE', key, ttl)
  count_finished(queue)
  if idem then rcall('PEXPIRE', idem_prefix .. idem, ttl) end
  emit(event, id, queue, status)
  rcall('PUBLISH', done_prefix .. id, status)
  queue_callback(id, key)
  if wid then advance_workflow(id, key, wid, status, result) end
end
