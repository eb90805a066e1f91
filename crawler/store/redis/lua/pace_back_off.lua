-- ARGV: delay_ms, keep_ms  -> 1.  No request to the host starts for delay_ms (Retry-After).

-- #include _pace_prologue.lua

local at = math.max(nxt, now + tonumber(ARGV[1]))
redis.call('HSET', k, 'next', string.format('%.3f', at))
redis.call('PEXPIRE', k, math.ceil(at - now) + tonumber(ARGV[2]))
return 1
