--[[ emit: appends one transition to the capped events stream (one XADD per transition).
  Uses the script's locals: rcall, now, events_key (STREAM), maxlen (approximate cap). ]]
local function emit(event, id, queue, status)
  rcall('XADD', events_key, 'MAXLEN', '~', maxlen, '*',
    'event', event, 'task_id', id, 'queue', queue or '', 'status', status, 'ts', now)
end
