--[[ codes: the refusal codes every script returns, each with one meaning
  (mapped to QueueError in one place, QueueError::from_script_code).
  Positive codes are successes and mean what each script's header says. ]]
local NO_SUCH_TASK = -1  -- the task record does not exist (never did, or expired)
local NOT_RUNNING = -2   -- the transition needs a STARTED task
local LEASE_LOST = -3    -- the caller's lease token is not the task's (another worker owns it)
local WRONG_STATE = -4   -- the task's (or its workflow's) state does not allow this
local UNKNOWN_NAME = -5  -- the task name is not registered (the reply names it)
