-- KEYS: P sessions, P session_saved; ARGV: identity, state (JSON), saved_at  -> 1
-- (the state and its time in one step: a reader never sees one without the other)

redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
