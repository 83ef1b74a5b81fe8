--[[ workflow: create a chain, group or chord and all its tasks at once.
  chain: tasks run one after the other, each fed the previous result; the first is queued.
  group: all tasks are queued; chord: a group plus a callback fed the list of results.
  Later steps are created now but held back (`waiting`) until their workflow queues them.
  KEYS[1] workflow HASH   KEYS[2] queues SET   KEYS[3] task_names SET   KEYS[4] task_defaults HASH
  KEYS[5] seq STRING      KEYS[6] events STREAM
  then per task (header tasks in order, then the callback), from KEYS[7]:
  task HASH, its queue ZSET, its wake ZSET
  ARGV[1] workflow id   ARGV[2] kind   ARGV[3] header size   ARGV[4] "1": has a callback
  ARGV[5] now ms        ARGV[6] events MAXLEN   ARGV[7] listing index key prefix
  then per task, from ARGV[8]: id, name, queue, "1": name must be registered,
  options JSON as given, priority (0-9), expires at ms (0: never), N, then N
  strings: the record's other fields as field/value pairs (args, max_retries, ...)
  Returns: {1, ''} created | {-5, name} unknown task name ]]
local rcall = redis.call
local workflow_key, queues_key, names_key, defaults_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq_key, events_key = KEYS[5], KEYS[6]
local wid, kind, n, has_callback = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local now, maxlen, idx_prefix = tonumber(ARGV[5]), ARGV[6], ARGV[7]
--- @include "includes/codes"
--- @include "includes/emit"
--- @include "includes/ready"
--- @include "includes/create_task"

local total = n + (has_callback and 1 or 0)
local tasks = {}
local b = 8
for i = 1, total do
  local k = 7 + (i - 1) * 3
  local pairs_n = tonumber(ARGV[b + 7])
  tasks[i] = { id = ARGV[b], name = ARGV[b + 1], queue = ARGV[b + 2], check = ARGV[b + 3] == '1',
    opts = ARGV[b + 4], priority = ARGV[b + 5], expires_at = tonumber(ARGV[b + 6]),
    first = b + 8, last = b + 7 + pairs_n, key = KEYS[k], queue_key = KEYS[k + 1], wake_key = KEYS[k + 2] }
  if tasks[i].check and rcall('SISMEMBER', names_key, tasks[i].name) == 0 then
    return { UNKNOWN_NAME, tasks[i].name }
  end
  b = b + 8 + pairs_n
end
local ids = {}
for i = 1, n do ids[i] = tasks[i].id end
rcall('HSET', workflow_key, 'id', wid, 'kind', kind, 'status', 'STARTED', 'total', n, 'done', 0, 'failed', 0,
  'tasks', cjson.encode(ids), 'created_at', now)
for i, t in ipairs(tasks) do
  local priority = create_task(t.key, t.id, t.name, t.queue, t.opts, t.priority, t.first, t.last,
    rcall('HGET', defaults_key, t.name), t.expires_at)
  rcall('HSET', t.key, 'workflow', wid, 'wf_index', i - 1)
  rcall('SADD', queues_key, t.queue)
  local held = (kind == 'chain' and i > 1) or i > n
  if kind == 'chain' and i < n then rcall('HSET', t.key, 'next', tasks[i + 1].id) end
  if i > n then
    rcall('HSET', t.key, 'wf_role', 'callback')
    rcall('HSET', workflow_key, 'callback', t.id)
  end
  if held then
    rcall('HSET', t.key, 'waiting', 1)
    emit('waiting', t.id, t.queue, 'PENDING')
  else
    make_ready(t.id, t.queue_key, t.wake_key, priority, false)
    emit('enqueued', t.id, t.queue, 'PENDING')
  end
end
return { 1, '' }
