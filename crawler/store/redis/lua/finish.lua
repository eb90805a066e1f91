-- ARGV: id, token, mode ('retry' | 'fail' | 'release'), reason, kind, status, delay_s
--   -> 1 moved, 0 not held (any more)

-- #include _prologue.lua

local id, token, mode = ARGV[1], ARGV[2], ARGV[3]
local u = K .. 'u:' .. id

-- #include _let_go.lua

redis.call('HSET', u, 'token', '', 'worker', '')
if mode == 'release' then
  if tonumber(redis.call('HGET', u, 'attempts')) > 0 then redis.call('HINCRBY', u, 'attempts', -1) end
  redis.call('HSET', u, 'state', 'pending')
  redis.call('ZADD', K .. 'pending', redis.call('HGET', u, 'ready'), id)
  return 1
end
local started = tonumber(redis.call('HGET', u, 'started_at') or now)
redis.call('HSET', u, 'last_error', ARGV[4], 'finished_at', now, 'elapsed_s', now - started)
if ARGV[6] ~= '' then redis.call('HSET', u, 'status', ARGV[6]) else redis.call('HDEL', u, 'status') end
if mode == 'retry' then
  local ready = now + tonumber(ARGV[7])
  redis.call('HSET', u, 'state', 'pending', 'ready', ready)
  redis.call('ZADD', K .. 'pending', ready, id)
else
  redis.call('HSET', u, 'state', 'failed')
  redis.call('ZADD', K .. 'failed', id, id)
  redis.call('HINCRBY', K .. 'fail_kinds', ARGV[5], 1)
end
return 1
