-- ARGV: worker, token ('' for all)  -> how many leases of ``worker`` went back to pending

-- #include _prologue.lua

local worker, token = ARGV[1], ARGV[2]
local released = 0
for _, id in ipairs(redis.call('SMEMBERS', K .. 'held:' .. worker)) do
  local u = K .. 'u:' .. id
  if redis.call('HGET', u, 'worker') == worker and redis.call('HGET', u, 'state') == 'in_progress'
     and (token == '' or redis.call('HGET', u, 'token') == token) then
    redis.call('ZREM', K .. 'leases', id)
    if tonumber(redis.call('HGET', u, 'attempts')) > 0 then redis.call('HINCRBY', u, 'attempts', -1) end
    redis.call('HSET', u, 'state', 'pending', 'token', '', 'worker', '')
    redis.call('ZADD', K .. 'pending', redis.call('HGET', u, 'ready'), id)
    redis.call('SREM', K .. 'held:' .. worker, id)
    released = released + 1
  elseif token == '' or redis.call('HGET', u, 'worker') ~= worker then
    redis.call('SREM', K .. 'held:' .. worker, id)  -- not (or no longer) ours: a stale entry
  end
end
if token == '' then redis.call('ZREM', K .. 'workers', worker) end
return released
