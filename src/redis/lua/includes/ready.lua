--[[ ready: a queue ZSET's score, and putting a task on its queue.
  Queue scores are (9 - priority) * 2^44 + seq, so ZPOPMIN takes the highest
  priority first and keeps FIFO order within a priority.
  Uses the script's locals: rcall, seq_key (STRING, the FIFO counter). ]]
local PRIORITY_BAND = 17592186044416

local function ready_score(priority, seq)
  return string.format('%d', (9 - (tonumber(priority) or 0)) * PRIORITY_BAND + seq)
end

-- Puts a task on its queue (at the back of its priority, or the front) and wakes
-- a worker. Returns 1 when the wake marker was not set (no task went to this
-- queue since a worker last took the marker, or ever), else 0.
local function make_ready(id, queue_key, wake_key, priority, front)
  local seq = front and 0 or rcall('INCR', seq_key)
  rcall('ZADD', queue_key, ready_score(priority, seq), id)
  return rcall('ZADD', wake_key, '0', 'w')
end
