--[[ common: prepended to every script by scripts.rs, so shared rules live in one place.

  Every script receives the same context first (built by scripts.rs):
    KEYS[1] events STREAM   KEYS[2] seq STRING
    ARGV[1] now_ms   ARGV[2] result TTL ms   ARGV[3] events MAXLEN
    ARGV[4..10] key prefixes: task, queue, delayed, wake, workflow, done channel, idempotency
  and its own keys from KEYS[3], its own arguments from ARGV[A + 1].
  Keys of tasks, queues and workflows a script learns about inside Redis are
  built from those prefixes; they all carry the namespace's hash tag.

  Queue ZSET scores: (9 - priority) * 2^44 + seq, so ZPOPMIN takes the highest
  priority first and keeps FIFO order within a priority. ]]
local rcall = redis.call
local PRIORITY_BAND = 17592186044416
local A = 10
local ctx = {
  events = KEYS[1], seq = KEYS[2],
  now = tonumber(ARGV[1]), ttl = ARGV[2], maxlen = ARGV[3],
  task = ARGV[4], queue = ARGV[5], delayed = ARGV[6], wake = ARGV[7],
  workflow = ARGV[8], done = ARGV[9], idem = ARGV[10],
}
local FINAL = { SUCCESS = true, FAILURE = true, REVOKED = true }

local function ready_score(priority, seq)
  return (9 - (tonumber(priority) or 0)) * PRIORITY_BAND + seq
end

-- Appends one transition to the capped events stream.
local function emit(event, id, queue, status)
  rcall('XADD', ctx.events, 'MAXLEN', '~', ctx.maxlen, '*',
    'event', event, 'task_id', id, 'queue', queue or '', 'status', status, 'ts', ctx.now)
end

-- Puts a task on its queue (at the back of its priority, or the front) and wakes a worker.
local function make_ready(id, queue, priority, front)
  local seq = front and 0 or rcall('INCR', ctx.seq)
  rcall('ZADD', ctx.queue .. queue, ready_score(priority, seq), id)
  rcall('ZADD', ctx.wake .. queue, 0, 'w')
end

local function revoked_result(reason)
  return cjson.encode({ exc_type = 'TaskRevokedError', exc_message = reason, reason = reason })
end

-- Feeds a workflow step's input to a task's JSON arguments (as text, so numbers
-- are never re-encoded): an array gets it prepended, an object gets it as
-- "input", no arguments become the input itself, a scalar becomes [input, scalar].
local function feed(args, input)
  local body = args and string.match(args, '^%s*(.-)%s*$') or ''
  if body == '' or body == 'null' then return input end
  local first = string.sub(body, 1, 1)
  if first == '[' then
    local rest = string.match(body, '^%[%s*(.-)%s*%]$')
    if rest == '' then return '[' .. input .. ']' end
    return '[' .. input .. ',' .. rest .. ']'
  elseif first == '{' then
    local rest = string.match(body, '^{%s*(.-)%s*}$')
    if rest == '' then return '{"input":' .. input .. '}' end
    return '{"input":' .. input .. ',' .. rest .. '}'
  end
  return '[' .. input .. ',' .. body .. ']'
end

local finalize

-- A workflow ends: record it, let it expire with its tasks, tell waiters.
local function finish_workflow(wkey, wid, status, result)
  rcall('HSET', wkey, 'status', status, 'finished_at', ctx.now)
  if result then rcall('HSET', wkey, 'result', result) end
  rcall('PEXPIRE', wkey, ctx.ttl)
  emit('workflow_' .. string.lower(status), wid, '', status)
  rcall('PUBLISH', ctx.done .. wid, status)
end

-- Revokes a task that a workflow holds back (never queued) and every task after it.
local function revoke_waiting_chain(id, reason)
  while id do
    local key = ctx.task .. id
    local f = rcall('HMGET', key, 'status', 'next', 'queue')
    if not f[1] or FINAL[f[1]] then return end
    finalize(id, key, 'REVOKED', revoked_result(reason), nil, f[3], 'revoked', true)
    id = f[2]
  end
end

-- Queues a task its workflow held back, feeding it `input`; false when it is
-- no longer waiting (it was cancelled meanwhile).
local function release_held(id, input)
  local key = ctx.task .. id
  local t = rcall('HMGET', key, 'status', 'args', 'queue', 'priority', 'waiting')
  if t[1] ~= 'PENDING' or not t[5] then return false end
  rcall('HSET', key, 'args', feed(t[2], input))
  rcall('HDEL', key, 'waiting')
  make_ready(id, t[3], t[4], false)
  emit('enqueued', id, t[3], 'PENDING')
  return true
end

-- Advances the workflow of a task that just reached a final state.
local function member_finished(key, status, result)
  local f = rcall('HMGET', key, 'workflow', 'wf_index', 'next', 'wf_role', 'queue')
  local wid = f[1]
  if not wid then return end
  local wkey = ctx.workflow .. wid
  local w = rcall('HMGET', wkey, 'kind', 'status', 'total', 'callback')
  if not w[1] or FINAL[w[2]] then return end
  if f[4] == 'callback' then
    finish_workflow(wkey, wid, status, result)
    return
  end
  local done = rcall('HINCRBY', wkey, 'done', 1)
  if w[1] == 'chain' then
    if status ~= 'SUCCESS' then
      rcall('HSET', wkey, 'failed_task', string.sub(key, #ctx.task + 1))
      revoke_waiting_chain(f[3], 'an earlier task of the chain did not succeed')
      finish_workflow(wkey, wid, status, result)
    elseif not f[3] then
      finish_workflow(wkey, wid, 'SUCCESS', result)
    elseif not release_held(f[3], result) then
      revoke_waiting_chain(f[3], 'the chain was stopped')
      finish_workflow(wkey, wid, 'REVOKED', nil)
    end
    return
  end
  -- group and chord: collect results by position
  rcall('HSET', wkey, 'r:' .. f[2], result or 'null')
  if status ~= 'SUCCESS' then rcall('HINCRBY', wkey, 'failed', 1) end
  if done < tonumber(w[3]) then return end
  local failed = tonumber(rcall('HGET', wkey, 'failed') or '0')
  if w[1] == 'group' then
    finish_workflow(wkey, wid, failed == 0 and 'SUCCESS' or 'FAILURE', nil)
  elseif failed > 0 then
    revoke_waiting_chain(w[4], 'a task of the chord header did not succeed')
    finish_workflow(wkey, wid, 'FAILURE', nil)
  else
    local fields = {}
    for i = 0, tonumber(w[3]) - 1 do fields[#fields + 1] = 'r:' .. i end
    local results = '[' .. table.concat(rcall('HMGET', wkey, unpack(fields)), ',') .. ']'
    if not release_held(w[4], results) then
      finish_workflow(wkey, wid, 'REVOKED', nil)
    end
  end
end

-- Moves a task to a final state: record, expiry (with its idempotency key),
-- event, wake-up of waiting clients, and its workflow's next step.
finalize = function(id, key, status, result, traceback, queue, event, nested)
  rcall('HSET', key, 'status', status, 'result', result or 'null', 'finished_at', ctx.now)
  if traceback then rcall('HSET', key, 'traceback', traceback) end
  rcall('HDEL', key, 'lease', 'waiting')
  rcall('PEXPIRE', key, ctx.ttl)
  local idem = rcall('HGET', key, 'idempotency_key')
  if idem then rcall('PEXPIRE', ctx.idem .. idem, ctx.ttl) end
  emit(event, id, queue, status)
  rcall('PUBLISH', ctx.done .. id, status)
  if not nested then member_finished(key, status, result) end
end

-- Writes a new task record. `rec` is a JSON object of the record's fields
-- (strings); `opts` the options given with the task; the task's registration
-- defaults (a HASH field) fill the options left unset. Returns the priority.
local function create_task(key, rec, opts, defaults, expires_at)
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
    'attempts', 0, 'retries', 0, 'options', opts }
  for k, v in pairs(cjson.decode(rec)) do
    fields[#fields + 1] = k
    fields[#fields + 1] = v
  end
  if (not expires_at or expires_at <= 0) and tonumber(o.expires) then
    expires_at = ctx.now + math.floor(tonumber(o.expires) * 1000)
  end
  if expires_at and expires_at > 0 then
    fields[#fields + 1] = 'expires_at'
    fields[#fields + 1] = expires_at
  end
  rcall('HSET', key, unpack(fields))
  return priority
end
