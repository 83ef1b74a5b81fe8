--[[ list_page: the next entries of listing indexes (includes/index), newest
  first, strictly after a cursor (score, id) in (score, id) descending order.
  Read only: the caller filters, merges the indexes and removes stale entries.
  KEYS: the index ZSETs
  ARGV[1] cursor score (ignored without a cursor id)   ARGV[2] cursor id ("": from
  the newest)   ARGV[3] highest score (an inclusive or "(" exclusive bound, or "+inf")
  ARGV[4] lowest score (likewise, or "-inf")   ARGV[5] entries per index
  ARGV[6] task key prefix   ARGV[7] the leases ZSET's name: that KEY stands for the
  STARTED tasks (which have no index): its members are scored by created_at here
  Returns: per index, { id, score, id, score, ... }: n entries, or fewer when the
  index has no more ]]
local rcall = redis.call
local cscore, cid, high, low, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local task_prefix, leases_key = ARGV[6], ARGV[7]

-- A score bound as a number and whether it is exclusive.
local function limit(b)
  if string.sub(b, 1, 1) == '(' then return tonumber(string.sub(b, 2)), true end
  return tonumber(b), false
end
local hi, hi_open = limit(high)
local lo, lo_open = limit(low)

-- The running tasks, as an index would give them (bounded by the concurrency of
-- the workers, so read whole).
local function running()
  local all = {}
  for _, id in ipairs(rcall('ZRANGE', leases_key, 0, -1)) do
    local s = tonumber(rcall('HGET', task_prefix .. id, 'created_at'))
    if s and (s < hi or (s == hi and not hi_open)) and (s > lo or (s == lo and not lo_open))
      and (cid == '' or s < cscore or (s == cscore and id < cid)) then
      all[#all + 1] = { s, id }
    end
  end
  table.sort(all, function(a, b) return a[1] > b[1] or (a[1] == b[1] and a[2] > b[2]) end)
  local rows = {}
  for j = 1, math.min(n, #all) do
    rows[#rows + 1] = all[j][2]
    rows[#rows + 1] = all[j][1]
  end
  return rows
end

local out = {}
for i, key in ipairs(KEYS) do
  local rows
  if key == leases_key then
    rows = running()
  elseif cid == '' then
    rows = rcall('ZREVRANGEBYSCORE', key, high, low, 'WITHSCORES', 'LIMIT', 0, n)
  else
    -- The cursor's entry is usually still there: continue right after its rank.
    local r = rcall('ZREVRANK', key, cid)
    if r and tonumber(rcall('ZSCORE', key, cid)) == cscore then
      rows = rcall('ZREVRANGE', key, r + 1, r + n, 'WITHSCORES')
    else
      -- It left this index: walk from its score, past the ties up to its id.
      rows = {}
      local off = 0
      while #rows < 2 * n do
        local got = rcall('ZREVRANGEBYSCORE', key, cscore, low, 'WITHSCORES', 'LIMIT', off, n)
        for j = 1, #got, 2 do
          if #rows < 2 * n and (tonumber(got[j + 1]) < cscore or got[j] < cid) then
            rows[#rows + 1] = got[j]
            rows[#rows + 1] = got[j + 1]
          end
        end
        if #got < 2 * n then break end
        off = off + n
      end
    end
  end
  out[i] = rows
end
return out
