--[[ enqueue: create a task record and make it ready, or delayed until it is due.
  KEYS[1] task HASH          KEYS[2] queue ZSET         KEYS[3] delayed ZSET
  KEYS[4] wake ZSET          KEYS[5] queues SET         KEYS[6] task_names SET
  KEYS[7] task_defaults HASH KEYS[8] seq STRING         KEYS[9] events STREAM
  KEYS[10] parent task HASH (KEYS[1] when none)
  KEYS[11] idempotency STRING (KEYS[1] when none)
  ARGV[1] task id            ARGV[2] task name          ARGV[3] queue name
  ARGV[4] now ms             ARGV[5] due ms (0: now)    ARGV[6] events MAXLEN
  ARGV[7] "1": the name must be registered              ARGV[8] "1": has a parent
  ARGV[9] idempotency key ("" when none)
  ARGV[10] task key prefix (the earlier task of an idempotency key is learned here)
  ARGV[11] options JSON as given    ARGV[12] priority (0-9)
  ARGV[13] expires at ms (0: never)
  ARGV[14] listing index key prefix
  ARGV[15..] the record's other fields as field/value pairs (args, max_retries, ...)
  Returns: {1, id} ready | {2, id} delayed | {3, id of the earlier task} same
  idempotency key | {-5, name} unknown task name ]]
local rcall = redis.call
local task_key, queue_key, delayed_key, wake_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local queues_key, names_key, defaults_key, seq_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local events_key, parent_key, idem_key = KEYS[9], KEYS[10], KEYS[11]
local id, name, queue = ARGV[1], ARGV[2], ARGV[3]
local now, due, maxlen = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local require_registered, has_parent, idem = ARGV[7] == '1', ARGV[8] == '1', ARGV[9]
local task_prefix, opts, priority, expires_at = ARGV[10], ARGV[11], ARGV[12], tonumber(ARGV[13])
local idx_prefix = ARGV[14]
--- @include "includes/codes"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/create_task"

if idem ~= '' then
  local earlier = rcall('GET', idem_key)
  if earlier and rcall('EXISTS', task_prefix .. earlier) == 1 then return { 3, earlier } end
end
if require_registered and rcall('SISMEMBER', names_key, name) == 0 then return { UNKNOWN_NAME, name } end
-- No EXISTS check on the id: it is a fresh random v4 UUID (queue/tasks.rs), and
-- the check cost about a microsecond per task (bench/redis_cost.py).

priority = create_task(task_key, id, name, queue, opts, priority, 15, #ARGV, rcall('HGET', defaults_key, name),
  expires_at)
if idem ~= '' then rcall('SET', idem_key, id) end
if has_parent and rcall('EXISTS', parent_key) == 1 then
  local children = cjson.decode(rcall('HGET', parent_key, 'children') or '[]')
  children[#children + 1] = id
  rcall('HSET', parent_key, 'children', cjson.encode(children))
end
local unmarked, event, code
if due > now then
  rcall('ZADD', delayed_key, due, id)
  -- A blocked worker recomputes how long it may sleep.
  unmarked, event, code = rcall('ZADD', wake_key, 0, 'w'), 'delayed', 2
else
  unmarked, event, code = make_ready(id, queue_key, wake_key, priority, false), 'enqueued', 1
end
-- A set wake marker means a task went to this queue before (and was listed then):
-- the queues SET only grows, so only an unmarked queue may be new to it.
if unmarked == 1 then rcall('SADD', queues_key, queue) end
emit(event, id, queue, 'PENDING')
return { code, id }
