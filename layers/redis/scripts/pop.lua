-- Take up to ARGV[1] live entries from the head of a list; drop expired ones.
-- KEYS = {list} or {inbox, depth}: for an inbox, expired entries also release their
-- local channels' depth counts, and ARGV[2], if given, holds depth counts to release
-- first (the acks of messages received since the last pop): "local_part=n,..." or "".
-- ARGV[3], if given, is the inbox head the reader already delivered when its blocking
-- wait returned it: it is removed, not returned, if it is still the head.
-- Returns {server time in ms, expired count, entries...}.
if ARGV[3] and redis.call('LINDEX', KEYS[1], 0) == ARGV[3] then
  redis.call('LPOP', KEYS[1])
end
if ARGV[2] and ARGV[2] ~= '' then
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
  if tonumber(string.sub(entry, 1, 13)) > now then
    out[#out + 1] = entry
  elseif KEYS[2] then
    local parts = string.sub(entry, 14, string.find(entry, '\n', 14, true) - 1)
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
