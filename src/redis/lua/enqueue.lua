--[[ enqueue: create a task record and make it ready (or delayed until its due time).
  KEYS[1] task HASH      KEYS[2] queue ZSET     KEYS[3] delayed ZSET   KEYS[4] wake ZSET
  KEYS[5] seq STRING     KEYS[6] events STREAM  KEYS[7] queues SET     KEYS[8] task_names SET
  ARGV[1] task id        ARGV[2] now_ms         ARGV[3] due_ms (0: ready now)
  ARGV[4] priority 0-9   ARGV[5] "1": the name must be registered   ARGV[6] task name
  ARGV[7] queue name     ARGV[8] events MAXLEN  ARGV[9..] field, value pairs of the record
  Returns: 1 ready | 2 delayed | -1 unknown task name | -2 task id already exists ]]
local id, now, due = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[5] == '1' and rcall('SISMEMBER', KEYS[8], ARGV[6]) == 0 then
  return -1
end
if rcall('EXISTS', KEYS[1]) == 1 then
  return -2
end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
rcall('HSET', KEYS[1], 'status', 'PENDING', unpack(fields))
rcall('SADD', KEYS[7], ARGV[7])
if due > now then
  rcall('ZADD', KEYS[3], due, id)
  -- A blocked worker recomputes how long it may sleep.
  rcall('ZADD', KEYS[4], 0, 'w')
  emit(KEYS[6], ARGV[8], 'delayed', id, ARGV[7], 'PENDING', now)
  return 2
end
rcall('ZADD', KEYS[2], ready_score(ARGV[4], rcall('INCR', KEYS[5])), id)
rcall('ZADD', KEYS[4], 0, 'w')
emit(KEYS[6], ARGV[8], 'enqueued', id, ARGV[7], 'PENDING', now)
return 1
