--[[ leader_acquire: take, keep or observe the scheduler leadership (a lease with a fencing token).
  Self-contained (no prelude).
  KEYS[1] leader HASH (name, token, since) with the lease as its TTL
  KEYS[2] fencing counter STRING   KEYS[3] replicas ZSET (name → last seen ms)
  ARGV[1] caller's process name   ARGV[2] now_ms   ARGV[3] lease ms
  ARGV[4] token the caller believes it holds ("0": none)   ARGV[5] replicas kept if seen within ms
  Returns: {1, token, since_ms, lease_ms} renewed | {2, token, since_ms, lease_ms} new leadership
  (token INCRed) | {0, leader's token, since_ms, ms left of its lease} another process leads ]]
local rcall = redis.call
local leader_key, fencing_key, replicas_key = KEYS[1], KEYS[2], KEYS[3]
local name, now, lease, held, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])

rcall('ZADD', replicas_key, now, name)
rcall('ZREMRANGEBYSCORE', replicas_key, '-inf', now - keep)

local cur = rcall('HMGET', leader_key, 'name', 'token', 'since')
if cur[1] then
  if cur[1] == name and cur[2] == held then
    rcall('PEXPIRE', leader_key, lease)
    return { 1, tonumber(cur[2]), tonumber(cur[3]), lease }
  end
  return { 0, tonumber(cur[2]), tonumber(cur[3]), math.max(0, rcall('PTTL', leader_key)) }
end
local token = rcall('INCR', fencing_key)
rcall('HSET', leader_key, 'name', name, 'token', token, 'since', now)
rcall('PEXPIRE', leader_key, lease)
return { 2, token, now, lease }
