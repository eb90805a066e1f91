-- KEYS: P login:<identity>; ARGV: token  -> 1 if released, 0 if not held under token

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
