--[[ claim_receipt: what a claim call did, for a worker that lost its answer (a
  response timeout in a stall, a dropped connection). It first fences the call:
  if the call has not run yet, it never will (claim.lua checks the fence), so the
  answer below is final, whichever connection the call and this script came by.
  KEYS[1] leases ZSET   KEYS[2] the call's fence STRING
  ARGV[1] the call's lease deadline (its now + lease ms: the score of its leases)
  ARGV[2] the call's lease token base   ARGV[3] fence TTL ms   ARGV[4] task key prefix
  then per success the call carried: id, lease token
  Returns: { { the tasks the call leased and still leased under its tokens, as
               claim returns them: { id, token, name, args, queue, attempts,
               retries, max_retries, options }, ... },
             per success, in order: 1 recorded by the call | 0 not recorded } ]]
local rcall = redis.call
local leases_key, fence_key = KEYS[1], KEYS[2]
local deadline, mine, task_prefix = ARGV[1], ARGV[2] .. ':', ARGV[4]

rcall('SET', fence_key, '1', 'PX', ARGV[3])
local rows = {}
-- The call's leases share one deadline; heartbeats move only the leases a worker
-- knows it holds, so a lost call's leases are still there, among the few others
-- that happen to end in the same ms.
for _, id in ipairs(rcall('ZRANGEBYSCORE', leases_key, deadline, deadline)) do
  local f = rcall('HMGET', task_prefix .. id, 'status', 'lease', 'name', 'args', 'queue', 'attempts', 'retries',
    'max_retries', 'options')
  if f[1] == 'STARTED' and f[2] and string.sub(f[2], 1, #mine) == mine then
    rows[#rows + 1] = { id, f[2], f[3], f[4] or 'null', f[5], tonumber(f[6]) or 1, f[7] or '0', f[8] or '0', f[9] or '{}' }
  end
end
local recorded = {}
for a = 5, #ARGV, 2 do
  -- A record keeps its last lease token: a success under this token is this call's.
  local f = rcall('HMGET', task_prefix .. ARGV[a], 'status', 'lease')
  recorded[#recorded + 1] = (f[1] == 'SUCCESS' and f[2] == ARGV[a + 1]) and 1 or 0
end
return { rows, recorded }
