--[[ progress: a running task reports how far it got, only with its lease.
  KEYS[1] task HASH   KEYS[2] events STREAM
  ARGV[1] task id     ARGV[2] lease token   ARGV[3] progress JSON
  ARGV[4] now ms      ARGV[5] events MAXLEN
  Returns: 1 ok | -1 no such task | -2 not running | -3 lease lost ]]
local rcall = redis.call
local task_key, events_key = KEYS[1], KEYS[2]
local id, token, progress, now, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
--- @include "includes/lease_guard"

local f = rcall('HMGET', task_key, 'status', 'lease', 'queue')
local refusal = lease_refusal(f[1], f[2], token)
if refusal then return refusal end
rcall('HSET', task_key, 'progress', progress)
rcall('XADD', events_key, 'MAXLEN', '~', maxlen, '*', 'event', 'progress', 'task_id', id,
  'queue', f[3] or '', 'status', 'STARTED', 'ts', now, 'progress', progress)
return 1
