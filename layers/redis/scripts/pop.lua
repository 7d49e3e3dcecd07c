-- Take up to ARGV[1] live entries from the head of a list; drop expired ones.
-- KEYS = {list, held, counters} or {inbox, held, depth, counters}: for an inbox,
-- expired entries also release their local channels' depth counts (not a group
-- entry's: it counted none), and ARGV[8], if given, holds depth counts to release
-- first (the acks of messages received since the last pop): "part=n,...".
-- ARGV[6] carries counts only the process saw ("" if none: see counting.lua), ARGV[7]
-- is the counters' TTL argument (counting.lua); the expired and oversized entries
-- dropped here are counted here.
-- ARGV[5] is the reader's max_message_size: an entry whose payload is larger is dropped
-- here (and its depth counts released), so a batch of huge entries never reaches the
-- reader, which could only drop them after taking them all in.
--
-- A reply can be lost on the wire after this script ran (a timeout, a cut link), so
-- the batch is also kept in `held` under the request's number ARGV[2] until the
-- reader's next pop says, with ARGV[3], which request's reply it got last:
--   * a request numbered at or below the held one arrived late (its reader gave up
--     on it and moved on): it does nothing;
--   * a held batch whose number is not the one acknowledged never reached the
--     reader: it is handed over again instead of a new one;
--   * ARGV[3] = -1 means the reader does not know (it forgot): nothing is replayed.
-- ARGV[4] is the held batch's time to live in ms.
-- ARGV[9], if given (ARGV[8] is then given too, maybe ""), is the inbox head the reader
-- already delivered when its blocking wait returned it: it is removed, and not
-- returned, if it is still the head.
-- Numbers given as ARGV reach redis.call as they came (strings): Redis formats a Lua
-- number for each call it is given to (see send.lua).
-- Returns {server time in ms, expired count, oversized count, entries...}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local out = {now, 0, 0}
lifetime(ARGV[7])
carry(ARGV[6])
local limit = tonumber(ARGV[5])
local seq, acked = tonumber(ARGV[2]), tonumber(ARGV[3])
local held_seq = tonumber(redis.call('LINDEX', KEYS[2], '0'))
if held_seq and seq <= held_seq then return out end
if ARGV[9] and redis.call('LINDEX', KEYS[1], '0') == ARGV[9] then
  redis.call('LPOP', KEYS[1])
end
local depth = #KEYS == 4 and KEYS[3] or nil
if ARGV[8] and ARGV[8] ~= '' and depth then
  -- A negative count reserves depth (see ack.lua).
  for part, n in string.gmatch(ARGV[8], '([^,=]*)=(%-?%d+)') do
    if redis.call('HINCRBY', depth, part, -tonumber(n)) <= 0 then
      redis.call('HDEL', depth, part)
    elseif tonumber(n) < 0 then
      redis.call('PEXPIRE', depth, ARGV[4])
    end
  end
end
local popped
if held_seq and acked ~= -1 and held_seq ~= acked then
  popped = redis.call('LRANGE', KEYS[2], '1', '-1')
else
  popped = redis.call('LPOP', KEYS[1], ARGV[1]) or {}
end
local expired, oversized = 0, 0
for _, entry in ipairs(popped) do
  local deadline = tonumber(string.sub(entry, 1, 13))
  local newline = depth and string.find(entry, '\n', 14, true)
  -- The payload follows the expiry, or an inbox entry's newline and 2-byte header.
  local size = newline and #entry - newline - 2 or #entry - 13
  local live = not deadline or deadline > now
  if size > limit then
    oversized = oversized + 1
  elseif live or (depth and not newline) then
    -- Live, or malformed (not written by us): the reader drops and counts the latter.
    out[#out + 1] = entry
  elseif not depth then
    expired = expired + 1
  end
  if newline and (size > limit or not live) and string.byte(entry, 14) == 42 then
    -- '*': a group entry, which counted nothing (group_send.lua): one per member.
    if size <= limit then
      local _, commas = string.gsub(string.sub(entry, 15, newline - 1), ',', '')
      expired = expired + commas + 1
    end
  elseif newline and (size > limit or not live) then
    local parts = string.sub(entry, 14, newline - 1)
    for part in string.gmatch(parts, '[^,]+') do
      if size <= limit then expired = expired + 1 end
      if redis.call('HINCRBY', depth, part, -1) <= 0 then redis.call('HDEL', depth, part) end
    end
  end
end
out[2], out[3] = expired, oversized
count('dropped_expired', expired)
count('dropped_undecodable', oversized)
redis.call('DEL', KEYS[2])
redis.call('RPUSH', KEYS[2], ARGV[2])
for i = 4, #out, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(out, i, math.min(i + 999, #out)))
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return out
