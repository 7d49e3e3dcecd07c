-- A normal channel's reader stops: give back the entries it took but could not hand to
-- a receiver, at the head and in their original order, and end its hold.
-- KEYS = {list, held, readers, counters}
-- ARGV = {reader, acked, expiry_ms, carried, counters TTL, entries..., oldest first}
-- (carried: counts only the process saw; the counters TTL: see counting.lua).
-- A held batch whose request is not the one the reader last got a reply to never
-- reached it (the reply was lost): it goes back too, after the others (it is newer).
-- An empty reader only gives back the entries, leaving every hold as it is.
-- The entries were counted as sent when stored, and are neither delivered nor dropped
-- by going back (never as full: the channel took them already). Those that expired
-- meanwhile are dropped and counted here, as a pop or fetch would; a malformed one
-- goes back for the next reader to drop and count.
-- Returns {entries given back, expired entries dropped}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
lifetime(ARGV[5])
carry(ARGV[4])
local reader = ARGV[1]
local held_seq = reader ~= '' and tonumber(redis.call('LINDEX', KEYS[2], 0))
local acked = tonumber(ARGV[2])
local given = {}
for i = 6, #ARGV do given[#given + 1] = ARGV[i] end
if held_seq and acked ~= -1 and held_seq ~= acked then
  for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 1, -1)) do given[#given + 1] = entry end
end
local back, expired, latest = {}, 0, nil
for _, entry in ipairs(given) do
  local deadline = tonumber(string.sub(entry, 1, 13))
  if deadline and deadline <= now then
    expired = expired + 1
  else
    back[#back + 1] = entry
    if deadline and (not latest or deadline > latest) then latest = deadline end
  end
end
count('dropped_expired', expired)
for i = #back, 1, -1 do redis.call('LPUSH', KEYS[1], back[i]) end
if reader ~= '' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], reader)
end
-- The list outlives its newest entry as a send's TTL makes it (send.lua: expiry twice
-- over and a second from the send), so that an entry expiring there is dropped and
-- counted by a later pop or send, not lost with the key. The list may have been
-- emptied by the fetch (so deleted) and made anew here without a TTL.
if #back > 0 then
  local expiry_ms = tonumber(ARGV[3])
  local keep_until = (latest or now + expiry_ms) + expiry_ms + 1000
  if redis.call('PTTL', KEYS[1]) < keep_until - now then
    redis.call('PEXPIREAT', KEYS[1], keep_until)
  end
end
return {#back, expired}
