-- ARGV: limit  -> how many done URLs whose recrawl time has come (at most ``limit``)
-- went back to pending: ready now, in crawl order, attempts reset, items kept

-- #include _prologue.lua

-- #include _ready_again.lua

local moved = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K .. 'recrawl', '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
  redis.call('ZREM', K .. 'recrawl', id)
  if redis.call('HGET', K .. 'u:' .. id, 'state') == 'done' then
    redis.call('ZREM', K .. 'done', id)
    ready_again(id)
    moved = moved + 1
  end
end
return moved
