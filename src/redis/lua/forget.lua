--[[ forget: delete a final task's record.
  KEYS[1] task HASH   KEYS[2] events STREAM
  ARGV[1] task id     ARGV[2] now ms   ARGV[3] events MAXLEN
  Returns: 1 deleted | -1 no such task | -4 not final ]]
local rcall = redis.call
local task_key, events_key = KEYS[1], KEYS[2]
local id, now, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3]
--- @include "includes/codes"
--- @include "includes/status"
--- @include "includes/emit"

local f = rcall('HMGET', task_key, 'status', 'queue')
if not f[1] then return NO_SUCH_TASK end
if not FINAL[f[1]] then return WRONG_STATE end
rcall('DEL', task_key)
emit('forgotten', id, f[2], f[1])
return 1
