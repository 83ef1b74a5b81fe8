--[[ callback: a task with a callback URL that reaches a final state gets the
  delivery of its record queued in the same script (durable, at least once): a
  `callback` task on the `callbacks` queue, args {"task_id", "url"}, whose worker
  POSTs the record and keeps the record's `callback` field up to date.
  Uses the script's locals: rcall, now_s, seq_key, task_prefix, queue_prefix,
  wake_prefix, and those of includes/emit, includes/ready and includes/index. ]]
local CALLBACK_TASK = 'callback'
local CALLBACK_QUEUE = 'callbacks'
-- The delivery's retry ceiling; the worker's CELERIAC_CALLBACK_MAX_ATTEMPTS ends it sooner.
local CALLBACK_MAX_RETRIES = 1000

-- A UUID (version 5 layout) from a SHA-1 of `seed`: scripts cannot draw random
-- ids (math.random repeats the same sequence in every call).
local function derived_uuid(seed)
  local h = redis.sha1hex(seed)
  local variant = string.format('%x', 8 + tonumber(string.sub(h, 17, 17), 16) % 4)
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5' .. string.sub(h, 14, 16) .. '-'
    .. variant .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
end

-- Queues the delivery of task `id` (record `key`, read as `t`) to its callback
-- URL; a delivery's own end is never delivered.
local function queue_callback(id, key, t)
  if t.name == CALLBACK_TASK then return end
  local cid = derived_uuid('callback:' .. id .. ':' .. rcall('INCR', seq_key))
  rcall('HSET', task_prefix .. cid, 'name', CALLBACK_TASK, 'queue', CALLBACK_QUEUE,
    'status', 'PENDING', 'priority', '0', 'max_retries', CALLBACK_MAX_RETRIES,
    'options', '{}', 'created_at', now_s, 'parent_id', id,
    'args', cjson.encode({ task_id = id, url = t.callback_url }))
  index_new(cid, CALLBACK_QUEUE, CALLBACK_TASK, now_s)
  rcall('HSET', key, 'callback', cjson.encode({ url = t.callback_url, status = 'pending', attempts = 0 }))
  make_ready(cid, queue_prefix .. CALLBACK_QUEUE, wake_prefix .. CALLBACK_QUEUE, 0, false)
  emit('enqueued', cid, CALLBACK_QUEUE, 'PENDING')
end
