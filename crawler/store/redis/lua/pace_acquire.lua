-- ARGV: token, hold_ms (0: only wait out a back-off, take no hold), poll_ms, keep_ms
--   -> ms to wait before asking again; 0: the turn is the caller's (held, if hold_ms > 0)

-- #include _pace_prologue.lua

local token, hold_ms = ARGV[1], tonumber(ARGV[2])
local holder = redis.call('HGET', k, 'holder')
if holder and holder ~= token and tonumber(redis.call('HGET', k, 'hold_until') or '0') > now then
  return tonumber(ARGV[3])  -- another worker's request is leaving: its gap is not known yet
end
if nxt > now then return math.ceil(nxt - now) end  -- whole ms (a script returns integers), never early
if hold_ms > 0 then
  redis.call('HSET', k, 'holder', token, 'hold_until', now + hold_ms)
  redis.call('PEXPIRE', k, hold_ms + tonumber(ARGV[4]))
end
return 0
