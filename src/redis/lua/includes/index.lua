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

-- Counts `n` tasks of `queue` reaching a final state in this minute's bucket of
-- a HASH (minute → count) that keeps the last 16 minutes.
local this_minute = math.floor(now / 60000)
local this_minute_s = string.format('%d', this_minute)
local function add_finished(queue, n)
  local key = idx_prefix .. 'done:' .. queue
  if rcall('HINCRBY', key, this_minute_s, string.format('%d', n)) == n then
    rcall('HDEL', key, string.format('%d', this_minute - 16))
    rcall('PEXPIRE', key, 960000)
  end
end

-- A script that finalizes a batch (complete) sets `finished_tally` to a table:
-- counts then add up per queue and flush_finished() writes them, one HINCRBY per
-- queue instead of one per task.
local finished_tally = nil
local function count_finished(queue)
  if not queue then return end
  if finished_tally then
    finished_tally[queue] = (finished_tally[queue] or 0) + 1
  else
    add_finished(queue, 1)
  end
end
local function flush_finished()
  for queue, n in pairs(finished_tally or {}) do add_finished(queue, n) end
  finished_tally = {}
end

-- A script that creates a batch (enqueue_batch) sets `new_entries` to a table:
-- add_entry then gathers ZSET entries (listing indexes, and the batch's queue and
-- delayed entries) per key, and flush_new_entries() writes each key with one ZADD
-- per 1,000 entries instead of one per task.
local new_entries = nil
local function add_entry(key, created, id)
  if not new_entries then
    rcall('ZADD', key, created, id)
    return
  end
  local e = new_entries[key]
  if not e then
    e = {}
    new_entries[key] = e
  end
  e[#e + 1] = created
  e[#e + 1] = id
end
local function flush_new_entries()
  for key, e in pairs(new_entries or {}) do
    for i = 1, #e, 2000 do rcall('ZADD', key, unpack(e, i, math.min(i + 1999, #e))) end
  end
  new_entries = {}
end

-- Indexes a new PENDING task by status, queue and name.
local function index_new(id, queue, name, created)
  add_entry(idx_prefix .. 'status:PENDING', created, id)
  add_entry(idx_prefix .. 'queue:' .. queue, created, id)
  add_entry(idx_prefix .. 'name:' .. name, created, id)
end
