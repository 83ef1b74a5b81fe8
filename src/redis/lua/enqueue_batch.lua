--[[ enqueue_batch: create many tasks in one call, all or nothing: every name is
  checked before the first record is written. Each task is made ready, or
  delayed until it is due, as enqueue.lua does (no parent, no idempotency key).
  Per task only its record (HSET) and its event (XADD) are a command each: the
  listing entries, the queue entries and the FIFO numbers are written once per
  key for the whole batch.
  KEYS[1] queues SET   KEYS[2] task_names SET   KEYS[3] task_defaults HASH
  KEYS[4] seq STRING   KEYS[5] events STREAM
  then per task, from KEYS[6]: its task HASH
  ARGV[1] now ms   ARGV[2] events MAXLEN   ARGV[3] listing index key prefix
  ARGV[4] queue ZSET prefix   ARGV[5] delayed ZSET prefix   ARGV[6] wake ZSET prefix
  (a batch has few queues: their keys are made once per queue, not sent per task)
  then per task, from ARGV[7]: id, name, queue, "1": name must be registered,
  options JSON as given, priority (0-9), expires at ms (0: never), due ms (0: now),
  N, then N strings: the record's other fields as field/value pairs
  Returns: {1, ''} created | {-5, name, index (0-based)} unknown task name ]]
local rcall = redis.call
local queues_key, names_key, defaults_key, seq_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, maxlen, idx_prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local queue_prefix, delayed_prefix, wake_prefix = ARGV[4], ARGV[5], ARGV[6]
--- @include "includes/codes"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/create_task"

local tasks = {}
local b = 7
local i = 0
while b <= #ARGV do
  i = i + 1
  local pairs_n = tonumber(ARGV[b + 8])
  tasks[i] = { id = ARGV[b], name = ARGV[b + 1], queue = ARGV[b + 2], opts = ARGV[b + 4],
    priority = ARGV[b + 5], expires_at = tonumber(ARGV[b + 6]), due = tonumber(ARGV[b + 7]),
    first = b + 9, last = b + 8 + pairs_n, key = KEYS[5 + i] }
  if ARGV[b + 3] == '1' and rcall('SISMEMBER', names_key, tasks[i].name) == 0 then
    return { UNKNOWN_NAME, tasks[i].name, i - 1 }
  end
  b = b + 9 + pairs_n
end
-- The FIFO numbers of the ready tasks, reserved at once, handed out in batch order.
local ready_n = 0
for _, t in ipairs(tasks) do
  if t.due <= now then ready_n = ready_n + 1 end
end
local seq = ready_n > 0 and rcall('INCRBY', seq_key, ready_n) - ready_n or 0
-- Registration defaults, looked up once per name.
local defaults = {}
-- The queues that got a task; every ZSET entry (listing, queue, delayed) is
-- gathered per key and written by flush_new_entries (includes/index).
local woken = {}
new_entries = {}
for _, t in ipairs(tasks) do
  local d = defaults[t.name]
  if d == nil then
    d = rcall('HGET', defaults_key, t.name) or false
    defaults[t.name] = d
  end
  local priority = create_task(t.key, t.id, t.name, t.queue, t.opts, t.priority, t.first, t.last, d or nil,
    t.expires_at)
  local event
  if t.due > now then
    add_entry(delayed_prefix .. t.queue, string.format('%d', t.due), t.id)
    event = 'delayed'
  else
    seq = seq + 1
    add_entry(queue_prefix .. t.queue, ready_score(priority, seq), t.id)
    event = 'enqueued'
  end
  woken[t.queue] = true
  emit(event, t.id, t.queue, 'PENDING')
end
flush_new_entries()
-- One wake-up per queue, as make_ready does per task (includes/ready).
for queue in pairs(woken) do
  if rcall('ZADD', wake_prefix .. queue, '0', 'w') == 1 then rcall('SADD', queues_key, queue) end
end
return { 1, '', #tasks }
