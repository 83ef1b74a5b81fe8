--[[ claim: record the successes the caller sends with it (includes/complete: a
  worker's completions and the claim for the slots they free are one call), then
  promote due delayed tasks, then lease up to N ready tasks, skipping expired
  ones (→ REVOKED) and deferring those over their task's rate limit.
  KEYS[1] leases ZSET   KEYS[2] rate_limits HASH (name → "limit window_ms")
  KEYS[3] seq STRING    KEYS[4] events STREAM   KEYS[5] paused queues SET
  KEYS[6] this call's fence STRING (set by claim_receipt when the caller lost the answer)
  then per queue, from KEYS[7]: queue ZSET, delayed ZSET, wake ZSET
  then the completed tasks' HASHes, in the order of their ARGV triples
  ARGV[1] now ms        ARGV[2] max tasks    ARGV[3] lease ms   ARGV[4] worker name
  ARGV[5] lease token base (unique per call) ARGV[6] max promotions per queue
  ARGV[7] rate-limit log key prefix          ARGV[8] events MAXLEN
  ARGV[9] result TTL ms, then key prefixes (tasks are learned here):
  ARGV[10] done channel ARGV[11] idempotency ARGV[12] task ARGV[13] workflow
  ARGV[14] queue        ARGV[15] wake   ARGV[16] listing index
  ARGV[17] the number of queues Q, then their names, in the order of their keys
  then per completed task: id, lease token, result JSON
  Returns: { next due ms of a delayed task or -1,
             { { id, token, name, args, queue, attempts, retries, max_retries, options }, ... },
             per completed task, in order: 1 ok | -1 no such task | -2 not running | -3 lease lost }
  or, when the call is fenced, { -1, {}, {} }: it did nothing. ]]
local rcall = redis.call
local leases_key, limits_key, seq_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local paused_key, fence_key = KEYS[5], KEYS[6]
local now, want, lease_ms, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local token_base, promote_limit, rate_prefix, maxlen = ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8]
local ttl, done_prefix, idem_prefix, task_prefix = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local workflow_prefix, queue_prefix, wake_prefix = ARGV[13], ARGV[14], ARGV[15]
local idx_prefix = ARGV[16]
local queues_n = tonumber(ARGV[17])
local last_queue_key = 6 + 3 * queues_n
-- The caller gave up on this call's answer and asked claim_receipt what it did
-- (a stall held the call back): it did nothing then, and must do nothing now.
if rcall('EXISTS', fence_key) == 1 then return { -1, {}, {} } end
--- @include "includes/complete"

local completed = complete_tasks(last_queue_key + 1, #KEYS, 18 + queues_n)

local out = {}
local lease_until = string.format('%d', now + lease_ms)
-- Most deployments set no rate limit: look limits up only when some exist.
local limited = rcall('EXISTS', limits_key) == 1
local deferred = 0

-- True when the task may start now under its name's cluster-wide rate limit
-- (a sliding window of start times); otherwise it waits in the delayed set.
local function admit(id, name, delayed_key, token)
  local limit = limited and rcall('HGET', limits_key, name)
  if not limit then return true end
  local count, window = string.match(limit, '^(%d+) (%d+)$')
  count, window = tonumber(count), tonumber(window)
  -- An unreadable or empty limit must not fail every claim: it limits nothing.
  if not count or not window or count < 1 or window < 1 then return true end
  local log = rate_prefix .. name
  rcall('ZREMRANGEBYSCORE', log, '-inf', now - window)
  if rcall('ZCARD', log) < count then
    rcall('ZADD', log, now, token)
    rcall('PEXPIRE', log, window)
    return true
  end
  local oldest = rcall('ZRANGE', log, 0, 0, 'WITHSCORES')
  -- A fraction of a ms per deferred task keeps them in the order they were popped.
  deferred = deferred + 1
  rcall('ZADD', delayed_key, tonumber(oldest[2]) + window + deferred / 1000, id)
  return false
end

-- Most deployments pause no queue: look names up only when some are paused.
local any_paused = rcall('EXISTS', paused_key) == 1
local heads = {}
for q = 7, last_queue_key, 3 do
  local queue_key, delayed_key, wake_key = KEYS[q], KEYS[q + 1], KEYS[q + 2]
  -- A paused queue is skipped whole: its resume sets the wake marker.
  if any_paused and rcall('SISMEMBER', paused_key, ARGV[18 + (q - 7) / 3]) == 1 then
    heads[q] = {}
  else
    -- The delayed set's head says whether anything is due (usually not).
    local first = rcall('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
    local due = {}
    if first[2] and tonumber(first[2]) <= now then
      due = rcall('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, promote_limit)
      first = nil
    end
    -- Deferred tasks and promotions change the head: look again at the end.
    heads[q] = first
    for _, id in ipairs(due) do
      rcall('ZREM', delayed_key, id)
      local priority = rcall('HGET', task_prefix .. id, 'priority')
      if priority then
        rcall('ZADD', queue_key, ready_score(priority, rcall('INCR', seq_key)), id)
      end
    end

    -- Bounded work per call, even when most popped tasks are deferred.
    local budget = want * 2 + 50
    while want > 0 and budget > 0 do
      -- (at most 1000 at a time: the chunk is unpacked into one ZADD and one ZREM)
      local asked = math.min(want, budget, 1000)
      local head = rcall('ZRANGE', queue_key, 0, asked - 1)
      if #head == 0 then break end
      local leased, unindexed, by_worker = {}, {}, {}
      for _, id in ipairs(head) do
        budget = budget - 1
        local key = task_prefix .. id
        -- Only what a start needs (each field asked is a scan of the record);
        -- an expired task is read whole for finalize.
        local f = rcall('HMGET', key, 'status', 'name', 'queue', 'expires_at', 'args', 'retries', 'max_retries',
          'options', 'attempts', 'created_at')
        local t = { status = f[1], name = f[2], queue = f[3], expires_at = f[4], args = f[5], retries = f[6],
          max_retries = f[7], options = f[8], attempts = f[9], created_at = f[10] }
        local token = token_base .. ':' .. (#out + 1)
        if not t.status or FINAL[t.status] then
          -- the record expired or the task was revoked: drop it
        elseif t.expires_at and tonumber(t.expires_at) < now then
          finalize(id, key, read_task(key), 'REVOKED', revoked_result('expired'), 'expired')
        elseif admit(id, t.name, delayed_key, token) then
          local attempts = (tonumber(t.attempts) or 0) + 1
          rcall('HSET', key, 'status', 'STARTED', 'worker', worker, 'lease', token, 'started_at', now_s,
            'attempts', string.format('%d', attempts))
          -- Out of its status index (STARTED has none) and into its worker's: once per chunk.
          if t.created_at then
            if t.status ~= 'STARTED' then
              unindexed[t.status] = unindexed[t.status] or {}
              table.insert(unindexed[t.status], id)
            end
            by_worker[#by_worker + 1] = t.created_at
            by_worker[#by_worker + 1] = id
          end
          emit('started', id, t.queue, 'STARTED')
          leased[#leased + 1] = lease_until
          leased[#leased + 1] = id
          out[#out + 1] = { id, token, t.name, t.args, t.queue, attempts, t.retries or '0', t.max_retries or '0',
            t.options or '{}' }
          want = want - 1
        end
      end
      for status, ids in pairs(unindexed) do rcall('ZREM', idx_prefix .. 'status:' .. status, unpack(ids)) end
      if #by_worker > 0 then rcall('ZADD', idx_prefix .. 'worker:' .. worker, unpack(by_worker)) end
      -- Leases, then the queue, once per chunk. Redis does not roll a script back,
      -- but an error before these lines leaves every task of the chunk in the queue,
      -- and a STARTED task found there (its claim never reached a worker) is
      -- claimed again with a new lease.
      if #leased > 0 then rcall('ZADD', leases_key, unpack(leased)) end
      rcall('ZREM', queue_key, unpack(head))
      -- A short head means the queue is empty now.
      if #head < asked then break end
    end
    -- More work is waiting (this call's slots are full, or its budget went on
    -- tasks over their rate limit): wake another blocked worker.
    if (want == 0 or budget <= 0) and rcall('ZCARD', queue_key) > 0 then
      rcall('ZADD', wake_key, 0, 'w')
    end
  end
end

local next_due = -1
for q = 7, last_queue_key, 3 do
  local first = deferred == 0 and heads[q] or rcall('ZRANGE', KEYS[q + 1], 0, 0, 'WITHSCORES')
  if first[2] and (next_due < 0 or tonumber(first[2]) < next_due) then next_due = tonumber(first[2]) end
end
return { next_due, out, completed }
