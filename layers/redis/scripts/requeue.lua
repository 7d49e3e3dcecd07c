-- A normal channel's reader stops: give back the entries it took but could not hand to
-- a receiver, at the head and in their original order, and end its hold.
-- KEYS = {list, held, readers}; ARGV = {reader, acked, entries..., oldest first}.
-- A held batch whose request is not the one the reader last got a reply to never
-- reached it (the reply was lost): it goes back too, after the others (it is newer).
-- An empty reader only gives back the entries, leaving every hold as it is.
local reader = ARGV[1]
local held_seq = reader ~= '' and tonumber(redis.call('LINDEX', KEYS[2], 0))
local acked = tonumber(ARGV[2])
local back = {}
for i = 3, #ARGV do back[#back + 1] = ARGV[i] end
if held_seq and acked ~= -1 and held_seq ~= acked then
  for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 1, -1)) do back[#back + 1] = entry end
end
for i = #back, 1, -1 do redis.call('LPUSH', KEYS[1], back[i]) end
if reader ~= '' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], reader)
end
-- The list may have expired meanwhile and been made anew without a TTL.
if #back > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIREAT', KEYS[1], tonumber(string.sub(back[#back], 1, 13)))
end
return #back
