--[[ schedule_save: create or replace a schedule's definition. Its run history
  (runs, last_*) is kept. Saving the same definition again changes nothing, so
  every scheduler replica may load the schedule file without moving a pending due time.
  Self-contained.
  KEYS[1] schedule HASH   KEYS[2] schedules ZSET (name → next run ms, +inf when none)
  ARGV[1] name   ARGV[2] definition JSON   ARGV[3] next run ms ("": none: paused or ended)
  ARGV[4] now_ms   ARGV[5] "1": create only (refuse an existing name)
  ARGV[6] change channel (PUBLISHed so the leader re-reads)
  Returns: 1 created | 2 replaced | 0 unchanged | -4 exists (create only) ]]
local rcall = redis.call
local sched_key, index_key = KEYS[1], KEYS[2]
local name, def, next_run, now, create_only, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local old = rcall('HGET', sched_key, 'def')
if old and create_only == '1' then return -4 end
if old == def then return 0 end
rcall('HSET', sched_key, 'def', def, 'next_run_at', next_run, 'updated_at', now)
rcall('HINCRBY', sched_key, 'version', 1)
if not old then rcall('HSET', sched_key, 'created_at', now, 'runs', 0) end
rcall('ZADD', index_key, next_run == '' and '+inf' or next_run, name)
rcall('PUBLISH', channel, name)
if old then return 2 end
return 1
