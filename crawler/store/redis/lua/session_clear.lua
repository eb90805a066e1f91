-- KEYS: P sessions, P session_saved  -> how many states were deleted

local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return n
