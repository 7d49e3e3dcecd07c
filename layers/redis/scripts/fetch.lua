-- A normal channel's receiving process takes up to ARGV[1] live entries from the head
-- (prefetch), dropping expired ones. KEYS = {list, held, readers, counters}.
-- ARGV = {count, seq, acked, key_ttl_ms, reader, lease_ms, held key prefix,
--         max_message_size, carried, counters TTL}: an entry whose payload is larger
--         is dropped here, as in pop.lua, so a batch of huge entries never reaches the
--         reader; carried: counts only the process saw, "" if none; the counters TTL
--         argument: see counting.lua.
--
-- The batch is kept in `held` under request number `seq` exactly as pop.lua keeps an
-- inbox's (a reply lost on the wire is handed over again; a late request does nothing).
-- `readers` scores each reader by the end of its lease, renewed by every fetch (a count
-- of 0 only renews it). A reader whose lease ended without giving its batch back died
-- holding it: the first fetch after that counts the batch's live entries as lost (they
-- may or may not have reached a receiver there: never handed out twice) and removes it.
-- The expired, lost and oversized entries are counted here.
-- Returns {server time in ms, expired count, lost count, oversized count, entries...}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local wanted, seq, acked = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = ARGV[4]
local out = {now, 0, 0, 0}
local limit = tonumber(ARGV[8])
lifetime(ARGV[10])
carry(ARGV[9])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[5])
redis.call('PEXPIRE', KEYS[3], ttl)
if wanted == 0 then return out end
local held_seq = tonumber(redis.call('LINDEX', KEYS[2], '0'))
if held_seq and seq <= held_seq then return out end

local expired, lost, oversized = 0, 0, 0
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 8)) do
  local key = ARGV[7] .. dead
  for _, entry in ipairs(redis.call('LRANGE', key, 1, -1)) do
    local deadline = tonumber(string.sub(entry, 1, 13))
    if deadline and deadline <= now then expired = expired + 1 else lost = lost + 1 end
  end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[3], dead)
end

local popped
if held_seq and acked ~= -1 and held_seq ~= acked then
  popped = redis.call('LRANGE', KEYS[2], '1', '-1')
else
  popped = redis.call('LPOP', KEYS[1], ARGV[1]) or {}
end
for _, entry in ipairs(popped) do
  local deadline = tonumber(string.sub(entry, 1, 13))
  if #entry - 13 > limit then
    oversized = oversized + 1
  elseif not deadline or deadline > now then
    -- Live, or malformed (not written by us): the reader drops and counts the latter.
    out[#out + 1] = entry
  else
    expired = expired + 1
  end
end
out[2], out[3], out[4] = expired, lost, oversized
count('dropped_expired', expired)
count('dropped_dead_owner', lost)
count('dropped_undecodable', oversized)
redis.call('DEL', KEYS[2])
redis.call('RPUSH', KEYS[2], ARGV[2])
for i = 5, #out, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(out, i, math.min(i + 999, #out)))
end
redis.call('PEXPIRE', KEYS[2], ttl)
return out
