--[[ workflow: create a chain, group or chord and all its tasks at once.
  chain: tasks run one after the other, each fed the previous result; the first is queued.
  group: all tasks are queued; chord: a group plus a callback fed the list of results.
  Later steps are created now but held back (`waiting`) until their workflow queues them.
  KEYS[3] workflow HASH   KEYS[4] queues SET   KEYS[5] task_names SET   KEYS[6] task_defaults HASH
  then one task HASH per task, from KEYS[7] (header tasks in order, then the callback)
  ARGV[A+1] workflow id   ARGV[A+2] kind   ARGV[A+3] header size   ARGV[A+4] "1": has a callback
  then per task, from ARGV[A+5]: id, record fields JSON, options JSON, name, queue, "1": name must be registered
  Returns: {1, ''} created | {-1, name} unknown task name ]]
local wid, kind, n = ARGV[A + 1], ARGV[A + 2], tonumber(ARGV[A + 3])
local total = n + (ARGV[A + 4] == '1' and 1 or 0)
local tasks = {}
for i = 1, total do
  local b = A + 5 + (i - 1) * 6
  tasks[i] = { id = ARGV[b], rec = ARGV[b + 1], opts = ARGV[b + 2], name = ARGV[b + 3], queue = ARGV[b + 4],
    check = ARGV[b + 5], key = KEYS[6 + i] }
  if tasks[i].check == '1' and rcall('SISMEMBER', KEYS[5], tasks[i].name) == 0 then
    return { -1, tasks[i].name }
  end
end
local ids = {}
for i = 1, n do ids[i] = tasks[i].id end
rcall('HSET', KEYS[3], 'id', wid, 'kind', kind, 'status', 'STARTED', 'total', n, 'done', 0, 'failed', 0,
  'tasks', cjson.encode(ids), 'created_at', ctx.now)
for i, t in ipairs(tasks) do
  local priority = create_task(t.key, t.rec, t.opts, rcall('HGET', KEYS[6], t.name), nil)
  rcall('HSET', t.key, 'workflow', wid, 'wf_index', i - 1)
  rcall('SADD', KEYS[4], t.queue)
  local held = (kind == 'chain' and i > 1) or i > n
  if kind == 'chain' and i < n then rcall('HSET', t.key, 'next', tasks[i + 1].id) end
  if i > n then
    rcall('HSET', t.key, 'wf_role', 'callback')
    rcall('HSET', KEYS[3], 'callback', t.id)
  end
  if held then
    rcall('HSET', t.key, 'waiting', 1)
    emit('waiting', t.id, t.queue, 'PENDING')
  else
    make_ready(t.id, t.queue, priority, false)
    emit('enqueued', t.id, t.queue, 'PENDING')
  end
end
return { 1, '' }
