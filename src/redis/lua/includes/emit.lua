--[[ emit: appends one transition to the capped events stream (one XADD per transition).
  Uses the script's locals: rcall, now, events_key (STREAM), maxlen (approximate cap).
  Defines now_s: `now` as text, for every command argument. Redis 7.0 formats a Lua
  number given to redis.call with "%.17g", about 0.4 µs each time, a string costs
  nothing: hot paths pass numbers as strings made once. ]]
local now_s = string.format('%d', now)

local function emit(event, id, queue, status)
  rcall('XADD', events_key, 'MAXLEN', '~', maxlen, '*',
    'event', event, 'task_id', id, 'queue', queue or '', 'status', status, 'ts', now_s)
end
