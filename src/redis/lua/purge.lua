--[[ purge: revokes up to N of a queue's ready tasks, then of its delayed ones
  (each ends REVOKED with result.reason "purged", its workflow advanced as a
  cancel would). Running tasks are not in these sets and are untouched. The
  caller repeats until a call purges fewer than N.
  KEYS[1] queue ZSET   KEYS[2] delayed ZSET   KEYS[3] events STREAM   KEYS[4] seq STRING
  ARGV[1] now ms   ARGV[2] most tasks this call   ARGV[3] events MAXLEN
  ARGV[4] result TTL ms, then key prefixes: ARGV[5] done channel   ARGV[6] idempotency
  ARGV[7] task   ARGV[8] workflow   ARGV[9] queue   ARGV[10] wake   ARGV[11] listing index
  Returns: the number of tasks taken out of the sets ]]
local rcall = redis.call
local queue_key, delayed_key, events_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, limit, maxlen = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local ttl, done_prefix, idem_prefix, task_prefix = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local workflow_prefix, queue_prefix, wake_prefix, idx_prefix = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
--- @include "includes/finalize"

local taken = 0
for _, set in ipairs({ queue_key, delayed_key }) do
  if taken < limit then
    local ids = rcall('ZRANGE', set, 0, limit - taken - 1)
    for _, id in ipairs(ids) do
      local key = task_prefix .. id
      local t = read_task(key)
      if t.status and not FINAL[t.status] then
        finalize(id, key, t, 'REVOKED', revoked_result('purged'), 'revoked')
      end
    end
    if #ids > 0 then rcall('ZREM', set, unpack(ids)) end
    taken = taken + #ids
  end
end
return taken
