-- ARGV: id, token, call, items_json ('' for none), status ('' for none),
--   elapsed_s, max_urls, hashes_json (the items' content hashes, a JSON array),
--   recrawl_after_s (0: never), run (0: none), then REQUEST_FIELDS per link
--   -> 1 done (by this call, or by this same call before: a client's retry),
--      2 already done by another complete call of this job (nothing written),
--      0 not held (nothing written)
-- The items replace the URL's earlier ones; ``P item_meta`` keeps [hash, fetched_at,
-- run] per item, and an item whose hash was among the earlier ones keeps its
-- fetched_at and run (unchanged; each earlier item matches once), as
-- ``store.carry_over`` does.

-- #include _prologue.lua

-- #include _add_request.lua

local id, token, call = ARGV[1], ARGV[2], ARGV[3]
local u = K .. 'u:' .. id
if redis.call('HGET', u, 'done_token') == token then
  if redis.call('HGET', u, 'done_call') == call then return 1 end  -- a retried call
  return 2
end

-- #include _let_go.lua

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
