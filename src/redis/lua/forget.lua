--[[ forget: delete a final task's record.
  KEYS[3] task HASH
  ARGV[A+1] task id
  Returns: 1 deleted | -1 no such task | -4 not final ]]
local f = rcall('HMGET', KEYS[3], 'status', 'queue')
if not f[1] then return -1 end
if not FINAL[f[1]] then return -4 end
rcall('DEL', KEYS[3])
emit('forgotten', ARGV[A + 1], f[2], f[1])
return 1
