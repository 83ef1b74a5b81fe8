--[[ heartbeat: extend the leases a worker still holds, and tell it which of
  its tasks were cancelled (a fallback for a missed cancel message).
  KEYS[3] leases ZSET
  ARGV[A+1] lease ms   ARGV[A+2..] id, token pairs
  Returns: { ids whose lease is lost, ids with a cancellation requested } ]]
local deadline = ctx.now + tonumber(ARGV[A + 1])
local lost, cancelled = {}, {}
for i = A + 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = rcall('HMGET', ctx.task .. id, 'lease', 'cancel_requested')
  if f[1] == token and rcall('ZSCORE', KEYS[3], id) then
    rcall('ZADD', KEYS[3], 'XX', deadline, id)
    if f[2] then cancelled[#cancelled + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return { lost, cancelled }
