--[[ complete: STARTED → SUCCESS (or REVOKED when a cancellation was requested) for
  each task of a batch whose caller still holds its lease; advances workflows.
  complete.lua records a batch alone; claim.lua records one before it claims
  the tasks for the slots the batch frees (a worker's completion and its next
  claim in one call, as BullMQ's moveToFinished fetches the next job).
  Uses the script's locals: rcall, leases_key, and those of includes/finalize. ]]
--- @include "includes/lease_guard"
--- @include "includes/finalize"

-- Records the successes whose task HASHes are KEYS[first_key..last_key] and
-- whose (id, lease token, result JSON) triples start at ARGV[first_arg].
-- Returns per task, in order: 1 ok | -1 no such task | -2 not running | -3 lease lost
local function complete_tasks(first_key, last_key, first_arg)
  local codes, done = {}, {}
  finished_tally = {}
  for k = first_key, last_key do
    local a = first_arg + (k - first_key) * 3
    local id, token, result, task_key = ARGV[a], ARGV[a + 1], ARGV[a + 2], KEYS[k]
    local t = read_task(task_key)
    local refusal = lease_refusal(t.status, t.lease, token)
    if refusal then
      codes[#codes + 1] = refusal
    else
      done[#done + 1] = id
      if t.cancel_requested then
        finalize(id, task_key, t, 'REVOKED', revoked_result('cancelled'), 'revoked')
      else
        finalize(id, task_key, t, 'SUCCESS', result, 'succeeded')
      end
      codes[#codes + 1] = 1
    end
  end
  if #done > 0 then rcall('ZREM', leases_key, unpack(done)) end
  flush_finished()
  finished_tally = nil
  return codes
end
