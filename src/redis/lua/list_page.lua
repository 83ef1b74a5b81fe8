--[[ list_page: the next entries of listing indexes (includes/index), newest
  first, strictly after a cursor (score, id) in (score, id) descending order.
  Read only: the caller filters, merges the indexes and removes stale entries.
  KEYS: the index ZSETs
  ARGV[1] cursor score (ignored without a cursor id)   ARGV[2] cursor id ("": from
  the newest)   ARGV[3] highest score (an inclusive or "(" exclusive bound, or "+inf")
  ARGV[4] lowest score (likewise, or "-inf")   ARGV[5] entries per index
  Returns: per index, { id, score, id, score, ... }: n entries, or fewer when the
  index has no more ]]
local rcall = redis.call
local cscore, cid, high, low, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local out = {}
for i, key in ipairs(KEYS) do
  local rows
  if cid == '' then
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
