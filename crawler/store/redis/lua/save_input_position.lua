-- KEYS[1]: the input's position key; ARGV: position  (kept if more than the one recorded)

local k = KEYS[1]
if tonumber(ARGV[1]) > tonumber(redis.call('GET', k) or '0') then redis.call('SET', k, ARGV[1]) end
return 1
