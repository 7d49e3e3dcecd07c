-- Put before the scripts that count and carry a process's counts (scripts.py: pop, fetch,
-- ack, count). Their last KEY is the counters hash of the slot of the keys they touch
-- (keys.py: Keys.counts): each adds what one call did with one HINCRBY by n per
-- counter, never one per message or member. send, group_send and members write their
-- HINCRBYs inline: defining these functions costs each call about a microsecond.
local function count(name, n)
  if n ~= 0 then redis.call('HINCRBY', KEYS[#KEYS], name, n) end
end

-- What only a process saw (deliveries to its receivers, drops in its buffers), carried
-- by its next call as "name=n,name=n" (n may be negative: see layers/redis/counting.py).
local function carry(counts)
  if counts and counts ~= '' then
    for name, n in string.gmatch(counts, '([%a_]+)=(%-?%d+)') do count(name, tonumber(n)) end
  end
end

