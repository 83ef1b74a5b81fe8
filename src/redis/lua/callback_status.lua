--[[ callback_status: a delivery attempt records where the task's callback stands
  (one field of the task's record), unless the record is gone: an expired or
  forgotten record must not come back as a fragment.
  KEYS[1] task HASH
  ARGV[1] the callback state JSON ({"url", "status", "attempts", "last_error"})
  Returns: 1 ok | -1 no such task ]]
local rcall = redis.call
local task_key, state = KEYS[1], ARGV[1]
--- @include "includes/codes"

if rcall('EXISTS', task_key) == 0 then return NO_SUCH_TASK end
rcall('HSET', task_key, 'callback', state)
return 1
