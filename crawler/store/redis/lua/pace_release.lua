-- ARGV: token, gap_ms, keep_ms  -> 1.  The next request may start gap_ms from now
-- (never earlier than a back-off already set), and the hold is dropped if still ours.

-- #include _pace_prologue.lua

if redis.call('HGET', k, 'holder') == ARGV[1] then redis.call('HDEL', k, 'holder', 'hold_until') end
local at = math.max(nxt, now + tonumber(ARGV[2]))
redis.call('HSET', k, 'next', string.format('%.3f', at))
redis.call('PEXPIRE', k, math.ceil(at - now) + tonumber(ARGV[3]))
return 1
