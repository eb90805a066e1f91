-- ARGV: none  -> how many expired leases (any worker's) went back to pending, the
-- interrupted attempt not charged

-- #include _prologue.lua

local recovered = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K .. 'leases', '-inf', now)) do
  local u = K .. 'u:' .. id
  redis.call('SREM', K .. 'held:' .. (redis.call('HGET', u, 'worker') or ''), id)
  redis.call('ZREM', K .. 'leases', id)
  if tonumber(redis.call('HGET', u, 'attempts') or '0') > 0 then redis.call('HINCRBY', u, 'attempts', -1) end
  redis.call('HSET', u, 'state', 'pending', 'token', '', 'worker', '')
  redis.call('ZADD', K .. 'pending', redis.call('HGET', u, 'ready'), id)
  recovered = recovered + 1
end
return recovered
