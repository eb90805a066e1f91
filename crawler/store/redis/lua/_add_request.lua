-- Shared by the scripts that add URLs (add_urls, complete): ``add_request(i, max_urls)``
-- adds the request whose REQUEST_FIELDS arguments start at ARGV[i] (url, label, depth,
-- data, parent; label and parent are '' for None, else '=' then the text; data is the
-- JSON object, '' for {}) unless its URL is known or the frontier is full -> 1 if added.
-- ``frontier_full(max_urls)``: ``P seq`` (every URL ever added) has reached max_urls
-- (0: no cap).  {REQUEST_FIELDS} is filled in from scripts.REQUEST_FIELDS.

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
