--[[ enqueue_batch: create many tasks in one call, all or nothing: every name is
  checked before the first record is written. Each task is made ready, or
  delayed until it is due, as enqueue.lua does (no parent; an idempotency key
  belongs to the batch as a whole).
  Per task only its record (HSET) and its event (XADD) are a command each: the
  listing entries, the queue entries and the FIFO numbers are written once per
  key for the whole batch.
  KEYS[1] queues SET   KEYS[2] task_names SET   KEYS[3] task_defaults HASH
  KEYS[4] seq STRING   KEYS[5] events STREAM
  KEYS[6] the batch's idempotency STRING (KEYS[1] when none)
  then per task, from KEYS[7]: its task HASH
  ARGV[1] now ms   ARGV[2] events MAXLEN   ARGV[3] listing index key prefix
  ARGV[4] queue ZSET prefix   ARGV[5] delayed ZSET prefix   ARGV[6] wake ZSET prefix
  (a batch has few queues: their keys are made once per queue, not sent per task)
  ARGV[7] the batch's idempotency key ("" when none)   ARGV[8] task key prefix
  ARGV[9] how long the idempotency key is kept, ms (the result TTL)
  then per task, from ARGV[10]: id, name, queue, "1": name must be registered,
  options JSON as given, priority (0-9), expires at ms (0: never), due ms (0: now),
  N, then N strings: the record's other fields as field/value pairs
  Returns: {1, '', n} created | {3, the earlier batch's ids joined by ",", 0}
  same idempotency key | {-5, name, index (0-based)} unknown task name ]]
local rcall = redis.call
local queues_key, names_key, defaults_key, seq_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local idem_key = KEYS[6]
local now, maxlen, idx_prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local queue_prefix, delayed_prefix, wake_prefix = ARGV[4], ARGV[5], ARGV[6]
local idem, task_prefix, idem_ttl = ARGV[7], ARGV[8], ARGV[9]
--- @include "includes/codes"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/create_task"

-- A batch accepted before under this key, whose first task's record lives, is
-- the answer: a client retrying after a lost answer enqueues nothing twice.
if idem ~= '' then
  local earlier = rcall('GET', idem_key)
  local first = earlier and string.match(earlier, '^[^,]+')
  if first and rcall('EXISTS', task_prefix .. first) == 1 then return { 3, earlier, 0 } end
end
-- First pass: where each task's arguments start (no table per task), every
-- name checked before anything is written, and how many are ready now.
local starts = {}
local ready_n = 0
local b, nargs = 10, #ARGV
while b <= nargs do
  starts[#starts + 1] = b
  if ARGV[b + 3] == '1' and rcall('SISMEMBER', names_key, ARGV[b + 1]) == 0 then
    return { UNKNOWN_NAME, ARGV[b + 1], #starts - 1 }
  end
  if tonumber(ARGV[b + 7]) <= now then ready_n = ready_n + 1 end
  b = b + 9 + tonumber(ARGV[b + 8])
end
-- The FIFO numbers of the ready tasks, reserved at once, handed out in batch order.
local seq = ready_n > 0 and rcall('INCRBY', seq_key, ready_n) - ready_n or 0
-- Registration defaults, looked up once per name.
local defaults = {}
-- The queues that got a task; every ZSET entry (listing, queue, delayed) is
-- gathered per key and written by flush_new_entries (includes/index).
local woken = {}
new_entries = {}
for i, b in ipairs(starts) do
  local id, name, queue, due = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 7])
  local d = defaults[name]
  if d == nil then
    d = rcall('HGET', defaults_key, name) or false
    defaults[name] = d
  end
  local priority = create_task(KEYS[6 + i], id, name, queue, ARGV[b + 4], ARGV[b + 5], b + 9,
    b + 8 + tonumber(ARGV[b + 8]), d or nil, tonumber(ARGV[b + 6]))
  local event
  if due > now then
    add_entry(delayed_prefix .. queue, ARGV[b + 7], id)
    event = 'delayed'
  else
    seq = seq + 1
    add_entry(queue_prefix .. queue, ready_score(priority, seq), id)
    event = 'enqueued'
  end
  woken[queue] = true
  emit(event, id, queue, 'PENDING')
end
flush_new_entries()
if idem ~= '' then
  local ids = {}
  for i, b in ipairs(starts) do ids[i] = ARGV[b] end
  rcall('SET', idem_key, table.concat(ids, ','), 'PX', idem_ttl)
end
-- One wake-up per queue, as make_ready does per task (includes/ready).
for queue in pairs(woken) do
  if rcall('ZADD', wake_prefix .. queue, '0', 'w') == 1 then rcall('SADD', queues_key, queue) end
end
return { 1, '', #starts }
