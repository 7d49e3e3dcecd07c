-- Send messages to one channel: capacity check, push and TTL in one atomic step.
-- Normal channel: KEYS = {list, counters};         ARGV = {expiry_ms, capacity, '',
--                                                          counters TTL, payload...}
-- Process-local:  KEYS = {inbox, depth, counters}; ARGV = {expiry_ms, capacity, local_part,
--                                                          counters TTL, payload...}
-- As many payloads as there is room for are queued, in order; the rest are not (the
-- channel is full). Entries start with their 13-digit expiry time in ms; inbox entries
-- then name their local channel before a newline (the caller adds the entry header
-- of layers/inbox.py to a local payload).
-- Counts what it queued as sent, and the expired entries it dropped, in the counters
-- hash, its last KEY (inline: counting.lua's functions cost a send ~1 us more), which
-- it gives the counters TTL as counting.lua does (a PEXPIRE costs ~0.7 us: only when
-- the argument says to renew, or the hash is new).
-- Returns {how many were queued, expired entries dropped}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expiry_ms = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local expires = string.format('%013d', now + expiry_ms)
-- Keys outlive their messages so that expired entries are dropped (and counted) by a
-- pop or a later send; the TTL only collects channels nobody uses any more.
local ttl = expiry_ms * 2 + 1000
local dropped, room, head = 0, 0, expires

local normal = ARGV[3] == ''
if normal then
  while true do
    local first = redis.call('LINDEX', KEYS[1], 0)
    -- A malformed head (not written by us) is left for the reader to drop and count.
    local deadline = first and tonumber(string.sub(first, 1, 13))
    if not deadline or deadline > now then break end
    redis.call('LPOP', KEYS[1])
    dropped = dropped + 1
  end
  room = capacity - redis.call('LLEN', KEYS[1])
else
  room = capacity - tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
  head = expires .. ARGV[3] .. '\n'
end
local n = math.min(math.max(room, 0), #ARGV - 4)
local counts, counts_ttl, made = KEYS[#KEYS], tonumber(ARGV[4]), false
if dropped > 0 then made = redis.call('HINCRBY', counts, 'dropped_expired', dropped) == dropped end
if n > 0 then made = redis.call('HINCRBY', counts, 'sent', n) == n or made end
if counts_ttl > 0 or made then redis.call('PEXPIRE', counts, math.abs(counts_ttl)) end
if n == 0 then return {0, dropped} end
for first = 5, n + 4, 1000 do
  local entries = {}
  for i = first, math.min(first + 999, n + 4) do entries[#entries + 1] = head .. ARGV[i] end
  redis.call('RPUSH', KEYS[1], unpack(entries))
end
redis.call('PEXPIRE', KEYS[1], ttl)
if not normal then
  redis.call('HINCRBY', KEYS[2], ARGV[3], n)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {n, dropped}
