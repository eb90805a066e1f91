-- ARGV: none  -> {pending, in_progress, done, failed}

local K = KEYS[1]
return {redis.call('ZCARD', K .. 'pending'), redis.call('ZCARD', K .. 'leases'),
        redis.call('ZCARD', K .. 'done'), redis.call('ZCARD', K .. 'failed')}
