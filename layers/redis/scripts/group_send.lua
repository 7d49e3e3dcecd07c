-- One group_send's deliveries on one shard, bundled: one entry per process inbox.
-- KEYS = normal channel lists..., then (inbox, depth) pairs...
-- ARGV = {payload, expiry_ms, n_normal, capacity per normal channel...,
--         then per inbox: "local_part=capacity,local_part=capacity,..."}
-- Full members are skipped, never an error. Returns {delivered, dropped_full, expired}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local payload = ARGV[1]
local expiry_ms = tonumber(ARGV[2])
local expires = string.format('%013d', now + expiry_ms)
-- Keys outlive their messages so that expired entries are dropped (and counted) by a
-- pop or a later send; the TTL only collects channels nobody uses any more.
local ttl = expiry_ms * 2 + 1000
local n_normal = tonumber(ARGV[3])
local delivered, full, expired = 0, 0, 0

for i = 1, n_normal do
  local key = KEYS[i]
  while true do
    local head = redis.call('LINDEX', key, 0)
    -- A malformed head (not written by us) is left for the reader to drop and count.
    local deadline = head and tonumber(string.sub(head, 1, 13))
    if not deadline or deadline > now then break end
    redis.call('LPOP', key)
    expired = expired + 1
  end
  if redis.call('LLEN', key) < tonumber(ARGV[3 + i]) then
    redis.call('RPUSH', key, expires .. payload)
    redis.call('PEXPIRE', key, ttl)
    delivered = delivered + 1
  else
    full = full + 1
  end
end

local arg = 4 + n_normal
local key = n_normal + 1
while key <= #KEYS do
  local inbox, depth = KEYS[key], KEYS[key + 1]
  local accepted = {}
  for part, capacity in string.gmatch(ARGV[arg], '([^,=]*)=(%d+)') do
    if tonumber(redis.call('HGET', depth, part) or '0') < tonumber(capacity) then
      redis.call('HINCRBY', depth, part, 1)
      accepted[#accepted + 1] = part
    else
      full = full + 1
    end
  end
  arg = arg + 1
  if #accepted > 0 then
    redis.call('RPUSH', inbox, expires .. table.concat(accepted, ',') .. '\n' .. payload)
    redis.call('PEXPIRE', inbox, ttl)
    redis.call('PEXPIRE', depth, ttl)
    delivered = delivered + #accepted
  end
  key = key + 2
end
return {delivered, full, expired}
