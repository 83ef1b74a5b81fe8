--[[ workflow_advance: what happens to a workflow when one of its tasks ends.
  Included by includes/finalize only: it calls `finalize` (declared there before
  this piece) to revoke the steps a failed chain or chord will never run.
  Uses the script's locals: rcall, now, ttl, task_prefix, workflow_prefix,
  queue_prefix, wake_prefix, done_prefix (key prefixes: members are learned here). ]]

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

-- A workflow ends: record it, let it expire with its tasks, tell waiters.
local function finish_workflow(wkey, wid, status, result)
  rcall('HSET', wkey, 'status', status, 'finished_at', now_s)
  if result then rcall('HSET', wkey, 'result', result) end
  rcall('PEXPIRE', wkey, ttl)
  emit('workflow_' .. string.lower(status), wid, '', status)
  rcall('PUBLISH', done_prefix .. wid, status)
end

-- Revokes a task that a workflow holds back (never queued) and every task after it.
local function revoke_waiting_chain(id, reason)
  while id do
    local key = task_prefix .. id
    local t = read_task(key, 'next')
    if not t.status or FINAL[t.status] then return end
    -- The workflow ends this chain itself: finalize must not advance it again.
    t.workflow = nil
    finalize(id, key, t, 'REVOKED', revoked_result(reason), 'revoked')
    id = t.next
  end
end

-- Queues a task its workflow held back, feeding it `input`; false when it is
-- no longer waiting (it was cancelled meanwhile).
local function release_held(id, input)
  local key = task_prefix .. id
  local t = rcall('HMGET', key, 'status', 'args', 'queue', 'priority', 'waiting')
  if t[1] ~= 'PENDING' or not t[5] then return false end
  rcall('HSET', key, 'args', feed(t[2], input))
  rcall('HDEL', key, 'waiting')
  make_ready(id, queue_prefix .. t[3], wake_prefix .. t[3], t[4], false)
  emit('enqueued', id, t[3], 'PENDING')
  return true
end

-- Advances workflow `wid` after its task `id` (record `key`) reached a final state.
local function advance_workflow(id, key, wid, status, result)
  local wkey = workflow_prefix .. wid
  local w = rcall('HMGET', wkey, 'kind', 'status', 'total', 'callback')
  if not w[1] or FINAL[w[2]] then return end
  local f = rcall('HMGET', key, 'wf_index', 'next', 'wf_role')
  if f[3] == 'callback' then
    finish_workflow(wkey, wid, status, result)
    return
  end
  local done = rcall('HINCRBY', wkey, 'done', 1)
  if w[1] == 'chain' then
    if status ~= 'SUCCESS' then
      -- `failed` and `failed_task` mean the same for every kind of workflow.
      rcall('HINCRBY', wkey, 'failed', 1)
      rcall('HSET', wkey, 'failed_task', id)
      revoke_waiting_chain(f[2], 'an earlier task of the chain did not succeed')
      finish_workflow(wkey, wid, status, result)
    elseif not f[2] then
      finish_workflow(wkey, wid, 'SUCCESS', result)
    elseif not release_held(f[2], result) then
      revoke_waiting_chain(f[2], 'the chain was stopped')
      finish_workflow(wkey, wid, 'REVOKED', nil)
    end
    return
  end
  -- group and chord: collect results by position
  rcall('HSET', wkey, 'r:' .. f[1], result or 'null')
  if status ~= 'SUCCESS' then
    rcall('HINCRBY', wkey, 'failed', 1)
    -- The first member that did not succeed.
    rcall('HSETNX', wkey, 'failed_task', id)
  end
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
