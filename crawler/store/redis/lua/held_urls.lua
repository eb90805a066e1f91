-- ARGV: worker  -> urls of the ids ``worker`` holds

local K, worker = KEYS[1], ARGV[1]
local urls = {}
for _, id in ipairs(redis.call('SMEMBERS', K .. 'held:' .. worker)) do
  local u = K .. 'u:' .. id
  if redis.call('HGET', u, 'worker') == worker and redis.call('HGET', u, 'state') == 'in_progress' then
    table.insert(urls, redis.call('HGET', u, 'url'))
  end
end
return urls
