-- Put before the scripts that count and carry a process's counts (scripts.py: pop, fetch,
-- ack, requeue, count). Their last KEY is the counters hash of the slot of the keys they
-- touch (keys.py: Keys.counts): each adds what one call did with one HINCRBY by n per
-- counter, never one per message or member. send, group_send and members write their
-- HINCRBYs inline: defining these functions costs each call about a microsecond.
-- Each first calls lifetime() with its counters TTL argument (counting.py: positive,
-- this call renews the hash; negative, only a hash this call makes gets it).
local counts_ttl = 0

local function lifetime(ttl)
  counts_ttl = tonumber(ttl)
  if counts_ttl > 0 then redis.call('PEXPIRE', KEYS[#KEYS], counts_ttl) end
end

local function count(name, n)
  -- A counter equal to what was just added is new, maybe with its hash: give it the TTL.
  if n ~= 0 and redis.call('HINCRBY', KEYS[#KEYS], name, n) == n then
    redis.call('PEXPIRE', KEYS[#KEYS], math.abs(counts_ttl))
  end
end

-- What only a process saw (deliveries to its receivers, drops in its buffers), carried
-- by its next call as "name=n,name=n" (n may be negative: see layers/redis/counting.py).
local function carry(counts)
  if counts and counts ~= '' then
    for name, n in string.gmatch(counts, '([%a_]+)=(%-?%d+)') do count(name, tonumber(n)) end
  end
end

