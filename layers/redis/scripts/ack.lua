-- Release depth counts of process-local channels whose messages left the process's
-- buffers (received, expired or flushed).
-- KEYS = {depth}; ARGV = {"local_part=n,local_part=n,..."}
for part, n in string.gmatch(ARGV[1], '([^,=]*)=(%d+)') do
  if redis.call('HINCRBY', KEYS[1], part, -tonumber(n)) <= 0 then
    redis.call('HDEL', KEYS[1], part)
  end
end
return 0
