-- Release depth counts of process-local channels whose messages left the process's
-- buffers (received, expired or flushed); a negative count reserves depth for messages
-- the process put into its own channels' buffers without Redis.
-- KEYS = {depth, counters}
-- ARGV = {"local_part=n,local_part=-n,...", ttl_ms, carried, counters TTL}
-- (carried: counts only the process saw; the counters TTL: see counting.lua).
lifetime(ARGV[4])
carry(ARGV[3])
local reserved = false
for part, n in string.gmatch(ARGV[1], '([^,=]*)=(%-?%d+)') do
  if redis.call('HINCRBY', KEYS[1], part, -tonumber(n)) <= 0 then
    redis.call('HDEL', KEYS[1], part)
  else
    reserved = reserved or tonumber(n) < 0
  end
end
-- A reservation may be what made the hash: it must lapse like the inbox it counts for.
if reserved then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2])) end
return 0
