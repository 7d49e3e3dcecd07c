-- Give back entries a process took but could not hand to a receiver, at the head and
-- in their original order. KEYS = {list}; ARGV = entries, oldest first.
for i = #ARGV, 1, -1 do redis.call('LPUSH', KEYS[1], ARGV[i]) end
-- The list may have expired meanwhile and been made anew without a TTL.
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIREAT', KEYS[1], tonumber(string.sub(ARGV[#ARGV], 1, 13)))
end
return #ARGV
