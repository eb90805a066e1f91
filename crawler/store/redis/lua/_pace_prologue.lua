-- The shared host pace (crawler.store.redis.pace), the prologue of its scripts.
-- KEYS[1]: the host's pace hash (next: ms before which no request may start; holder,
-- hold_until: the worker whose request is leaving now).  Times are Redis's, in ms (to
-- the us).  The key expires PACE_KEEP_MS after its last turn, so hosts no longer
-- crawled leave nothing.

local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local nxt = tonumber(redis.call('HGET', k, 'next') or '0')
