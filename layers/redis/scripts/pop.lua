-- Take up to ARGV[1] live entries from the head of a list; drop expired ones.
-- KEYS = {list} or {inbox, depth}: for an inbox, expired entries also release their
-- local channels' depth counts, and ARGV[2], if given, holds depth counts to release
-- first (the acks of messages received since the last pop): "local_part=n,...".
-- Returns {server time in ms, expired count, entries...}.
if ARGV[2] then
  for part, n in string.gmatch(ARGV[2], '([^,=]*)=(%d+)') do
    if redis.call('HINCRBY', KEYS[2], part, -tonumber(n)) <= 0 then
      redis.call('HDEL', KEYS[2], part)
    end
  end
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local popped = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
local out = {now, 0}
if not popped then return out end
local expired = 0
for _, entry in ipairs(popped) do
  local deadline = tonumber(string.sub(entry, 1, 13))
  local newline = KEYS[2] and string.find(entry, '\n', 14, true)
  if not deadline or deadline > now or (KEYS[2] and not newline) then
    -- Live, or malformed (not written by us): the reader drops and counts the latter.
    out[#out + 1] = entry
  elseif KEYS[2] then
    local parts = string.sub(entry, 14, newline - 1)
    for part in string.gmatch(parts, '[^,]+') do
      expired = expired + 1
      if redis.call('HINCRBY', KEYS[2], part, -1) <= 0 then redis.call('HDEL', KEYS[2], part) end
    end
  else
    expired = expired + 1
  end
end
out[2] = expired
return out
