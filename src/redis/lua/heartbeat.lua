--[[ heartbeat: extend the leases a worker still holds, and tell it which of
  its tasks were cancelled (a fallback for a missed cancel message).
  KEYS[1] leases ZSET
  ARGV[1] now ms   ARGV[2] lease ms   ARGV[3] task key prefix (ids come in pairs)
  ARGV[4..] task id, lease token pairs
  Returns: { ids whose lease is lost, ids with a cancellation requested } ]]
local rcall = redis.call
local leases_key = KEYS[1]
local deadline, task_prefix = tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3]

local lost, cancelled = {}, {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = rcall('HMGET', task_prefix .. id, 'lease', 'cancel_requested')
  if f[1] == token and rcall('ZSCORE', leases_key, id) then
    rcall('ZADD', leases_key, 'XX', deadline, id)
    if f[2] then cancelled[#cancelled + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return { lost, cancelled }
