--[[ schedule_fire: fire one due time of a schedule (enqueue its task) and advance
  the schedule, in one call keyed by (schedule, due time). Self-contained: the task
  record is written field for field as enqueue.lua writes it (status PENDING,
  priority, max_retries, options merged with the task's
  registered defaults, expires_at, then name/queue/args/created_at/schedule).

  Exactly once: a mode "due"/"skip" call fires only if the caller's fencing token
  is the current leader's, the schedule's version is the one the caller computed
  `next` from, and `due` is still the schedule's next_run_at (so a due time
  already fired, by this or another leader, is refused).

  KEYS[1] leader HASH   KEYS[2] schedule HASH   KEYS[3] schedules ZSET
  KEYS[4] new task HASH   KEYS[5] queue ZSET   KEYS[6] queue's wake ZSET
  KEYS[7] queues SET   KEYS[8] task_defaults HASH   KEYS[9] events STREAM   KEYS[10] seq STRING
  ARGV[1] schedule name   ARGV[2] mode: "due" (fire and advance) | "skip" (advance only,
  for missed due times) | "manual" (fire now, outside the schedule: no token, no advance)
  ARGV[3] fencing token   ARGV[4] schedule version   ARGV[5] due ms   ARGV[6] next run ms
  ("": none, the schedule ended)   ARGV[7] now_ms   ARGV[8] task id
  ARGV[9] record fields JSON (strings)   ARGV[10] options JSON   ARGV[11] task name
  ARGV[12] queue name   ARGV[13] events MAXLEN   ARGV[14] listing index key prefix
  Returns: {1, runs} fired | {2, 0} skipped (advanced only) | {-1, 0} no such schedule |
  {-3, 0} stale fencing token | {-5, 0} the schedule changed meanwhile |
  {-6, 0} this due time is no longer pending (already fired or skipped) ]]
local rcall = redis.call
local leader_key, sched_key, index_key, task_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local queue_key, wake_key, queues_key, defaults_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local events_key, seq_key = KEYS[9], KEYS[10]
local name, mode, token, version = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local due, next_run, now, id = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local rec, opts, task_name, queue, maxlen = ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13]
local idx_prefix = ARGV[14]
local PRIORITY_BAND = 17592186044416

local s = rcall('HMGET', sched_key, 'version', 'next_run_at')
if not s[1] then return { -1, 0 } end
if mode ~= 'manual' then
  if rcall('HGET', leader_key, 'token') ~= token then return { -3, 0 } end
  if s[1] ~= version then return { -5, 0 } end
  if s[2] ~= due then return { -6, 0 } end
  rcall('HSET', sched_key, 'next_run_at', next_run)
  rcall('ZADD', index_key, next_run == '' and '+inf' or next_run, name)
  if mode == 'skip' then return { 2, 0 } end
end

-- The task, as enqueue.lua's create_task writes it.
local defaults = rcall('HGET', defaults_key, task_name)
if defaults and defaults ~= '{}' then
  local merged = cjson.decode(opts)
  for k, v in pairs(cjson.decode(defaults)) do
    if merged[k] == nil then merged[k] = v end
  end
  opts = cjson.encode(merged)
end
local o = cjson.decode(opts)
local priority = math.max(0, math.min(9, tonumber(o.priority) or 0))
local fields = { 'status', 'PENDING', 'priority', priority, 'max_retries', tonumber(o.max_retries) or 0,
  'options', opts }
for k, v in pairs(cjson.decode(rec)) do
  fields[#fields + 1] = k
  fields[#fields + 1] = v
end
if tonumber(o.expires) then
  fields[#fields + 1] = 'expires_at'
  fields[#fields + 1] = now + math.floor(tonumber(o.expires) * 1000)
end
rcall('HSET', task_key, unpack(fields))
rcall('SADD', queues_key, queue)
-- Listing indexes, as includes/index writes them (this script is self-contained).
for _, idx in ipairs({ 'status:PENDING', 'queue:' .. queue, 'name:' .. task_name, 'schedule:' .. name }) do
  rcall('ZADD', idx_prefix .. idx, now, id)
end
rcall('ZADD', queue_key, (9 - priority) * PRIORITY_BAND + rcall('INCR', seq_key), id)
rcall('ZADD', wake_key, 0, 'w')
rcall('XADD', events_key, 'MAXLEN', '~', maxlen, '*',
  'event', 'enqueued', 'task_id', id, 'queue', queue, 'status', 'PENDING', 'ts', now)

local runs = rcall('HINCRBY', sched_key, 'runs', 1)
rcall('HSET', sched_key, 'last_run_at', now, 'last_due_at', due, 'last_task_id', id)
return { 1, runs }
