-- KEYS: P sessions, P session_saved; ARGV: identity, saved_at ('' for any)  -> 1 if deleted, else 0
-- (with saved_at: only the state saved then, not a newer login's)

local saved = redis.call('HGET', KEYS[2], ARGV[1])
if not saved or (ARGV[2] ~= '' and saved ~= ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
