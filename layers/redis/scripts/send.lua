-- Send messages to one channel: capacity check, push and TTL in one atomic step.
-- Normal channel: KEYS = {list, counters};         ARGV = {expiry_ms, capacity, '',
--                                                          counters TTL, key TTL ms, payload...}
-- Process-local:  KEYS = {inbox, depth, counters}; ARGV = {expiry_ms, capacity, local_part,
--                                                          counters TTL, key TTL ms, payload...}
-- As many payloads as there is room for are queued, in order; the rest are not (the
-- channel is full). Entries start with their 13-digit expiry time in ms; inbox entries
-- then name their local channel before a newline (the caller adds the entry header
-- of layers/inbox.py to a local payload).
-- A normal channel's payloads are pushed first: RPUSH replies with the length, so a
-- channel with room costs no LLEN and no look at its head. Only a channel that is then
-- over capacity drops its expired heads (counted; a pop drops and counts them
-- otherwise) and takes back from its tail what still does not fit.
-- Counts what it queued as sent, and the expired entries it dropped, in the counters
-- hash, its last KEY (inline: counting.lua's functions cost a send ~1 us more), which
-- it gives the counters TTL as counting.lua does (a PEXPIRE costs ~0.7 us: only when
-- the argument says to renew, or the hash is new).
-- Numbers reach redis.call as strings where they can ('0', '1', the key TTL): Redis
-- formats a Lua number for each call it is given to.
-- Returns {how many were queued, expired entries dropped}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local capacity = tonumber(ARGV[2])
local expires = string.format('%013d', now + ARGV[1])
-- Keys outlive their messages so that expired entries are dropped (and counted) by a
-- pop or a later send that finds the list full; the TTL only collects channels nobody
-- uses any more.
local part, ttl = ARGV[3], ARGV[5]
local normal = part == ''
local want = #ARGV - 5
local n, dropped, head = want, 0, expires
if not normal then
  n = math.min(math.max(capacity - tonumber(redis.call('HGET', KEYS[2], part) or '0'), 0), want)
  head = expires .. part .. '\n'
end
local length = 0
if n == 1 then
  length = redis.call('RPUSH', KEYS[1], head .. ARGV[6])
elseif n > 1 then
  for first = 6, n + 5, 1000 do
    local entries = {}
    for i = first, math.min(first + 999, n + 5) do entries[#entries + 1] = head .. ARGV[i] end
    length = redis.call('RPUSH', KEYS[1], unpack(entries))
  end
end
if normal and length > capacity then
  while true do
    local first = redis.call('LINDEX', KEYS[1], '0')
    -- A malformed head (not written by us) is left for the reader to drop and count.
    local deadline = first and tonumber(string.sub(first, 1, 13))
    if not deadline or deadline > now then break end
    redis.call('LPOP', KEYS[1])
    dropped = dropped + 1
  end
  -- Never more than this call pushed: a list a layer with a larger capacity filled
  -- keeps its entries.
  local over = math.min(length - dropped - capacity, n)
  if over > 0 then
    redis.call('RPOP', KEYS[1], over)
    n = n - over
  end
end
local counts, made = KEYS[#KEYS], false
if dropped > 0 then made = redis.call('HINCRBY', counts, 'dropped_expired', dropped) == dropped end
if n > 0 then made = redis.call('HINCRBY', counts, 'sent', n == 1 and '1' or n) == n or made end
-- The counters TTL argument is negative ('-') unless this call renews the hash.
local renew = string.byte(ARGV[4]) ~= 45
if renew or made then redis.call('PEXPIRE', counts, renew and ARGV[4] or string.sub(ARGV[4], 2)) end
if n == 0 then return {0, dropped} end
redis.call('PEXPIRE', KEYS[1], ttl)
if not normal then
  redis.call('HINCRBY', KEYS[2], part, n == 1 and '1' or n)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {n, dropped}
