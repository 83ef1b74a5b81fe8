--[[ index: the listing indexes (ZSETs, score = the task's created_at ms, ties by id),
  kept by the transitions themselves so that listing never scans the key space.
  Uses the script's locals: rcall, now, idx_prefix (Keys::index_prefix). ]]

-- Moves task `id` from the index of status `from` (nil: none) to that of `to`.
-- `created` is the record's created_at (nil: the record is gone, nothing to index).
-- STARTED has no index: running tasks are the leases ZSET (bounded by the
-- workers' concurrency), which listing reads instead, two calls per task saved.
local function index_status(id, from, to, created)
  if not created or from == to then return end
  if from and from ~= 'STARTED' then rcall('ZREM', idx_prefix .. 'status:' .. from, id) end
  if to ~= 'STARTED' then rcall('ZADD', idx_prefix .. 'status:' .. to, created, id) end
end

-- Counts a task of `queue` reaching a final state in this minute's bucket of
-- a HASH (minute → count) that keeps the last 16 minutes.
local this_minute = math.floor(now / 60000)
local this_minute_s = string.format('%d', this_minute)
local function count_finished(queue)
  if not queue then return end
  local key = idx_prefix .. 'done:' .. queue
  if rcall('HINCRBY', key, this_minute_s, '1') == 1 then
    rcall('HDEL', key, string.format('%d', this_minute - 16))
    rcall('PEXPIRE', key, 960000)
  end
end

-- Indexes a new PENDING task by status, queue and name.
local function index_new(id, queue, name, created)
  rcall('ZADD', idx_prefix .. 'status:PENDING', created, id)
  rcall('ZADD', idx_prefix .. 'queue:' .. queue, created, id)
  rcall('ZADD', idx_prefix .. 'name:' .. name, created, id)
end
