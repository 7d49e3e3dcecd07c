-- Add or renew a membership until now + ARGV[3] ms. KEYS = {group}
-- ARGV = {target, local part or '' for a normal channel, ms}
--
-- A group is a hash bundled per process inbox, so that a group_send reads one field
-- per inbox however many of its channels are members. Field: a normal channel's name,
-- or an inbox name ('x!'). Value: 13 digits of Unix ms, the earliest expiry in the
-- field (never later than the true one), then, for an inbox, ',part=<13 digits>' per
-- member. No channel name contains ',' or '=', so ',part=' finds exactly one member.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ms = tonumber(ARGV[3])
local until_ = string.format('%013d', now + ms)
local value = until_
if ARGV[2] ~= '' then
  local item = ',' .. ARGV[2] .. '='
  value = redis.call('HGET', KEYS[1], ARGV[1])
  if not value then
    value = until_ .. item .. until_
  else
    local at = string.find(value, item, 14, true)
    if at then
      local after = at + #item
      value = string.sub(value, 1, after - 1) .. until_ .. string.sub(value, after + 13)
    else
      value = value .. item .. until_
    end
    if now + ms < tonumber(string.sub(value, 1, 13)) then
      value = until_ .. string.sub(value, 14)
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], value)
if redis.call('PTTL', KEYS[1]) < ms then redis.call('PEXPIRE', KEYS[1], ms) end
return 0
