--[[ enqueue_batch: create many tasks in one call, all or nothing: every name is
  checked before the first record is written. Each task is made ready, or
  delayed until it is due, as enqueue.lua does (no parent, no idempotency key).
  KEYS[1] queues SET   KEYS[2] task_names SET   KEYS[3] task_defaults HASH
  KEYS[4] seq STRING   KEYS[5] events STREAM
  then per task, from KEYS[6]: task HASH, its queue ZSET, delayed ZSET, wake ZSET
  ARGV[1] now ms   ARGV[2] events MAXLEN   ARGV[3] listing index key prefix
  then per task, from ARGV[4]: id, name, queue, "1": name must be registered,
  options JSON as given, priority (0-9), expires at ms (0: never), due ms (0: now),
  N, then N strings: the record's other fields as field/value pairs
  Returns: {1, ''} created | {-5, name, index (0-based)} unknown task name ]]
local rcall = redis.call
local queues_key, names_key, defaults_key, seq_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, maxlen, idx_prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
--- @include "includes/codes"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/create_task"

local tasks = {}
local b = 4
local i = 0
while b <= #ARGV do
  i = i + 1
  local pairs_n = tonumber(ARGV[b + 8])
  local k = 6 + (i - 1) * 4
  tasks[i] = { id = ARGV[b], name = ARGV[b + 1], queue = ARGV[b + 2], opts = ARGV[b + 4],
    priority = ARGV[b + 5], expires_at = tonumber(ARGV[b + 6]), due = tonumber(ARGV[b + 7]),
    first = b + 9, last = b + 8 + pairs_n, key = KEYS[k], queue_key = KEYS[k + 1],
    delayed_key = KEYS[k + 2], wake_key = KEYS[k + 3] }
  if ARGV[b + 3] == '1' and rcall('SISMEMBER', names_key, tasks[i].name) == 0 then
    return { UNKNOWN_NAME, tasks[i].name, i - 1 }
  end
  b = b + 9 + pairs_n
end
-- Registration defaults, looked up once per name.
local defaults = {}
for _, t in ipairs(tasks) do
  local d = defaults[t.name]
  if d == nil then
    d = rcall('HGET', defaults_key, t.name) or false
    defaults[t.name] = d
  end
  local priority = create_task(t.key, t.id, t.name, t.queue, t.opts, t.priority, t.first, t.last, d or nil,
    t.expires_at)
  local unmarked, event
  if t.due > now then
    rcall('ZADD', t.delayed_key, t.due, t.id)
    unmarked, event = rcall('ZADD', t.wake_key, 0, 'w'), 'delayed'
  else
    unmarked, event = make_ready(t.id, t.queue_key, t.wake_key, priority, false), 'enqueued'
  end
  if unmarked == 1 then rcall('SADD', queues_key, t.queue) end
  emit(event, t.id, t.queue, 'PENDING')
end
return { 1, '', #tasks }
