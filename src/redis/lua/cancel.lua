--[[ cancel: a task that has not started (queued, delayed, retrying, held by a
  workflow) ends REVOKED and never runs; a running task is marked and its worker
  told (pub/sub now, its next heartbeat as a fallback); it ends REVOKED when it stops.
  KEYS[3] task HASH
  ARGV[A+1] task id   ARGV[A+2] cancel channel
  Returns: 1 revoked | 2 cancellation requested (running) | -1 no such task | -4 already final ]]
local id = ARGV[A + 1]
local f = rcall('HMGET', KEYS[3], 'status', 'queue')
if not f[1] then return -1 end
if FINAL[f[1]] then return -4 end
if f[1] == 'STARTED' then
  rcall('HSET', KEYS[3], 'cancel_requested', ctx.now)
  rcall('PUBLISH', ARGV[A + 2], id)
  emit('cancel_requested', id, f[2], 'STARTED')
  return 2
end
rcall('ZREM', ctx.queue .. f[2], id)
rcall('ZREM', ctx.delayed .. f[2], id)
finalize(id, KEYS[3], 'REVOKED', revoked_result('cancelled'), nil, f[2], 'revoked')
return 1
