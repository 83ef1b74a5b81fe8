--[[ index: the listing indexes (ZSETs, score = the task's created_at ms, ties by id),
  kept by the transitions themselves so that listing never scans the key space.
  Uses the script's locals: rcall, idx_prefix (Keys::index_prefix). ]]

-- Moves task `id` from the index of status `from` (nil: none) to that of `to`.
-- `created` is the record's created_at (nil: the record is gone, nothing to index).
-- STARTED has no index: running tasks are the leases ZSET (bounded by the
-- workers' concurrency), which listing reads instead, two calls per task saved.
local function index_status(id, from, to, created)
  if not created or from == to then return end
  if from and from ~= 'STARTED' then rcall('ZREM', idx_prefix .. 'status:' .. from, id) end
  if to ~= 'STARTED' then rcall('ZADD', idx_prefix .. 'status:' .. to, created, id) end
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
