--[[ enqueue: create a task record and make it ready, or delayed until it is due.
  KEYS[3] task HASH   KEYS[4] queue ZSET   KEYS[5] delayed ZSET   KEYS[6] wake ZSET
  KEYS[7] queues SET   KEYS[8] task_names SET   KEYS[9] task_defaults HASH
  KEYS[10] parent task HASH (or KEYS[3])   KEYS[11] idempotency STRING (or KEYS[3])
  ARGV[A+1] task id   ARGV[A+2] record fields JSON   ARGV[A+3] options JSON
  ARGV[A+4] due ms (0: now)   ARGV[A+5] expires at ms (0: never)
  ARGV[A+6] "1": the name must be registered   ARGV[A+7] "1": has a parent
  ARGV[A+8] "1": has an idempotency key   ARGV[A+9] task name   ARGV[A+10] queue name
  ARGV[A+11] idempotency key
  Returns: {1, id} ready | {2, id} delayed | {3, id of the earlier task} same
  idempotency key | {-1, ''} unknown task name | {-2, ''} task id exists ]]
local id, due, name, queue = ARGV[A + 1], tonumber(ARGV[A + 4]), ARGV[A + 9], ARGV[A + 10]
if ARGV[A + 8] == '1' then
  local earlier = rcall('GET', KEYS[11])
  if earlier and rcall('EXISTS', ctx.task .. earlier) == 1 then return { 3, earlier } end
end
if ARGV[A + 6] == '1' and rcall('SISMEMBER', KEYS[8], name) == 0 then return { -1, '' } end
if rcall('EXISTS', KEYS[3]) == 1 then return { -2, '' } end

local priority = create_task(KEYS[3], ARGV[A + 2], ARGV[A + 3], rcall('HGET', KEYS[9], name),
  tonumber(ARGV[A + 5]))
rcall('SADD', KEYS[7], queue)
if ARGV[A + 8] == '1' then
  rcall('SET', KEYS[11], id)
  rcall('HSET', KEYS[3], 'idempotency_key', ARGV[A + 11])
end
if ARGV[A + 7] == '1' and rcall('EXISTS', KEYS[10]) == 1 then
  local children = cjson.decode(rcall('HGET', KEYS[10], 'children') or '[]')
  children[#children + 1] = id
  rcall('HSET', KEYS[10], 'children', cjson.encode(children))
end
if due > ctx.now then
  rcall('HSET', KEYS[3], 'eta', due)
  rcall('ZADD', KEYS[5], due, id)
  -- A blocked worker recomputes how long it may sleep.
  rcall('ZADD', KEYS[6], 0, 'w')
  emit('delayed', id, queue, 'PENDING')
  return { 2, id }
end
rcall('ZADD', KEYS[4], ready_score(priority, rcall('INCR', ctx.seq)), id)
rcall('ZADD', KEYS[6], 0, 'w')
emit('enqueued', id, queue, 'PENDING')
return { 1, id }
