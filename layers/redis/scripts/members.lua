-- The live members of a group, after dropping lapsed ones, joined by ',' (which no
-- channel name contains): one reply line however large the group. KEYS = {group}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return table.concat(redis.call('ZRANGE', KEYS[1], 0, -1), ',')
