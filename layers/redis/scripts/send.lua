-- Send one message: capacity check, push and TTL in one atomic step.
-- Normal channel: KEYS = {list}; ARGV = {payload, expiry_ms, capacity}
-- Process-local:  KEYS = {inbox, depth}; ARGV = {payload, expiry_ms, capacity, local_part}
-- Entries start with their 13-digit expiry time in ms; inbox entries then name their
-- local channel(s) before a newline. Returns {1 if queued else 0, expired entries dropped}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expiry_ms = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local expires = string.format('%013d', now + expiry_ms)
-- Keys outlive their messages so that expired entries are dropped (and counted) by a
-- pop or a later send; the TTL only collects channels nobody uses any more.
local ttl = expiry_ms * 2 + 1000

if #KEYS == 1 then
  local dropped = 0
  while true do
    local head = redis.call('LINDEX', KEYS[1], 0)
    -- A malformed head (not written by us) is left for the reader to drop and count.
    local deadline = head and tonumber(string.sub(head, 1, 13))
    if not deadline or deadline > now then break end
    redis.call('LPOP', KEYS[1])
    dropped = dropped + 1
  end
  if redis.call('LLEN', KEYS[1]) >= capacity then return {0, dropped} end
  redis.call('RPUSH', KEYS[1], expires .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, dropped}
end

local depth = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0')
if depth >= capacity then return {0, 0} end
redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
redis.call('RPUSH', KEYS[1], expires .. ARGV[4] .. '\n' .. ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, 0}
