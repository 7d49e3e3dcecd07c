-- A group's live members, bundled per target (see group_add.lua): returns {target,
-- value, target, value, ...}. A field whose earliest expiry has passed is pruned of
-- its lapsed members first, so every member returned is live now; the others cost
-- nothing per member. KEYS = {group} or, from a group_send, {group, counters}
-- ARGV = {} or {how many group_sends read it, counters TTL (see counting.lua)}: they
-- are counted here, the one script every group_send runs once (its deliveries may take
-- none, or one per shard); the TTL is given inline, as in send.lua.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if ARGV[1] then
  local n, counts_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
  if redis.call('HINCRBY', KEYS[2], 'group_sends', n) == n or counts_ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], math.abs(counts_ttl))
  end
end
local flat = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #flat, 2 do
  local target, value = flat[i], flat[i + 1]
  if tonumber(string.sub(value, 1, 13)) <= now then
    local kept, earliest = {}, nil
    for part, expires in string.gmatch(string.sub(value, 14), ',([^,=]*)=(%d+)') do
      local at = tonumber(expires)
      if at > now then
        kept[#kept + 1] = ',' .. part .. '=' .. expires
        if not earliest or at < earliest then earliest = at end
      end
    end
    if earliest then
      value = string.format('%013d', earliest) .. table.concat(kept)
      redis.call('HSET', KEYS[1], target, value)
    else
      value = nil
      redis.call('HDEL', KEYS[1], target)
    end
  end
  if value then
    out[#out + 1] = target
    out[#out + 1] = value
  end
end
return out
