--[[ finished: per queue, how many tasks reached a final state in each of the
  last 16 minutes (GET /queues' throughput). Apart from includes/index so that
  the scripts that only create tasks do not define it (a script's prelude runs,
  closures and all, on every call: about 0.35 µs of each enqueue).
  Uses the script's locals: rcall, now, idx_prefix. ]]

-- Counts `n` tasks of `queue` reaching a final state in this minute's bucket of
-- a HASH (minute → count) that keeps the last 16 minutes.
local this_minute = math.floor(now / 60000)
local this_minute_s = string.format('%d', this_minute)
local function add_finished(queue, n)
  local key = idx_prefix .. 'done:' .. queue
  if rcall('HINCRBY', key, this_minute_s, string.format('%d', n)) == n then
    rcall('HDEL', key, string.format('%d', this_minute - 16))
    rcall('PEXPIRE', key, 960000)
  end
end

-- A script that finalizes a batch (complete) sets `finished_tally` to a table:
-- counts then add up per queue and flush_finished() writes them, one HINCRBY per
-- queue instead of one per task.
local finished_tally = nil
local function count_finished(queue)
  if not queue then return end
  if finished_tally then
    finished_tally[queue] = (finished_tally[queue] or 0) + 1
  else
    add_finished(queue, 1)
  end
end
local function flush_finished()
  for queue, n in pairs(finished_tally or {}) do add_finished(queue, n) end
  finished_tally = {}
end
