-- -> the server's time, seconds as a string (coredis's ``time()`` loses the
-- microseconds: it divides them by 1000)

local t = redis.call('TIME')
return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
