--[[ heartbeat: extend the leases a worker still holds.
  KEYS[1] leases ZSET
  ARGV[1] now_ms   ARGV[2] lease ms   ARGV[3] task key prefix   ARGV[4..] id, token pairs
  Returns: ids whose lease is no longer this worker's (reaped, cancelled, expired record). ]]
local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])
local lost = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if rcall('HGET', ARGV[3] .. id, 'lease') == token and rcall('ZSCORE', KEYS[1], id) then
    rcall('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
