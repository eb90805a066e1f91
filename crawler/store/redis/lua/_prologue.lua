-- Shared prologue of the crawl's scripts: K is the key prefix (KEYS[1]); now is the
-- server's time, in seconds.

local K = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
