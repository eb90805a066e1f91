-- KEYS[1]: the list; ARGV: max, json  (appends, keeps the last ``max``)

redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
