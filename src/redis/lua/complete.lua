--[[ complete: records a batch of successes (includes/complete).
  A worker groups the completions that arrive while its previous call is in flight
  into one call (worker/recorder.rs): the script's fixed cost is paid per batch.
  KEYS[1] leases ZSET   KEYS[2] events STREAM   KEYS[3] seq STRING
  KEYS[4..] the tasks' HASHes, in the order of their ARGV triples
  ARGV[1] now ms        ARGV[2] events MAXLEN
  ARGV[3] result TTL ms, then key prefixes (workflow members are learned here):
  ARGV[4] done channel  ARGV[5] idempotency  ARGV[6] task  ARGV[7] workflow
  ARGV[8] queue         ARGV[9] wake         ARGV[10] listing index
  ARGV[11..] per task: id, lease token, result JSON
  Returns: per task, in order: 1 ok | -1 no such task | -2 not running | -3 lease lost ]]
local rcall = redis.call
local leases_key, events_key, seq_key = KEYS[1], KEYS[2], KEYS[3]
local now, maxlen = tonumber(ARGV[1]), ARGV[2]
local ttl, done_prefix, idem_prefix, task_prefix = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local workflow_prefix, queue_prefix, wake_prefix = ARGV[7], ARGV[8], ARGV[9]
local idx_prefix = ARGV[10]
--- @include "includes/complete"

return complete_tasks(4, #KEYS, 11)
