--[[ common: prepended to every script by scripts.rs (one place for shared helpers).
  Task ordering inside a queue ZSET: score = (9 - priority) * 2^44 + seq, so ZPOPMIN
  takes the highest priority first and keeps FIFO order inside a priority (seq comes
  from the namespace counter; 2^44 sequence numbers per band, all exact in a double). ]]
local rcall = redis.call
local PRIORITY_BAND = 17592186044416

local function ready_score(priority, seq)
  return (9 - (tonumber(priority) or 0)) * PRIORITY_BAND + seq
end

-- Appends one transition to the capped events stream.
local function emit(stream, maxlen, event, id, queue, status, now)
  rcall('XADD', stream, 'MAXLEN', '~', maxlen, '*',
    'event', event, 'task_id', id, 'queue', queue or '', 'status', status, 'ts', now)
end

local FINAL = { SUCCESS = true, FAILURE = true, REVOKED = true }
