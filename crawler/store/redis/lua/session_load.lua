-- KEYS: P sessions, P session_saved; ARGV: identity  -> {state, saved_at}, or {} if none

local state = redis.call('HGET', KEYS[1], ARGV[1])
if not state then return {} end
return {state, redis.call('HGET', KEYS[2], ARGV[1])}
