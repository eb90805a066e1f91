-- ARGV: worker, token, lease_s, max_attempts, takeover_scan, claim_scan, then the hosts
--   to pass over (a pending URL of one of them is skipped for the first of another host
--   among the first claim_scan ready, if any; the host is the URL's netloc, as
--   ``ratelimit.host_of`` has it)
--   -> {id, url, attempt, label, depth, data, parent} (absent fields nil) or nil
-- {JOB_FIELDS} is filled in from scripts._JOB_FIELDS (the fields ``Leases._job`` reads).

-- #include _prologue.lua

local worker, token = ARGV[1], ARGV[2]
local lease_s, max_attempts = tonumber(ARGV[3]), tonumber(ARGV[4])
-- A retry of a claim whose reply was lost: the same token gets the same URL.
for _, held in ipairs(redis.call('SMEMBERS', K .. 'held:' .. worker)) do
  if redis.call('HGET', K .. 'u:' .. held, 'token') == token then
    return {held, unpack(redis.call('HMGET', K .. 'u:' .. held, {JOB_FIELDS}))}
  end
end
local id = nil
for _ = 1, tonumber(ARGV[5]) do
  local expired = redis.call('ZRANGEBYSCORE', K .. 'leases', '-inf', now, 'LIMIT', 0, 1)
  if #expired == 0 then break end
  local e = expired[1]
  local u = K .. 'u:' .. e
  local old = redis.call('HGET', u, 'worker') or ''
  redis.call('SREM', K .. 'held:' .. old, e)
  redis.call('ZREM', K .. 'leases', e)
  local attempts = tonumber(redis.call('HGET', u, 'attempts') or '0')
  if attempts >= max_attempts then
    local reason = 'lease_expired: ' .. old .. ' stopped renewing its lease (attempt ' .. attempts .. ')'
    redis.call('HSET', u, 'state', 'failed', 'last_error', reason, 'finished_at', now, 'token', '', 'worker', '')
    redis.call('ZADD', K .. 'failed', e, e)
    redis.call('HINCRBY', K .. 'fail_kinds', 'lease_expired', 1)
  else
    redis.call('HINCRBY', u, 'takeovers', 1)
    redis.call('HSET', u, 'taken_from', old, 'taken_at', now)
    id = e
    break
  end
end
if not id then
  local avoid = {}
  for i = 7, #ARGV do avoid[ARGV[i]] = true end
  local ready = redis.call('ZRANGEBYSCORE', K .. 'pending', '-inf', now, 'LIMIT', 0, #ARGV >= 7 and tonumber(ARGV[6]) or 1)
  if #ready == 0 then return false end
  for _, candidate in ipairs(ready) do
    local url = redis.call('HGET', K .. 'u:' .. candidate, 'url') or ''
    if not avoid[string.match(url, '^%a[%w+.-]*://([^/?#]*)') or ''] then
      id = candidate
      break
    end
  end
  id = id or ready[1]
  redis.call('ZREM', K .. 'pending', id)
end
local u = K .. 'u:' .. id
redis.call('HINCRBY', u, 'attempts', 1)
local lease_until = now + lease_s
redis.call('HSET', u, 'state', 'in_progress', 'token', token, 'worker', worker,
           'started_at', now, 'lease_until', lease_until)
redis.call('ZADD', K .. 'leases', lease_until, id)
redis.call('SADD', K .. 'held:' .. worker, id)
return {id, unpack(redis.call('HMGET', u, {JOB_FIELDS}))}
