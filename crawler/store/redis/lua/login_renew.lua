-- KEYS: P login:<identity>; ARGV: token, ttl_ms  -> 1 if renewed, 0 if not held under token

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
