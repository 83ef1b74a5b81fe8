--[[ schedule_delete: remove a schedule (tasks it fired keep their records). Self-contained.
  KEYS[1] schedule HASH   KEYS[2] schedules ZSET
  ARGV[1] name   ARGV[2] change channel
  Returns: 1 deleted | -1 no such schedule ]]
local rcall = redis.call
local sched_key, index_key = KEYS[1], KEYS[2]
local name, channel = ARGV[1], ARGV[2]
if rcall('DEL', sched_key) == 0 then return -1 end
rcall('ZREM', index_key, name)
rcall('PUBLISH', channel, name)
return 1
