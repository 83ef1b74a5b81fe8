--[[ status: the final states, and the result a revoked task gets. ]]
local FINAL = { SUCCESS = true, FAILURE = true, REVOKED = true }

local function revoked_result(reason)
  return cjson.encode({ exc_type = 'TaskRevokedError', exc_message = reason, reason = reason })
end
