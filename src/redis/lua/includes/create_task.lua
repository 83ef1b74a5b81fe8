--[[ create_task: writes a new task record.
  The caller (redis/scripts/create.rs) builds the record as field/value pairs from the options
  given with the task, so Lua decodes no JSON unless the task's name has
  registration defaults (a task_defaults HASH field), which then fill the options
  left unset (priority, max_retries, expires and the stored options).
  Indexes the task for listing (includes/index).
  Uses the script's locals: rcall, now, idx_prefix, and now_s (includes/emit). ]]
--- @include "includes/emit"
--- @include "includes/index"

-- Writes the record of task `id` to `key`: the fields every new task has, then
-- ARGV[first..last] (the other field/value pairs), then applies `defaults` (JSON
-- or nil) over `opts` (the options JSON as given). `expires_at` is the expiry the
-- pairs already carry (ms, 0: none). Returns the task's priority.
local function create_task(key, id, name, queue, opts, priority, first, last, defaults, expires_at)
  -- No `id` (the key holds it) and no zero `attempts`/`retries` (absent reads as 0):
  -- fewer bytes per queued task and fewer arguments per call.
  rcall('HSET', key, 'name', name, 'queue', queue, 'status', 'PENDING', 'priority', priority,
    'options', opts, 'created_at', now_s, unpack(ARGV, first, last))
  index_new(id, queue, name, now_s)
  if not defaults or defaults == '{}' then return priority end
  local merged = cjson.decode(opts)
  for k, v in pairs(cjson.decode(defaults)) do
    if merged[k] == nil then merged[k] = v end
  end
  priority = math.max(0, math.min(9, tonumber(merged.priority) or 0))
  local fields = { 'options', cjson.encode(merged), 'priority', priority,
    'max_retries', tonumber(merged.max_retries) or 0 }
  if expires_at <= 0 and tonumber(merged.expires) then
    fields[#fields + 1] = 'expires_at'
    fields[#fields + 1] = now + math.floor(tonumber(merged.expires) * 1000)
  end
  rcall('HSET', key, unpack(fields))
  return priority
end
