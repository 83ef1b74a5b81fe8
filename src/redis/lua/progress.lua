--[[ progress: a running task reports how far it got, only with its lease.
  KEYS[3] task HASH
  ARGV[A+1] task id   ARGV[A+2] lease token   ARGV[A+3] progress JSON
  Returns: 1 ok | -1 no such task | -2 not running | -3 lease lost ]]
local f = rcall('HMGET', KEYS[3], 'status', 'lease', 'queue')
if not f[1] then return -1 end
if f[1] ~= 'STARTED' then return -2 end
if f[2] ~= ARGV[A + 2] then return -3 end
rcall('HSET', KEYS[3], 'progress', ARGV[A + 3])
rcall('XADD', ctx.events, 'MAXLEN', '~', ctx.maxlen, '*', 'event', 'progress', 'task_id', ARGV[A + 1],
  'queue', f[3] or '', 'status', 'STARTED', 'ts', ctx.now, 'progress', ARGV[A + 3])
return 1
