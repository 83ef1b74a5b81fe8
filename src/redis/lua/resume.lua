--[[ resume: a PAUSED task goes back to its queue with its priority (or to its
  delayed set when its ETA or retry time has not come) and is PENDING again.
  KEYS[1] task HASH   KEYS[2] events STREAM   KEYS[3] seq STRING
  ARGV[1] task id     ARGV[2] now ms   ARGV[3] events MAXLEN, then key prefixes (the
  task's queue is learned here): ARGV[4] queue   ARGV[5] delayed   ARGV[6] wake
  ARGV[7] listing index
  Returns: 1 resumed | -1 no such task | -4 not paused ]]
local rcall = redis.call
local task_key, events_key, seq_key = KEYS[1], KEYS[2], KEYS[3]
local id, now, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local queue_prefix, delayed_prefix, wake_prefix, idx_prefix = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
--- @include "includes/codes"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/index"

local f = rcall('HMGET', task_key, 'status', 'queue', 'created_at', 'priority', 'eta')
if not f[1] then return NO_SUCH_TASK end
if f[1] ~= 'PAUSED' then return WRONG_STATE end
rcall('HSET', task_key, 'status', 'PENDING')
rcall('HDEL', task_key, 'paused_at')
index_status(id, 'PAUSED', 'PENDING', f[3])
local eta = tonumber(f[5])
if eta and eta > now then
  rcall('ZADD', delayed_prefix .. f[2], eta, id)
  rcall('ZADD', wake_prefix .. f[2], 0, 'w')
else
  make_ready(id, queue_prefix .. f[2], wake_prefix .. f[2], f[4], false)
end
emit('resumed', id, f[2], 'PENDING')
return 1
