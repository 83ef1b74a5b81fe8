--[[ lease_guard: the precondition of every transition a worker makes under its lease.
  Needs: the task's status and lease fields as read by the caller. ]]
--- @include "includes/codes"

-- The refusal code, or nil when the task runs under the caller's lease token.
local function lease_refusal(status, lease, token)
  if not status then return NO_SUCH_TASK end
  if status ~= 'STARTED' then return NOT_RUNNING end
  if lease ~= token then return LEASE_LOST end
  return nil
end
