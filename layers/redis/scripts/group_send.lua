-- One group_send's deliveries on one shard (one slot on a cluster): a push per normal
-- channel, and ONE entry per process inbox whatever the number of its members there.
-- KEYS = normal channel lists..., then inboxes..., then the counters hash
-- ARGV = {payload, expiry_ms, key TTL ms, n_normal, capacity per normal channel...,
--         then per inbox: "*local_part,local_part,...",
--         then the counters TTL argument (see counting.lua),
--         then the inbox entry header (layers/inbox.py), put before the payload}
-- A normal channel's capacity is its list's length, as for a send (and as there, the
-- entry is pushed first and taken back if the list is still over capacity once its
-- expired heads are dropped); a full one is skipped, never an error. An inbox entry
-- counts nothing in the inbox's depths ('*' marks it so): its owner caps each
-- channel's group messages at its buffer (issue 14).
-- Counts as sent each normal channel reached and each member named in an inbox entry
-- (its owner counts the ones its buffers drop), the full and the expired it dropped.
-- Returns {normal channels delivered, normal channels full, expired dropped,
--          members handed to inboxes}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local payload = ARGV[1]
local header = ARGV[#ARGV]
local expires = string.format('%013d', now + ARGV[2])
-- Keys outlive their messages so that expired entries are dropped (and counted) by a
-- pop or a later send that finds the list full; the TTL only collects channels nobody
-- uses any more.
local ttl = ARGV[3]
local n_normal = tonumber(ARGV[4])
local delivered, full, expired = 0, 0, 0

local entry = expires .. payload
for i = 1, n_normal do
  local key = KEYS[i]
  local length = redis.call('RPUSH', key, entry)
  local capacity = tonumber(ARGV[4 + i])
  if length > capacity then
    while true do
      local head = redis.call('LINDEX', key, '0')
      -- A malformed head (not written by us) is left for the reader to drop and count.
      local deadline = head and tonumber(string.sub(head, 1, 13))
      if not deadline or deadline > now then break end
      redis.call('LPOP', key)
      expired = expired + 1
      length = length - 1
    end
  end
  if length > capacity then
    redis.call('RPOP', key)
    full = full + 1
  else
    redis.call('PEXPIRE', key, ttl)
    delivered = delivered + 1
  end
end

local arg, handed = 5 + n_normal, 0
for key = n_normal + 1, #KEYS - 1 do
  local parts = ARGV[arg]
  redis.call('RPUSH', KEYS[key], expires .. parts .. '\n' .. header .. payload)
  redis.call('PEXPIRE', KEYS[key], ttl)
  local _, commas = string.gsub(parts, ',', '')
  handed = handed + commas + 1
  arg = arg + 1
end
-- In the counters hash, its last KEY, with its TTL (inline, as in send.lua).
local counts, made = KEYS[#KEYS], false
local sent = delivered + handed
if sent > 0 then made = redis.call('HINCRBY', counts, 'sent', sent) == sent end
if full > 0 then made = redis.call('HINCRBY', counts, 'dropped_full', full) == full or made end
if expired > 0 then
  made = redis.call('HINCRBY', counts, 'dropped_expired', expired) == expired or made
end
local renew = string.byte(ARGV[#ARGV - 1]) ~= 45
if renew or made then
  redis.call('PEXPIRE', counts, renew and ARGV[#ARGV - 1] or string.sub(ARGV[#ARGV - 1], 2))
end
return {delivered, full, expired, handed}
