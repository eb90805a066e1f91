-- The lease check and let-go both scripts that end a claimed job share (complete,
-- finish): 0 unless the caller still holds the job ``id`` (record ``u``; in progress,
-- same ``token``); else the lease and the worker's hold on it are dropped, and
-- ``worker`` is the worker that held it.

if redis.call('HGET', u, 'state') ~= 'in_progress' or redis.call('HGET', u, 'token') ~= token then
  return 0
end
local worker = redis.call('HGET', u, 'worker')
redis.call('SREM', K .. 'held:' .. worker, id)
redis.call('ZREM', K .. 'leases', id)
