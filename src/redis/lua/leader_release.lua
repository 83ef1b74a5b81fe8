--[[ leader_release: a scheduler stopping gracefully gives up its leadership, so a
  standby takes over at once instead of after the lease. Self-contained.
  KEYS[1] leader HASH   KEYS[2] replicas ZSET
  ARGV[1] caller's process name   ARGV[2] token it holds ("0": none)
  Returns: 1 released | 0 it was not the leader (only its replica entry is removed) ]]
local rcall = redis.call
local leader_key, replicas_key = KEYS[1], KEYS[2]
local name, held = ARGV[1], ARGV[2]
rcall('ZREM', replicas_key, name)
local cur = rcall('HMGET', leader_key, 'name', 'token')
if cur[1] == name and cur[2] == held then
  rcall('DEL', leader_key)
  return 1
end
return 0
