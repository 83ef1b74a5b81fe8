--[[ finalize: moves a task to a final state: record, expiry (with its idempotency
  key), one event, a wake-up of waiting clients, its callback, and its workflow's
  next step. The caller has read the record with includes/record (`t`).
  Uses the script's locals: rcall, now, ttl (ms), done_prefix, idem_prefix, idx_prefix, and
  those of includes/emit, includes/ready and includes/workflow_advance. ]]
--- @include "includes/status"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/index"
--- @include "includes/finished"
--- @include "includes/record"

--- @include "includes/callback"

-- Declared before the workflow piece, which revokes held steps through it.
local finalize
--- @include "includes/workflow_advance"

-- `t` is the task's record as read_task returned it before this transition; a
-- workflow revoking its own held steps clears `t.workflow`, so it is not advanced twice.
finalize = function(id, key, t, status, result, event)
  index_status(id, t.status, status, t.created_at)
  rcall('HSET', key, 'status', status, 'result', result or 'null', 'finished_at', now_s)
  -- A final task waits for nothing: its `eta` (a retry's, a countdown's) goes. Its
  -- last `lease` token stays (no command per task): a lease is only honoured
  -- while the status is STARTED (includes/lease_guard), and no reader shows it.
  if t.waiting or t.eta then rcall('HDEL', key, 'waiting', 'eta') end
  rcall('PEXPIRE', key, ttl)
  count_finished(t.queue)
  if t.idempotency_key then rcall('PEXPIRE', idem_prefix .. t.idempotency_key, ttl) end
  emit(event, id, t.queue, status)
  rcall('PUBLISH', done_prefix .. id, status)
  if t.callback_url and t.callback_url ~= '' then queue_callback(id, key, t) end
  if t.workflow then advance_workflow(id, key, t.workflow, status, result) end
end
