"""The Lua scripts of the Redis store: every transition of a URL is one of them, so it
is atomic on the server (see :mod:`crawler.redis_store` for the keys and the states).

Each script of a crawl takes the crawl's key prefix ``P`` as KEYS[1], then the crawl's
fixed keys it touches (``P pending``, ``P leases``...: :data:`SCRIPT_KEYS`, found in
its source), and reads Redis's own clock, so workers whose clocks disagree still agree
on lease expiries and ready times.  The keys of one URL (``P u:<id>``) or one worker
(``P held:<worker>``) cannot be declared: a claim finds its URL as it runs.  They share
the crawl's hash tag (``crawler:{<crawl>}:``), so every key a script touches is in one
Redis Cluster slot, the one its declared keys route it to.  Every
script is safe to run twice (a client retries a call whose connection broke).
"""

from __future__ import annotations

import re

REQUEST_FIELDS = 5  # script arguments per request: url, label, depth, data, parent (see redis_layout.encode_request)

# Shared Lua prologue: K is the key prefix (KEYS[1]); now is the server's time.
_PROLOGUE = """
local K = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# The lease check and let-go both scripts that end a claimed job share: 0 unless the
# caller still holds the job (in progress, same token); else the lease and the
# worker's hold on it are dropped, and ``worker`` is the worker that held it.
_LET_GO = """
if redis.call('HGET', u, 'state') ~= 'in_progress' or redis.call('HGET', u, 'token') ~= token then
  return 0
end
local worker = redis.call('HGET', u, 'worker')
redis.call('SREM', K .. 'held:' .. worker, id)
redis.call('ZREM', K .. 'leases', id)
"""

# Shared by the scripts that add URLs: ``add_request(i, max_urls)`` adds the request
# whose REQUEST_FIELDS arguments start at ARGV[i] (url, label, depth, data, parent;
# label and parent are '' for None, else '=' then the text; data is the JSON object,
# '' for {}) unless its URL is known or the frontier is full -> 1 if added.
# ``frontier_full(max_urls)``: ``P seq`` (every URL ever added) has reached max_urls
# (0: no cap).
_ADD_FUNCTIONS = f"""
local REQUEST_FIELDS = {REQUEST_FIELDS}
local function frontier_full(max_urls)
  return max_urls > 0 and tonumber(redis.call('GET', K .. 'seq') or '0') >= max_urls
end
local function add_request(i, max_urls)
  local url = ARGV[i]
  if redis.call('HEXISTS', K .. 'ids', url) == 1 or frontier_full(max_urls) then return 0 end
  local id = redis.call('INCR', K .. 'seq')
  redis.call('HSET', K .. 'ids', url, id)
  local u = K .. 'u:' .. id
  redis.call('HSET', u, 'url', url, 'state', 'pending', 'attempts', 0, 'ready', id, 'done_count', 0,
             'depth', ARGV[i + 2])
  if ARGV[i + 1] ~= '' then redis.call('HSET', u, 'label', string.sub(ARGV[i + 1], 2)) end
  if ARGV[i + 3] ~= '' then redis.call('HSET', u, 'data', ARGV[i + 3]) end
  if ARGV[i + 4] ~= '' then redis.call('HSET', u, 'parent', string.sub(ARGV[i + 4], 2)) end
  redis.call('ZADD', K .. 'pending', id, id)
  return 1
end
"""

# ``ready_again(id)``: a done or failed URL back to pending, ready now in its place in
# the crawl order, its attempts reset (the caller takes it out of its old state's set).
_READY_AGAIN = """
local function ready_again(id)
  redis.call('HSET', K .. 'u:' .. id, 'state', 'pending', 'attempts', 0, 'ready', id)
  redis.call('ZADD', K .. 'pending', id, id)
end
"""

# The fields of a URL record a claim returns, after the id (see ``_job``).
_JOB_FIELDS = "'url', 'attempts', 'label', 'depth', 'data', 'parent'"

# ARGV: max_urls, then REQUEST_FIELDS per request
#   -> {number of new URLs, 1 if the frontier is full now else 0}
_ADD_URLS = (
    _PROLOGUE
    + _ADD_FUNCTIONS
    + """
local max_urls = tonumber(ARGV[1])
local added = 0
for i = 2, #ARGV, REQUEST_FIELDS do
  added = added + add_request(i, max_urls)
end
return {added, frontier_full(max_urls) and 1 or 0}
"""
)

# ARGV: worker, token, lease_s, max_attempts, takeover_scan, claim_scan, then the hosts
#   to pass over (a pending URL of one of them is skipped for the first of another host
#   among the first claim_scan ready, if any; the host is the URL's netloc, as
#   ``ratelimit.host_of`` has it)
#   -> {id, url, attempt, label, depth, data, parent} (absent fields nil) or nil
_CLAIM = (
    _PROLOGUE
    + """
local worker, token = ARGV[1], ARGV[2]
local lease_s, max_attempts = tonumber(ARGV[3]), tonumber(ARGV[4])
-- A retry of a claim whose reply was lost: the same token gets the same URL.
for _, held in ipairs(redis.call('SMEMBERS', K .. 'held:' .. worker)) do
  if redis.call('HGET', K .. 'u:' .. held, 'token') == token then
    return {held, unpack(redis.call('HMGET', K .. 'u:' .. held, JOB_FIELDS))}
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
return {id, unpack(redis.call('HMGET', u, JOB_FIELDS))}
"""
).replace("JOB_FIELDS", _JOB_FIELDS)

# ARGV: id, token, call, items_json ('' for none), status ('' for none),
#   elapsed_s, max_urls, hashes_json (the items' content hashes, a JSON array),
#   recrawl_after_s (0: never), run (0: none), then REQUEST_FIELDS per link
#   -> 1 done (by this call, or by this same call before: a client's retry),
#      2 already done by another complete call of this job (nothing written),
#      0 not held (nothing written)
# The items replace the URL's earlier ones; ``P item_meta`` keeps [hash, fetched_at,
# run] per item, and an item whose hash was among the earlier ones keeps its
# fetched_at and run (unchanged; each earlier item matches once), as
# ``store.carry_over`` does.
_COMPLETE = (
    _PROLOGUE
    + _ADD_FUNCTIONS
    + """
local id, token, call = ARGV[1], ARGV[2], ARGV[3]
local u = K .. 'u:' .. id
if redis.call('HGET', u, 'done_token') == token then
  if redis.call('HGET', u, 'done_call') == call then return 1 end  -- a retried call
  return 2
end
"""
    + _LET_GO
    + """
redis.call('HSET', u, 'state', 'done', 'token', '', 'worker', '', 'done_by', worker, 'done_token', token,
           'done_call', call, 'finished_at', now, 'elapsed_s', ARGV[6])
redis.call('HDEL', u, 'last_error')
if ARGV[5] ~= '' then redis.call('HSET', u, 'status', ARGV[5]) else redis.call('HDEL', u, 'status') end
redis.call('HINCRBY', u, 'done_count', 1)
redis.call('ZADD', K .. 'done', id, id)
local changed, unchanged = 0, 0
if ARGV[4] ~= '' then
  local pool = {}
  local old = redis.call('HGET', K .. 'item_meta', id)
  if old then
    for _, m in ipairs(cjson.decode(old)) do
      pool[m[1]] = pool[m[1]] or {}
      table.insert(pool[m[1]], m)
    end
  end
  local meta = {}
  for i, h in ipairs(cjson.decode(ARGV[8])) do
    if pool[h] and #pool[h] > 0 then
      meta[i] = table.remove(pool[h], 1)
      unchanged = unchanged + 1
    else
      meta[i] = {h, now, tonumber(ARGV[10])}
      changed = changed + 1
    end
  end
  redis.call('HSET', K .. 'items', id, ARGV[4])
  redis.call('HSET', K .. 'item_meta', id, cjson.encode(meta))
else
  redis.call('HDEL', K .. 'items', id)
  redis.call('HDEL', K .. 'item_meta', id)
end
redis.call('HSET', u, 'changed_items', changed, 'unchanged_items', unchanged)
local recrawl_after = tonumber(ARGV[9])
if recrawl_after > 0 then
  redis.call('ZADD', K .. 'recrawl', now + recrawl_after, id)
else
  redis.call('ZREM', K .. 'recrawl', id)
end
local max_urls = tonumber(ARGV[7])
for i = 11, #ARGV, REQUEST_FIELDS do
  add_request(i, max_urls)
end
return 1
"""
)

# ARGV: limit  -> how many done URLs whose recrawl time has come (at most ``limit``)
# went back to pending: ready now, in crawl order, attempts reset, items kept
_REQUEUE_DUE = (
    _PROLOGUE
    + _READY_AGAIN
    + """
local moved = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K .. 'recrawl', '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
  redis.call('ZREM', K .. 'recrawl', id)
  if redis.call('HGET', K .. 'u:' .. id, 'state') == 'done' then
    redis.call('ZREM', K .. 'done', id)
    ready_again(id)
    moved = moved + 1
  end
end
return moved
"""
)

# ARGV: first id, last id, label ('' for any, else '=' then the label)
#   -> for each URL id in [first, last] with stored items (and that label):
#      id, url, label ('' for none), items JSON, item_meta JSON ('' if none: the
#      layout before recrawls), finished_at
_ITEM_BATCH = """
local K = KEYS[1]
local want = ARGV[3]
local out = {}
for id = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local items = redis.call('HGET', K .. 'items', id)
  if items then
    local u = K .. 'u:' .. id
    local label = redis.call('HGET', u, 'label')
    if want == '' or (label and '=' .. label == want) then
      local meta = redis.call('HGET', K .. 'item_meta', id) or ''
      table.insert(out, id)
      table.insert(out, redis.call('HGET', u, 'url') or '')
      table.insert(out, label or '')
      table.insert(out, items)
      table.insert(out, meta)
      table.insert(out, redis.call('HGET', u, 'finished_at') or '0')
    end
  end
end
return out
"""

# ARGV: none  -> how many expired leases (any worker's) went back to pending, the
# interrupted attempt not charged
_RECOVER = (
    _PROLOGUE
    + """
local recovered = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K .. 'leases', '-inf', now)) do
  local u = K .. 'u:' .. id
  redis.call('SREM', K .. 'held:' .. (redis.call('HGET', u, 'worker') or ''), id)
  redis.call('ZREM', K .. 'leases', id)
  if tonumber(redis.call('HGET', u, 'attempts') or '0') > 0 then redis.call('HINCRBY', u, 'attempts', -1) end
  redis.call('HSET', u, 'state', 'pending', 'token', '', 'worker', '')
  redis.call('ZADD', K .. 'pending', redis.call('HGET', u, 'ready'), id)
  recovered = recovered + 1
end
return recovered
"""
)

# ARGV: id, token, mode ('retry' | 'fail' | 'release'), reason, kind, status, delay_s
#   -> 1 moved, 0 not held (any more)
_FINISH = (
    _PROLOGUE
    + """
local id, token, mode = ARGV[1], ARGV[2], ARGV[3]
local u = K .. 'u:' .. id
"""
    + _LET_GO
    + """
redis.call('HSET', u, 'token', '', 'worker', '')
if mode == 'release' then
  if tonumber(redis.call('HGET', u, 'attempts')) > 0 then redis.call('HINCRBY', u, 'attempts', -1) end
  redis.call('HSET', u, 'state', 'pending')
  redis.call('ZADD', K .. 'pending', redis.call('HGET', u, 'ready'), id)
  return 1
end
local started = tonumber(redis.call('HGET', u, 'started_at') or now)
redis.call('HSET', u, 'last_error', ARGV[4], 'finished_at', now, 'elapsed_s', now - started)
if ARGV[6] ~= '' then redis.call('HSET', u, 'status', ARGV[6]) else redis.call('HDEL', u, 'status') end
if mode == 'retry' then
  local ready = now + tonumber(ARGV[7])
  redis.call('HSET', u, 'state', 'pending', 'ready', ready)
  redis.call('ZADD', K .. 'pending', ready, id)
else
  redis.call('HSET', u, 'state', 'failed')
  redis.call('ZADD', K .. 'failed', id, id)
  redis.call('HINCRBY', K .. 'fail_kinds', ARGV[5], 1)
end
return 1
"""
)

# ARGV: worker, token ('' for all)  -> how many leases of ``worker`` went back to pending
_RELEASE_HELD = (
    _PROLOGUE
    + """
local worker, token = ARGV[1], ARGV[2]
local released = 0
for _, id in ipairs(redis.call('SMEMBERS', K .. 'held:' .. worker)) do
  local u = K .. 'u:' .. id
  if redis.call('HGET', u, 'worker') == worker and redis.call('HGET', u, 'state') == 'in_progress'
     and (token == '' or redis.call('HGET', u, 'token') == token) then
    redis.call('ZREM', K .. 'leases', id)
    if tonumber(redis.call('HGET', u, 'attempts')) > 0 then redis.call('HINCRBY', u, 'attempts', -1) end
    redis.call('HSET', u, 'state', 'pending', 'token', '', 'worker', '')
    redis.call('ZADD', K .. 'pending', redis.call('HGET', u, 'ready'), id)
    redis.call('SREM', K .. 'held:' .. worker, id)
    released = released + 1
  elseif token == '' or redis.call('HGET', u, 'worker') ~= worker then
    redis.call('SREM', K .. 'held:' .. worker, id)  -- not (or no longer) ours: a stale entry
  end
end
if token == '' then redis.call('ZREM', K .. 'workers', worker) end
return released
"""
)

# ARGV: worker, lease_s, forget_s, id1, token1, id2, token2...  -> ids no longer held
_RENEW = (
    _PROLOGUE
    + """
local worker, lease_s = ARGV[1], tonumber(ARGV[2])
redis.call('ZADD', K .. 'workers', now, worker)
redis.call('ZREMRANGEBYSCORE', K .. 'workers', '-inf', now - tonumber(ARGV[3]))
local lost = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local u = K .. 'u:' .. id
  if redis.call('HGET', u, 'state') == 'in_progress' and redis.call('HGET', u, 'token') == token then
    redis.call('ZADD', K .. 'leases', 'XX', now + lease_s, id)
    redis.call('HSET', u, 'lease_until', now + lease_s)
  else
    table.insert(lost, id)
  end
end
return lost
"""
)

# ARGV: none  -> seconds (string) until something is claimable, or nil
_NEXT_READY_IN = (
    _PROLOGUE
    + """
local best = nil
for _, key in ipairs({'pending', 'leases'}) do
  local first = redis.call('ZRANGE', K .. key, 0, 0, 'WITHSCORES')
  if #first == 2 then
    local at = tonumber(first[2])
    if best == nil or at < best then best = at end
  end
end
if best == nil then return false end
return tostring(math.max(0, best - now))
"""
)

# ARGV: none  -> {pending, in_progress, done, failed}
_COUNTS = """
local K = KEYS[1]
return {redis.call('ZCARD', K .. 'pending'), redis.call('ZCARD', K .. 'leases'),
        redis.call('ZCARD', K .. 'done'), redis.call('ZCARD', K .. 'failed')}
"""

# ARGV: worker  -> urls of the ids ``worker`` holds
_HELD_URLS = """
local K, worker = KEYS[1], ARGV[1]
local urls = {}
for _, id in ipairs(redis.call('SMEMBERS', K .. 'held:' .. worker)) do
  local u = K .. 'u:' .. id
  if redis.call('HGET', u, 'worker') == worker and redis.call('HGET', u, 'state') == 'in_progress' then
    table.insert(urls, redis.call('HGET', u, 'url'))
  end
end
return urls
"""

# ARGV: reason prefix ('' for all)  -> how many failed URLs went back to pending
# (ready now, in crawl order; attempts reset; their failures uncounted)
_RETRY_FAILED = (
    """
local K, prefix = KEYS[1], ARGV[1]
"""
    + _READY_AGAIN
    + """
local moved = 0
for _, id in ipairs(redis.call('ZRANGE', K .. 'failed', 0, -1)) do
  local u = K .. 'u:' .. id
  local reason = redis.call('HGET', u, 'last_error') or ''
  if prefix == '' or string.sub(reason, 1, #prefix) == prefix then
    local kind = string.match(reason, '^([^:]*)')
    if kind == nil or kind == '' then kind = 'unknown' end
    if tonumber(redis.call('HINCRBY', K .. 'fail_kinds', kind, -1)) <= 0 then
      redis.call('HDEL', K .. 'fail_kinds', kind)
    end
    redis.call('ZREM', K .. 'failed', id)
    ready_again(id)
    moved = moved + 1
  end
end
return moved
"""
)

# KEYS[1]: the input's position key; ARGV: position  (kept if more than the one recorded)
_SAVE_INPUT_POSITION = """
local k = KEYS[1]
if tonumber(ARGV[1]) > tonumber(redis.call('GET', k) or '0') then redis.call('SET', k, ARGV[1]) end
return 1
"""

# KEYS[1]: the list; ARGV: max, json  (appends, keeps the last ``max``)
_PUSH_CAPPED = """
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
"""

# -> the server's time, seconds as a string (coredis's ``time()`` loses the
# microseconds: it divides them by 1000)
_TIME = """
local t = redis.call('TIME')
return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
"""

# -- the shared host pace (crawler.redis_pace) -----------------------------------------
# KEYS[1]: the host's pace hash (next: ms before which no request may start; holder,
# hold_until: the worker whose request is leaving now).  Times are Redis's, in ms (to the us).  The
# key expires PACE_KEEP_MS after its last turn, so hosts no longer crawled leave nothing.
_PACE_PROLOGUE = """
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local nxt = tonumber(redis.call('HGET', k, 'next') or '0')
"""

# ARGV: token, hold_ms (0: only wait out a back-off, take no hold), poll_ms, keep_ms
#   -> ms to wait before asking again; 0: the turn is the caller's (held, if hold_ms > 0)
_PACE_ACQUIRE = (
    _PACE_PROLOGUE
    + """
local token, hold_ms = ARGV[1], tonumber(ARGV[2])
local holder = redis.call('HGET', k, 'holder')
if holder and holder ~= token and tonumber(redis.call('HGET', k, 'hold_until') or '0') > now then
  return tonumber(ARGV[3])  -- another worker's request is leaving: its gap is not known yet
end
if nxt > now then return math.ceil(nxt - now) end  -- whole ms (a script returns integers), never early
if hold_ms > 0 then
  redis.call('HSET', k, 'holder', token, 'hold_until', now + hold_ms)
  redis.call('PEXPIRE', k, hold_ms + tonumber(ARGV[4]))
end
return 0
"""
)

# ARGV: token, gap_ms, keep_ms  -> 1.  The next request may start gap_ms from now
# (never earlier than a back-off already set), and the hold is dropped if still ours.
_PACE_RELEASE = (
    _PACE_PROLOGUE
    + """
if redis.call('HGET', k, 'holder') == ARGV[1] then redis.call('HDEL', k, 'holder', 'hold_until') end
local at = math.max(nxt, now + tonumber(ARGV[2]))
redis.call('HSET', k, 'next', string.format('%.3f', at))
redis.call('PEXPIRE', k, math.ceil(at - now) + tonumber(ARGV[3]))
return 1
"""
)

# ARGV: delay_ms, keep_ms  -> 1.  No request to the host starts for delay_ms (Retry-After).
_PACE_BACK_OFF = (
    _PACE_PROLOGUE
    + """
local at = math.max(nxt, now + tonumber(ARGV[1]))
redis.call('HSET', k, 'next', string.format('%.3f', at))
redis.call('PEXPIRE', k, math.ceil(at - now) + tonumber(ARGV[2]))
return 1
"""
)

SCRIPTS = {
    "pace_acquire": _PACE_ACQUIRE,
    "pace_release": _PACE_RELEASE,
    "pace_back_off": _PACE_BACK_OFF,
    "time": _TIME,
    "add_urls": _ADD_URLS,
    "claim": _CLAIM,
    "complete": _COMPLETE,
    "requeue_due": _REQUEUE_DUE,
    "item_batch": _ITEM_BATCH,
    "recover": _RECOVER,
    "finish": _FINISH,
    "release_held": _RELEASE_HELD,
    "renew": _RENEW,
    "next_ready_in": _NEXT_READY_IN,
    "counts": _COUNTS,
    "held_urls": _HELD_URLS,
    "push_capped": _PUSH_CAPPED,
    "retry_failed": _RETRY_FAILED,
    "save_input_position": _SAVE_INPUT_POSITION,
}


# The crawl's fixed keys each crawl script touches (``K .. 'name'`` in its source; not
# the per-URL or per-worker ones, whose names end in ':'), declared after the prefix.
SCRIPT_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(dict.fromkeys(re.findall(r"K \.\. '([a-z_]+)'", source)))
    for name, source in SCRIPTS.items()
    if "local K" in source
} | {"next_ready_in": ("pending", "leases")}  # named in a Lua list there
