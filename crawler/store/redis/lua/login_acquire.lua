-- KEYS: P login:<identity>; ARGV: token, ttl_ms  -> 1 if taken (or already held under
-- token: a retried call), 0 while another holds it

if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
