--[[ trim_indexes: removes listing index entries (includes/index) whose task
  record expired, in bounded batches: only entries created before now - result
  TTL can belong to an expired record (a record expires the TTL after it
  finished), and only the oldest `batch` of those are checked per index. Listing
  removes the entries it finds stale as well.
  KEYS[1] queues SET   KEYS[2] task_names SET   KEYS[3] workers ZSET   KEYS[4] schedules ZSET
  ARGV[1] now ms   ARGV[2] result TTL ms   ARGV[3] entries checked per index
  ARGV[4] task key prefix   ARGV[5] listing index key prefix
  Returns: the number of entries removed ]]
local rcall = redis.call
local now, ttl, batch = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local task_prefix, idx_prefix = ARGV[4], ARGV[5]
local before = '(' .. (now - ttl)
local removed = 0

local function trim(index)
  local old = rcall('ZRANGEBYSCORE', index, '-inf', before, 'LIMIT', 0, batch)
  local gone = {}
  for _, id in ipairs(old) do
    if rcall('EXISTS', task_prefix .. id) == 0 then gone[#gone + 1] = id end
  end
  if #gone > 0 then removed = removed + rcall('ZREM', index, unpack(gone)) end
end

for _, status in ipairs({ 'SUCCESS', 'FAILURE', 'REVOKED' }) do trim(idx_prefix .. 'status:' .. status) end
for _, q in ipairs(rcall('SMEMBERS', KEYS[1])) do trim(idx_prefix .. 'queue:' .. q) end
for _, n in ipairs(rcall('SMEMBERS', KEYS[2])) do trim(idx_prefix .. 'name:' .. n) end
for _, w in ipairs(rcall('ZRANGE', KEYS[3], 0, -1)) do trim(idx_prefix .. 'worker:' .. w) end
for _, s in ipairs(rcall('ZRANGE', KEYS[4], 0, -1)) do trim(idx_prefix .. 'schedule:' .. s) end
return removed
