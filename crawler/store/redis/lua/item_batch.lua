-- ARGV: first id, last id, label ('' for any, else '=' then the label)
--   -> for each URL id in [first, last] with stored items (and that label):
--      id, url, label ('' for none), items JSON, item_meta JSON ('' if none: the
--      layout before recrawls), finished_at

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
