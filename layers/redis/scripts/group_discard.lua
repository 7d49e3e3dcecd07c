-- End a membership (see group_add.lua for the layout). KEYS = {group}
-- ARGV = {target, local part or '' for a normal channel}
if ARGV[2] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local item = ',' .. ARGV[2] .. '='
local at = string.find(value, item, 14, true)
if not at then return 0 end
value = string.sub(value, 1, at - 1) .. string.sub(value, at + #item + 13)
if #value == 13 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], value)
end
return 1
