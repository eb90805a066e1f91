-- ARGV: worker, lease_s, forget_s, id1, token1, id2, token2...  -> ids no longer held

-- #include _prologue.lua

local worker, lease_s = ARGV[1], tonumber(ARGV[2])
redis.call('ZADD', K .. 'workers', now, worker)
redis.call('ZREMRANGEBYSCORE', K .. 'workers', '-inf', now - tonumber(ARGV[3]))
local lost = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local u = K .. 'u:' .. id
  if redis.call('HGET', u, 'state') == 'in_progress' and redis.call('HGET', u, 'token') == token then
    redis.call('ZADD', K .. 'leases', 'XX', now + lease_s, id)
    redis.call('HSET', u, 'lease_until', now + lease_s)
  else
    table.insert(lost, id)
  end
end
return lost
