--[[ pause: a task that waits (PENDING, queued or delayed, or RETRY) leaves its
  queue and becomes PAUSED; no worker claims it until it is resumed.
  KEYS[1] task HASH   KEYS[2] events STREAM
  ARGV[1] task id     ARGV[2] now ms   ARGV[3] events MAXLEN, then key prefixes (the
  task's queue is learned here): ARGV[4] queue   ARGV[5] delayed   ARGV[6] listing index
  Returns: 1 paused | 2 running (not paused: cancel it instead) | -1 no such task |
  -4 not waiting (final, already paused, or held back by its workflow) ]]
local rcall = redis.call
local task_key, events_key = KEYS[1], KEYS[2]
local id, now, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local queue_prefix, delayed_prefix, idx_prefix = ARGV[4], ARGV[5], ARGV[6]
--- @include "includes/codes"
--- @include "includes/emit"
--- @include "includes/index"

local f = rcall('HMGET', task_key, 'status', 'queue', 'created_at', 'waiting')
if not f[1] then return NO_SUCH_TASK end
if f[1] == 'STARTED' then return 2 end
-- A step its workflow holds back is in no queue: its workflow queues it.
if (f[1] ~= 'PENDING' and f[1] ~= 'RETRY') or f[4] then return WRONG_STATE end
rcall('ZREM', queue_prefix .. f[2], id)
rcall('ZREM', delayed_prefix .. f[2], id)
rcall('HSET', task_key, 'status', 'PAUSED', 'paused_at', now)
index_status(id, f[1], 'PAUSED', f[3])
emit('paused', id, f[2], 'PAUSED')
return 1
