--[[ record: reads a task record's fields that transitions check and that
  includes/finalize needs, in one HMGET (each redis.call costs about as much as
  the command itself: a hot path reads its record once).
  Uses the script's locals: rcall. ]]
local RECORD_FIELDS = { 'status', 'queue', 'name', 'lease', 'cancel_requested', 'idempotency_key', 'workflow',
  'created_at', 'callback_url', 'eta', 'waiting' }
local RECORD_N = #RECORD_FIELDS

-- The record at `key` as a table by field name (a missing field is nil; a
-- missing record has no `status`), with the caller's `...` extra fields too.
local function read_task(key, ...)
  local extra = { ... }
  local v
  if #extra == 0 then
    v = rcall('HMGET', key, unpack(RECORD_FIELDS))
  else
    local fields = { unpack(RECORD_FIELDS) }
    for i = 1, #extra do fields[RECORD_N + i] = extra[i] end
    v = rcall('HMGET', key, unpack(fields))
  end
  local t = {}
  for i = 1, RECORD_N do
    if v[i] then t[RECORD_FIELDS[i]] = v[i] end
  end
  for i = 1, #extra do
    if v[RECORD_N + i] then t[extra[i]] = v[RECORD_N + i] end
  end
  return t
end
