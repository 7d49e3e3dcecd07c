-- Release depth counts of process-local channels whose messages left the process's
-- buffers (received, expired or flushed). KEYS = {depth}; ARGV = (local_part, n) pairs.
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
