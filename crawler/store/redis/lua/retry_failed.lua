-- ARGV: reason prefix ('' for all)  -> how many failed URLs went back to pending
-- (ready now, in crawl order; attempts reset; their failures uncounted)

local K, prefix = KEYS[1], ARGV[1]

-- #include _ready_again.lua

local moved = 0
for _, id in ipairs(redis.call('ZRANGE', K .. 'failed', 0, -1)) do
  local u = K .. 'u:' .. id
  local reason = redis.call('HGET', u, 'last_error') or ''
  if prefix == '' or string.sub(reason, 1, #prefix) == prefix then
    local kind = string.match(reason, '^([^:]*)')
    if kind == nil or kind == '' then kind = 'unknown' end
    if tonumber(redis.call('HINCRBY', K .. 'fail_kinds', kind, -1)) <= 0 then
      redis.call('HDEL', K .. 'fail_kinds', kind)
    end
    redis.call('ZREM', K .. 'failed', id)
    ready_again(id)
    moved = moved + 1
  end
end
return moved
